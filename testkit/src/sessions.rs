//! People for tests of services other than the query API (which signs
//! people in itself): a user and a session written to the access topic, as
//! sign-in writes them, and a session token signed with the deployment's
//! secret. The service under test then checks them as it would any other.

use sluice_runtime::access::records::new_id;
use sluice_runtime::access::{
    AccessRecord, AccessWriter, Role, SessionRecord, TokenKey, UserRecord,
};
use sluice_runtime::secret::Secret;
use sluice_runtime::settings::KafkaSettings;
use sluice_schemas::time_format::now_ms;

/// A signed-in person: their session token and the records behind it.
#[derive(Debug, Clone)]
pub struct Person {
    pub token: String,
    pub user: UserRecord,
    pub session: SessionRecord,
}

/// Writes a user with `roles` (a global admin when `global_admin`) and a
/// session of theirs to `kafka`'s access topic; the token is signed with `secret`.
pub async fn signed_in(
    kafka: &KafkaSettings,
    secret: &str,
    roles: &[(&str, Role)],
    global_admin: bool,
) -> Person {
    let writer = AccessWriter::new(kafka).expect("an access writer");
    let user = UserRecord {
        user_id: new_id("usr_"),
        email: format!("{}@example.com", new_id("u")),
        password_hash: String::new(),
        global_admin,
        roles: roles
            .iter()
            .map(|(project, role)| ((*project).to_owned(), *role))
            .collect(),
        created_at_ms: now_ms(),
        created_by: "test".into(),
        sessions_valid_from_ms: 0,
        deleted_at_ms: None,
    };
    let session = SessionRecord {
        session_id: new_id("ses_"),
        user_id: user.user_id.clone(),
        refresh_digest: String::new(),
        created_at_ms: now_ms(),
        expires_at_ms: now_ms() + 3_600_000,
        revoked_at_ms: None,
    };
    writer
        .put(&AccessRecord::User(user.clone()))
        .await
        .expect("the user is written");
    writer
        .put(&AccessRecord::Session(session.clone()))
        .await
        .expect("the session is written");
    let token = TokenKey::new(&Secret::new(secret), "--session-secret")
        .expect("a long enough secret")
        .issue(&user.user_id, &session.session_id, now_ms() / 1000, 600);
    Person {
        token,
        user,
        session,
    }
}

/// Ends `person`'s session, as signing out does.
pub async fn sign_out(kafka: &KafkaSettings, person: &Person) {
    let mut ended = person.session.clone();
    ended.revoked_at_ms = Some(now_ms());
    AccessWriter::new(kafka)
        .expect("an access writer")
        .put(&AccessRecord::Session(ended))
        .await
        .expect("the session end is written");
}

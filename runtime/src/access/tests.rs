//! The role × need matrix and credential resolution, on hand-filled stores.

use std::collections::BTreeMap;

use axum::http::{Method, Request, StatusCode};

use super::*;
use crate::keys::KeyLimits;
use crate::secret::Secret;

const SECRET: &str = "a-session-secret-of-at-least-32-bytes";
const ADMIN_TOKEN: &str = "bootstrap-admin-token";

fn key(key: &str, project: &str, scopes: Vec<Scope>) -> KeyRecord {
    KeyRecord::for_key(key, project, scopes, String::new(), KeyLimits::default(), 1)
}

fn user(id: &str, roles: &[(&str, Role)], global_admin: bool) -> UserRecord {
    UserRecord {
        user_id: id.to_owned(),
        email: format!("{id}@example.com"),
        password_hash: String::new(),
        global_admin,
        roles: roles
            .iter()
            .map(|(project, role)| ((*project).to_owned(), *role))
            .collect::<BTreeMap<_, _>>(),
        created_at_ms: 1,
        created_by: String::new(),
        sessions_valid_from_ms: 0,
        deleted_at_ms: None,
    }
}

fn session(id: &str, user_id: &str) -> SessionRecord {
    SessionRecord {
        session_id: id.to_owned(),
        user_id: user_id.to_owned(),
        refresh_digest: String::new(),
        created_at_ms: 10,
        expires_at_ms: i64::MAX,
        revoked_at_ms: None,
    }
}

struct World {
    access: Access,
    token_key: TokenKey,
}

impl World {
    fn new() -> Self {
        let mut expired = key("expired-key-01", "demo", vec![Scope::Read]);
        expired.expires_at_ms = Some(5);
        let keys = KeyStore::with_records([
            key("reader-key-01", "demo", vec![Scope::Read]),
            key("ingest-key-01", "demo", vec![Scope::Ingest]),
            key("admin-key-001", "ops", vec![Scope::Admin]),
            expired,
        ]);
        let accounts = AccessStore::with_records([
            AccessRecord::User(user("viewer", &[("demo", Role::Viewer)], false)),
            AccessRecord::User(user("dev", &[("demo", Role::Developer)], false)),
            AccessRecord::User(user(
                "admin",
                &[("demo", Role::Admin), ("other", Role::Viewer)],
                false,
            )),
            AccessRecord::User(user("root", &[], true)),
            AccessRecord::Session(session("s-viewer", "viewer")),
            AccessRecord::Session(session("s-dev", "dev")),
            AccessRecord::Session(session("s-admin", "admin")),
            AccessRecord::Session(session("s-root", "root")),
        ]);
        let token_key = TokenKey::new(&Secret::new(SECRET), "--session-secret").unwrap();
        let access = Access::new(
            keys,
            accounts,
            Some(token_key.clone()),
            ADMIN_TOKEN,
            KeyUsageTracker::default(),
        );
        Self { access, token_key }
    }

    fn token(&self, user: &str) -> String {
        self.token_key
            .issue(user, &format!("s-{user}"), now_ms() / 1000, 60)
    }

    fn parts(&self, method: Method, headers: &[(&str, String)]) -> Parts {
        let mut request = Request::builder().method(method).uri("/v1/x");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn bearer(&self, credential: &str, project: Option<&str>) -> Parts {
        let mut headers = vec![("authorization", format!("Bearer {credential}"))];
        if let Some(project) = project {
            headers.push((PROJECT_HEADER, project.to_owned()));
        }
        self.parts(Method::GET, &headers)
    }
}

#[test]
fn roles_map_to_what_each_may_do_in_their_project() {
    let world = World::new();
    let needs = [
        Need::Scope(Scope::Read),
        Need::Scope(Scope::Webhooks),
        Need::ManageKeys,
        Need::ManageUsers,
        Need::Scope(Scope::Ingest),
    ];
    let expected = [
        ("viewer", [true, false, false, false, false]),
        ("dev", [true, true, true, false, false]),
        ("admin", [true, true, true, true, false]),
        ("root", [true, true, true, true, false]),
    ];
    for (user, allowed) in expected {
        let token = world.token(user);
        for (need, allowed) in needs.iter().zip(allowed) {
            let outcome = world
                .access
                .project(&world.bearer(&token, Some("demo")), *need);
            assert_eq!(outcome.is_ok(), allowed, "{user} {need:?}: {outcome:?}");
            if let Ok(grant) = outcome {
                assert_eq!(grant.project_id, "demo");
            } else {
                assert_eq!(
                    outcome.unwrap_err().status_and_code().0,
                    StatusCode::FORBIDDEN
                );
            }
        }
    }
}

#[test]
fn users_act_only_in_their_projects() {
    let world = World::new();
    let viewer = world.token("viewer");
    // One project: chosen for them.
    let grant = world
        .access
        .project(&world.bearer(&viewer, None), Need::Scope(Scope::Read))
        .unwrap();
    assert_eq!(grant.project_id, "demo");
    assert_eq!(
        world
            .access
            .project(
                &world.bearer(&viewer, Some("other")),
                Need::Scope(Scope::Read)
            )
            .unwrap_err(),
        AuthError::NoRole("other".into())
    );
    // Several projects: they must say which.
    let admin = world.token("admin");
    assert_eq!(
        world
            .access
            .project(&world.bearer(&admin, None), Need::Scope(Scope::Read))
            .unwrap_err(),
        AuthError::ProjectRequired
    );
    let refused = world
        .access
        .project(&world.bearer(&admin, Some("other")), Need::ManageKeys)
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "your role (viewer) in project `other` cannot manage keys"
    );
    // The global admin may go anywhere, and administer across projects.
    let root = world.token("root");
    assert!(
        world
            .access
            .project(&world.bearer(&root, Some("anything")), Need::ManageUsers)
            .is_ok()
    );
    assert!(world.access.admin(&world.bearer(&root, None)).is_ok());
    assert!(world.access.admin(&world.bearer(&admin, None)).is_err());
}

#[test]
fn keys_act_in_their_own_project_unless_admin() {
    let world = World::new();
    let reader = world.bearer("reader-key-01", Some("other"));
    let grant = world
        .access
        .project(&reader, Need::Scope(Scope::Read))
        .unwrap();
    assert_eq!(
        grant.project_id, "demo",
        "a key cannot name another project"
    );
    assert_eq!(
        world.access.project(&reader, Need::ManageKeys).unwrap_err(),
        AuthError::MissingScope(Scope::Admin)
    );
    let admin = world.bearer("admin-key-001", Some("demo"));
    assert_eq!(
        world
            .access
            .project(&admin, Need::ManageKeys)
            .unwrap()
            .project_id,
        "demo"
    );
    assert!(world.access.admin(&admin).is_ok());
    assert!(world.access.admin(&world.bearer(ADMIN_TOKEN, None)).is_ok());
    // The dashboard's project cookie does not steer a key sent from the same browser.
    let with_cookie = world.parts(
        Method::GET,
        &[
            ("authorization", "Bearer admin-key-001".to_owned()),
            ("cookie", format!("{PROJECT_COOKIE}=demo")),
        ],
    );
    assert_eq!(
        world
            .access
            .project(&with_cookie, Need::ManageKeys)
            .unwrap()
            .project_id,
        "ops"
    );
    assert_eq!(
        world
            .access
            .principal(&world.bearer("expired-key-01", None))
            .unwrap_err()
            .status_and_code(),
        (StatusCode::UNAUTHORIZED, "key_expired")
    );
    assert_eq!(
        world
            .access
            .key_with(&world.token("dev"), Scope::Ingest)
            .unwrap_err(),
        AuthError::SessionCannot(Scope::Ingest)
    );
    assert!(
        world
            .access
            .key_with("ingest-key-01", Scope::Ingest)
            .is_ok()
    );
}

#[test]
fn ended_sessions_and_bad_tokens_are_refused() {
    let world = World::new();
    let token = world.token("dev");
    assert!(world.access.principal_of(&token).is_ok());
    let mut ended = session("s-dev", "dev");
    ended.revoked_at_ms = Some(20);
    world.access.accounts().apply(AccessRecord::Session(ended));
    assert_eq!(
        world.access.principal_of(&token).unwrap_err(),
        AuthError::SessionEnded
    );
    // A password change ends the sessions started before it.
    let mut changed = user("viewer", &[("demo", Role::Viewer)], false);
    changed.sessions_valid_from_ms = 11;
    world.access.accounts().apply(AccessRecord::User(changed));
    assert_eq!(
        world
            .access
            .principal_of(&world.token("viewer"))
            .unwrap_err(),
        AuthError::SessionEnded
    );
    let expired = world.token_key.issue("root", "s-root", 100, 60);
    assert_eq!(
        world.access.principal_of(&expired).unwrap_err(),
        AuthError::SessionExpired
    );
    let other = TokenKey::new(&Secret::new("another-secret-that-is-32-bytes-long"), "x")
        .unwrap()
        .issue("root", "s-root", now_ms() / 1000, 60);
    assert_eq!(
        world.access.principal_of(&other).unwrap_err(),
        AuthError::BadToken
    );
}

#[test]
fn the_session_cookie_works_for_reads_and_needs_the_csrf_header_for_changes() {
    let world = World::new();
    let cookie = format!(
        "theme=dark; {ACCESS_COOKIE}={}; {PROJECT_COOKIE}=demo",
        world.token("dev")
    );
    let read = world.parts(Method::GET, &[("cookie", cookie.clone())]);
    assert_eq!(
        world
            .access
            .project(&read, Need::Scope(Scope::Read))
            .unwrap()
            .project_id,
        "demo"
    );
    let change = world.parts(Method::POST, &[("cookie", cookie.clone())]);
    assert_eq!(
        world.access.project(&change, Need::ManageKeys).unwrap_err(),
        AuthError::CsrfHeaderMissing
    );
    let change = world.parts(
        Method::POST,
        &[("cookie", cookie), (CSRF_HEADER, "1".to_owned())],
    );
    assert!(world.access.project(&change, Need::ManageKeys).is_ok());
    assert_eq!(
        world
            .access
            .principal(&world.parts(Method::GET, &[]))
            .unwrap_err(),
        AuthError::Missing
    );
}

#[test]
fn without_a_session_secret_tokens_are_refused_saying_why() {
    let world = World::new();
    let access = Access::new(
        world.access.keys().clone(),
        world.access.accounts().clone(),
        None,
        "",
        KeyUsageTracker::default(),
    );
    assert_eq!(
        access.principal_of(&world.token("dev")).unwrap_err(),
        AuthError::SessionsDisabled
    );
    assert!(
        access.principal_of(ADMIN_TOKEN).is_err(),
        "the admin token is off"
    );
}

#[test]
fn of_two_users_created_with_one_email_the_first_in_the_topic_holds_it() {
    let named = |id: &str, created_at_ms: i64| UserRecord {
        email: "same@example.com".into(),
        created_at_ms,
        ..user(id, &[], false)
    };
    // The second arrived later but says it was created earlier (another
    // instance's clock): arrival decides, not the clock.
    let (first, second) = (named("usr_first", 20), named("usr_second", 10));
    let store = AccessStore::with_records([
        AccessRecord::User(first.clone()),
        AccessRecord::User(second.clone()),
    ]);
    assert!(store.holds_email(&first));
    assert!(!store.holds_email(&second));
    assert_eq!(
        store.user_by_email(" Same@Example.com").unwrap().user_id,
        "usr_first"
    );
    // A later change to the first keeps its place.
    store.apply(AccessRecord::User(UserRecord {
        global_admin: true,
        ..first.clone()
    }));
    assert!(store.holds_email(&first));
    // Once the first is deleted, the email is free for the second.
    store.apply(AccessRecord::User(UserRecord {
        deleted_at_ms: Some(30),
        ..first.clone()
    }));
    assert!(store.holds_email(&second));
    assert!(!store.holds_email(&first));
}

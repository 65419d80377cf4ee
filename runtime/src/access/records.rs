//! What the access topic holds: users, their sessions, and when each API
//! key was last used. One compacted topic, one record per id; ids carry
//! their kind's prefix (`usr_`, `ses_`, `use_`), so they never collide.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::keys::Scope;
use crate::record_topic::StoredRecord;

/// A user's role in one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads the project's data.
    Viewer,
    /// Also manages the project's keys and webhooks.
    Developer,
    /// Also manages the project's users.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Admin => "admin",
        }
    }

    /// The key scopes this role stands for. No role ingests: events come
    /// with keys, so a person's session never becomes a write key.
    pub fn allows(self, scope: Scope) -> bool {
        match scope {
            Scope::Read => true,
            Scope::Webhooks => self >= Role::Developer,
            Scope::Ingest | Scope::Admin => false,
        }
    }

    pub fn may_manage_keys(self) -> bool {
        self >= Role::Developer
    }

    pub fn may_manage_users(self) -> bool {
        self >= Role::Admin
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "developer" => Ok(Role::Developer),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "`{other}` is not a role: use viewer, developer or admin"
            )),
        }
    }
}

/// One person who signs in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// `usr_` and 32 hex digits.
    pub user_id: String,
    /// Lower-cased; unique among users not deleted.
    pub email: String,
    /// Argon2id PHC string ([`super::password`]).
    pub password_hash: String,
    /// Every project, every role, and the views across projects.
    #[serde(default)]
    pub global_admin: bool,
    /// The user's role in each project.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    pub created_at_ms: i64,
    /// Who created it: `admin-token`, `user:<email>` or `key:<key_id>`.
    #[serde(default)]
    pub created_by: String,
    /// Sessions started before this instant are over (a password change).
    #[serde(default)]
    pub sessions_valid_from_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at_ms: Option<i64>,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("user_id", &self.user_id)
            .field("global_admin", &self.global_admin)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl UserRecord {
    /// The user's role in `project_id`; a global admin is admin everywhere.
    pub fn role_in(&self, project_id: &str) -> Option<Role> {
        if self.global_admin {
            return Some(Role::Admin);
        }
        self.roles.get(project_id).copied()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at_ms.is_some()
    }
}

/// One signed-in browser or client: what its refresh token is, and whether
/// it was ended.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRecord {
    /// `ses_` and 32 hex digits.
    pub session_id: String,
    pub user_id: String,
    /// Hex SHA-256 of the current refresh token (which is random, 256 bits).
    pub refresh_digest: String,
    pub created_at_ms: i64,
    /// The refresh token stops working then; signing in again starts anew.
    pub expires_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<i64>,
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .field("revoked_at_ms", &self.revoked_at_ms)
            .finish_non_exhaustive()
    }
}

/// When a key was last used, as one instance saw it (written at most about
/// once a minute per key and instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUsage {
    /// `use_` and the key's id.
    pub usage_id: String,
    pub key_id: String,
    pub last_used_at_ms: i64,
}

impl KeyUsage {
    pub fn id_of(key_id: &str) -> String {
        format!("use_{key_id}")
    }
}

/// A record of the access topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccessRecord {
    User(UserRecord),
    Session(SessionRecord),
    KeyUsage(KeyUsage),
}

impl StoredRecord for AccessRecord {
    const KIND: &'static str = "access record";
    const READINESS_CHECK: &'static str = super::READINESS_CHECK;
    const THREAD_NAME: &'static str = "access store";

    fn id(&self) -> &str {
        match self {
            AccessRecord::User(user) => &user.user_id,
            AccessRecord::Session(session) => &session.session_id,
            AccessRecord::KeyUsage(usage) => &usage.usage_id,
        }
    }
}

/// A new random id with `prefix`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_stand_for_scopes_and_powers() {
        assert!(Role::Viewer.allows(Scope::Read));
        assert!(!Role::Viewer.allows(Scope::Webhooks));
        assert!(Role::Developer.allows(Scope::Webhooks));
        for role in [Role::Viewer, Role::Developer, Role::Admin] {
            assert!(!role.allows(Scope::Ingest) && !role.allows(Scope::Admin));
        }
        assert!(!Role::Viewer.may_manage_keys() && Role::Developer.may_manage_keys());
        assert!(!Role::Developer.may_manage_users() && Role::Admin.may_manage_users());
        assert_eq!("developer".parse::<Role>(), Ok(Role::Developer));
        assert!("owner".parse::<Role>().unwrap_err().contains("viewer"));
    }

    #[test]
    fn records_round_trip_tagged_and_never_debug_their_secrets() {
        let user = UserRecord {
            user_id: new_id("usr_"),
            email: "ana@example.com".into(),
            password_hash: "$argon2id$secret-hash".into(),
            global_admin: false,
            roles: BTreeMap::from([("demo".to_owned(), Role::Viewer)]),
            created_at_ms: 1,
            created_by: "admin-token".into(),
            sessions_valid_from_ms: 0,
            deleted_at_ms: None,
        };
        assert!(!format!("{user:?}").contains("secret-hash"));
        let record = AccessRecord::User(user.clone());
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.starts_with(r#"{"kind":"user","#), "{text}");
        assert_eq!(serde_json::from_str::<AccessRecord>(&text).unwrap(), record);
        assert_eq!(record.id(), user.user_id);
        assert_eq!(user.role_in("demo"), Some(Role::Viewer));
        assert_eq!(user.role_in("other"), None);
        let admin = UserRecord {
            global_admin: true,
            ..user
        };
        assert_eq!(admin.role_in("other"), Some(Role::Admin));
    }
}

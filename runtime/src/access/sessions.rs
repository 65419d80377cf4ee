//! Signing in, refreshing and signing out. A session is a record in the
//! access topic holding the digest of its refresh token; the short-lived
//! session token (a JWT naming the session) is checked against it on every
//! request, so ending a session ends it everywhere within about a second.

use std::time::Duration;

use sluice_schemas::time_format::now_ms;

use super::password::{decoy_hash, verify_password};
use super::records::{AccessRecord, SessionRecord, UserRecord, new_id};
use super::store::AccessWriter;
use super::{Access, AuthError};
use crate::keys::generate_key;
use crate::keys::record::{KeyDigest, constant_time_eq};

/// How long a session token is good for.
pub const ACCESS_TOKEN_SECONDS: i64 = 15 * 60;
/// How long a session lasts without signing in again.
pub const SESSION_DAYS: i64 = 14;
/// How long an answer waits for this instance to see its own write.
pub const READ_YOUR_WRITE: Duration = Duration::from_secs(10);

/// What signing in or refreshing hands out. The refresh token is shown to
/// the client once; only its digest is stored.
#[derive(Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in_s: i64,
    pub session: SessionRecord,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// Why a sign-in or refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("wrong email or password")]
    WrongCredentials,
    #[error("the refresh token is unknown, expired or was already used: sign in again")]
    BadRefresh,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("cannot store the session: {0:#}")]
    Store(anyhow::Error),
}

impl Access {
    /// The user with `email` and `password`, checked in time independent of
    /// whether the email exists. Slow (Argon2id): runs off the async runtime.
    pub async fn check_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<std::sync::Arc<UserRecord>, SessionError> {
        if self.token_key().is_none() {
            return Err(AuthError::SessionsDisabled.into());
        }
        if !self.accounts().is_loaded() {
            return Err(AuthError::NotLoaded.into());
        }
        let user = self.accounts().user_by_email(email);
        let hash = user.as_ref().map_or_else(
            || decoy_hash().to_owned(),
            |user| user.password_hash.clone(),
        );
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        match user {
            Some(user) if matches => Ok(user),
            _ => Err(SessionError::WrongCredentials),
        }
    }

    /// A new session for `user`.
    pub async fn start_session(
        &self,
        writer: &AccessWriter,
        user: &UserRecord,
    ) -> Result<Tokens, SessionError> {
        let now = now_ms();
        let session = SessionRecord {
            session_id: new_id("ses_"),
            user_id: user.user_id.clone(),
            refresh_digest: String::new(),
            created_at_ms: now,
            expires_at_ms: now + SESSION_DAYS * 86_400_000,
            revoked_at_ms: None,
        };
        self.issue(writer, session).await
    }

    /// New tokens for the session of `refresh_token`, which stops working
    /// (rotation: a stolen refresh token used after its owner's is refused).
    pub async fn refresh(
        &self,
        writer: &AccessWriter,
        refresh_token: &str,
    ) -> Result<Tokens, SessionError> {
        if self.token_key().is_none() {
            return Err(AuthError::SessionsDisabled.into());
        }
        let (session_id, _) = refresh_token
            .split_once('.')
            .ok_or(SessionError::BadRefresh)?;
        let session = self
            .accounts()
            .session(session_id)
            .filter(|session| {
                session.revoked_at_ms.is_none()
                    && session.expires_at_ms > now_ms()
                    && digest_matches(&session.refresh_digest, refresh_token)
            })
            .ok_or(SessionError::BadRefresh)?;
        let user_alive = self.accounts().user(&session.user_id).is_some_and(|user| {
            !user.is_deleted() && session.created_at_ms >= user.sessions_valid_from_ms
        });
        if !user_alive {
            return Err(SessionError::BadRefresh);
        }
        self.issue(writer, session).await
    }

    /// Ends `session_id` everywhere.
    pub async fn end_session(
        &self,
        writer: &AccessWriter,
        session_id: &str,
    ) -> Result<(), SessionError> {
        let Some(mut session) = self.accounts().session(session_id) else {
            return Ok(());
        };
        if session.revoked_at_ms.is_some() {
            return Ok(());
        }
        session.revoked_at_ms = Some(now_ms());
        self.put(writer, AccessRecord::Session(session)).await
    }

    /// Writes `record` and waits until this instance sees it.
    pub async fn put(
        &self,
        writer: &AccessWriter,
        record: AccessRecord,
    ) -> Result<(), SessionError> {
        writer.put(&record).await.map_err(SessionError::Store)?;
        if !self.accounts().wait_for(&record, READ_YOUR_WRITE).await {
            return Err(SessionError::Store(anyhow::anyhow!(
                "the access topic did not show the write within {READ_YOUR_WRITE:?}"
            )));
        }
        Ok(())
    }

    async fn issue(
        &self,
        writer: &AccessWriter,
        mut session: SessionRecord,
    ) -> Result<Tokens, SessionError> {
        let key = self.token_key().ok_or(AuthError::SessionsDisabled)?;
        let refresh_token = format!("{}.{}", session.session_id, generate_key());
        session.refresh_digest = hex_sha256(&refresh_token);
        self.put(writer, AccessRecord::Session(session.clone()))
            .await?;
        let access_token = key.issue(
            &session.user_id,
            &session.session_id,
            now_ms() / 1000,
            ACCESS_TOKEN_SECONDS,
        );
        Ok(Tokens {
            access_token,
            refresh_token,
            expires_in_s: ACCESS_TOKEN_SECONDS,
            session,
        })
    }
}

fn hex_sha256(text: &str) -> String {
    KeyDigest::of(text).to_hex()
}

fn digest_matches(stored: &str, presented: &str) -> bool {
    constant_time_eq(stored.as_bytes(), hex_sha256(presented).as_bytes())
}

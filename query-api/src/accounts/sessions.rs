//! `/v1/auth/*`: signing in and out. A sign-in answers with a session token
//! (15 minutes) and a refresh token (14 days, one use each) in the body, for
//! API clients, and as HttpOnly, SameSite=Strict cookies, for the dashboard.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use sluice_runtime::access::password::{check_new_password, hash_password};
use sluice_runtime::access::sessions::{SESSION_DAYS, SessionError, Tokens};
use sluice_runtime::access::{
    ACCESS_COOKIE, AccessRecord, CSRF_HEADER, Principal, REFRESH_COOKIE, UserRecord, cookie,
};
use sluice_runtime::http::ErrorBody;
use sluice_schemas::time_format::now_ms;

use super::Anyone;
use super::users::{optional_body, parse_body, user_view};
use crate::error::{ApiError, Result};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/me", get(me))
        .route("/v1/auth/password", post(change_password))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
}

/// `POST /v1/auth/login`.
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let request: Login = parse_body(&body)?;
    let user = match limited_check(&state, peer, &request.email, &request.password).await? {
        Ok(user) => user,
        Err(refusal) => return Ok(refused(&refusal, "wrong email or password")),
    };
    let tokens = state
        .access
        .start_session(&state.access_writer, &user)
        .await?;
    tracing::info!(user_id = %user.user_id, session_id = %tokens.session.session_id, "signed in");
    Ok(signed_in(&tokens, &user, secure(&headers)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Refresh {
    #[serde(default)]
    refresh_token: Option<String>,
}

/// `POST /v1/auth/refresh`: the body's `refresh_token`, else the cookie's
/// (which needs the CSRF header, as every change made with a cookie does).
async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let request: Refresh = optional_body(&body)?;
    let token = match request.refresh_token {
        Some(token) => token,
        None => {
            let token = cookie(&headers, REFRESH_COOKIE)
                .ok_or(SessionError::BadRefresh)?
                .to_owned();
            if !headers.contains_key(CSRF_HEADER) {
                return Err(sluice_runtime::access::AuthError::CsrfHeaderMissing.into());
            }
            token
        }
    };
    let tokens = state.access.refresh(&state.access_writer, &token).await?;
    let user = state
        .access
        .accounts()
        .user(&tokens.session.user_id)
        .ok_or(SessionError::BadRefresh)?;
    Ok(signed_in(&tokens, &user, secure(&headers)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Logout {
    /// End every session of the user, not only this one.
    #[serde(default)]
    everywhere: bool,
}

/// `POST /v1/auth/logout`: ends the session (of the token, or of the refresh
/// cookie when the token has expired) on every instance, and clears the
/// cookies; with `{"everywhere": true}`, every session of the user.
async fn logout(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    body: Bytes,
) -> Result<Response> {
    let request: Logout = optional_body(&body)?;
    let ended = match state.access.principal(&parts) {
        Ok(Principal::User { session_id, user }) => {
            if request.everywhere {
                let everywhere = UserRecord {
                    sessions_valid_from_ms: now_ms() + 1,
                    ..(*user).clone()
                };
                state
                    .access
                    .put(&state.access_writer, AccessRecord::User(everywhere))
                    .await?;
                tracing::info!(user_id = %user.user_id, "signed out everywhere");
            }
            Some(session_id)
        }
        _ => cookie(&parts.headers, REFRESH_COOKIE)
            .and_then(|token| token.split_once('.'))
            .map(|(session_id, _)| session_id.to_owned())
            .filter(|_| parts.headers.contains_key(CSRF_HEADER)),
    };
    if let Some(session_id) = ended {
        state
            .access
            .end_session(&state.access_writer, &session_id)
            .await?;
        tracing::info!(%session_id, "signed out");
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    for cookie in cleared_cookies() {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `GET /v1/auth/me`: the signed-in user, or what the key is.
async fn me(
    State(state): State<AppState>,
    Anyone(principal): Anyone,
) -> Result<Json<serde_json::Value>> {
    Ok(Json(match principal {
        Principal::User { user, session_id } => {
            let mut view = user_view(&user);
            view["session_id"] = json!(session_id);
            view
        }
        Principal::Key(key) => json!({"key": state.key_admin.view(&key)}),
        Principal::AdminToken => json!({"admin_token": true}),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /v1/auth/password`: every other session of the user ends; this one
/// goes on with new tokens.
async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Anyone(principal): Anyone,
    body: Bytes,
) -> Result<Response> {
    let Principal::User { user, .. } = principal else {
        return Err(ApiError::invalid(
            "authorization",
            "only a signed-in user has a password",
        ));
    };
    let request: PasswordChange = parse_body(&body)?;
    // Guessing the current password with a stolen token is held to the
    // sign-in limits.
    if let Err(refusal) =
        limited_check(&state, peer, &user.email, &request.current_password).await?
    {
        return Ok(refused(&refusal, "the current password is wrong"));
    }
    check_new_password(&request.new_password)
        .map_err(|reason| ApiError::invalid("new_password", reason))?;
    let new_password = request.new_password;
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&new_password))
        .await
        .map_err(|_| ApiError::invalid("new_password", "could not be hashed"))?;
    let changed = UserRecord {
        password_hash,
        sessions_valid_from_ms: now_ms(),
        ..(*user).clone()
    };
    state
        .access
        .put(&state.access_writer, AccessRecord::User(changed.clone()))
        .await?;
    // Sessions that start in the same millisecond as the change stay valid.
    let tokens = state
        .access
        .start_session(&state.access_writer, &changed)
        .await?;
    tracing::info!(user_id = %user.user_id, "password changed; other sessions ended");
    Ok(signed_in(&tokens, &changed, secure(&headers)))
}

/// Why a password check held to the sign-in limits did not pass.
enum Refusal {
    /// Too many attempts: wait this many seconds.
    Paused(u64),
    WrongPassword,
}

/// The user of `email` if `password` is theirs, held to the sign-in limits
/// per client IP and per account (a wrong password counts against both).
async fn limited_check(
    state: &AppState,
    peer: SocketAddr,
    email: &str,
    password: &str,
) -> Result<std::result::Result<Arc<UserRecord>, Refusal>> {
    let now = now_ms();
    if let Err(wait) = state.login_limits.attempt(peer.ip(), email, now) {
        return Ok(Err(Refusal::Paused(wait)));
    }
    match state.access.check_password(email, password).await {
        Ok(user) => Ok(Ok(user)),
        Err(SessionError::WrongCredentials) => {
            state.login_limits.failed(email, now);
            tracing::info!(client = %peer.ip(), "a wrong email or password");
            Ok(Err(Refusal::WrongPassword))
        }
        Err(error) => Err(error.into()),
    }
}

/// The answer to a refused check: 429 with Retry-After, or 401 saying `wrong`.
fn refused(refusal: &Refusal, wrong: &str) -> Response {
    match refusal {
        Refusal::Paused(wait) => too_many_attempts(*wait),
        Refusal::WrongPassword => {
            ErrorBody::new("invalid_credentials", wrong).into_response(StatusCode::UNAUTHORIZED)
        }
    }
}

fn signed_in(tokens: &Tokens, user: &UserRecord, secure: bool) -> Response {
    let body = json!({
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in_s,
        "refresh_token": tokens.refresh_token,
        "user": user_view(user),
    });
    let mut response = Json(body).into_response();
    let flags = if secure { "; Secure" } else { "" };
    let cookies = [
        format!(
            "{ACCESS_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{flags}",
            tokens.access_token, tokens.expires_in_s
        ),
        format!(
            "{REFRESH_COOKIE}={}; Path=/v1/auth; HttpOnly; SameSite=Strict; Max-Age={}{flags}",
            tokens.refresh_token,
            SESSION_DAYS * 86_400
        ),
    ];
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

fn cleared_cookies() -> [HeaderValue; 2] {
    [
        HeaderValue::from_static("sluice_access=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        HeaderValue::from_static(
            "sluice_refresh=; Path=/v1/auth; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    ]
}

/// Whether the client reached us over HTTPS (directly or through a proxy
/// that says so), so the cookies get `Secure`.
fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

fn too_many_attempts(wait_s: u64) -> Response {
    let mut response = ErrorBody::new(
        "too_many_attempts",
        format!("too many sign-in attempts; try again in {wait_s} s"),
    )
    .into_response(StatusCode::TOO_MANY_REQUESTS);
    if let Ok(value) = HeaderValue::from_str(&wait_s.to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

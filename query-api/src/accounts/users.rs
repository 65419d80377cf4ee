//! Users: a project's, managed by its admins (`/v1/users`), and everyone,
//! managed by global admins and the bootstrap admin token
//! (`/v1/admin/users`, which also creates the first user).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sluice_runtime::access::password::{check_new_password, hash_password};
use sluice_runtime::access::records::new_id;
use sluice_runtime::access::{AccessRecord, Principal, Role, UserRecord};
use sluice_runtime::http::{json_object, objects};
use sluice_schemas::time_format::{format_rfc3339_ms, now_ms};

use super::{GlobalAdmin, UsersManager};
use crate::error::{ApiError, Result};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/users", get(list_project_users).post(add_project_user))
        .route(
            "/v1/users/{user_id}",
            patch(change_project_role).delete(remove_project_user),
        )
        .route("/v1/admin/users", get(list_all_users).post(create_user))
        .route(
            "/v1/admin/users/{user_id}",
            patch(change_user).delete(delete_user),
        )
}

/// A user as the API shows it: never the password hash.
pub fn user_view(user: &UserRecord) -> Value {
    let roles: Vec<Value> = user
        .roles
        .iter()
        .map(|(project_id, role)| json!({"project_id": project_id, "role": role}))
        .collect();
    json!({
        "user_id": user.user_id,
        "email": user.email,
        "global_admin": user.global_admin,
        "roles": roles,
        "created_at": format_rfc3339_ms(user.created_at_ms),
        "created_by": user.created_by,
    })
}

/// A JSON object body as `T`; a wrong or unknown field is a 400 naming it.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    json_object(body).map_err(|reason| ApiError::invalid("body", reason))
}

/// Like [`parse_body`], where an empty body means every field's default.
pub fn optional_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_body(body)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProjectUser {
    email: String,
    /// Needed for a new user; left out to give an existing user a role here.
    #[serde(default)]
    password: Option<String>,
    role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: Role,
}

/// `GET /v1/users`: the users with a role in the project.
async fn list_project_users(
    State(state): State<AppState>,
    UsersManager(grant): UsersManager,
) -> Json<Value> {
    let users: Vec<Value> = state
        .access
        .accounts()
        .users()
        .iter()
        .filter_map(|user| {
            let role = user.roles.get(&grant.project_id)?;
            let mut view = user_view(user);
            view["role"] = json!(role);
            Some(view)
        })
        .collect();
    Json(json!({"users": users}))
}

/// `POST /v1/users`: a new user with a role in the project, or an existing
/// one (by email, without `password`) given a role here.
async fn add_project_user(
    State(state): State<AppState>,
    UsersManager(grant): UsersManager,
    body: Bytes,
) -> Result<Response> {
    let request: NewProjectUser = parse_body(&body)?;
    // Every field is checked before the email is looked up: a bad request
    // is a 400 whether or not the email is taken.
    let email = checked_email(&request.email)?;
    if let Some(password) = &request.password {
        checked_password(password)?;
    }
    let roles = BTreeMap::from([(grant.project_id.clone(), request.role)]);
    match state.access.accounts().user_by_email(&email) {
        Some(existing) if request.password.is_none() => {
            let mut user = (*existing).clone();
            user.roles.insert(grant.project_id.clone(), request.role);
            write(&state, user)
                .await
                .map(|view| (StatusCode::OK, Json(view)).into_response())
        }
        Some(_) => Err(ApiError::Conflict(format!(
            "a user with email {email} exists; leave `password` out to give them a role here"
        ))),
        None => {
            let Some(password) = request.password else {
                return Err(ApiError::invalid("password", "a new user needs a password"));
            };
            let user = new_user(&email, &password, false, roles, &grant.principal).await?;
            create(&state, user)
                .await
                .map(|view| (StatusCode::CREATED, Json(view)).into_response())
        }
    }
}

/// `PATCH /v1/users/{user_id}`: the user's role in the project.
async fn change_project_role(
    State(state): State<AppState>,
    UsersManager(grant): UsersManager,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    let request: RoleChange = parse_body(&body)?;
    let mut user = project_user(&state, &grant.project_id, &user_id)?;
    user.roles.insert(grant.project_id.clone(), request.role);
    write(&state, user).await.map(Json)
}

/// `DELETE /v1/users/{user_id}`: the user loses their role in the project
/// (their sessions lose it at once); the account stays.
async fn remove_project_user(
    State(state): State<AppState>,
    UsersManager(grant): UsersManager,
    Path(user_id): Path<String>,
) -> Result<StatusCode> {
    let mut user = project_user(&state, &grant.project_id, &user_id)?;
    user.roles.remove(&grant.project_id);
    write(&state, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    password: String,
    #[serde(default)]
    global_admin: bool,
    #[serde(default, deserialize_with = "objects")]
    roles: Vec<ProjectRole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectRole {
    project_id: String,
    role: Role,
}

/// `GET /v1/admin/users`: every user.
async fn list_all_users(State(state): State<AppState>, _: GlobalAdmin) -> Json<Value> {
    let users: Vec<Value> = state
        .access
        .accounts()
        .users()
        .iter()
        .map(|user| user_view(user))
        .collect();
    Json(json!({"users": users}))
}

/// `POST /v1/admin/users`: any user, global admins included (how the first
/// one is made, with the admin token).
async fn create_user(
    State(state): State<AppState>,
    GlobalAdmin(by): GlobalAdmin,
    body: Bytes,
) -> Result<Response> {
    let request: NewUser = parse_body(&body)?;
    // Every field is checked before the email is looked up: a bad request
    // is a 400 whether or not the email is taken.
    let roles = checked_roles(request.roles)?;
    let user = new_user(
        &request.email,
        &request.password,
        request.global_admin,
        roles,
        &by,
    )
    .await?;
    if state.access.accounts().user_by_email(&user.email).is_some() {
        return Err(ApiError::Conflict(format!(
            "a user with email {} exists",
            user.email
        )));
    }
    let view = create(&state, user).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    /// A new password (every session of the user ends).
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    global_admin: Option<bool>,
    /// Replaces every role.
    #[serde(default, deserialize_with = "some_objects")]
    roles: Option<Vec<ProjectRole>>,
    /// Ends every session of the user (signs them out everywhere).
    #[serde(default)]
    end_sessions: bool,
}

/// `PATCH /v1/admin/users/{user_id}`: a new password, roles or global admin,
/// or the end of every session of the user.
async fn change_user(
    State(state): State<AppState>,
    _: GlobalAdmin,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    let request: UserChange = parse_body(&body)?;
    let mut user = (*live_user(&state, &user_id)?).clone();
    if let Some(password) = request.password {
        user.password_hash = hashed(&password).await?;
        user.sessions_valid_from_ms = now_ms();
    }
    if request.end_sessions {
        user.sessions_valid_from_ms = now_ms();
    }
    if let Some(global_admin) = request.global_admin {
        user.global_admin = global_admin;
    }
    if let Some(roles) = request.roles {
        user.roles = checked_roles(roles)?;
    }
    write(&state, user).await.map(Json)
}

/// `DELETE /v1/admin/users/{user_id}`: the account and all its sessions end.
async fn delete_user(
    State(state): State<AppState>,
    _: GlobalAdmin,
    Path(user_id): Path<String>,
) -> Result<StatusCode> {
    let user = live_user(&state, &user_id)?;
    let deleted = UserRecord {
        deleted_at_ms: Some(now_ms()),
        ..(*user).clone()
    };
    write(&state, deleted).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn new_user(
    email: &str,
    password: &str,
    global_admin: bool,
    roles: BTreeMap<String, Role>,
    by: &Principal,
) -> Result<UserRecord> {
    let email = checked_email(email)?;
    let password_hash = hashed(password).await?;
    Ok(UserRecord {
        user_id: new_id("usr_"),
        email,
        password_hash,
        global_admin,
        roles,
        created_at_ms: now_ms(),
        created_by: by.describe(),
        sessions_valid_from_ms: 0,
        deleted_at_ms: None,
    })
}

/// The Argon2id hash of a new `password`, checked first.
async fn hashed(password: &str) -> Result<String> {
    checked_password(password)?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| ApiError::invalid("password", "could not be hashed"))
}

/// `password` if it may be a new password, else why not.
fn checked_password(password: &str) -> Result<()> {
    check_new_password(password).map_err(|reason| ApiError::invalid("password", reason))
}

fn checked_roles(roles: Vec<ProjectRole>) -> Result<BTreeMap<String, Role>> {
    let mut checked = BTreeMap::new();
    for ProjectRole { project_id, role } in roles {
        sluice_schemas::rules::project_id(&project_id)
            .map_err(|reason| ApiError::invalid("roles[].project_id", reason))?;
        checked.insert(project_id, role);
    }
    Ok(checked)
}

fn some_objects<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Vec<ProjectRole>>, D::Error> {
    objects(deserializer).map(Some)
}

/// An email address, lower-cased: one `@`, something on each side, no spaces.
fn checked_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let plausible = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if plausible {
        Ok(email)
    } else {
        Err(ApiError::invalid("email", "is not an email address"))
    }
}

fn live_user(state: &AppState, user_id: &str) -> Result<Arc<UserRecord>> {
    state
        .access
        .accounts()
        .user(user_id)
        .filter(|user| !user.is_deleted())
        .ok_or_else(|| ApiError::NotFound(format!("user {user_id:?}")))
}

/// The user `user_id` if they have a role in `project_id` (others are not
/// this project's to see).
fn project_user(state: &AppState, project_id: &str, user_id: &str) -> Result<UserRecord> {
    let user = live_user(state, user_id)?;
    if !user.roles.contains_key(project_id) {
        return Err(ApiError::NotFound(format!(
            "user {user_id:?} in project {project_id}"
        )));
    }
    Ok((*user).clone())
}

/// Writes the new `user`. Should another instance have created a user with
/// the same email at the same moment, and come first in the topic, this one
/// is deleted again and the answer is the 409 it would have got a moment later.
async fn create(state: &AppState, user: UserRecord) -> Result<Value> {
    let view = write(state, user.clone()).await?;
    if state.access.accounts().holds_email(&user) {
        return Ok(view);
    }
    let email = user.email.clone();
    let withdrawn = UserRecord {
        deleted_at_ms: Some(now_ms()),
        ..user
    };
    write(state, withdrawn).await?;
    Err(ApiError::Conflict(format!(
        "a user with email {email} exists (created a moment ago elsewhere)"
    )))
}

async fn write(state: &AppState, user: UserRecord) -> Result<Value> {
    let view = user_view(&user);
    state
        .access
        .put(&state.access_writer, AccessRecord::User(user))
        .await?;
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_lower_cased() {
        assert_eq!(
            checked_email(" Ana@Example.COM ").unwrap(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "@example.com",
            "ana@localhost",
            "a b@example.com",
            "a@b@c.d",
        ] {
            assert!(checked_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies_and_their_lists_are_objects_only() {
        assert!(parse_body::<UserChange>(b"[null, null]").is_err());
        assert!(parse_body::<UserChange>(br#"{"roles": [["p", "viewer"]]}"#).is_err());
        let change: UserChange =
            parse_body(br#"{"roles": [{"project_id": "p", "role": "viewer"}]}"#).unwrap();
        assert_eq!(change.roles.unwrap().len(), 1);
        assert!(
            parse_body::<NewUser>(
                br#"{"email": "a@b.co", "password": "long enough!", "roles": [["p", "admin"]]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn views_never_show_the_password_hash() {
        let user = UserRecord {
            user_id: "usr_1".into(),
            email: "ana@example.com".into(),
            password_hash: "$argon2id$hash".into(),
            global_admin: false,
            roles: BTreeMap::from([("demo".to_owned(), Role::Developer)]),
            created_at_ms: 0,
            created_by: "admin-token".into(),
            sessions_valid_from_ms: 0,
            deleted_at_ms: None,
        };
        let view = user_view(&user).to_string();
        assert!(!view.contains("argon2"), "{view}");
        assert!(view.contains(r#""role":"developer""#), "{view}");
    }
}

//! People: sign-in, sessions, roles and keys that expire and rotate, on two
//! query APIs sharing a real broker (what one writes, the other must honour
//! within seconds) and a real ClickHouse.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sluice_query_api::QueryConfig;
use sluice_runtime::secret::Secret;
use sluice_testkit::{Running, TestEnv, eventually, spawn_service};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{project, query_config};

const ADMIN_TOKEN: &str = "accounts-test-admin-token";
const SECRET: &str = "accounts-test-session-secret-32-bytes!";
const PASSWORD: &str = "a long enough password";

/// One query API with sessions on.
async fn api(env: &TestEnv) -> Running {
    let mut config: QueryConfig = query_config(env);
    config.api.admin_token = ADMIN_TOKEN.to_owned();
    config.api.session_secret = Some(Secret::new(SECRET));
    let running =
        spawn_service(|listener, shutdown| sluice_query_api::serve(config, listener, shutdown))
            .await;
    running.wait_ready().await;
    running
}

/// What came back.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

/// A request with a bearer credential and, optionally, a project and a body.
async fn call(
    api: &Running,
    method: Method,
    path: &str,
    credential: &str,
    project: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let client = reqwest::Client::new();
    let mut request = client.request(method, api.url(path));
    if !credential.is_empty() {
        request = request.bearer_auth(credential);
    }
    if let Some(project) = project {
        request = request.header("x-sluice-project", project);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the query API answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        body,
        headers,
    }
}

async fn post(api: &Running, path: &str, credential: &str, body: Value) -> Answer {
    call(api, Method::POST, path, credential, None, Some(body)).await
}

async fn create_user(api: &Running, email: &str, roles: Value, global_admin: bool) {
    let body =
        json!({"email": email, "password": PASSWORD, "roles": roles, "global_admin": global_admin});
    let answer = post(api, "/v1/admin/users", ADMIN_TOKEN, body).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    assert!(!answer.body.to_string().contains("argon2"), "{answer:?}");
}

async fn sign_in(api: &Running, email: &str) -> Value {
    let body = json!({"email": email, "password": PASSWORD});
    let answer = post(api, "/v1/auth/login", "", body).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body
}

fn token(session: &Value) -> String {
    session["access_token"].as_str().unwrap().to_owned()
}

/// Waits until `api` answers `path` for `credential` with `status`.
async fn until_status(
    api: &Running,
    path: &str,
    credential: &str,
    project: Option<&str>,
    status: u16,
) -> Answer {
    eventually(
        &format!("{path} to answer {status}"),
        Duration::from_secs(20),
        || async {
            let answer = call(api, Method::GET, path, credential, project, None).await;
            (answer.status == status).then_some(answer)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_may_do_exactly_its_part_in_its_own_project() {
    let env = TestEnv::new("qroles");
    env.ensure_schema().await;
    let api = api(&env).await;
    let (demo, other) = (project(&env, "demo"), project(&env, "other"));
    let role = |role: &str| json!([{"project_id": demo, "role": role}]);
    create_user(&api, "viewer@example.com", role("viewer"), false).await;
    create_user(&api, "dev@example.com", role("developer"), false).await;
    create_user(&api, "admin@example.com", role("admin"), false).await;
    create_user(
        &api,
        "outsider@example.com",
        json!([{"project_id": other, "role": "admin"}]),
        false,
    )
    .await;
    create_user(&api, "root@example.com", json!([]), true).await;

    let new_key = json!({"scopes": ["read"], "label": "matrix"});
    let new_user = |n: &str| json!({"email": format!("{n}@example.com"), "password": PASSWORD, "role": "viewer"});
    // (method, path, body) and, per role, the status expected:
    // viewer, developer, admin, outsider, global admin.
    let matrix: Vec<(Method, &str, Option<Value>, [u16; 5])> = vec![
        (
            Method::GET,
            "/v1/events?limit=1",
            None,
            [200, 200, 200, 403, 200],
        ),
        (Method::GET, "/v1/status", None, [200, 200, 200, 403, 200]),
        (Method::GET, "/v1/keys", None, [403, 200, 200, 403, 200]),
        (
            Method::POST,
            "/v1/keys",
            Some(new_key.clone()),
            [403, 201, 201, 403, 201],
        ),
        (Method::GET, "/v1/users", None, [403, 403, 200, 403, 200]),
        (
            Method::POST,
            "/v1/users",
            Some(new_user("added")),
            [403, 403, 201, 403, 409],
        ),
        (
            Method::GET,
            "/v1/admin/users",
            None,
            [403, 403, 403, 403, 200],
        ),
        (
            Method::GET,
            "/v1/admin/status",
            None,
            [403, 403, 403, 403, 200],
        ),
    ];
    let people = ["viewer", "dev", "admin", "outsider", "root"];
    let mut tokens = Vec::new();
    for person in people {
        tokens.push(token(
            &sign_in(&api, &format!("{person}@example.com")).await,
        ));
    }
    for (method, path, body, expected) in &matrix {
        for ((person, token), status) in people.iter().zip(&tokens).zip(expected) {
            let answer = call(&api, method.clone(), path, token, Some(&demo), body.clone()).await;
            assert_eq!(
                answer.status, *status,
                "{person} {method} {path}: {answer:?}"
            );
            if answer.status == 403 {
                let message = answer.body["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains("role") || message.contains(&demo),
                    "{person} {path}: {message}"
                );
            }
        }
    }
    // The viewer's refusal says what and why, as a person would want it.
    let refused = call(&api, Method::GET, "/v1/keys", &tokens[0], Some(&demo), None).await;
    assert_eq!(
        refused.body["message"],
        format!("your role (viewer) in project `{demo}` cannot manage keys")
    );
    // A request that is wrong is a 400 naming the field, whether or not the
    // email is taken (the taken email's 409 comes after).
    for (email, password, field) in [
        ("added@example.com", "short", "password"),
        ("someone@example.com", "short", "password"),
        ("not an email", PASSWORD, "email"),
    ] {
        let body = json!({"email": email, "password": password, "role": "viewer"});
        let answer = call(
            &api,
            Method::POST,
            "/v1/users",
            &tokens[2],
            Some(&demo),
            Some(body),
        )
        .await;
        assert_eq!(answer.status, 400, "{email}: {answer:?}");
        assert_eq!(
            answer.body["details"]["parameter"], field,
            "{email}: {answer:?}"
        );
    }
    // A developer cannot mint an `admin` key (that would act everywhere).
    let escalate = json!({"scopes": ["admin"]});
    let answer = call(
        &api,
        Method::POST,
        "/v1/keys",
        &tokens[1],
        Some(&demo),
        Some(escalate),
    )
    .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    // Without a project named, a one-project user gets theirs.
    let answer = call(
        &api,
        Method::GET,
        "/v1/events?limit=1",
        &tokens[0],
        None,
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    // Users do not send events: no role stands for `ingest`.
    let answer = call(
        &api,
        Method::GET,
        "/v1/events?limit=1",
        "",
        Some(&demo),
        None,
    )
    .await;
    assert_eq!(answer.status, 401, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_everywhere_and_keys_expire_and_rotate() {
    let env = TestEnv::new("qsessions");
    env.ensure_schema().await;
    let (a, b) = (api(&env).await, api(&env).await);
    let demo = project(&env, "demo");
    create_user(
        &a,
        "dev@example.com",
        json!([{"project_id": demo, "role": "developer"}]),
        false,
    )
    .await;

    // Signed in on A, the session works on B.
    let first = sign_in(&a, "dev@example.com").await;
    let first_token = token(&first);
    until_status(&b, "/v1/keys", &first_token, None, 200).await;

    // A key with an expiry, made by the developer, shows who made it.
    let expires_at = sluice_schemas::time_format::format_rfc3339_ms(
        sluice_schemas::time_format::now_ms() + 8_000,
    );
    let made = post(
        &a,
        "/v1/keys",
        &first_token,
        json!({"scopes": ["read"], "expires_at": expires_at}),
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    let key = made.body["key"].as_str().unwrap().to_owned();
    assert_eq!(made.body["created_by"], "user:dev@example.com");
    until_status(&b, "/v1/events?limit=1", &key, None, 200).await;
    let expired = until_status(&b, "/v1/events?limit=1", &key, None, 401).await;
    assert_eq!(expired.body["error"], "key_expired", "{expired:?}");

    // Rotation: the new key works at once, the old one until the time set.
    let made = post(&a, "/v1/keys", &first_token, json!({"scopes": ["read"]})).await;
    let (old_key, old_id) = (
        made.body["key"].as_str().unwrap().to_owned(),
        made.body["key_id"].as_str().unwrap().to_owned(),
    );
    let until = sluice_schemas::time_format::format_rfc3339_ms(
        sluice_schemas::time_format::now_ms() + 8_000,
    );
    let rotated = post(
        &a,
        &format!("/v1/keys/{old_id}/rotate"),
        &first_token,
        json!({"old_key_valid_until": until}),
    )
    .await;
    assert_eq!(rotated.status, 201, "{rotated:?}");
    assert_eq!(rotated.body["replaces"], old_id.as_str());
    let new_key = rotated.body["key"].as_str().unwrap().to_owned();
    until_status(&b, "/v1/events?limit=1", &new_key, None, 200).await;
    assert_eq!(
        call(&b, Method::GET, "/v1/events?limit=1", &old_key, None, None)
            .await
            .status,
        200
    );
    until_status(&b, "/v1/events?limit=1", &old_key, None, 401).await;
    // Last use shows in the list (written within about a quarter minute).
    let listed = eventually(
        "last_used_at on the new key",
        Duration::from_secs(60),
        || async {
            let list = call(&a, Method::GET, "/v1/keys", &first_token, None, None).await;
            list.body["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["key_id"] == rotated.body["key_id"] && !k["last_used_at"].is_null())
                .cloned()
        },
    )
    .await;
    assert_eq!(listed["created_by"], "user:dev@example.com");

    // Refresh: a new token; the refresh token works once.
    let refresh = first["refresh_token"].as_str().unwrap();
    let renewed = post(
        &a,
        "/v1/auth/refresh",
        "",
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(renewed.status, 200, "{renewed:?}");
    let again = post(
        &a,
        "/v1/auth/refresh",
        "",
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(again.status, 401, "{again:?}");

    // A password change ends the other sessions, on B too.
    let second = sign_in(&a, "dev@example.com").await;
    let changed = post(
        &a,
        "/v1/auth/password",
        &token(&second),
        json!({"current_password": PASSWORD, "new_password": "another long password"}),
    )
    .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    let ended = until_status(&b, "/v1/keys", &first_token, None, 401).await;
    assert_eq!(ended.body["error"], "session_ended", "{ended:?}");
    let current = token(&changed.body);
    until_status(&b, "/v1/keys", &current, None, 200).await;

    // Sign-out on A ends the session on B, and only that one.
    let other = token(
        &post(
            &a,
            "/v1/auth/login",
            "",
            json!({"email": "dev@example.com", "password": "another long password"}),
        )
        .await
        .body,
    );
    let out = call(&a, Method::POST, "/v1/auth/logout", &current, None, None).await;
    assert_eq!(out.status, 204, "{out:?}");
    until_status(&b, "/v1/keys", &current, None, 401).await;
    assert_eq!(
        call(&b, Method::GET, "/v1/keys", &other, None, None)
            .await
            .status,
        200
    );
    // Signing out everywhere ends every session of the user.
    let third = token(
        &post(
            &a,
            "/v1/auth/login",
            "",
            json!({"email": "dev@example.com", "password": "another long password"}),
        )
        .await
        .body,
    );
    let out = post(&a, "/v1/auth/logout", &third, json!({"everywhere": true})).await;
    assert_eq!(out.status, 204, "{out:?}");
    until_status(&b, "/v1/keys", &other, None, 401).await;
    until_status(&b, "/v1/keys", &third, None, 401).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_session_needs_the_csrf_header_and_sign_in_is_rate_limited() {
    let env = TestEnv::new("qcookie");
    env.ensure_schema().await;
    let api = api(&env).await;
    let demo = project(&env, "demo");
    create_user(
        &api,
        "ana@example.com",
        json!([{"project_id": demo, "role": "developer"}]),
        false,
    )
    .await;

    let client = reqwest::Client::new();
    let signed = client
        .post(api.url("/v1/auth/login"))
        .json(&json!({"email": "ANA@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    let cookies: Vec<String> = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect();
    let access = cookies
        .iter()
        .find(|c| c.starts_with("sluice_access="))
        .expect("an access cookie");
    assert!(
        access.contains("HttpOnly") && access.contains("SameSite=Strict"),
        "{access}"
    );
    let refresh = cookies
        .iter()
        .find(|c| c.starts_with("sluice_refresh="))
        .expect("a refresh cookie");
    assert!(
        refresh.contains("Path=/v1/auth") && refresh.contains("HttpOnly"),
        "{refresh}"
    );
    let pair = access.split(';').next().unwrap().to_owned();

    let read = client
        .get(api.url("/v1/keys"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let forged = client
        .post(api.url("/v1/keys"))
        .header("cookie", &pair)
        .json(&json!({"scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(
        forged.json::<Value>().await.unwrap()["error"],
        "csrf_header_missing"
    );
    let made = client
        .post(api.url("/v1/keys"))
        .header("cookie", &pair)
        .header("x-sluice-csrf", "1")
        .json(&json!({"scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);

    // The live WebSocket takes the cookie from a page of this origin only.
    let live = |origin: String| {
        let mut request = api
            .url("/v1/live")
            .replace("http://", "ws://")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("cookie", pair.parse().unwrap());
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    let own_origin = api.url("").trim_end_matches('/').to_owned();
    let (socket, _) = live(own_origin)
        .await
        .expect("the dashboard's own page connects");
    drop(socket);
    match live("http://evil.example".to_owned()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("another site's page must be refused: {other:?}"),
    }

    // Wrong passwords: refused alike for unknown accounts, then paused.
    let wrong = json!({"email": "ana@example.com", "password": "not the password"});
    let unknown = json!({"email": "nobody@example.com", "password": "not the password"});
    let answer = post(&api, "/v1/auth/login", "", unknown).await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(post(&api, "/v1/auth/login", "", wrong.clone()).await);
    }
    assert!(
        statuses[..5].iter().all(|a| a.status == 401),
        "{statuses:?}"
    );
    assert_eq!(statuses[5].status, 429, "{:?}", statuses[5]);
    assert!(statuses[5].headers.contains_key("retry-after"));
    // Even the right password waits out the pause.
    let right = post(
        &api,
        "/v1/auth/login",
        "",
        json!({"email": "ana@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(right.status, 429);
    // Bad fields are named.
    let bad = post(
        &api,
        "/v1/admin/users",
        ADMIN_TOKEN,
        json!({"email": "x@example.com", "password": "short"}),
    )
    .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(
        bad.body["message"].as_str().unwrap().contains("password"),
        "{bad:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_admin_signs_a_user_out_everywhere_resets_and_deletes_them() {
    let env = TestEnv::new("qreset");
    env.ensure_schema().await;
    let (a, b) = (api(&env).await, api(&env).await);
    let demo = project(&env, "demo");
    create_user(
        &a,
        "bo@example.com",
        json!([{"project_id": demo, "role": "viewer"}]),
        false,
    )
    .await;
    let user_id = call(&a, Method::GET, "/v1/admin/users", ADMIN_TOKEN, None, None)
        .await
        .body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["email"] == "bo@example.com")
        .unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/admin/users/{user_id}");
    let patch = |body: Value| call(&a, Method::PATCH, &path, ADMIN_TOKEN, None, Some(body));

    // Signed out everywhere: B refuses the session within seconds.
    let session = token(&sign_in(&a, "bo@example.com").await);
    until_status(&b, "/v1/events?limit=1", &session, None, 200).await;
    assert_eq!(patch(json!({"end_sessions": true})).await.status, 200);
    until_status(&b, "/v1/events?limit=1", &session, None, 401).await;

    // A new password: the old one stops working, the new one signs in.
    let session = token(&sign_in(&a, "bo@example.com").await);
    let changed = patch(json!({"password": "a brand new password", "roles": [{"project_id": demo, "role": "developer"}]})).await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_eq!(changed.body["roles"][0]["role"], "developer");
    until_status(&b, "/v1/events?limit=1", &session, None, 401).await;
    let old = post(
        &a,
        "/v1/auth/login",
        "",
        json!({"email": "bo@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(old.status, 401, "{old:?}");
    let new = post(
        &a,
        "/v1/auth/login",
        "",
        json!({"email": "bo@example.com", "password": "a brand new password"}),
    )
    .await;
    assert_eq!(new.status, 200, "{new:?}");
    let session = token(&new.body);
    until_status(&b, "/v1/keys", &session, None, 200).await;

    // Deleted: every session ends, and the email can be used again.
    let deleted = call(&a, Method::DELETE, &path, ADMIN_TOKEN, None, None).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    until_status(&b, "/v1/keys", &session, None, 401).await;
    assert_eq!(patch(json!({"end_sessions": true})).await.status, 404);
    create_user(&a, "bo@example.com", json!([]), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_email_created_on_two_instances_at_once_makes_one_user() {
    let env = TestEnv::new("qrace");
    env.ensure_schema().await;
    let (a, b) = (api(&env).await, api(&env).await);
    let mut raced = 0;
    for round in 0..6 {
        let email = format!("race-{round}@example.com");
        let body = |password: &str| json!({"email": email, "password": password});
        let (on_a, on_b) = tokio::join!(
            post(
                &a,
                "/v1/admin/users",
                ADMIN_TOKEN,
                body("the password on a")
            ),
            post(
                &b,
                "/v1/admin/users",
                ADMIN_TOKEN,
                body("the password on b")
            ),
        );
        let mut statuses = [on_a.status, on_b.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "{email}: {on_a:?} {on_b:?}");
        let (created, password, refused) = if on_a.status == 201 {
            (&on_a, "the password on a", &on_b)
        } else {
            (&on_b, "the password on b", &on_a)
        };
        let message = refused.body["message"].as_str().unwrap_or_default();
        raced += usize::from(message.contains("a moment ago"));
        let user_id = created.body["user_id"].as_str().unwrap();
        // Both instances hold one live user with the email, the one
        // answered 201, and its password is the one that signs in.
        for api in [&a, &b] {
            eventually(
                &format!("one user with {email}"),
                Duration::from_secs(20),
                || async {
                    let answer =
                        call(api, Method::GET, "/v1/admin/users", ADMIN_TOKEN, None, None).await;
                    let ids: Vec<&str> = answer.body["users"]
                        .as_array()?
                        .iter()
                        .filter(|user| user["email"] == email.as_str())
                        .filter_map(|user| user["user_id"].as_str())
                        .collect();
                    (ids == [user_id]).then_some(())
                },
            )
            .await;
            let signed_in = post(
                api,
                "/v1/auth/login",
                "",
                json!({"email": email, "password": password}),
            )
            .await;
            assert_eq!(signed_in.status, 200, "{email}: {signed_in:?}");
            assert_eq!(signed_in.body["user"]["user_id"], user_id);
        }
    }
    println!("{raced} of 6 creations met in the topic (the rest were refused before writing)");
}

//! API keys: the admin API, scopes, revocation on every gateway, and the
//! failed-auth limit per client IP.

use serde_json::json;
use sluice_runtime::keys::Scope;
use sluice_testkit::TestEnv;

use crate::common::{ADMIN_TOKEN, Gateway, config, project};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_creates_lists_and_revokes_keys_on_every_gateway() {
    let env = TestEnv::new("gw_keys");
    let first = Gateway::start(&env).await;
    let second = Gateway::start(&env).await;
    let admin = |method: reqwest::Method, path: &str, token: &str| {
        first
            .client
            .request(method, first.url(path))
            .bearer_auth(token)
    };

    // Without the token, or with a wrong one: 401; with an ingest key: 403.
    let answer = first
        .send(first.client.get(first.url("/v1/admin/keys")))
        .await;
    assert_eq!(answer.status, 401, "{answer:?}");
    let answer = first
        .send(admin(
            reqwest::Method::GET,
            "/v1/admin/keys",
            "wrong-token-000000",
        ))
        .await;
    assert_eq!(answer.status, 401, "{answer:?}");
    let answer = first
        .send(admin(reqwest::Method::GET, "/v1/admin/keys", &first.key))
        .await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (403, Some("forbidden"))
    );

    // The bootstrap token creates a key; it is shown once and works at once.
    let create = json!({"project_id": project(&env), "scopes": ["ingest"], "label": "ci"});
    let answer = first
        .send(admin(reqwest::Method::POST, "/v1/admin/keys", ADMIN_TOKEN).json(&create))
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let key = answer.body["key"].as_str().unwrap().to_owned();
    let key_id = answer.body["key_id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("slk_") && key.len() > 60);
    let send = |gateway: &Gateway, key: &str| {
        gateway
            .client
            .post(gateway.url("/v1/events"))
            .bearer_auth(key)
            .json(&json!({"type": "x"}))
    };
    assert_eq!(first.send(send(&first, &key)).await.status, 202);
    second
        .eventually_status("the new key on the second gateway", 202, || {
            send(&second, &key)
        })
        .await;

    // Listed without secrets; bad requests are named.
    let answer = first
        .send(admin(
            reqwest::Method::GET,
            &format!("/v1/admin/keys?project_id={}", project(&env)),
            ADMIN_TOKEN,
        ))
        .await;
    assert_eq!(answer.status, 200);
    let listed = answer.body["keys"].as_array().unwrap();
    let entry = listed
        .iter()
        .find(|k| k["key_id"] == key_id.as_str())
        .expect("listed");
    assert_eq!(entry["scopes"], json!(["ingest"]));
    assert_eq!(entry["label"], "ci");
    assert!(!answer.body.to_string().contains(&key));
    assert!(!answer.body.to_string().contains("digest"));
    for bad in [
        json!({"project_id": "has space", "scopes": ["ingest"]}),
        json!({"project_id": "p", "scopes": []}),
        json!({"project_id": "p", "scopes": ["superuser"]}),
        json!({"project_id": "p", "scopes": ["read"], "key": "short"}),
        json!({"project_id": "p", "scopes": ["read"], "extra": 1}),
    ] {
        let answer = first
            .send(admin(reqwest::Method::POST, "/v1/admin/keys", ADMIN_TOKEN).json(&bad))
            .await;
        assert_eq!(answer.status, 400, "{bad}: {answer:?}");
    }
    // Importing a key that is there and not revoked is a conflict.
    let again = json!({"project_id": "p", "scopes": ["ingest"], "key": key});
    let answer = first
        .send(admin(reqwest::Method::POST, "/v1/admin/keys", ADMIN_TOKEN).json(&again))
        .await;
    assert_eq!(answer.status, 409, "{answer:?}");
    assert_eq!(answer.body["error"], "key_exists");

    // Revoked: refused on both gateways within seconds.
    let answer = first
        .send(admin(
            reqwest::Method::DELETE,
            &format!("/v1/admin/keys/{key_id}"),
            ADMIN_TOKEN,
        ))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.body["revoked_at"].is_string());
    let refused = first.send(send(&first, &key)).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["message"], "this API key was revoked");
    second
        .eventually_status("revocation on the second gateway", 401, || {
            send(&second, &key)
        })
        .await;
    let answer = first
        .send(admin(
            reqwest::Method::DELETE,
            "/v1/admin/keys/0000000000000000",
            ADMIN_TOKEN,
        ))
        .await;
    assert_eq!(answer.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_failure_is_refused_and_guessing_is_slowed() {
    let env = TestEnv::new("gw_auth");
    let mut config = config(&env);
    config.rate_limits.failed_auth_per_minute = 5;
    // Written before the gateway starts, so it is loaded when the gateway is
    // ready: waiting for it would count failed attempts against the limit.
    let reader = env.create_key(&project(&env), &[Scope::Read]).await;
    let gateway = Gateway::start_with(&env, config).await;
    let event = json!({"type": "x"});
    let post = |auth: Option<&str>| {
        let request = gateway.client.post(gateway.url("/v1/events")).json(&event);
        match auth {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    };

    let answer = gateway.send(post(Some(&format!("Bearer {reader}")))).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(
        answer.body["message"],
        "this API key lacks the `ingest` scope"
    );
    let mut failures = 0;
    for auth in [
        None,
        Some("Bearer "),
        Some("Bearer slk_unknown_key_0000"),
        Some("Token abc"),
    ] {
        let answer = gateway.send(post(auth)).await;
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (401, Some("unauthorized")),
            "{auth:?}"
        );
        assert!(answer.headers.contains_key("www-authenticate"));
        failures += 1;
    }
    assert_eq!(failures, 4);
    // The fifth failure is the last one allowed this minute; then 429.
    assert_eq!(gateway.send(post(None)).await.status, 401);
    let limited = gateway.send(post(Some("Bearer guess-000000000"))).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.body["details"]["limit"], "failed_auth");
    assert!(limited.headers.contains_key("retry-after"));
    // A valid key from the same IP still works.
    assert_eq!(gateway.post("/v1/events", &event).await.status, 202);
}

/// A session token of a developer of the test's project (or a global admin).
async fn session_token(env: &TestEnv, secret: &str, global_admin: bool) -> String {
    let role = [(project(env), sluice_runtime::access::Role::Developer)];
    let roles: Vec<(&str, _)> = role.iter().map(|(p, r)| (p.as_str(), *r)).collect();
    sluice_testkit::sessions::signed_in(&env.kafka, secret, &roles, global_admin)
        .await
        .token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_and_rotate_and_sessions_administer_but_never_send() {
    const SECRET: &str = "gateway-test-session-secret-32-bytes!!";
    let env = TestEnv::new("gw_rotate");
    let mut settings = config(&env);
    settings.api.session_secret = Some(sluice_runtime::secret::Secret::new(SECRET));
    let gateway = Gateway::start_with(&env, settings).await;
    let admin = |method: reqwest::Method, path: &str, token: &str| {
        gateway
            .client
            .request(method, gateway.url(path))
            .bearer_auth(token)
    };
    let send = |key: &str| {
        gateway
            .client
            .post(gateway.url("/v1/events"))
            .bearer_auth(key)
            .json(&json!({"type": "x"}))
    };
    let soon = || {
        sluice_schemas::time_format::format_rfc3339_ms(
            sluice_schemas::time_format::now_ms() + 6_000,
        )
    };

    // A key that expires: it works, then 401 saying so.
    let create = json!({"project_id": project(&env), "scopes": ["ingest"], "expires_at": soon()});
    let made = gateway
        .send(admin(reqwest::Method::POST, "/v1/admin/keys", ADMIN_TOKEN).json(&create))
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(made.body["created_by"], "admin-token");
    let expiring = made.body["key"].as_str().unwrap().to_owned();
    assert_eq!(gateway.send(send(&expiring)).await.status, 202);
    let expired = gateway
        .eventually_status("the key to expire", 401, || send(&expiring))
        .await;
    assert_eq!(expired.body["error"], "key_expired", "{expired:?}");
    let past = json!({"project_id": project(&env), "scopes": ["ingest"], "expires_at": "2001-01-01T00:00:00Z"});
    let refused = gateway
        .send(admin(reqwest::Method::POST, "/v1/admin/keys", ADMIN_TOKEN).json(&past))
        .await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("expires_at")
    );

    // Rotation: the new key at once, the old one until the time given.
    let create = json!({"project_id": project(&env), "scopes": ["ingest"], "label": "sender"});
    let made = gateway
        .send(admin(reqwest::Method::POST, "/v1/admin/keys", ADMIN_TOKEN).json(&create))
        .await;
    let (old, old_id) = (
        made.body["key"].as_str().unwrap().to_owned(),
        made.body["key_id"].as_str().unwrap().to_owned(),
    );
    let rotated = gateway
        .send(
            admin(
                reqwest::Method::POST,
                &format!("/v1/admin/keys/{old_id}/rotate"),
                ADMIN_TOKEN,
            )
            .json(&json!({"old_key_valid_until": soon()})),
        )
        .await;
    assert_eq!(rotated.status, 201, "{rotated:?}");
    assert_eq!(rotated.body["replaces"], old_id.as_str());
    assert_eq!(rotated.body["label"], "sender");
    let new = rotated.body["key"].as_str().unwrap().to_owned();
    assert_eq!(gateway.send(send(&new)).await.status, 202);
    assert_eq!(gateway.send(send(&old)).await.status, 202);
    gateway
        .eventually_status("the old key to stop", 401, || send(&old))
        .await;
    assert_eq!(gateway.send(send(&new)).await.status, 202);

    // A person's session: no events; key administration for global admins only.
    let developer = session_token(&env, SECRET, false).await;
    let refused = gateway
        .eventually_status("the session to be known", 403, || send(&developer))
        .await;
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("cannot send events"),
        "{refused:?}"
    );
    let answer = gateway
        .send(admin(reqwest::Method::GET, "/v1/admin/keys", &developer))
        .await;
    assert_eq!(answer.status, 403, "{answer:?}");
    let root = session_token(&env, SECRET, true).await;
    gateway
        .eventually_status("a global admin to list keys", 200, || {
            admin(reqwest::Method::GET, "/v1/admin/keys", &root)
        })
        .await;
}

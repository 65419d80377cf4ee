//! Keys: the `read` scope, and never another project's rows, on every endpoint.

use serde_json::Value;
use sluice_runtime::keys::Scope;
use sluice_schemas::time_format::now_ms;
use sluice_testkit::TestEnv;

use crate::common::{Api, HOUR, generate, insert_events, project, read_key};

const ENDPOINTS: [&str; 4] = [
    "/v1/events?limit=1000",
    "/v1/metrics?interval=1h&metrics=count&group_by=type&exact=true",
    "/v1/export/events?format=ndjson",
    "/v1/export/metrics?format=ndjson&interval=1h&metrics=count&exact=true",
];

/// The events (or metric rows) an endpoint returned, and their total count.
fn count_of(path: &str, text: &str) -> (u64, Vec<Value>) {
    let items: Vec<Value> = if path.contains("ndjson") {
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    } else {
        let body: Value = serde_json::from_str(text).unwrap();
        let list = if path.starts_with("/v1/events") {
            "events"
        } else {
            "rows"
        };
        body[list].as_array().unwrap().clone()
    };
    let total = if path.contains("metrics") {
        items.iter().map(|row| row["count"].as_u64().unwrap()).sum()
    } else {
        items.len() as u64
    };
    (total, items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_shows_only_the_keys_project() {
    let env = TestEnv::new("qauth");
    env.ensure_schema().await;
    let api = Api::start(&env).await;
    let (a, b) = (project(&env, "a"), project(&env, "b"));
    let now = now_ms();
    insert_events(
        &env.clickhouse(),
        &generate(&a, 40, now - 2 * HOUR, HOUR, 1),
    )
    .await;
    insert_events(
        &env.clickhouse(),
        &generate(&b, 25, now - 2 * HOUR, HOUR, 2),
    )
    .await;
    let key_a = read_key(&env, &api, &a).await;
    let key_b = read_key(&env, &api, &b).await;
    let ingest_only = env.create_key(&a, &[Scope::Ingest]).await;
    // Once a later key works, the earlier one is loaded too.
    read_key(&env, &api, &a).await;

    for path in ENDPOINTS {
        for (key, own, count) in [(&key_a, &a, 40), (&key_b, &b, 25)] {
            let answer = api.get(path, key).await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.text);
            let (total, items) = count_of(path, &answer.text);
            assert_eq!(total, count, "{path} with the key of {own}");
            if !path.contains("metrics") {
                assert!(
                    items.iter().all(|e| e["project_id"] == own.as_str()),
                    "{path}"
                );
            }
        }
        let missing = api.client.get(api.url(path)).send().await.unwrap();
        assert_eq!(missing.status().as_u16(), 401, "{path}");
        // The key is checked first: a query string that cannot even be
        // read, or a parameter the endpoint does not know, is still 401.
        let separator = if path.contains('?') { '&' } else { '?' };
        for broken in ["%zz=1", "nonsense=1"] {
            let url = api.url(&format!("{path}{separator}{broken}"));
            let anonymous = api.client.get(url).send().await.unwrap();
            assert_eq!(anonymous.status().as_u16(), 401, "{path} {broken}");
        }
        assert!(missing.headers().contains_key("www-authenticate"));
        let body: Value = missing.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{path}");
        let forbidden = api.get(path, &ingest_only).await;
        assert_eq!(forbidden.status, 403, "{path}");
        assert_eq!(forbidden.json()["error"], "forbidden", "{path}");
        let unknown = api.get(path, "sk_not_a_key").await;
        assert_eq!(unknown.status, 401, "{path}");
        // A project cannot be named in the query: the key decides.
        let named = api
            .get(&format!("{path}{separator}project_id={b}"), &key_a)
            .await;
        assert_eq!(named.status, 400, "{path}");
        assert_eq!(named.json()["details"]["parameter"], "project_id");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_share_one_body() {
    let env = TestEnv::new("qerrors");
    env.ensure_schema().await;
    let api = Api::start(&env).await;
    let key = read_key(&env, &api, &project(&env, "p")).await;
    for (path, status, code) in [
        ("/v1/nothing", 404, "not_found"),
        ("/v1/events?limit=0", 400, "invalid_parameter"),
        ("/v1/events?from=yesterday", 400, "invalid_parameter"),
        ("/v1/events?cursor=forged", 400, "invalid_parameter"),
        ("/v1/metrics?interval=2m", 400, "invalid_parameter"),
        ("/v1/metrics?group_by=user_id", 400, "invalid_parameter"),
        ("/v1/metrics?having=count>x", 400, "invalid_parameter"),
        ("/v1/export/events?format=xml", 400, "invalid_parameter"),
    ] {
        let answer = api.get(path, &key).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.text);
        let body = answer.json();
        assert_eq!(body["error"], code, "{path}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{path}"
        );
        if status == 400 {
            assert!(body["details"]["parameter"].is_string(), "{path}: {body}");
        }
    }
    let post = api
        .client
        .post(api.url("/v1/events"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 405);
    let body: Value = post.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");

    let spec = api.get_ok("/openapi.json", &key).await;
    for path in [
        "/v1/events",
        "/v1/metrics",
        "/v1/export/events",
        "/v1/export/metrics",
        "/v1/live",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} in the OpenAPI document"
        );
    }
    // /docs and every file it loads, compiled in; an unknown asset is the
    // API's own 404.
    for (path, content_type) in sluice_runtime::docs::page_paths() {
        let answer = api.get(&path, "").await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.headers["content-type"], content_type, "{path}");
    }
    let missing = api.get("/docs/assets/nothing.js", "").await;
    assert_eq!(missing.status, 404);
    assert!(missing.text.contains("not_found"), "{}", missing.text);
    // The dashboard at / and every file it loads, compiled in, without a key.
    for (path, content_type) in sluice_query_api::dashboard::page_paths() {
        let answer = api.get(&path, "").await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.headers["content-type"], content_type, "{path}");
    }
}

//! What schemathesis found against the OpenAPI document
//! (deploy/dev.sh conformance), kept as tests: every answer has the one error
//! body, and a body that must be an object is not read from an array.

use serde_json::json;
use sluice_testkit::TestEnv;

use crate::common::{ADMIN_TOKEN, Gateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_get_the_error_body() {
    let env = TestEnv::new("gw_conformance_routes");
    let gateway = Gateway::start(&env).await;
    let answer = gateway
        .send(gateway.client.get(gateway.url("/v1/nothing-here")))
        .await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (404, Some("not_found"))
    );
    let answer = gateway
        .send(gateway.client.get(gateway.url("/v1/events")))
        .await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert_eq!(answer.headers["allow"], "POST");
    // /docs and every file it loads, compiled in; an unknown asset is the
    // gateway's own 404.
    for (path, content_type) in sluice_runtime::docs::page_paths() {
        let answer = gateway.client.get(gateway.url(&path)).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        assert_eq!(answer.headers()["content-type"], content_type, "{path}");
    }
    let answer = gateway
        .send(gateway.client.get(gateway.url("/docs/assets/nothing.js")))
        .await;
    assert_eq!(answer.body["error"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_must_be_objects_refuse_arrays() {
    let env = TestEnv::new("gw_conformance_bodies");
    let gateway = Gateway::start(&env).await;
    // serde reads a struct from an array of its fields: `[[event]]` was a
    // batch of one, and `"limits": [1000, 2000]` set two limits.
    for (path, body) in [
        ("/v1/events/batch", json!([[{"type": "a"}]])),
        ("/v1/batch", json!([[{"type": "track", "event": "a"}]])),
    ] {
        let answer = gateway.post(path, &body).await;
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (400, Some("invalid_json")),
            "{path}: {answer:?}"
        );
    }
    let admin = |body: serde_json::Value| {
        gateway
            .client
            .post(gateway.url("/v1/admin/keys"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
    };
    for body in [
        json!({"project_id": "p", "scopes": ["read"], "limits": [1000, 2000]}),
        json!(["p", ["read"]]),
    ] {
        let answer = gateway.send(admin(body.clone())).await;
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (400, Some("invalid_json")),
            "{body}: {answer:?}"
        );
    }
    // A body that is not JSON by its Content-Type: 415, as on every route.
    let answer = gateway
        .send(
            gateway
                .client
                .post(gateway.url("/v1/admin/keys"))
                .bearer_auth(ADMIN_TOKEN)
                .body("{}"),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
}

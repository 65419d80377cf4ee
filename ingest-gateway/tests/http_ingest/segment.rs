//! The Segment-compatible surface, with payloads shaped as the real SDKs
//! send them (analytics-node, analytics-python, analytics.js, RudderStack's
//! Node SDK, Jitsu's @jitsu/js).

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sluice_schemas::time_format::{format_rfc3339_ms, now_ms};
use sluice_testkit::TestEnv;

use crate::common::{Answer, Gateway, config, ids, project};

fn basic(write_key: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{write_key}:")))
}

/// A gzip `/v1/batch` request with basic auth, as server SDKs send it.
fn gzip_batch(
    gateway: &Gateway,
    batch: &serde_json::Value,
    content_type: &str,
) -> reqwest::RequestBuilder {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(&serde_json::to_vec(batch).unwrap())
        .unwrap();
    gateway
        .client
        .post(gateway.url("/v1/batch"))
        .header("authorization", basic(&gateway.key))
        .header("content-type", content_type)
        .header("content-encoding", "gzip")
        .body(encoder.finish().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_sdk_payloads_land_as_sluice_events() {
    let env = TestEnv::new("gw_segment");
    let gateway = Gateway::start(&env).await;
    let url = |path: &str| gateway.url(path);
    // The client's clock is an hour fast; the event happened 5 s before sending.
    let skew = 3_600_000;
    let sent_at = format_rfc3339_ms(now_ms() + skew);
    let happened = format_rfc3339_ms(now_ms() + skew - 5_000);

    // analytics-node: /v1/batch, basic auth, application/json.
    let node = json!({
        "batch": [{
            "type": "track",
            "event": "Order Completed",
            "userId": "user-1",
            "anonymousId": "anon-1",
            "properties": {"revenue": 42.5, "currency": "EUR"},
            "context": {"library": {"name": "@segment/analytics-node", "version": "2.1.2"}},
            "messageId": "node-next-1700000000000-abc",
            "timestamp": happened,
            "integrations": {},
            "_metadata": {"jsRuntime": "node"}
        }, {
            "type": "identify",
            "userId": "user-1",
            "traits": {"plan": "pro", "email": "u1@example.com"},
            "context": {"library": {"name": "@segment/analytics-node", "version": "2.1.2"}},
            "messageId": "node-next-1700000000001-def",
            "timestamp": happened
        }],
        "sentAt": sent_at
    });
    let answer = gateway
        .send(
            gateway
                .client
                .post(url("/v1/batch"))
                .header("authorization", basic(&gateway.key))
                .json(&node),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["success"], true);

    // analytics-python: gzip, microsecond offsets, a null anonymousId.
    let python = json!({
        "batch": [{
            "type": "page",
            "name": "Pricing",
            "properties": {"url": "https://example.com/pricing"},
            "userId": "user-2",
            "anonymousId": null,
            "context": {"library": {"name": "analytics-python", "version": "2.3.2"}},
            "messageId": "6f3c1a2e-python-1",
            "timestamp": "2026-11-22T08:00:00.123456+00:00",
            "integrations": {}
        }],
        "sentAt": "2026-11-22T08:00:01.123456+00:00"
    });
    let answer = gateway
        .send(gzip_batch(&gateway, &python, "application/json"))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");

    // RudderStack's Node SDK (3.0.13, as captured): gzip labelled
    // application/x-www-form-urlencoded by axios, originalTimestamp rather
    // than timestamp, the write key as basic-auth user name.
    let rudder = json!({
        "batch": [{
            "userId": "user-rudder",
            "event": "Order Completed",
            "properties": {"revenue": 5},
            "type": "track",
            "context": {"library": {"name": "analytics-node", "version": "3.0.13"}},
            "channel": "server",
            "_metadata": {"nodeVersion": "20.20.2"},
            "originalTimestamp": happened,
            "messageId": "ac9544f4-rudder-1",
            "sentAt": sent_at
        }],
        "timestamp": sent_at,
        "sentAt": sent_at
    });
    let request = gzip_batch(&gateway, &rudder, "application/x-www-form-urlencoded")
        .header("user-agent", "analytics-node/3.0.13");
    let answer = gateway.send(request).await;
    assert_eq!(answer.status, 200, "{answer:?}");

    // Jitsu's @jitsu/js (1.11.0, as captured): /api/s/CALL (and /api/s/s2s/CALL
    // server to server), the key as X-Write-Key "id:secret", a masked
    // writeKey in the body.
    for (path, message) in [
        (
            "/api/s/track",
            json!({"type": "track", "event": "Jitsu Order", "properties": {"revenue": 7},
                   "userId": null, "anonymousId": "aabccdcd-jitsu", "timestamp": happened,
                   "sentAt": sent_at, "messageId": "271nnxf6p0e20r426y9l0c", "writeKey": "kid:***",
                   "context": {"library": {"name": "@jitsu/js", "version": "1.11.0", "env": "node"},
                               "traits": {}, "page": {}, "clientIds": {}, "campaign": {}}}),
        ),
        (
            "/api/s/s2s/identify",
            json!({"type": "identify", "userId": "user-jitsu", "traits": {"email": "j@example.com"},
                   "anonymousId": "aabccdcd-jitsu", "messageId": "1cbz19ujvyq1im0o7ouk9s",
                   "writeKey": "kid:***", "context": {"library": {"name": "@jitsu/js", "version": "1.11.0"}}}),
        ),
    ] {
        let answer = gateway
            .send(
                gateway
                    .client
                    .post(url(path))
                    .header("x-write-key", format!("kid:{}", gateway.key))
                    .json(&message),
            )
            .await;
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert_eq!(answer.body["success"], true);
    }
    let answer = gateway
        .send(
            gateway
                .client
                .post(url("/api/s/track"))
                .header("x-write-key", "kid:not-a-key-0000")
                .json(
                    &json!({"type": "track", "event": "x", "userId": "u", "writeKey": gateway.key}),
                ),
        )
        .await;
    assert_eq!(
        answer.status, 401,
        "a wrong X-Write-Key wins over the body: {answer:?}"
    );

    // analytics.js in a browser: text/plain, the write key in the body, short paths.
    for (path, message) in [
        (
            "/v1/t",
            json!({"type": "track", "event": "Clicked", "anonymousId": "browser-1", "messageId": "ajs-t-1", "writeKey": gateway.key}),
        ),
        (
            "/v1/p",
            json!({"type": "page", "anonymousId": "browser-1", "messageId": "ajs-p-1", "writeKey": gateway.key, "properties": {"path": "/"}}),
        ),
    ] {
        let answer = gateway
            .send(
                gateway
                    .client
                    .post(url(path))
                    .header("content-type", "text/plain")
                    .body(message.to_string()),
            )
            .await;
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
    }

    // Every single call, bearer auth.
    for (path, message) in [
        (
            "/v1/track",
            json!({"event": "Signed Up", "userId": "u3", "messageId": "s-track"}),
        ),
        (
            "/v1/identify",
            json!({"userId": "u3", "traits": {"name": "Ada"}, "messageId": "s-identify"}),
        ),
        (
            "/v1/page",
            json!({"userId": "u3", "name": "Home", "messageId": "s-page"}),
        ),
        (
            "/v1/screen",
            json!({"userId": "u3", "name": "Settings", "messageId": "s-screen"}),
        ),
        (
            "/v1/group",
            json!({"userId": "u3", "groupId": "acme", "traits": {"seats": 5}, "messageId": "s-group"}),
        ),
        (
            "/v1/alias",
            json!({"userId": "u3", "previousId": "anon-3", "messageId": "s-alias"}),
        ),
    ] {
        let answer = gateway.post(path, &message).await;
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert_eq!(answer.body["success"], true);
    }

    // Errors name the Segment field; no key is 401.
    let answer = gateway.post("/v1/track", &json!({"userId": "u"})).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.body["details"]["fields"][0]["field"], "event");
    let answer = gateway
        .send(
            gateway
                .client
                .post(url("/v1/track"))
                .json(&json!({"event": "x", "userId": "u"})),
        )
        .await;
    assert_eq!(answer.status, 401);
    let answer = gateway
        .send(
            gateway
                .client
                .post(url("/v1/batch"))
                .header("authorization", basic(&gateway.key))
                .json(&json!({"batch": [{"type": "track", "event": "ok", "userId": "u", "messageId": "s-ok"}, {"type": "launch"}]})),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["rejected"][0]["index"], 1);
    assert_eq!(answer.body["rejected"][0]["errors"][0]["field"], "type");

    let events = env.topic_events(&env.kafka.events_topic).await;
    assert_eq!(
        ids(&events),
        [
            "1cbz19ujvyq1im0o7ouk9s",
            "271nnxf6p0e20r426y9l0c",
            "6f3c1a2e-python-1",
            "ac9544f4-rudder-1",
            "ajs-p-1",
            "ajs-t-1",
            "node-next-1700000000000-abc",
            "node-next-1700000000001-def",
            "s-alias",
            "s-group",
            "s-identify",
            "s-ok",
            "s-page",
            "s-screen",
            "s-track",
        ]
    );
    let event = |id: &str| events.iter().find(|e| e.event_id == id).unwrap();
    let order = event("node-next-1700000000000-abc");
    assert_eq!(order.project_id, project(&env));
    assert_eq!(order.event_type, "Order Completed");
    assert_eq!(order.user_id.as_deref(), Some("user-1"));
    assert_eq!(order.source.as_deref(), Some("@segment/analytics-node"));
    // Clock skew corrected: 5 s before the gateway received it, not an hour ahead.
    let lag = order.received_at_ms - order.timestamp_ms;
    assert!((4_900..=5_100).contains(&lag), "lag {lag} ms");
    let properties: serde_json::Value = serde_json::from_str(&order.properties).unwrap();
    assert_eq!(properties["revenue"], 42.5);
    assert_eq!(properties["$segment"]["anonymousId"], "anon-1");

    let identify = event("node-next-1700000000001-def");
    assert_eq!(identify.event_type, "$identify");
    let traits: serde_json::Value = serde_json::from_str(&identify.properties).unwrap();
    assert_eq!(traits["plan"], "pro");
    let page = event("6f3c1a2e-python-1");
    assert_eq!(page.event_type, "$page");
    assert_eq!(page.source.as_deref(), Some("analytics-python"));
    assert_eq!(event("ajs-t-1").user_id.as_deref(), Some("browser-1"));
    let jitsu = event("271nnxf6p0e20r426y9l0c");
    assert_eq!(jitsu.event_type, "Jitsu Order");
    assert_eq!(jitsu.user_id.as_deref(), Some("aabccdcd-jitsu"));
    assert_eq!(jitsu.source.as_deref(), Some("@jitsu/js"));
    assert_eq!(event("1cbz19ujvyq1im0o7ouk9s").event_type, "$identify");
    let rudder = event("ac9544f4-rudder-1");
    assert_eq!(rudder.event_type, "Order Completed");
    assert_eq!(rudder.source.as_deref(), Some("analytics-node"));
    let lag = rudder.received_at_ms - rudder.timestamp_ms;
    assert!(
        (4_900..=5_100).contains(&lag),
        "originalTimestamp skew: {lag} ms"
    );
    assert_eq!(event("s-group").event_type, "$group");
    assert_eq!(event("s-alias").event_type, "$alias");
    assert_eq!(event("s-screen").event_type, "$screen");
    gateway.running.stop().await.unwrap();
}

/// A browser SDK on a web site's own origin: its preflight is answered, its
/// answers carry `Access-Control-Allow-Origin`; the admin API never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_send_from_allowed_origins() {
    const SHOP: &str = "https://shop.example";
    let env = TestEnv::new("gw_cors");
    let any = Gateway::start(&env).await;
    let mut config = config(&env);
    config.ingest.cors_origins = vec![SHOP.to_owned()];
    let listed = Gateway::start_with(&env, config).await;
    let preflight = |gateway: &Gateway, path: &str, origin: &str| {
        gateway
            .client
            .request(reqwest::Method::OPTIONS, gateway.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-write-key")
    };
    let allow_origin = |answer: &Answer| {
        answer
            .headers
            .get("access-control-allow-origin")
            .map(|value| value.to_str().unwrap().to_owned())
    };

    // Any origin (the default): Jitsu's browser call is preflighted.
    let answer = any.send(preflight(&any, "/api/s/track", SHOP)).await;
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(allow_origin(&answer).as_deref(), Some("*"));
    assert_eq!(answer.headers["access-control-allow-methods"], "POST");
    let allowed_headers = answer.headers["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed_headers.contains("x-write-key") && allowed_headers.contains("authorization"));
    let call = any
        .client
        .post(any.url("/api/s/track"))
        .header("origin", SHOP)
        .header("x-write-key", format!("kid:{}", any.key))
        .json(&json!({"type": "track", "event": "Browser Click", "anonymousId": "b-1", "messageId": "cors-1"}));
    let answer = any.send(call).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(allow_origin(&answer).as_deref(), Some("*"));
    let exposed = answer.headers["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("retry-after") && exposed.contains("ratelimit-remaining"));
    // OPTIONS that is no preflight, and the admin API, stay as they were.
    let not_preflight = any
        .client
        .request(reqwest::Method::OPTIONS, any.url("/v1/track"));
    let answer = any.send(not_preflight).await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.headers["allow"], "POST");
    assert_eq!(answer.body["error"], "method_not_allowed");
    let admin = any.send(preflight(&any, "/v1/admin/keys", SHOP)).await;
    assert_eq!(allow_origin(&admin), None, "{admin:?}");

    // A list: the origin is echoed and caches told it varies; others get nothing.
    let answer = listed.send(preflight(&listed, "/v1/t", SHOP)).await;
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(allow_origin(&answer).as_deref(), Some(SHOP));
    assert_eq!(answer.headers["vary"], "origin");
    let answer = listed
        .send(preflight(&listed, "/v1/t", "https://elsewhere.example"))
        .await;
    assert_eq!(answer.status, 405, "{answer:?}");
    assert_eq!(allow_origin(&answer), None);
    assert_eq!(answer.headers["vary"], "origin", "{answer:?}");
    let events = env.topic_events(&env.kafka.events_topic).await;
    assert_eq!(ids(&events), ["cors-1"]);
    any.running.stop().await.unwrap();
    listed.running.stop().await.unwrap();
}

/// A number no 64-bit float holds is refused on every route, naming its
/// path; inside a batch it is refused alone. (Before, the native routes
/// took it and the events page read it back as `null`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_no_float_holds_are_refused_with_their_path_on_every_route() {
    let env = TestEnv::new("gw_number_range");
    let gateway = Gateway::start(&env).await;
    let raw = |path: &str, body: String| {
        gateway
            .client
            .post(gateway.url(path))
            .bearer_auth(&gateway.key)
            .header("content-type", "application/json")
            .body(body)
    };
    let huge = "9".repeat(5000);

    let one = gateway
        .send(raw(
            "/v1/events",
            r#"{"type":"num","properties":{"x":1e999}}"#.into(),
        ))
        .await;
    assert_eq!(one.status, 400, "{:?}", one.body);
    assert_eq!(one.body["details"]["fields"][0]["field"], "properties.x");

    let batch = gateway
        .send(raw(
            "/v1/events/batch",
            format!(
                r#"{{"events":[{{"type":"num","properties":{{"a":[1,-1e400]}}}},{{"type":"num","properties":{{"n":{huge}}}}},{{"type":"num","properties":{{"x":1.5}}}}]}}"#
            ),
        ))
        .await;
    assert_eq!(batch.status, 207, "{:?}", batch.body);
    let rejected = batch.body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{:?}", batch.body);
    assert_eq!(rejected[0]["errors"][0]["field"], "properties.a[1]");
    assert_eq!(rejected[1]["errors"][0]["field"], "properties.n");

    let track = gateway
        .send(raw(
            "/v1/track",
            r#"{"userId":"u","event":"num","properties":{"price":1e999}}"#.into(),
        ))
        .await;
    assert_eq!(track.status, 400, "{:?}", track.body);
    let message = track.body["message"].as_str().unwrap();
    assert!(message.contains("properties.price"), "{message}");

    let segment_batch = gateway
        .send(raw(
            "/v1/batch",
            r#"{"batch":[{"type":"track","userId":"u","event":"num","properties":{"price":-1e400}},{"type":"track","userId":"u","event":"num","properties":{"price":2}}]}"#.into(),
        ))
        .await;
    assert_eq!(segment_batch.status, 200, "{:?}", segment_batch.body);
    let rejected = segment_batch.body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{:?}", segment_batch.body);
    assert_eq!(rejected[0]["errors"][0]["field"], "properties.price");
}

//! `GET /v1/live`: pushes that reflect events sent after subscribing, only
//! of the key's project.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sluice_runtime::keys::Scope;
use sluice_schemas::time_format::now_ms;
use sluice_testkit::TestEnv;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{
    Api, generate, project, read_key, send_through_gateway, start_gateway, start_processor,
};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(api: &Api, key: &str) -> Socket {
    let mut request = format!("ws://{}/v1/live", api.running.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket")
        .0
}

/// The next message other than an update (pushes may come at any time).
async fn next_reply(socket: &mut Socket) -> Value {
    loop {
        let message = next_message(socket).await;
        if message["type"] != "update" {
            return message;
        }
    }
}

/// The next JSON message, skipping pings and heartbeats.
async fn next_message(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a message within 30 s")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] != "heartbeat" {
                return value;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_reflect_events_sent_after_subscribing() {
    let env = TestEnv::new("qlive");
    let gateway = start_gateway(&env).await;
    let processor = start_processor(&env).await;
    let api = Api::start(&env).await;
    let (a, b) = (project(&env, "a"), project(&env, "b"));
    let key = read_key(&env, &api, &a).await;
    let ingest_a = env.create_key(&a, &[Scope::Ingest]).await;
    let ingest_b = env.create_key(&b, &[Scope::Ingest]).await;

    let refused =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/live", api.running.addr)).await;
    assert!(refused.is_err(), "no key, no socket");

    let mut socket = connect(&api, &key).await;
    let subscribe = json!({"action": "subscribe", "id": "clicks", "window": "1m", "filters": {"type": "click"}});
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_message(&mut socket).await["type"], "subscribed");
    socket
        .send(Message::Text("{\"action\":\"dance\"}".into()))
        .await
        .unwrap();
    assert_eq!(next_reply(&mut socket).await["error"], "invalid_message");

    let now = now_ms();
    let mut events = generate(&a, 80, now - 1_000, 500, 51);
    let clicks = events.iter().filter(|e| e.event_type == "click").count() as u64;
    let mut others = generate(&b, 30, now - 1_000, 500, 52);
    for event in &mut others {
        event.event_type = "click".into();
    }
    send_through_gateway(&gateway, &ingest_b, &others).await;
    send_through_gateway(&gateway, &ingest_a, &events).await;
    events.clear();

    let mut last = 0;
    while last < clicks {
        let message = next_message(&mut socket).await;
        assert_eq!(message["type"], "update", "{message}");
        assert_eq!(message["id"], "clicks");
        last = message["count"].as_u64().unwrap();
        assert!(last <= clicks, "only project a's clicks: {message}");
    }
    socket
        .send(Message::Text(
            json!({"action": "unsubscribe", "id": "clicks"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    assert_eq!(next_reply(&mut socket).await["type"], "unsubscribed");
    drop(gateway);
    processor.stop().await.unwrap();
}

/// A client that stops reading (and so stops answering pings) is dropped
/// after three missed heartbeats, while a reading client beside it keeps
/// getting its heartbeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_the_others_go_on() {
    let env = TestEnv::new("qlive_slow");
    let api = Api::start_with(
        &env,
        sluice_query_api::config::QuerySettings {
            live_heartbeat_ms: 100,
            ..Default::default()
        },
    )
    .await;
    let key = read_key(&env, &api, &project(&env, "a")).await;
    let mut stalled = connect(&api, &key).await;
    let mut reading = connect(&api, &key).await;

    // The reading client sees heartbeats for well past the stalled one's limit.
    let until = tokio::time::Instant::now() + Duration::from_millis(1_500);
    let mut heartbeats = 0;
    while tokio::time::Instant::now() < until {
        let message = tokio::time::timeout(Duration::from_secs(5), reading.next())
            .await
            .expect("the reading client keeps getting messages")
            .expect("the reading client's socket stays open")
            .expect("a frame");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            heartbeats += usize::from(value["type"] == "heartbeat");
        }
    }
    assert!(heartbeats >= 5, "only {heartbeats} heartbeats");

    // The stalled client finds, once it reads, that the server closed it.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stalled.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true), "the stalled client was not dropped");
}

/// Found by schemathesis (deploy/dev.sh conformance): a GET that is no
/// WebSocket handshake got axum's plain-text 400; it gets the error body,
/// and the key is checked first, as on every endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_get_gets_the_error_body() {
    let env = TestEnv::new("qlive_plain");
    let api = Api::start(&env).await;
    let key = read_key(&env, &api, &project(&env, "a")).await;
    // Without a key: 401 before anything else is looked at, even a
    // parameter the endpoint does not know.
    for path in ["/v1/live", "/v1/live?from=1"] {
        let anonymous = api.client.get(api.url(path)).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
        let body: Value = anonymous.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{path}");
    }
    let unknown = api.get("/v1/live?from=1", &key).await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    let answer = api.get("/v1/live", &key).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.json()["error"], "websocket_required");
}

/// Every `error` answer to a message that names a subscription carries its
/// `id`, so a client that sends several can tell which was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_subscription_they_refuse() {
    let env = TestEnv::new("qlive_error_ids");
    let api = Api::start(&env).await;
    let key = read_key(&env, &api, &project(&env, "a")).await;
    let mut socket = connect(&api, &key).await;
    for (message, id, error) in [
        (
            json!({"action": "subscribe", "id": "good", "window": "1m"}),
            "good",
            None,
        ),
        (
            json!({"action": "subscribe", "id": "bad-window", "window": "3d"}),
            "bad-window",
            Some("invalid_window"),
        ),
        (
            json!({"action": "subscribe", "id": "bad-filter", "window": "1m", "filters": {"nope": 1}}),
            "bad-filter",
            Some("invalid_message"),
        ),
        (
            json!({"action": "unsubscribe", "id": "never"}),
            "never",
            Some("unknown_subscription"),
        ),
    ] {
        socket
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
        let reply = next_reply(&mut socket).await;
        assert_eq!(reply["id"], id, "{message} -> {reply}");
        match error {
            Some(code) => assert_eq!(reply["error"], code, "{reply}"),
            None => assert_eq!(reply["type"], "subscribed", "{reply}"),
        }
    }
    socket.send(Message::Text("not json".into())).await.unwrap();
    let reply = next_reply(&mut socket).await;
    assert_eq!(reply["error"], "invalid_message");
    assert!(reply.get("id").is_none(), "{reply}");
}

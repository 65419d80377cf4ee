//! A W3C trace crosses the broker: the `traceparent` a client sends to the
//! gateway is continued by the gateway's spans, carried in a Kafka header,
//! and continued by the processor's spans, all exported over OTLP/HTTP to a
//! receiver inside the test, against the real broker and ClickHouse.
//!
//! One test per process is what `telemetry::init` allows (the subscriber is
//! global), so the cases share one test.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::{Value, json};
use sluice_runtime::settings::{LogFormat, TelemetrySettings};
use sluice_runtime::telemetry;
use sluice_testkit::{Running, TestEnv, eventually};
use tokio::net::TcpListener;

use common::{key_of, start_gateway, start_processor};

const SERVICE: &str = "sluice-tracing-test";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_trace_crosses_the_broker() {
    let receiver = OtlpReceiver::start().await;
    let telemetry = telemetry::init(
        &TelemetrySettings {
            log_format: LogFormat::Text,
            log_filter: "warn".into(),
            otlp_endpoint: receiver.endpoint.clone(),
        },
        SERVICE,
    )
    .expect("an http endpoint");
    assert!(telemetry::exporting());

    let env = TestEnv::new("trace");
    let key = key_of(&env).await;
    let gateway = start_gateway(&env).await;
    gateway.wait_ready().await;
    let processor = start_processor(&env).await;

    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
    let (status, body) = post_traced(&gateway, &key, "traced", &traceparent).await;
    assert_eq!(status, 202, "{body}");
    // Not a traceparent: ignored, never an error; the gateway starts a trace.
    let (status, body) = post_traced(&gateway, &key, "untraced", "00-not-a-traceparent").await;
    assert_eq!(status, 202, "{body}");

    let spans = eventually(
        "the gateway's and the processor's spans",
        Duration::from_secs(90),
        || {
            // The SDK batches spans for up to 5 s; ask for them now.
            tokio::task::block_in_place(|| telemetry.flush());
            let spans = receiver.spans();
            let complete = ["publish", "decode", "insert"].iter().all(|name| {
                spans
                    .iter()
                    .any(|span| span.name == *name && span.in_trace(TRACE_ID))
            }) && spans.iter().any(|span| {
                span.name == "decode"
                    && span.attribute("offset").is_some()
                    && !span.in_trace(TRACE_ID)
            });
            async move { complete.then_some(spans) }
        },
    )
    .await;
    assert!(
        spans.iter().all(|span| span.service == SERVICE),
        "{spans:#?}"
    );

    // The gateway continues the caller's span: its request span is a child
    // of it, and the span that produced the message is a child of that.
    let request = find(&spans, |span| {
        span.name == "http" && span.attribute("request_id") == Some("traced")
    });
    assert_eq!(request.trace_id, TRACE_ID);
    assert_eq!(request.parent_span_id, CALLER_SPAN_ID);
    let publish = find(&spans, |span| {
        span.name == "publish" && span.trace_id == TRACE_ID
    });
    assert_eq!(publish.parent_span_id, request.span_id);
    assert!(
        publish.module().starts_with("sluice_ingest_gateway"),
        "{publish:?}"
    );

    // The processor continues the trace from the Kafka header: its decode
    // span is a child of the gateway's publish span, and the insert span of
    // the batch links to the decode span.
    let decode = find(&spans, |span| {
        span.name == "decode" && span.trace_id == TRACE_ID
    });
    assert_eq!(decode.parent_span_id, publish.span_id);
    assert!(
        decode.module().starts_with("sluice_stream_processor"),
        "{decode:?}"
    );
    let insert = find(&spans, |span| {
        span.name == "insert" && span.in_trace(TRACE_ID)
    });
    assert!(
        insert.module().starts_with("sluice_stream_processor"),
        "{insert:?}"
    );
    assert!(
        insert
            .links
            .contains(&(TRACE_ID.to_owned(), decode.span_id.clone())),
        "{insert:?}"
    );

    // The malformed traceparent was dropped: that request began a trace of
    // its own, which crossed the broker just the same.
    let fresh = find(&spans, |span| {
        span.name == "http" && span.attribute("request_id") == Some("untraced")
    });
    assert_ne!(fresh.trace_id, TRACE_ID);
    assert!(fresh.parent_span_id.is_empty(), "{fresh:?}");
    assert!(
        spans
            .iter()
            .any(|span| span.name == "decode" && span.trace_id == fresh.trace_id),
        "no processor span in the fresh trace {}",
        fresh.trace_id
    );

    gateway.stop().await.unwrap();
    processor.stop().await.unwrap();
}

async fn post_traced(
    gateway: &Running,
    key: &str,
    request_id: &str,
    traceparent: &str,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(gateway.url("/v1/events"))
        .bearer_auth(key)
        .header("x-request-id", request_id)
        .header("traceparent", traceparent)
        .header("tracestate", "vendor=value")
        .json(&json!({"type": "traced_click", "event_id": request_id}))
        .send()
        .await
        .expect("gateway answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn find(spans: &[Span], matches: impl Fn(&Span) -> bool) -> &Span {
    spans
        .iter()
        .find(|span| matches(span))
        .unwrap_or_else(|| panic!("no such span in {spans:#?}"))
}

/// One exported span, as the receiver decoded it (ids in hex).
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Vec<(String, String)>,
    /// Trace id and span id of each link.
    links: Vec<(String, String)>,
}

impl Span {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// The Rust module that made the span.
    fn module(&self) -> &str {
        self.attribute("code.module.name").unwrap_or("")
    }

    /// In the trace, or linked to it.
    fn in_trace(&self, trace_id: &str) -> bool {
        self.trace_id == trace_id || self.links.iter().any(|(trace, _)| trace == trace_id)
    }
}

/// An OTLP/HTTP receiver: POST /v1/traces with a protobuf body.
struct OtlpReceiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl OtlpReceiver {
    async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { endpoint, spans }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

async fn receive(State(spans): State<Arc<Mutex<Vec<Span>>>>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.unwrap_or_default();
        let service = text_of(&resource.attributes, "service.name").unwrap_or_default();
        for span in resource_spans
            .scope_spans
            .into_iter()
            .flat_map(|scope| scope.spans)
        {
            received.push(Span {
                service: service.clone(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                attributes: span
                    .attributes
                    .iter()
                    .filter_map(|pair| Some((pair.key.clone(), text(pair)?)))
                    .collect(),
                links: span
                    .links
                    .iter()
                    .map(|link| (hex(&link.trace_id), hex(&link.span_id)))
                    .collect(),
            });
        }
    }
    spans.lock().unwrap().extend(received);
    StatusCode::OK
}

fn text_of(attributes: &[KeyValue], key: &str) -> Option<String> {
    text(attributes.iter().find(|pair| pair.key == key)?)
}

/// A string or integer attribute as text.
fn text(pair: &KeyValue) -> Option<String> {
    match pair.value.as_ref()?.value.as_ref()? {
        AnyValue::StringValue(text) => Some(text.clone()),
        AnyValue::IntValue(number) => Some(number.to_string()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

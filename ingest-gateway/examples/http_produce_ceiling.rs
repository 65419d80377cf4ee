//! The most any HTTP gateway could reach on this machine: HTTP in, Kafka out,
//! and nothing between.
//!
//! `POST /v1/events/batch` reads the body, hands 100 pre-validated ~300-byte
//! events to the gateway's own producer (same settings, same Avro encoding,
//! same per-request ack wait) and answers `202 {}`. No authentication, no
//! parsing, no validation, no per-event answer. Run it where the benchmark's
//! gateway would run and point `sluice-loadgen http` at it: its events/s bound
//! what the real gateway can reach with the same broker and load generator.
//! `deploy/dev.sh bench gateway` runs it as its `ceiling` phase.
//!
//! ```sh
//! SLUICE_LISTEN=127.0.0.1:18190 SLUICE_KAFKA_BROKERS=127.0.0.1:19292 \
//!   cargo run --release -p sluice-ingest-gateway --example http_produce_ceiling
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use sluice_ingest_gateway::GatewayConfig;
use sluice_ingest_gateway::metrics::GatewayMetrics;
use sluice_ingest_gateway::publish::EventPublisher;
use sluice_runtime::kafka::ensure_topics;
use sluice_runtime::ops::Patience;
use sluice_schemas::validate::validate_event_json;
use sluice_schemas::{EventRef, FallbackId, Limits, Origin};

/// Events per request, as `sluice-loadgen http` sends them by default.
const BATCH: usize = 100;

struct Ceiling {
    publisher: EventPublisher,
    events: Vec<EventRef<'static>>,
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: GatewayConfig = sluice_runtime::settings::load()?;
    let kafka = &config.kafka;
    let deadline = std::time::Duration::from_secs(60);
    let never = tokio_util::sync::CancellationToken::new();
    ensure_topics(
        kafka,
        &[&kafka.events_topic],
        Patience::AtMost(deadline),
        &never,
    )
    .await?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = GatewayMetrics::register(&mut registry);
    let publisher = EventPublisher::new(&config.kafka, &config.ingest, &metrics)?;
    let ceiling = Arc::new(Ceiling {
        publisher,
        events: (0..BATCH).map(sample_event).collect(),
    });
    let app = Router::new()
        .route("/v1/events/batch", post(produce))
        .route("/health/ready", get(|| async { "ready" }))
        .with_state(ceiling);
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn produce(State(ceiling): State<Arc<Ceiling>>, body: Bytes) -> (StatusCode, &'static str) {
    drop(body);
    match ceiling.publisher.publish_all(&ceiling.events).await {
        Ok(()) => (StatusCode::ACCEPTED, "{}"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "{}"),
    }
}

/// A valid event of about 300 bytes, with its own id (so keys spread over
/// the partitions), borrowing text that lives as long as the process.
fn sample_event(index: usize) -> EventRef<'static> {
    let pad = "x".repeat(120);
    let text = format!(
        r#"{{"event_id":"ceiling-{index:08}","type":"page_view","user_id":"user-{index:04}","session_id":"session-{index:04}","source":"web","status":"200","duration_ms":12.5,"tags":["a","b"],"properties":{{"path":"/pricing","country":"DE","pad":"{pad}"}}}}"#
    );
    let origin = Origin {
        project_id: Some("bench"),
        received_at_ms: 1_700_000_000_000,
        client_ip: Some("127.0.0.1"),
        user_agent: Some("ceiling"),
        fallback_event_id: FallbackId::UuidV7,
    };
    let text: &'static str = Box::leak(text.into_boxed_str());
    let event =
        validate_event_json(text, origin, &Limits::default()).expect("a valid sample event");
    debug_assert!(matches!(event.event_id, Cow::Borrowed(_)));
    event
}

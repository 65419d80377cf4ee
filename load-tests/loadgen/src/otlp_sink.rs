//! A stand-in OTLP/HTTP collector for the tracing benchmark
//! (`bench gateway --tracing`): it answers every `POST /v1/traces` with
//! 200 at once and counts the requests and their bytes, so a service's span
//! export runs for real with no collector installed. Runs until SIGTERM or
//! SIGINT, then reports the counts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Default)]
struct Received {
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// Serves on `listen` until a signal; the report counts what came.
pub async fn run(listen: SocketAddr) -> anyhow::Result<serde_json::Value> {
    let received = Arc::new(Received::default());
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    serve_until_signal(listen, app).await?;
    Ok(json!({
        "otlp_requests": received.requests.load(Ordering::Relaxed),
        "otlp_bytes": received.bytes.load(Ordering::Relaxed),
    }))
}

/// Serves `app` on `listen` until SIGTERM or SIGINT (the sinks' way to stop).
pub async fn serve_until_signal(listen: SocketAddr, app: Router) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let mut terminate = signal(SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    Ok(())
}

async fn receive(State(received): State<Arc<Received>>, body: Bytes) -> StatusCode {
    received.requests.fetch_add(1, Ordering::Relaxed);
    received
        .bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    StatusCode::OK
}

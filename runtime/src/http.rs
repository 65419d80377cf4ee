//! HTTP pieces every service shares: the error body and the server loop.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::telemetry;
use crate::trace_context::TraceParent;

/// The one error body of every Sluice endpoint.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `invalid_event`.
    pub error: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// Structured specifics, e.g. the offending fields.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

impl ErrorBody {
    pub fn new(error: &'static str, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn into_response(self, status: StatusCode) -> Response {
        (status, axum::Json(self)).into_response()
    }
}

/// `body` as `T`, from a JSON object only: serde also reads a struct from
/// an array of its fields, so `[null, null]` would pass as an empty change.
/// The error says what is wrong, for a 400.
pub fn json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let value: Value = serde_json::from_slice(body).map_err(|error| error.to_string())?;
    if !value.is_object() {
        return Err("the body must be a JSON object".to_owned());
    }
    T::deserialize(value).map_err(|error| error.to_string())
}

/// For `#[serde(deserialize_with)]` on a list of structs: each item from a
/// JSON object only (see [`json_object`]).
pub fn objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::Deserialize as _;
    Vec::<serde_json::Map<String, Value>>::deserialize(deserializer)?
        .into_iter()
        .map(|item| T::deserialize(Value::Object(item)).map_err(serde::de::Error::custom))
        .collect()
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds request ids (kept from the client or made up), a trace span per
/// request (continuing the caller's W3C `traceparent` while spans are
/// exported), and a time limit per request.
pub fn with_common_layers(router: Router, request_timeout: Duration) -> Router {
    router
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                within_time(request_timeout, request, next)
            },
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let request_id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|id| id.to_str().ok())
                .unwrap_or("");
            let span = tracing::info_span!("http", method = %request.method(), uri = %request.uri().path(), request_id);
            if telemetry::exporting()
                && let Some(caller) = TraceParent::from_http(request.headers())
            {
                caller.adopt(&span);
            }
            span
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// A request that has no answer within `limit` gets 503 `timeout` with
/// `Retry-After`, in the one error body (tower-http's `TimeoutLayer` answers
/// with an empty body). Like it, this bounds the time to the response head;
/// a streamed body may take longer.
async fn within_time(
    limit: Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ErrorBody::new(
                "timeout",
                format!(
                    "the request took longer than {} ms; retry later",
                    limit.as_millis()
                ),
            )
            .into_response(StatusCode::SERVICE_UNAVAILABLE);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            response
        }
    }
}

/// Serves `router` on `listener` until `shutdown`; then stops accepting,
/// lets requests in flight finish for up to `drain`, and closes the
/// connections that outlive it (a long export, a stalled client), so a
/// service's stop is bounded by its own settings and not by its slowest
/// client. Each connection's peer address is its `ConnectInfo`.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: pause, as axum does.
                Err(error) => {
                    tracing::warn!(cause = %error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            shutdown.clone(),
            closing.clone(),
        ));
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            drain_ms = drain.as_millis() as u64,
            "connections outlived the drain: closing them"
        );
        closing.cancel();
        connections.wait().await;
    }
    Ok(())
}

/// One connection: served until it ends; at `shutdown` it finishes its
/// request in flight and closes (keep-alive ends); at `closing` it is cut.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
    closing: CancellationToken,
) {
    let service = router.map_request(move |mut request: axum::http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.map(axum::body::Body::new)
    });
    let builder = ConnectionBuilder::new(TokioExecutor::new());
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::trace!(cause = %error, %peer, "connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
            () = closing.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_slow_request_gets_the_error_body_and_retry_after() {
        let slow = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        let app = with_common_layers(slow, Duration::from_millis(20));
        let response = app
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "timeout");
    }

    /// A server on a free port with `/quick` and `/endless` (a body that
    /// never ends, as a long export), and `/peer` (its ConnectInfo).
    struct Serving {
        address: SocketAddr,
        shutdown: CancellationToken,
        server: tokio::task::JoinHandle<std::io::Result<()>>,
        /// Notified when `/slow` has started.
        slow_started: std::sync::Arc<tokio::sync::Notify>,
    }

    async fn serving(drain: Duration) -> Serving {
        let endless = || async {
            let chunks = futures::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"row\n")),
                    (),
                ))
            });
            Body::from_stream(chunks)
        };
        let slow_started = std::sync::Arc::new(tokio::sync::Notify::new());
        let started = slow_started.clone();
        let slow = move || async move {
            started.notify_one();
            tokio::time::sleep(Duration::from_millis(300)).await;
            "done"
        };
        let router =
            Router::new()
                .route("/slow", get(slow))
                .route("/endless", get(endless))
                .route(
                    "/peer",
                    get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                        peer.ip().to_string()
                    }),
                );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_http(listener, router, shutdown.clone(), drain));
        Serving {
            address,
            shutdown,
            server,
            slow_started,
        }
    }

    /// Sends a GET and returns the stream after the response head.
    async fn get_on(address: SocketAddr, path: &str) -> (tokio::net::TcpStream, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = vec![0u8; 512];
        let read = stream.read(&mut head).await.unwrap();
        (stream, String::from_utf8_lossy(&head[..read]).into_owned())
    }

    #[tokio::test]
    async fn connections_that_outlive_the_drain_are_closed_and_new_ones_refused() {
        use tokio::io::AsyncReadExt;
        let Serving {
            address,
            shutdown,
            server,
            ..
        } = serving(Duration::from_millis(300)).await;
        let (_, peer) = get_on(address, "/peer").await;
        assert!(
            peer.starts_with("HTTP/1.1 200") && peer.ends_with("127.0.0.1"),
            "{peer}"
        );
        let (mut export, head) = get_on(address, "/endless").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");

        shutdown.cancel();
        // Bounded by the drain, not by the endless body (generous: a busy machine).
        tokio::time::timeout(Duration::from_secs(20), server)
            .await
            .expect("the server stops after its drain")
            .unwrap()
            .unwrap();
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(20), export.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the long response's connection is closed");
        assert!(
            tokio::net::TcpStream::connect(address).await.is_err(),
            "nothing listens after the stop"
        );
    }

    #[tokio::test]
    async fn a_request_in_flight_at_the_signal_finishes_within_the_drain() {
        use tokio::io::AsyncReadExt;
        let serving = serving(Duration::from_secs(30)).await;
        let address = serving.address;
        let client = tokio::spawn(async move {
            let (mut stream, head) = get_on(address, "/slow").await;
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
            head + &String::from_utf8_lossy(&rest)
        });
        serving.slow_started.notified().await;
        serving.shutdown.cancel();
        let answer = tokio::time::timeout(Duration::from_secs(20), client)
            .await
            .expect("the answer comes")
            .unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
            "{answer}"
        );
        tokio::time::timeout(Duration::from_secs(20), serving.server)
            .await
            .expect("the server stops once its connections are done")
            .unwrap()
            .unwrap();
    }
}

//! A real HTTP receiver on port 0 that answers by path and records every
//! request, and an independent check of Standard Webhooks signatures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub at: Instant,
}

#[derive(Clone, Default)]
pub struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    seen: Arc<Mutex<HashMap<(String, String), usize>>>,
    /// Whether `switch` answers 500 (else 200).
    failing: Arc<AtomicBool>,
    /// Whether `gate` holds its requests unanswered.
    closed: Arc<AtomicBool>,
}

impl Receiver {
    /// Serves on 127.0.0.1:0 until the test ends. Paths: `ok` (200), `fail`
    /// (500), `refuse` (400), `flaky` (500 twice per delivery, then 200),
    /// `throttle` (429 with `Retry-After: 1` once per delivery, then 200),
    /// `hang` (no answer for a minute), `slow` (200 after 100 ms), `switch`
    /// (500 while [`Receiver::set_failing`], else 200), `gate` (no answer
    /// while [`Receiver::set_closed`], then 200).
    pub async fn start() -> (Self, SocketAddr) {
        Self::start_on(0).await
    }

    /// Serves on 127.0.0.1:`port` (0: any free port) until the test ends.
    pub async fn start_on(port: u16) -> (Self, SocketAddr) {
        let receiver = Self::default();
        let app = Router::new()
            .route("/{path}", post(answer))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, addr)
    }

    /// A second listener that reads each request's head, records it under
    /// the path `close`, and closes the connection without an answer.
    pub async fn start_closing(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = self.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let receiver = receiver.clone();
                tokio::spawn(async move {
                    let head = read_head(&mut socket).await;
                    let id = head
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("webhook-id")
                                .then(|| value.trim().to_owned())
                        })
                        .unwrap_or_default();
                    receiver.received.lock().unwrap().push(Received {
                        path: "close".into(),
                        id,
                        timestamp: String::new(),
                        signature: String::new(),
                        body: String::new(),
                        at: Instant::now(),
                    });
                    drop(socket);
                });
            }
        });
        addr
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn set_closed(&self, closed: bool) {
        self.closed.store(closed, Ordering::SeqCst);
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

async fn answer(
    State(receiver): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let id = header("webhook-id");
    receiver.received.lock().unwrap().push(Received {
        path: path.clone(),
        id: id.clone(),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    });
    let seen = {
        let mut seen = receiver.seen.lock().unwrap();
        let count = seen.entry((path.clone(), id)).or_default();
        *count += 1;
        *count
    };
    match path.as_str() {
        "ok" => StatusCode::OK.into_response(),
        "fail" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "refuse" => StatusCode::BAD_REQUEST.into_response(),
        "flaky" if seen <= 2 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "flaky" => StatusCode::OK.into_response(),
        "throttle" if seen == 1 => {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response()
        }
        "throttle" => StatusCode::NO_CONTENT.into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            StatusCode::OK.into_response()
        }
        "switch" if receiver.failing.load(Ordering::SeqCst) => {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        "switch" => StatusCode::OK.into_response(),
        "gate" => {
            while receiver.closed.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            StatusCode::OK.into_response()
        }
        "hang" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::OK.into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Reads until the end of an HTTP request's head (or the peer stops).
async fn read_head(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => head.extend_from_slice(&chunk[..read]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// HMAC-SHA256 written out from RFC 2104, independent of the service's code.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner_hash = Sha256::new()
        .chain_update(&inner)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer)
        .chain_update(inner_hash)
        .finalize()
        .into()
}

/// Verifies a request as the Standard Webhooks specification says a
/// receiver does: any `v1,` signature of `{id}.{timestamp}.{body}` under the
/// base64 key after `whsec_` matches.
pub fn verify(secret: &str, received: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let signed = format!("{}.{}.{}", received.id, received.timestamp, received.body);
    let expected = STANDARD.encode(hmac_sha256(&key, signed.as_bytes()));
    received
        .signature
        .split(' ')
        .filter_map(|part| part.strip_prefix("v1,"))
        .any(|signature| signature == expected)
}

#[test]
fn the_independent_hmac_matches_rfc_4231() {
    // RFC 4231, test case 2.
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

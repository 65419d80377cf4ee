//! Who may send: the key a request carries, as extractors that a handler
//! names before its body, so that a request with a wrong key is refused
//! before its body is received. Refusals of a missing, unknown or revoked
//! key are counted per client IP; an IP over its failed-auth limit gets 429.
//!
//! Native routes take the key from `Authorization` ([`IngestKey`]). Segment
//! routes may also carry it in the body (`writeKey`), which only the handler
//! reads: [`SegmentKey`] checks a key in the headers at once, and leaves the
//! body's to [`SegmentKey::resolve`]. Key administration takes the bootstrap
//! admin token or an `admin` key ([`AdminKey`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use sluice_runtime::access::AuthError;
use sluice_runtime::access::Principal;
use sluice_runtime::auth::presented_key;
use sluice_runtime::keys::{KeyRecord, Scope};

use crate::error::{ApiError, Result};
use crate::state::AppState;

/// A key with the `ingest` scope from `Authorization` (bearer, or basic
/// auth with the key as user name), and the client IP it came from (trusted
/// proxies applied).
#[derive(Debug)]
pub struct IngestKey {
    pub record: Arc<KeyRecord>,
    pub client_ip: IpAddr,
}

impl FromRequestParts<AppState> for IngestKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let presented = presented_key(&parts.headers);
        let checked = async {
            let client_ip = client_ip(parts, state).await?;
            Self::check(state, presented.as_deref(), client_ip)
        };
        counted(state, checked.await)
    }
}

impl IngestKey {
    fn check(state: &AppState, presented: Option<&str>, client_ip: IpAddr) -> Result<Self> {
        let record = authorize(state, presented, client_ip, Scope::Ingest)?;
        Ok(Self { record, client_ip })
    }
}

/// The key of a Segment batch: `Authorization` (basic auth with the write
/// key as user name, or bearer), else the body's `writeKey`.
#[derive(Debug)]
pub enum SegmentKey {
    /// The key of the headers, checked before the body is read.
    Checked(IngestKey),
    /// The headers hold none: the body's `writeKey` is the key, if any.
    InBody { client_ip: IpAddr },
}

impl FromRequestParts<AppState> for SegmentKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let presented = presented_key(&parts.headers);
        Self::check_headers(parts, state, presented).await
    }
}

impl SegmentKey {
    async fn check_headers(
        parts: &mut Parts,
        state: &AppState,
        presented: Option<String>,
    ) -> Result<Self> {
        let checked = async {
            let client_ip = client_ip(parts, state).await?;
            match presented {
                Some(presented) => {
                    IngestKey::check(state, Some(&presented), client_ip).map(Self::Checked)
                }
                None => Ok(Self::InBody { client_ip }),
            }
        };
        counted(state, checked.await)
    }

    /// The request's key: the headers' one, else `write_key` from the body
    /// (which a key in the headers wins over, even a refused one).
    pub fn resolve(self, state: &AppState, write_key: Option<&str>) -> Result<IngestKey> {
        match self {
            Self::Checked(key) => Ok(key),
            Self::InBody { client_ip } => IngestKey::check(state, write_key, client_ip),
        }
    }
}

/// The key of a Segment single call: as [`SegmentKey`], and also Jitsu's
/// `X-Write-Key` header (after `Authorization`, before the body). Jitsu
/// sends single calls only, so batches do not read that header.
#[derive(Debug)]
pub struct SegmentCallKey(pub SegmentKey);

impl FromRequestParts<AppState> for SegmentCallKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let presented = presented_key(&parts.headers).or_else(|| jitsu_key(&parts.headers));
        SegmentKey::check_headers(parts, state, presented)
            .await
            .map(Self)
    }
}

/// Jitsu's `X-Write-Key: ID:SECRET` (its SDK refuses keys without the
/// colon): the secret is the Sluice key, the id is free (e.g. the key's
/// `key_id`). A value without a colon is the key itself.
fn jitsu_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-write-key")?.to_str().ok()?.trim();
    let key = value.split_once(':').map_or(value, |(_, secret)| secret);
    Some(key.to_owned()).filter(|key| !key.is_empty())
}

/// Leave to administer keys: the bootstrap admin token (compared in
/// constant time), a key with the `admin` scope, or a global admin's
/// session ([`sluice_runtime::access::Access::admin`]).
#[derive(Debug)]
pub struct AdminKey(pub Principal);

impl FromRequestParts<AppState> for AdminKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let client_ip = client_ip(parts, state).await?;
        state
            .access
            .admin(parts)
            .map(Self)
            .map_err(|error| refused(state, error, client_ip))
    }
}

/// Checks a presented key; failures are counted per client IP, and an IP
/// over its failed-auth limit gets 429.
fn authorize(
    state: &AppState,
    presented: Option<&str>,
    client_ip: IpAddr,
    scope: Scope,
) -> Result<Arc<KeyRecord>> {
    let outcome = match presented {
        Some(key) => state.access.key_with(key, scope),
        None => Err(AuthError::Missing),
    };
    outcome.map_err(|error| refused(state, error, client_ip))
}

/// The answer to a refused credential: 429 once `client_ip` is over its
/// failed-auth limit with guesses (missing, unknown or revoked keys).
fn refused(state: &AppState, error: AuthError, client_ip: IpAddr) -> ApiError {
    if error.is_bad_credential()
        && let Err(limited) = state.rate_limits.failed_auth(client_ip)
    {
        state.metrics.rate_limited(limited.limit);
        return ApiError::RateLimited(limited);
    }
    ApiError::Auth(error)
}

/// The client's IP: the peer, unless it is a trusted proxy (see
/// [`TrustedProxies::client_ip`](crate::client::TrustedProxies::client_ip)).
async fn client_ip(parts: &mut Parts, state: &AppState) -> Result<IpAddr> {
    let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
        .await
        .map_err(|rejection| {
            tracing::error!(cause = %rejection.body_text(), "a request without its peer address");
            ApiError::Internal
        })?;
    Ok(state.proxies.client_ip(peer.ip(), &parts.headers))
}

/// Counts an ingest refusal by reason, as the ingest handlers count theirs.
fn counted<T>(state: &AppState, result: Result<T>) -> Result<T> {
    result.inspect_err(|error| state.metrics.request_rejected(error.reason()))
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::extract::connect_info::MockConnectInfo;
    use axum::http::{Request, StatusCode};
    use axum::response::Response;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use prometheus_client::registry::Registry;
    use serde_json::{Value, json};
    use sluice_runtime::access::{Access, AccessStore, KeyUsageTracker};
    use sluice_runtime::key_admin::KeyAdmin;
    use sluice_runtime::keys::{KeyLimits, KeyStore, KeyWriter};
    use sluice_runtime::ops::{HttpMetrics, Readiness};
    use sluice_runtime::settings::{KafkaSettings, defaults};
    use tower::ServiceExt;

    use super::*;
    use crate::client::TrustedProxies;
    use crate::config::{IngestSettings, RateLimitSettings};
    use crate::cors::CorsPolicy;
    use crate::metrics::{GatewayMetrics, ReasonLabels};
    use crate::publish::EventPublisher;
    use crate::rate_limit::RateLimits;
    use crate::routes::router;

    const INGEST: &str = "ingest-key-000001";
    const READER: &str = "reader-key-000001";
    const REVOKED: &str = "revoked-key-00001";
    const ADMIN: &str = "admin-key-0000001";
    const ADMIN_TOKEN: &str = "bootstrap-admin-token";
    const PEER: ([u8; 4], u16) = ([192, 0, 2, 7], 40_000);

    fn record(key: &str, scopes: Vec<Scope>) -> KeyRecord {
        KeyRecord::for_key(key, "demo", scopes, String::new(), KeyLimits::default(), 1)
    }

    /// A gateway's state whose Kafka clients are never used: every request
    /// here is refused or answered before an event is published.
    fn state(failed_auth_per_minute: u32) -> AppState {
        let mut revoked = record(REVOKED, vec![Scope::Ingest]);
        revoked.revoked_at_ms = Some(2);
        let keys = KeyStore::with_records([
            record(INGEST, vec![Scope::Ingest]),
            record(READER, vec![Scope::Read]),
            record(ADMIN, vec![Scope::Admin]),
            revoked,
        ]);
        let kafka = KafkaSettings {
            brokers: "127.0.0.1:1".to_owned(),
            ..defaults()
        };
        let ingest = IngestSettings::default();
        let mut registry = Registry::default();
        let metrics = GatewayMetrics::register(&mut registry);
        let access = Access::new(
            keys,
            AccessStore::with_records([]),
            None,
            ADMIN_TOKEN,
            KeyUsageTracker::default(),
        );
        AppState {
            publisher: Arc::new(EventPublisher::new(&kafka, &ingest, &metrics).unwrap()),
            key_admin: KeyAdmin::new(&access, KeyWriter::new(&kafka).unwrap()),
            access,
            limits: Arc::default(),
            cors: Arc::new(CorsPolicy::parse(&ingest.cors_origins).unwrap()),
            ingest: Arc::new(ingest),
            proxies: Arc::new(TrustedProxies::default()),
            rate_limits: Arc::new(RateLimits::new(RateLimitSettings {
                failed_auth_per_minute,
                ..RateLimitSettings::default()
            })),
            metrics,
            http_metrics: HttpMetrics::register(&mut registry),
            readiness: Readiness::default(),
            registry: Arc::new(registry),
        }
    }

    fn post(path: &str, headers: &[(&str, &str)]) -> axum::http::request::Builder {
        headers
            .iter()
            .fold(Request::post(path), |request, (name, value)| {
                request.header(*name, *value)
            })
    }

    fn bearer(key: &str) -> String {
        format!("Bearer {key}")
    }

    /// Runs extractor `T` on a request from [`PEER`].
    async fn extract<T: FromRequestParts<AppState, Rejection = ApiError>>(
        state: &AppState,
        headers: &[(&str, &str)],
    ) -> Result<T> {
        let (mut parts, ()) = post("/", headers).body(()).unwrap().into_parts();
        parts.extensions.insert(ConnectInfo(SocketAddr::from(PEER)));
        T::from_request_parts(&mut parts, state).await
    }

    fn refused_for<T: std::fmt::Debug>(result: Result<T>) -> AuthError {
        match result {
            Err(ApiError::Auth(error)) => error,
            other => panic!("expected an auth refusal, got {other:?}"),
        }
    }

    /// Requests refused as `unauthorized`, by the ingest metrics.
    fn unauthorized_count(state: &AppState) -> u64 {
        let reason = "unauthorized";
        let counter = state
            .metrics
            .requests_rejected
            .get_or_create(&ReasonLabels { reason });
        counter.get()
    }

    async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
        let response: Response = router(state.clone())
            .layer(MockConnectInfo(SocketAddr::from(PEER)))
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), 64 * 1024).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn an_ingest_key_needs_a_live_key_with_the_ingest_scope() {
        let state = state(0);
        let key: IngestKey = extract(&state, &[("authorization", &bearer(INGEST))])
            .await
            .unwrap();
        assert_eq!(key.record.project_id, "demo");
        assert_eq!(key.client_ip, SocketAddr::from(PEER).ip());
        let missing = extract::<IngestKey>(&state, &[]).await;
        assert_eq!(refused_for(missing), AuthError::Missing);
        for (name, value, refusal) in [
            (
                "authorization",
                bearer(READER),
                AuthError::MissingScope(Scope::Ingest),
            ),
            ("authorization", bearer(REVOKED), AuthError::Revoked),
            (
                "authorization",
                bearer("no-such-key-00001"),
                AuthError::Unknown,
            ),
            // Only Segment single calls read Jitsu's header.
            ("x-write-key", format!("kid:{INGEST}"), AuthError::Missing),
        ] {
            let refused = extract::<IngestKey>(&state, &[(name, &value)]).await;
            assert_eq!(refused_for(refused), refusal, "{name}: {value}");
        }
        // Counted as the handlers count their own refusals.
        assert_eq!(unauthorized_count(&state), 4);
    }

    #[tokio::test]
    async fn failed_keys_are_limited_per_client_ip() {
        let state = state(2);
        for _ in 0..2 {
            let refused = extract::<IngestKey>(&state, &[]).await;
            assert_eq!(refused_for(refused), AuthError::Missing);
        }
        let limited = extract::<IngestKey>(&state, &[]).await;
        assert!(
            matches!(limited, Err(ApiError::RateLimited(_))),
            "{limited:?}"
        );
        // A key without the scope is no guess at a key: not limited.
        let reader = extract::<IngestKey>(&state, &[("authorization", &bearer(READER))]).await;
        assert_eq!(refused_for(reader), AuthError::MissingScope(Scope::Ingest));
    }

    #[tokio::test]
    async fn a_segment_key_is_checked_from_the_headers_or_left_to_the_body() {
        let state = state(0);
        let basic = format!("Basic {}", STANDARD.encode(format!("{INGEST}:")));
        let from_basic: SegmentKey = extract(&state, &[("authorization", &basic)]).await.unwrap();
        assert!(matches!(from_basic, SegmentKey::Checked(_)));
        // A refused header key wins over any key in the body.
        let wrong = extract::<SegmentKey>(&state, &[("authorization", &bearer(REVOKED))]).await;
        assert_eq!(refused_for(wrong), AuthError::Revoked);

        let in_body: SegmentKey = extract(&state, &[]).await.unwrap();
        assert!(matches!(in_body, SegmentKey::InBody { .. }));
        let resolved = in_body.resolve(&state, Some(INGEST)).unwrap();
        assert_eq!(resolved.record.project_id, "demo");
        for (write_key, refusal) in [
            (None, AuthError::Missing),
            (Some(READER), AuthError::MissingScope(Scope::Ingest)),
        ] {
            let in_body: SegmentKey = extract(&state, &[]).await.unwrap();
            let refused = in_body.resolve(&state, write_key);
            assert_eq!(refused_for(refused), refusal, "{write_key:?}");
        }

        // Jitsu's header, `ID:SECRET` or the bare key: single calls only.
        let jitsu = format!("kid:{INGEST}");
        for value in [jitsu.as_str(), INGEST] {
            let SegmentCallKey(call) = extract(&state, &[("x-write-key", value)]).await.unwrap();
            assert!(matches!(call, SegmentKey::Checked(_)), "{value}");
        }
        let batch: SegmentKey = extract(&state, &[("x-write-key", &jitsu)]).await.unwrap();
        assert!(matches!(batch, SegmentKey::InBody { .. }));
        let unknown = [("x-write-key", "kid:no-such-key-00001")];
        let refused = extract::<SegmentCallKey>(&state, &unknown).await;
        assert_eq!(refused_for(refused), AuthError::Unknown);
    }

    #[tokio::test]
    async fn an_admin_key_is_the_token_or_a_key_with_the_admin_scope() {
        let state = state(0);
        for admin in [ADMIN_TOKEN, ADMIN] {
            let admitted = extract::<AdminKey>(&state, &[("authorization", &bearer(admin))]).await;
            assert!(admitted.is_ok(), "{admin}");
        }
        for (key, refusal) in [
            (INGEST, AuthError::MissingScope(Scope::Admin)),
            ("bootstrap-admin-tokeN", AuthError::Unknown),
            (REVOKED, AuthError::Revoked),
        ] {
            let refused = extract::<AdminKey>(&state, &[("authorization", &bearer(key))]).await;
            assert_eq!(refused_for(refused), refusal, "{key}");
        }
        assert_eq!(
            refused_for(extract::<AdminKey>(&state, &[]).await),
            AuthError::Missing
        );
        // Admin refusals are not counted with ingest ones.
        assert_eq!(unauthorized_count(&state), 0);
    }

    #[tokio::test]
    async fn routes_refuse_with_the_error_body_before_reading_the_body() {
        let state = state(0);
        for (path, name, value, status) in [
            ("/v1/events", "authorization", "Token abc".to_owned(), 401),
            ("/v1/events/batch", "authorization", bearer(READER), 403),
            // The wrong key is what is wrong, not the unreadable body.
            (
                "/v1/track",
                "x-write-key",
                "kid:no-such-key-00001".to_owned(),
                401,
            ),
            ("/v1/batch", "authorization", bearer(REVOKED), 401),
            ("/v1/admin/keys", "authorization", bearer(INGEST), 403),
        ] {
            let request = post(path, &[(name, &value)]).body(Body::from("not json"));
            let (answer, body) = send(&state, request.unwrap()).await;
            let error = if status == 401 {
                "unauthorized"
            } else {
                "forbidden"
            };
            assert_eq!(answer.as_u16(), status, "{path}");
            assert_eq!(body["error"], error, "{path}");
        }
    }

    #[tokio::test]
    async fn segment_routes_read_the_body_when_the_headers_hold_no_key() {
        let state = state(0);
        let unreadable = post("/v1/track", &[]).body(Body::from("not json")).unwrap();
        let (status, body) = send(&state, unreadable).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_json"))
        );
        let batch = json!({"batch": [{"type": "track", "event": "x"}], "writeKey": REVOKED});
        let revoked = post("/v1/batch", &[])
            .body(Body::from(batch.to_string()))
            .unwrap();
        let (status, body) = send(&state, revoked).await;
        assert_eq!(
            (status, body["message"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("this API key was revoked"))
        );
    }

    #[tokio::test]
    async fn admin_routes_take_the_token() {
        let state = state(0);
        let request = Request::get("/v1/admin/keys?project_id=demo")
            .header("authorization", bearer(ADMIN_TOKEN))
            .body(Body::empty())
            .unwrap();
        let (status, body) = send(&state, request).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["keys"].as_array().map(Vec::len), Some(4));
    }

    #[tokio::test]
    async fn a_request_without_its_peer_address_is_an_internal_error() {
        let state = state(0);
        let request = post("/v1/events", &[]).body(Body::from("{}")).unwrap();
        let response = router(state).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}

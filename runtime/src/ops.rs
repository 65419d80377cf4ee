//! Operations endpoints: liveness, readiness, Prometheus metrics, and the HTTP
//! metrics every service records per matched route.
//!
//! Every service's `/metrics` also carries its readiness, rendered from
//! [`Readiness`] at each scrape: [`READY_METRIC`] per check and
//! [`SERVICE_READY_METRIC`] for the whole service (`deploy/prometheus/` alerts
//! on both).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::json;

/// `sluice_ready{check}`: 1 while the readiness check passes, 0 while it fails
/// (`/health/ready` says why).
pub const READY_METRIC: &str = "sluice_ready";
/// `sluice_service_ready`: 1 while every readiness check passes (what
/// `/health/ready` answers 200 for), else 0.
pub const SERVICE_READY_METRIC: &str = "sluice_service_ready";

/// Named readiness checks, each passing or failing with a cause; the service
/// is ready when every check passes.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<RwLock<BTreeMap<&'static str, Check>>>);

/// One check's state: `None` passes, `Some(cause)` fails and says why.
type Check = Option<String>;

impl Readiness {
    /// Declares a check (not ready yet) so readiness fails until it passes.
    pub fn register(&self, check: &'static str) {
        self.fail(check, "not checked yet");
    }

    /// Passes `check` when `ready`, else fails it with a generic cause.
    pub fn set(&self, check: &'static str, ready: bool) {
        if ready {
            self.pass(check);
        } else {
            self.fail(check, "not ready");
        }
    }

    pub fn pass(&self, check: &'static str) {
        self.put(check, None);
    }

    /// Fails `check`; `cause` is shown in `/health/ready` (never a secret).
    pub fn fail(&self, check: &'static str, cause: impl Into<String>) {
        self.put(check, Some(cause.into()));
    }

    fn put(&self, check: &'static str, state: Check) {
        if let Ok(mut checks) = self.0.write() {
            checks.insert(check, state);
        }
    }

    pub fn is_ready(&self) -> bool {
        self.0
            .read()
            .map(|checks| checks.values().all(Option::is_none))
            .unwrap_or(false)
    }

    /// Whether `check` passes (false when it was never declared).
    pub fn passes(&self, check: &'static str) -> bool {
        self.0
            .read()
            .is_ok_and(|checks| matches!(checks.get(check), Some(None)))
    }

    /// Every check with its state: `None` passes, `Some(cause)` fails.
    pub fn report(&self) -> BTreeMap<&'static str, Option<String>> {
        self.0
            .read()
            .map(|checks| checks.clone())
            .unwrap_or_default()
    }
}

/// How long startup work (topics, tables) keeps trying while a dependency
/// does not answer.
#[derive(Debug, Clone)]
pub enum Patience {
    /// Gives up with an error after this long (tools and tests).
    AtMost(std::time::Duration),
    /// Tries until shutdown, failing the readiness check meanwhile with the
    /// cause, then passing it: a service that starts before its dependency.
    Reporting(Readiness, &'static str),
}

impl Patience {
    /// After a failed attempt, `started` ago: the error that ends the wait,
    /// or `None` to try again (with readiness told why).
    pub fn after_failure(&self, started: Instant, cause: String) -> Option<anyhow::Error> {
        match self {
            Self::AtMost(limit) if started.elapsed() >= *limit => Some(anyhow::anyhow!(cause)),
            Self::AtMost(_) => None,
            Self::Reporting(readiness, check) => {
                readiness.fail(check, cause);
                None
            }
        }
    }

    /// After success: readiness passes.
    pub fn succeeded(&self) {
        if let Self::Reporting(readiness, check) = self {
            readiness.pass(check);
        }
    }
}

#[derive(Clone)]
struct OpsState {
    readiness: Readiness,
    registry: Arc<Registry>,
}

/// `/health/live`, `/health/ready` and `/metrics`.
pub fn router(readiness: Readiness, registry: Arc<Registry>) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(json!({"status": "live"})) }),
        )
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(OpsState {
            readiness,
            registry,
        })
}

async fn ready(State(state): State<OpsState>) -> Response {
    let report = state.readiness.report();
    let ready = report.values().all(Option::is_none);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let checks: BTreeMap<_, _> = report
        .iter()
        .map(|(check, state)| (*check, state.is_none()))
        .collect();
    let causes: BTreeMap<_, _> = report
        .iter()
        .filter_map(|(check, state)| Some((*check, state.as_deref()?)))
        .collect();
    let body = json!({"status": if ready { "ready" } else { "not_ready" }, "checks": checks, "causes": causes});
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<OpsState>) -> Response {
    let mut text = String::new();
    let readiness = readiness_registry(&state.readiness.report());
    let encoded = encode_registry(&mut text, &state.registry)
        .and_then(|()| encode_registry(&mut text, &readiness))
        .and_then(|()| encode_eof(&mut text));
    match encoded {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(cause = %error, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    check: &'static str,
}

/// The readiness gauges as they are now: built at each scrape from the
/// checks, so a check declared after the service's registry was made (or
/// one a service adds later) is exported too.
fn readiness_registry(report: &BTreeMap<&'static str, Check>) -> Registry {
    let checks = Family::<CheckLabels, Gauge>::default();
    for (check, state) in report {
        checks
            .get_or_create(&CheckLabels { check })
            .set(i64::from(state.is_none()));
    }
    let service = Gauge::<i64>::default();
    service.set(i64::from(report.values().all(Option::is_none)));
    let mut registry = Registry::default();
    registry.register(
        READY_METRIC,
        "Readiness by check: 1 passes, 0 fails (GET /health/ready names the cause)",
        checks,
    );
    registry.register(
        SERVICE_READY_METRIC,
        "1 when every readiness check passes (GET /health/ready answers 200), else 0",
        service,
    );
    registry
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// Request counts and latencies by matched route (never the raw URI, which
/// would let clients create unbounded label values).
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
        });
        registry.register(
            "sluice_http_requests",
            "HTTP requests by method, matched route and status",
            requests.clone(),
        );
        registry.register(
            "sluice_http_request_duration_seconds",
            "HTTP request latency by matched route",
            latency.clone(),
        );
        Self { requests, latency }
    }

    /// Middleware; install with `Router::route_layer` so the route is known.
    pub async fn track(State(metrics): State<Self>, request: Request, next: Next) -> Response {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|path| path.as_str().to_owned())
            .unwrap_or_else(|| "unmatched".to_owned());
        let method = request.method().to_string();
        let started = Instant::now();
        let response = next.run(request).await;
        let status = response.status().as_u16();
        metrics
            .latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        metrics
            .requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
        response
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn readiness_follows_every_check_and_names_the_cause() {
        let readiness = Readiness::default();
        readiness.register("kafka");
        readiness.register("clickhouse");
        readiness.pass("clickhouse");
        let app = router(readiness.clone(), Arc::new(Registry::default()));
        let get_ready = || Request::get("/health/ready").body(Body::empty()).unwrap();
        let body = |response: Response| async move {
            let bytes = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        };
        readiness.fail("kafka", "broker 127.0.0.1:9 does not answer");
        let response = app.clone().oneshot(get_ready()).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body(response).await,
            json!({"status": "not_ready", "checks": {"clickhouse": true, "kafka": false},
                "causes": {"kafka": "broker 127.0.0.1:9 does not answer"}})
        );
        assert!(!readiness.passes("kafka") && readiness.passes("clickhouse"));
        readiness.set("kafka", true);
        let response = app.oneshot(get_ready()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await["causes"], json!({}));
    }

    #[tokio::test]
    async fn metrics_carry_each_check_and_the_service_readiness_after_the_registry() {
        let readiness = Readiness::default();
        readiness.register("kafka");
        let mut registry = Registry::default();
        let events = Counter::<u64>::default();
        registry.register("sluice_test_events", "Events", events.clone());
        events.inc();
        let app = router(readiness.clone(), Arc::new(registry));
        let scrape = || async {
            let request = Request::get("/metrics").body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        };
        let text = scrape().await;
        assert!(text.contains("\nsluice_test_events_total 1\n"), "{text}");
        assert!(text.contains("sluice_ready{check=\"kafka\"} 0\n"), "{text}");
        assert!(text.contains("\nsluice_service_ready 0\n"), "{text}");
        // One exposition: a single EOF marker, at the end.
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");

        // A check declared after the router was made is exported too.
        readiness.pass("kafka");
        readiness.register("offsets");
        let text = scrape().await;
        assert!(text.contains("sluice_ready{check=\"kafka\"} 1\n"), "{text}");
        assert!(
            text.contains("sluice_ready{check=\"offsets\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("\nsluice_service_ready 0\n"), "{text}");
        readiness.pass("offsets");
        assert!(scrape().await.contains("\nsluice_service_ready 1\n"));
    }
}

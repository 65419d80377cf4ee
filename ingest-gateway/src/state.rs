//! What every handler shares.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use sluice_runtime::access::Access;
use sluice_runtime::key_admin::KeyAdmin;
use sluice_runtime::ops::{HttpMetrics, Readiness};
use sluice_schemas::Limits;

use crate::client::TrustedProxies;
use crate::config::IngestSettings;
use crate::cors::CorsPolicy;
use crate::metrics::GatewayMetrics;
use crate::publish::EventPublisher;
use crate::rate_limit::RateLimits;

/// Everything a handler needs, shared across requests.
#[derive(Clone)]
pub struct AppState {
    pub publisher: Arc<EventPublisher>,
    /// Keys, users and the bootstrap admin token.
    pub access: Access,
    pub key_admin: KeyAdmin,
    pub limits: Arc<Limits>,
    pub ingest: Arc<IngestSettings>,
    pub proxies: Arc<TrustedProxies>,
    pub cors: Arc<CorsPolicy>,
    pub rate_limits: Arc<RateLimits>,
    pub metrics: GatewayMetrics,
    pub http_metrics: HttpMetrics,
    pub readiness: Readiness,
    pub registry: Arc<Registry>,
}

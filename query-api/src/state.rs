//! What every handler shares.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use sluice_runtime::keys::KeyStore;
use sluice_runtime::ops::{HttpMetrics, Readiness};
use tokio_util::sync::CancellationToken;

use crate::config::QuerySettings;
use crate::live::feed::LiveFeed;

#[derive(Clone)]
pub struct AppState {
    pub clickhouse: clickhouse::Client,
    pub keys: KeyStore,
    pub settings: QuerySettings,
    pub live: LiveFeed,
    pub shutdown: CancellationToken,
    pub http_metrics: HttpMetrics,
    pub readiness: Readiness,
    pub registry: Arc<Registry>,
}

//! What every handler shares.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use sluice_runtime::keys::KeyStore;
use sluice_runtime::ops::{HttpMetrics, Readiness};
use tokio_util::sync::CancellationToken;

use crate::config::QuerySettings;
use crate::live::feed::LiveFeed;
use crate::status::StatusSources;

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
    /// The bootstrap admin token (`--admin-token`); empty when unset.
    pub admin_token: String,
    pub status: StatusSources,
}

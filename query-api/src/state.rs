//! What every handler shares.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use sluice_runtime::access::{Access, AccessWriter};
use sluice_runtime::key_admin::KeyAdmin;
use sluice_runtime::ops::{HttpMetrics, Readiness};
use tokio_util::sync::CancellationToken;

use crate::accounts::login_limits::LoginLimits;
use crate::config::QuerySettings;
use crate::live::feed::LiveFeed;
use crate::status::sources::StatusSources;

#[derive(Clone)]
pub struct AppState {
    pub clickhouse: clickhouse::Client,
    /// Keys, users, sessions and the bootstrap admin token.
    pub access: Access,
    pub access_writer: Arc<AccessWriter>,
    pub key_admin: KeyAdmin,
    pub login_limits: Arc<LoginLimits>,
    /// Where `/v1/webhooks` is forwarded (`--destinations-url`).
    pub destinations_url: Option<Arc<str>>,
    pub http: reqwest::Client,
    pub settings: QuerySettings,
    pub live: LiveFeed,
    pub shutdown: CancellationToken,
    pub http_metrics: HttpMetrics,
    pub readiness: Readiness,
    pub registry: Arc<Registry>,
    pub status: StatusSources,
}

//! `GET /v1/status` (a project's view, `read` scope) and
//! `GET /v1/admin/status` (every project, and every service's readiness;
//! the admin token or an `admin` key): is the data late, and why.
//!
//! - [`pipeline`]: lag, watermarks and freshness from the two sources below.
//! - [`stored`]: what the processor recorded in ClickHouse.
//! - [`broker`]: the events topic's logs as the broker sees them.
//! - [`peers`]: other services' `/health/ready`.
//! - [`sources`]: the last two and the processor's group, held in the app state.

pub mod broker;
pub mod peers;
pub mod pipeline;
pub mod sources;
pub mod stored;

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use sluice_schemas::time_format::{Rfc3339Ms, now_ms};

use crate::auth::{AdminAccess, ReadProject};
use crate::error::Result;
use crate::params::Params;
use crate::state::AppState;
use peers::ServiceHealth;
use pipeline::{PipelineStatus, summarize, unstored_positions};
pub use sources::StatusSources;
use stored::{Activity, Counts};

/// A project's newest queryable event.
#[derive(Debug, Serialize)]
pub struct LastEvent {
    /// When the gateway received it (`received_at`).
    pub received_at: Option<Rfc3339Ms>,
    /// Its event time (`timestamp`), the newest of the project's.
    pub event_time: Option<Rfc3339Ms>,
    /// When the processor stored it, from which point queries see it.
    pub queryable_at: Option<Rfc3339Ms>,
}

impl From<Option<&Activity>> for LastEvent {
    fn from(activity: Option<&Activity>) -> Self {
        let at = |ms: u64| (ms > 0).then(|| Rfc3339Ms(i64::try_from(ms).unwrap_or(i64::MAX)));
        Self {
            received_at: activity.and_then(|a| at(a.last_received_ms)),
            event_time: activity.and_then(|a| at(a.last_event_ms)),
            queryable_at: activity.and_then(|a| at(a.written_at_ms)),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ProjectStatus {
    pub project_id: String,
    pub generated_at: Rfc3339Ms,
    /// The pipeline's freshness (see [`pipeline`]); `null` when unknown.
    pub freshness_seconds: Option<f64>,
    pub last_event: LastEvent,
    pub dead_letters: Counts,
    pub late_events: Counts,
    pub pipeline: PipelineStatus,
}

#[derive(Debug, Serialize)]
pub struct ProjectSummary {
    pub project_id: String,
    pub last_event: LastEvent,
    pub dead_letters: Counts,
    pub late_events: Counts,
}

#[derive(Debug, Serialize)]
pub struct AdminStatus {
    pub generated_at: Rfc3339Ms,
    pub freshness_seconds: Option<f64>,
    pub pipeline: PipelineStatus,
    /// This API's readiness, then each peer's (`--status-peers`).
    pub services: Vec<ServiceHealth>,
    pub projects: Vec<ProjectSummary>,
    /// Dead letters that named no valid project.
    pub unattributed_dead_letters: Counts,
}

/// `GET /v1/status`.
pub async fn project_status(
    ReadProject(project): ReadProject,
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<ProjectStatus>> {
    params.finish()?;
    let now = now_ms();
    let (pipeline, activity, mut notices) = tokio::try_join!(
        pipeline_status(&state, now),
        stored::activity(&state.clickhouse, Some(&project)),
        stored::notices(&state.clickhouse, Some(&project), seconds(now)),
    )?;
    let counts = notices.remove(&project).unwrap_or_default();
    Ok(Json(ProjectStatus {
        last_event: activity.first().into(),
        dead_letters: counts.get("dead_letter").copied().unwrap_or_default(),
        late_events: counts.get("late").copied().unwrap_or_default(),
        project_id: project,
        generated_at: Rfc3339Ms(now),
        freshness_seconds: pipeline.freshness_seconds,
        pipeline,
    }))
}

/// `GET /v1/admin/status`.
pub async fn admin_status(
    _: AdminAccess,
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<AdminStatus>> {
    params.finish()?;
    let now = now_ms();
    let (pipeline, activity, mut notices, peers) = tokio::try_join!(
        pipeline_status(&state, now),
        stored::activity(&state.clickhouse, None),
        stored::notices(&state.clickhouse, None, seconds(now)),
        async { Ok(state.status.peers.health().await) },
    )?;
    let mut services = vec![ServiceHealth::of_this("query-api", &state.readiness)];
    services.extend(peers);
    let unattributed = notices.remove("").unwrap_or_default();
    let mut projects: BTreeMap<String, ProjectSummary> = BTreeMap::new();
    let ids = activity
        .iter()
        .map(|a| a.project_id.clone())
        .chain(notices.keys().cloned());
    for id in ids {
        let counts = notices.get(&id);
        let count = |kind: &str| {
            counts
                .and_then(|counts| counts.get(kind).copied())
                .unwrap_or_default()
        };
        projects
            .entry(id.clone())
            .or_insert_with(|| ProjectSummary {
                last_event: activity.iter().find(|a| a.project_id == id).into(),
                dead_letters: count("dead_letter"),
                late_events: count("late"),
                project_id: id,
            });
    }
    Ok(Json(AdminStatus {
        generated_at: Rfc3339Ms(now),
        freshness_seconds: pipeline.freshness_seconds,
        pipeline,
        services,
        projects: projects.into_values().collect(),
        unattributed_dead_letters: unattributed.get("dead_letter").copied().unwrap_or_default(),
    }))
}

async fn pipeline_status(state: &AppState, now: i64) -> Result<PipelineStatus> {
    let sources = &state.status;
    let topic = sources.broker.topic();
    let progress = stored::progress(&state.clickhouse, &sources.processor_group, topic).await?;
    let positions = progress.clone();
    let look = sources
        .broker
        .look(move |logs| unstored_positions(&positions, logs))
        .await;
    Ok(summarize(
        &sources.processor_group,
        topic,
        &progress,
        &look,
        now,
    ))
}

fn seconds(ms: i64) -> u32 {
    u32::try_from(ms.max(0) / 1000).unwrap_or(u32::MAX)
}

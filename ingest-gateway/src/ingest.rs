//! What every ingest route shares once the body is JSON: validating each
//! event against its origin, publishing the valid ones, and the per-event
//! outcome.
//!
//! Partial acceptance: each event of a batch stands alone. Invalid events are
//! reported (index, field, reason) and never published; valid ones are
//! published, and the request is answered only after the broker acknowledged
//! every one of them. If it did not, the answer is 503 and lists the events
//! that did land, so a client may resend all (events with an `event_id`
//! count once) or only the rest.

use std::time::Instant;

use serde::Serialize;
use serde::ser::SerializeStruct;
use serde_json::{Value, json};
use sluice_schemas::time_format::now_ms;
use sluice_schemas::validate::{parse_event, parse_event_json};
use sluice_schemas::{Event, FallbackId, FieldError, Origin};

use crate::error::ApiError;
use crate::publish::PublishError;
use crate::routes::AppState;

/// Who sent a request, for every event in it.
#[derive(Debug, Clone)]
pub struct Submission {
    pub project_id: String,
    pub client_ip: String,
    pub user_agent: Option<String>,
    pub received_at_ms: i64,
}

impl Submission {
    pub fn new(project_id: &str, client_ip: String, user_agent: Option<&str>) -> Self {
        Self {
            project_id: project_id.to_owned(),
            client_ip,
            user_agent: user_agent.map(str::to_owned),
            received_at_ms: now_ms(),
        }
    }

    /// Validates one event (JSON text) and adds what the gateway knows about it.
    pub fn validate(&self, json: &str, state: &AppState) -> Result<Event, Vec<FieldError>> {
        parse_event_json(json, self.origin(), &state.limits)
    }

    /// Like [`Self::validate`], for an event built as a JSON tree (Segment).
    pub fn validate_value(
        &self,
        value: &Value,
        state: &AppState,
    ) -> Result<Event, Vec<FieldError>> {
        parse_event(value, self.origin(), &state.limits)
    }

    fn origin(&self) -> Origin<'_> {
        Origin {
            project_id: Some(&self.project_id),
            received_at_ms: self.received_at_ms,
            client_ip: Some(&self.client_ip),
            user_agent: self.user_agent.as_deref(),
            fallback_event_id: FallbackId::UuidV7,
        }
    }
}

/// An event the broker has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Acknowledged {
    pub index: usize,
    pub event_id: String,
}

/// An event refused, with every rule it broke.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub index: usize,
    pub errors: Vec<FieldError>,
}

impl Serialize for Rejected {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Rejected", 2)?;
        out.serialize_field("index", &self.index)?;
        out.serialize_field("errors", &field_errors_json(&self.errors))?;
        out.end()
    }
}

pub fn field_errors_json(errors: &[FieldError]) -> Value {
    errors
        .iter()
        .map(|e| json!({"field": e.field, "reason": e.reason}))
        .collect()
}

/// A request's events, sorted into valid and refused.
#[derive(Debug, Default)]
pub struct Batch {
    events: Vec<Event>,
    indexes: Vec<usize>,
    rejected: Vec<Rejected>,
}

impl Batch {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            events: Vec::with_capacity(capacity),
            indexes: Vec::with_capacity(capacity),
            rejected: Vec::new(),
        }
    }

    pub fn push(&mut self, index: usize, validated: Result<Event, Vec<FieldError>>) {
        match validated {
            Ok(event) => {
                self.events.push(event);
                self.indexes.push(index);
            }
            Err(errors) => self.rejected.push(Rejected { index, errors }),
        }
    }

    pub fn reject(&mut self, index: usize, field: &str, reason: String) {
        self.rejected.push(Rejected {
            index,
            errors: vec![FieldError {
                field: field.to_owned(),
                reason,
            }],
        });
    }

    pub fn len(&self) -> usize {
        self.events.len() + self.rejected.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What became of each event of a request that was answered 2xx.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub accepted: Vec<Acknowledged>,
    pub rejected: Vec<Rejected>,
}

/// Publishes the valid events of `batch` and waits for every ack.
///
/// `Err(InvalidBatch)` when no event is valid, `Err(Unavailable)` when the
/// broker did not acknowledge them all.
pub async fn publish(state: &AppState, batch: Batch) -> Result<Outcome, ApiError> {
    let metrics = &state.metrics;
    metrics.batch_events.observe(batch.len() as f64);
    if !batch.rejected.is_empty() {
        metrics.reject("invalid_event", batch.rejected.len() as u64);
    }
    if batch.events.is_empty() {
        return Err(ApiError::InvalidBatch(batch.rejected));
    }
    let started = Instant::now();
    let published = state.publisher.publish_all(&batch.events).await;
    metrics
        .produce_latency
        .observe(started.elapsed().as_secs_f64());
    let landed = |acknowledged: &[bool]| -> Vec<Acknowledged> {
        batch
            .events
            .iter()
            .zip(&batch.indexes)
            .zip(acknowledged)
            .filter(|(_, acked)| **acked)
            .map(|((event, index), _)| Acknowledged {
                index: *index,
                event_id: event.event_id.clone(),
            })
            .collect()
    };
    match published {
        Ok(()) => {
            let accepted = landed(&vec![true; batch.events.len()]);
            metrics.accepted.inc_by(accepted.len() as u64);
            Ok(Outcome {
                accepted,
                rejected: batch.rejected,
            })
        }
        Err(failure) => {
            let acknowledged = landed(&failure.acknowledged);
            metrics.accepted.inc_by(acknowledged.len() as u64);
            let code = match &failure.error {
                PublishError::QueueFull => "overloaded",
                PublishError::NotAcknowledged(cause) => {
                    tracing::error!(cause = %cause, events = batch.events.len(), acknowledged = acknowledged.len(), "broker did not acknowledge");
                    "broker_unavailable"
                }
            };
            metrics.reject(code, (batch.events.len() - acknowledged.len()) as u64);
            Err(ApiError::Unavailable { code, acknowledged })
        }
    }
}

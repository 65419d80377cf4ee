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

use std::borrow::Cow;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use sluice_schemas::time_format::now_ms;
use sluice_schemas::validate::{RawEvent, parse_event, validate_event_json, validate_raw_event};
use sluice_schemas::{Event, EventRef, FallbackId, FieldError, Origin};

use crate::error::ApiError;
pub use crate::event_results::{Acknowledged, Rejected};
use crate::publish::PublishError;
use crate::state::AppState;

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

    /// Validates one event (JSON text) and adds what the gateway knows
    /// about it. The event borrows its text from `json` and `self`.
    pub fn validate<'a>(
        &'a self,
        json: &'a str,
        state: &AppState,
    ) -> Result<EventRef<'a>, Vec<FieldError>> {
        validate_event_json(json, self.origin(), &state.limits)
    }

    /// Like [`Self::validate`], for an event of a batch already split into
    /// its fields.
    pub fn validate_raw<'a>(
        &'a self,
        event: &RawEvent<'a>,
        state: &AppState,
    ) -> Result<EventRef<'a>, Vec<FieldError>> {
        validate_raw_event(event, self.origin(), &state.limits)
    }

    /// Like [`Self::validate`], for an event built as a JSON tree (Segment).
    pub fn validate_value(
        &self,
        value: &Value,
        state: &AppState,
    ) -> Result<EventRef<'static>, Vec<FieldError>> {
        parse_event(value, self.origin(), &state.limits).map(Event::into_ref)
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

/// A request's events, sorted into valid and refused.
#[derive(Debug, Default)]
pub struct Batch<'a> {
    events: Vec<EventRef<'a>>,
    indexes: Vec<usize>,
    rejected: Vec<Rejected>,
}

impl<'a> Batch<'a> {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            events: Vec::with_capacity(capacity),
            indexes: Vec::with_capacity(capacity),
            rejected: Vec::new(),
        }
    }

    pub fn push(&mut self, index: usize, validated: Result<EventRef<'a>, Vec<FieldError>>) {
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
pub struct Outcome<'a> {
    pub accepted: Vec<Acknowledged<'a>>,
    pub rejected: Vec<Rejected>,
}

impl Outcome<'_> {
    /// The answer's body: `{LEAD"accepted": [...], "rejected": [...]}`,
    /// where `lead` is more members, each followed by a comma. The same JSON
    /// as serde's, written straight into one buffer: an answer names every
    /// event of its batch, and serde's generic path cost about 6% of the
    /// gateway's CPU at peak.
    pub fn to_json(&self, lead: &str) -> Vec<u8> {
        let ids: usize = self.accepted.iter().map(|a| a.event_id.len()).sum();
        let mut out = Vec::with_capacity(64 + lead.len() + ids + 32 * self.accepted.len());
        out.push(b'{');
        out.extend_from_slice(lead.as_bytes());
        out.extend_from_slice(br#""accepted":["#);
        for (n, acknowledged) in self.accepted.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"index":"#);
            write_json(&mut out, &acknowledged.index);
            out.extend_from_slice(br#","event_id":"#);
            write_json(&mut out, &acknowledged.event_id);
            out.push(b'}');
        }
        out.extend_from_slice(br#"],"rejected":"#);
        write_json(&mut out, &self.rejected);
        out.push(b'}');
        out
    }
}

/// Appends `value` as JSON; writing these types to memory cannot fail.
fn write_json(out: &mut Vec<u8>, value: &impl Serialize) {
    if let Err(error) = serde_json::to_writer(out, value) {
        tracing::error!(cause = %error, "answer not serialisable");
    }
}

/// Publishes the valid events of `batch` and waits for every ack.
///
/// `Err(InvalidBatch)` when no event is valid, `Err(Unavailable)` when the
/// broker did not acknowledge them all.
/// The accepted ids borrow from `batch`; its refusals move to the outcome.
pub async fn publish<'a>(
    state: &AppState,
    batch: &'a mut Batch<'_>,
) -> Result<Outcome<'a>, ApiError> {
    let metrics = &state.metrics;
    metrics.batch_events.observe(batch.len() as f64);
    let rejected = std::mem::take(&mut batch.rejected);
    if !rejected.is_empty() {
        metrics.reject("invalid_event", rejected.len() as u64);
    }
    let batch = &*batch;
    if batch.events.is_empty() {
        return Err(ApiError::InvalidBatch(rejected));
    }
    let started = Instant::now();
    let published = state.publisher.publish_all(&batch.events).await;
    metrics
        .produce_latency
        .observe(started.elapsed().as_secs_f64());
    let landed = |acknowledged: &[bool]| -> Vec<Acknowledged<'a>> {
        batch
            .events
            .iter()
            .zip(&batch.indexes)
            .zip(acknowledged)
            .filter(|(_, acked)| **acked)
            .map(|((event, index), _)| Acknowledged {
                index: *index,
                event_id: Cow::Borrowed(event.event_id.as_ref()),
            })
            .collect()
    };
    match published {
        Ok(()) => {
            let accepted = landed(&vec![true; batch.events.len()]);
            metrics.accepted.inc_by(accepted.len() as u64);
            Ok(Outcome { accepted, rejected })
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
            let acknowledged = acknowledged
                .into_iter()
                .map(Acknowledged::into_owned)
                .collect();
            Err(ApiError::Unavailable { code, acknowledged })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_answer_is_the_json_serde_writes() {
        let outcome = Outcome {
            accepted: vec![
                Acknowledged {
                    index: 0,
                    event_id: Cow::Borrowed("plain"),
                },
                Acknowledged {
                    index: 12,
                    event_id: Cow::Owned("quote \" back \\ tab \t é \u{1}".to_owned()),
                },
            ],
            rejected: vec![Rejected {
                index: 1,
                errors: vec![FieldError {
                    field: "tags[0]".to_owned(),
                    reason: "must be a \"string\"".to_owned(),
                }],
            }],
        };
        let written: Value = serde_json::from_slice(&outcome.to_json("")).unwrap();
        assert_eq!(written, serde_json::to_value(&outcome).unwrap());
        let segment: Value =
            serde_json::from_slice(&outcome.to_json(r#""success":true,"#)).unwrap();
        assert_eq!(segment["success"], true);
        assert_eq!(segment["accepted"], written["accepted"]);
        let empty = Outcome {
            accepted: Vec::new(),
            rejected: Vec::new(),
        };
        assert_eq!(empty.to_json(""), br#"{"accepted":[],"rejected":[]}"#);
    }
}

//! Batch mode: a webhook with a `batch` setting gets up to `max_events`
//! events per request, gathered for at most `max_wait_ms` after the first.
//!
//! A batch is formed once, in its destination's worker, from fresh
//! deliveries (never attempted, not themselves batches), and from then on
//! it is one [`Delivery`] holding its members: retried, parked, dead-lettered
//! and redelivered whole, as one record of the retry topic. That keeps the
//! promise receivers deduplicate by: the same `webhook-id` and the same
//! body on every attempt. The id is a hash of the webhook id and the
//! members' delivery ids in order, so the same members always make the
//! same id. The batch's job holds every member's source offset, settled
//! together when the batch is.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::delivery::{Delivery, Member};
use crate::signing::message_id;

/// Most events a batch may be set to hold.
pub const MAX_EVENTS: u32 = 1_000;
/// Longest a batch may be set to wait for more events, in milliseconds.
pub const MAX_WAIT_MS: u64 = 60_000;
/// A batch also closes once its events' bodies reach this many bytes, so
/// that it stays one record of the retry topic well under the broker's
/// default 1 MiB message limit. A single event (at most 32 KiB) always fits.
pub const MAX_BYTES: usize = 512 * 1024;

/// A webhook's batch setting; absent means one event per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Most events per request, 1 to [`MAX_EVENTS`].
    pub max_events: u32,
    /// Longest wait after a batch's first event before it is sent, 1 to
    /// [`MAX_WAIT_MS`] milliseconds.
    pub max_wait_ms: u64,
}

impl BatchConfig {
    /// The field that is out of bounds, and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(1..=MAX_EVENTS).contains(&self.max_events) {
            return Err(("batch.max_events", format!("must be 1 to {MAX_EVENTS}")));
        }
        if !(1..=MAX_WAIT_MS).contains(&self.max_wait_ms) {
            return Err((
                "batch.max_wait_ms",
                format!("must be 1 to {MAX_WAIT_MS} milliseconds"),
            ));
        }
        Ok(())
    }
}

/// Whether `delivery` may join a batch: it was never attempted (so no
/// receiver has seen its own `webhook-id`) and is not a batch already.
pub fn joins_batches(delivery: &Delivery) -> bool {
    delivery.attempts == 0 && delivery.members.is_empty()
}

/// The `webhook-id` of a batch: `msg_` and 32 hex digits of a hash of the
/// webhook id and its members' delivery ids, in order.
pub fn batch_id<'a>(webhook_id: &str, member_ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"batch\0");
    hasher.update(webhook_id.as_bytes());
    for id in member_ids {
        hasher.update([0]);
        hasher.update(id.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// The body of a batch: `{"type": "batch", "webhook_id": ..., "events": [...]}`,
/// where each element is, byte for byte, the body its event would have been
/// sent with alone, so one handler serves both modes.
#[derive(Serialize)]
struct BatchBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    webhook_id: &'a str,
    events: Vec<&'a RawValue>,
}

/// How a batch body is read back (redelivery from the deliveries log).
#[derive(Deserialize)]
struct ReadBody {
    #[serde(rename = "type")]
    kind: String,
    events: Vec<ReadEvent>,
}

#[derive(Deserialize)]
struct ReadEvent {
    data: ReadData,
}

#[derive(Deserialize)]
struct ReadData {
    event_id: String,
}

impl Delivery {
    /// The batch of `members` (fresh deliveries of `webhook_id`, at least
    /// one), due now. Its `event_id` is its first member's, as the log shows it.
    pub fn batch_of(webhook_id: &str, members: &[Delivery], now_ms: i64) -> Self {
        let events = members
            .iter()
            .map(|member| {
                serde_json::from_str::<&RawValue>(&member.body).expect("a delivery body is JSON")
            })
            .collect();
        let body = BatchBody {
            kind: "batch",
            webhook_id,
            events,
        };
        Self {
            delivery_id: batch_id(webhook_id, members.iter().map(|m| m.delivery_id.as_str())),
            webhook_id: webhook_id.to_owned(),
            project_id: members
                .first()
                .map(|m| m.project_id.clone())
                .unwrap_or_default(),
            event_id: members
                .first()
                .map(|m| m.event_id.clone())
                .unwrap_or_default(),
            attempts: 0,
            not_before_ms: now_ms,
            received_at_ms: members
                .iter()
                .map(|m| m.received_at_ms)
                .min()
                .unwrap_or(now_ms),
            body: serde_json::to_string(&body).expect("a batch serializes"),
            members: members
                .iter()
                .map(|m| Member {
                    delivery_id: m.delivery_id.clone(),
                    event_id: m.event_id.clone(),
                    received_at_ms: m.received_at_ms,
                })
                .collect(),
        }
    }
}

/// The members of a batch body of `webhook_id` (empty when `body` is not
/// one), for a redelivery that has only the body the log kept.
pub fn members_of_body(webhook_id: &str, body: &str, received_at_ms: i64) -> Vec<Member> {
    match serde_json::from_str::<ReadBody>(body) {
        Ok(read) if read.kind == "batch" => read
            .events
            .into_iter()
            .map(|event| Member {
                delivery_id: message_id(webhook_id, &event.data.event_id),
                event_id: event.data.event_id,
                received_at_ms,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// What [`gather`] took: the batch, and the item that ended it by not
/// fitting (the next batch's first).
#[derive(Debug)]
pub struct Gathered<T> {
    pub items: Vec<T>,
    pub held: Option<T>,
}

/// How [`gather`] closes a batch.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub max_items: usize,
    pub max_wait: Duration,
    pub max_bytes: usize,
}

impl From<BatchConfig> for Caps {
    fn from(config: BatchConfig) -> Self {
        Self {
            max_items: config.max_events as usize,
            max_wait: Duration::from_millis(config.max_wait_ms),
            max_bytes: MAX_BYTES,
        }
    }
}

/// Takes items after `first` from `queue` until `caps.max_items`, until
/// `caps.max_wait` after the call, until the bytes (by `size`) would pass
/// `caps.max_bytes`, or until an item that may not join (`joins` false),
/// which is held for later. Waits only while the queue is empty. `None` at
/// shutdown: what was taken stays unsettled, as queued deliveries do.
pub async fn gather<T>(
    first: T,
    queue: &mut mpsc::Receiver<T>,
    caps: Caps,
    joins: impl Fn(&T) -> bool,
    size: impl Fn(&T) -> usize,
    shutdown: &CancellationToken,
) -> Option<Gathered<T>> {
    let deadline = tokio::time::Instant::now() + caps.max_wait;
    let mut bytes = size(&first);
    let mut items = vec![first];
    while items.len() < caps.max_items {
        let next = tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep_until(deadline) => break,
            next = queue.recv() => next,
        };
        let Some(next) = next else { break };
        bytes += size(&next);
        if !joins(&next) || bytes > caps.max_bytes {
            return Some(Gathered {
                items,
                held: Some(next),
            });
        }
        items.push(next);
    }
    Some(Gathered { items, held: None })
}

#[cfg(test)]
mod tests {
    use sluice_schemas::Event;

    use super::*;

    const FOREVER: Duration = Duration::from_secs(3600);

    fn caps(max_items: usize, max_wait: Duration) -> Caps {
        Caps {
            max_items,
            max_wait,
            max_bytes: usize::MAX,
        }
    }

    #[tokio::test]
    async fn a_batch_closes_at_its_size_and_leaves_the_rest_queued() {
        let (sender, mut queue) = mpsc::channel(16);
        for n in 2..=6 {
            sender.send(n).await.unwrap();
        }
        let token = CancellationToken::new();
        let got = gather(1, &mut queue, caps(3, FOREVER), |_| true, |_| 1, &token)
            .await
            .unwrap();
        assert_eq!(got.items, [1, 2, 3]);
        assert!(got.held.is_none());
        assert_eq!(queue.recv().await, Some(4));
    }

    #[tokio::test]
    async fn a_batch_closes_at_its_wait_with_what_it_has() {
        let (sender, mut queue) = mpsc::channel(16);
        sender.send(2).await.unwrap();
        let token = CancellationToken::new();
        // The sender stays open: only the time cap can end the batch.
        let got = gather(
            1,
            &mut queue,
            caps(100, Duration::from_millis(20)),
            |_| true,
            |_| 1,
            &token,
        )
        .await
        .unwrap();
        assert_eq!(got.items, [1, 2]);
        drop(sender);
    }

    #[tokio::test]
    async fn an_item_that_may_not_join_or_does_not_fit_is_held() {
        let (sender, mut queue) = mpsc::channel(16);
        for n in [2, -3, 4] {
            sender.send(n).await.unwrap();
        }
        let token = CancellationToken::new();
        let got = gather(1, &mut queue, caps(10, FOREVER), |n| *n > 0, |_| 1, &token)
            .await
            .unwrap();
        assert_eq!((got.items, got.held), (vec![1, 2], Some(-3)));
        let bytes = Caps {
            max_bytes: 25,
            ..caps(10, FOREVER)
        };
        let got = gather(10, &mut queue, bytes, |_| true, |n| *n as usize * 3, &token)
            .await
            .unwrap();
        assert_eq!((got.items, got.held), (vec![10], Some(4)));
        token.cancel();
        assert!(
            gather(1, &mut queue, caps(10, FOREVER), |_| true, |_| 1, &token)
                .await
                .is_none()
        );
    }

    fn fresh(event_id: &str) -> Delivery {
        let event = Event::minimal(event_id, "shop", "checkout", 1_000, 2_000);
        Delivery::of_event("wh_1", &event, 5)
    }

    #[test]
    fn a_batch_has_a_stable_id_and_holds_each_event_as_sent_alone() {
        let members = [fresh("e1"), fresh("e2")];
        let batch = Delivery::batch_of("wh_1", &members, 7);
        assert_eq!(
            batch.delivery_id,
            Delivery::batch_of("wh_1", &members, 9).delivery_id
        );
        let reversed = [fresh("e2"), fresh("e1")];
        assert_ne!(
            batch.delivery_id,
            Delivery::batch_of("wh_1", &reversed, 7).delivery_id
        );
        assert_ne!(
            batch.delivery_id,
            Delivery::batch_of("wh_2", &members, 7).delivery_id
        );
        assert_ne!(batch.delivery_id, members[0].delivery_id);
        assert_eq!(batch.delivery_id.len(), 36);

        let body: serde_json::Value = serde_json::from_str(&batch.body).unwrap();
        assert_eq!(body["type"], "batch");
        assert_eq!(body["webhook_id"], "wh_1");
        let alone: serde_json::Value = serde_json::from_str(&members[1].body).unwrap();
        assert_eq!(body["events"][1], alone);
        assert!(batch.body.contains(&members[0].body));

        // The retry topic's record keeps the members; redelivery finds them in the body.
        let text = serde_json::to_string(&batch).unwrap();
        assert_eq!(serde_json::from_str::<Delivery>(&text).unwrap(), batch);
        let read = members_of_body("wh_1", &batch.body, 2_000);
        assert_eq!(read, batch.members);
        assert!(members_of_body("wh_1", &members[0].body, 0).is_empty());
        assert!(joins_batches(&members[0]) && !joins_batches(&batch));
    }

    #[test]
    fn settings_out_of_bounds_name_their_field() {
        let good = BatchConfig {
            max_events: 1000,
            max_wait_ms: 1,
        };
        assert!(good.check().is_ok());
        let events = BatchConfig {
            max_events: 0,
            ..good
        };
        assert_eq!(events.check().unwrap_err().0, "batch.max_events");
        let wait = BatchConfig {
            max_wait_ms: 60_001,
            ..good
        };
        assert_eq!(wait.check().unwrap_err().0, "batch.max_wait_ms");
    }
}

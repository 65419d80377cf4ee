//! The broker's acknowledgements, counted per request.
//!
//! Each event handed to the producer carries an [`EventAck`]: which request
//! it belongs to and its place there. librdkafka reports each delivery on the
//! producer's polling thread; the report marks the event and counts down the
//! request's outstanding events, and only the last one wakes the handler.
//! One wake-up per request, where a future per event woke it once per ack.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rdkafka::error::KafkaError;
use tokio::sync::Notify;

/// What the broker said about each event of one request.
#[derive(Debug)]
pub struct RequestAcks {
    acknowledged: Vec<AtomicBool>,
    /// Events with neither an ack nor a failure yet.
    outstanding: AtomicUsize,
    first_error: Mutex<Option<KafkaError>>,
    settled: Notify,
}

impl RequestAcks {
    pub fn new(events: usize) -> Self {
        Self {
            acknowledged: (0..events).map(|_| AtomicBool::new(false)).collect(),
            outstanding: AtomicUsize::new(events),
            first_error: Mutex::new(None),
            settled: Notify::new(),
        }
    }

    /// Settles `count` events that will have no delivery report (never
    /// handed to the producer) as not acknowledged.
    pub fn give_up(&self, count: usize) {
        self.settle(count);
    }

    /// Waits until every event is settled.
    pub async fn settled(&self) {
        // A permit stored by a settle that came first makes this return at once.
        if self.outstanding.load(Ordering::Acquire) > 0 {
            self.settled.notified().await;
        }
    }

    /// Per event: whether the broker has it. Complete once [`Self::settled`]
    /// returned; before that, a snapshot (a later ack may still come).
    pub fn acknowledged(&self) -> Vec<bool> {
        self.acknowledged
            .iter()
            .map(|flag| flag.load(Ordering::Acquire))
            .collect()
    }

    /// Why some event was not acknowledged, if one was not.
    pub fn first_error(&self) -> Option<KafkaError> {
        self.first_error.lock().ok().and_then(|error| error.clone())
    }

    pub(crate) fn record(&self, index: usize, outcome: Result<(), &KafkaError>) {
        match outcome {
            Ok(()) => self.acknowledged[index].store(true, Ordering::Release),
            Err(cause) => {
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| cause.clone());
                }
            }
        }
        self.settle(1);
    }

    fn settle(&self, count: usize) {
        if count > 0 && self.outstanding.fetch_sub(count, Ordering::AcqRel) == count {
            self.settled.notify_one();
        }
    }
}

/// The delivery opaque of one event: its request and its index there.
#[derive(Debug)]
pub struct EventAck {
    pub request: std::sync::Arc<RequestAcks>,
    pub index: usize,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn settles_when_the_last_event_is_reported() {
        let acks = Arc::new(RequestAcks::new(3));
        acks.record(2, Ok(()));
        acks.record(0, Err(&KafkaError::Canceled));
        let waiter = tokio::spawn({
            let acks = acks.clone();
            async move {
                acks.settled().await;
                acks.acknowledged()
            }
        });
        acks.record(1, Ok(()));
        assert_eq!(waiter.await.unwrap(), vec![false, true, true]);
        assert!(matches!(acks.first_error(), Some(KafkaError::Canceled)));
    }

    #[tokio::test]
    async fn events_never_handed_over_settle_at_once() {
        let acks = RequestAcks::new(4);
        acks.record(0, Ok(()));
        acks.give_up(3);
        acks.settled().await;
        assert_eq!(acks.acknowledged(), vec![true, false, false, false]);
        assert!(acks.first_error().is_none());
    }

    #[tokio::test]
    async fn a_request_without_events_is_settled() {
        RequestAcks::new(0).settled().await;
    }
}

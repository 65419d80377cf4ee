//! Watermark markers: how an idle partition's windows close without making
//! the result depend on wall-clock timing.
//!
//! When a partition has open windows and no message for the idle timeout, its
//! processor writes a marker into that same partition: an empty message whose
//! `sluice.watermark` header holds the new watermark (wall clock minus the
//! allowed lateness, epoch milliseconds). Windows close when the marker is
//! *consumed*, so the decision sits in the log: a restart or a replay from
//! offset 0 meets the marker at the same offset and closes the same windows
//! with the same rows. Markers are not events: they never reach `events`,
//! the rollups or the dead-letter topic.

use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

pub use sluice_schemas::decode::WATERMARK_HEADER as HEADER_WATERMARK;

/// The watermark a message carries, when it is a marker.
pub fn watermark_of(headers: Option<&rdkafka::message::BorrowedHeaders>) -> Option<i64> {
    let header = headers?.iter().find(|h| h.key == HEADER_WATERMARK)?;
    std::str::from_utf8(header.value?).ok()?.parse().ok()
}

/// Writes a marker into `partition` of `topic` and waits for the ack.
pub async fn write(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    watermark_ms: i64,
) -> anyhow::Result<()> {
    let value = watermark_ms.to_string();
    let headers = OwnedHeaders::new().insert(Header {
        key: HEADER_WATERMARK,
        value: Some(&value),
    });
    let record = FutureRecord::<[u8], [u8]>::to(topic)
        .partition(partition)
        .headers(headers);
    producer
        .send(record, Timeout::After(std::time::Duration::from_secs(10)))
        .await
        .map_err(|(error, _)| anyhow::anyhow!("watermark marker refused: {error}"))?;
    Ok(())
}

//! The integration-test harness, and (in `tests/`) the tests that cross services.
//!
//! Tests run against the real thing: a Kafka-compatible broker (tansu locally,
//! any Kafka or Redpanda through `SLUICE_TEST_KAFKA_BROKERS`) and a real
//! ClickHouse (`SLUICE_TEST_CLICKHOUSE_URL`). [`stack`] finds them, starts the
//! local stack with `deploy/stack.sh up` when they are down, and panics with
//! instructions when that fails: a missing dependency fails the test, it never
//! skips it. Each [`TestEnv`] has its own topics and its own ClickHouse
//! database, so tests never share state and may run in parallel.

pub mod broker;
pub mod certificates;
pub mod partitioner;
pub mod processes;
pub mod proxy;
pub mod secure_broker;
pub mod secure_clickhouse;
pub mod services;
pub mod sessions;
pub mod stack;

pub use broker::PrivateBroker;
pub use processes::{
    Printing, assert_no_secret, help_text, served_text, startup_failure, wait_until_ready,
};
pub use proxy::StallingProxy;
pub use secure_broker::SecureBroker;
pub use secure_clickhouse::SecureClickhouse;
pub use services::{Running, spawn_service};
pub use stack::{PartitionOffsets, TestEnv, stack};

use std::future::Future;
use std::time::Duration;

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! The readiness probe: does ClickHouse answer, and if not, why.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::connection::Connection;
use super::failure::judge;
use crate::ops::Readiness;

/// The readiness check that ClickHouse answers.
pub const CLICKHOUSE_CHECK: &str = "clickhouse";
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Failed probes in a row before readiness fails: one slow answer under load
/// is not an outage.
const PROBES_FAILED_TOLERATED: u32 = 2;

/// Keeps [`CLICKHOUSE_CHECK`] following whether ClickHouse answers `SELECT 1`
/// within a few seconds, until `shutdown`; the failing check names the URL
/// and the cause (a password changed on the server names the password
/// setting). A server that accepts connections but does not answer (a
/// stopped process, a full disk) fails it too.
pub async fn watch(connection: Connection, readiness: Readiness, shutdown: CancellationToken) {
    let url = connection.shown_url().to_owned();
    let mut failed = 0;
    loop {
        let probe = tokio::time::timeout(
            PROBE_TIMEOUT,
            connection.server().query("SELECT 1").fetch_one::<u8>(),
        )
        .await;
        let cause = match probe {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(judge(&error, &connection).message().to_owned()),
            Err(_) => Some(format!(
                "ClickHouse at {url} (--clickhouse-url) does not answer within {} s",
                PROBE_TIMEOUT.as_secs()
            )),
        };
        match cause {
            None => {
                if failed >= PROBES_FAILED_TOLERATED {
                    tracing::info!(%url, "ClickHouse answers again");
                }
                failed = 0;
                readiness.pass(CLICKHOUSE_CHECK);
            }
            Some(cause) => {
                failed += 1;
                if failed >= PROBES_FAILED_TOLERATED {
                    tracing::warn!(%cause, "ClickHouse does not answer");
                    readiness.fail(CLICKHOUSE_CHECK, cause);
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
}

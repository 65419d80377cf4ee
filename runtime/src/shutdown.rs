//! Turning SIGINT and SIGTERM into a drain with a deadline: the first
//! signal cancels a token that every task watches; the process exits anyway
//! when the drain outlasts its deadline, or at once on a second signal.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The exit code when a drain is cut short (by a deadline or a second
/// signal): not 0, since something may have been left undone.
pub const CUT_SHORT_EXIT_CODE: i32 = 130;

/// Returns a token that is cancelled on the first SIGINT or SIGTERM; then
/// the process exits (code [`CUT_SHORT_EXIT_CODE`]) after `deadline` or on
/// a second signal, whichever comes first, unless it has ended by itself.
pub fn on_signal(deadline: Duration) -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            deadline_ms = deadline.as_millis() as u64,
            "shutdown signal received; draining"
        );
        cancel.cancel();
        tokio::select! {
            _ = wait_for_signal() => {
                tracing::warn!("a second shutdown signal: exiting without finishing the drain");
            }
            _ = tokio::time::sleep(deadline) => {
                tracing::warn!(
                    deadline_ms = deadline.as_millis() as u64,
                    "the drain outlasted --shutdown-timeout-ms: exiting without finishing it"
                );
            }
        }
        std::process::exit(CUT_SHORT_EXIT_CODE);
    });
    token
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

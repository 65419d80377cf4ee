//! Background tasks a service cannot do without (watches, retention,
//! clean-ups): one that fails, panics or ends before shutdown stops the
//! service, with its name and cause logged and returned, instead of dying
//! silently while the service looks alive.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Spawns and watches the background tasks of one service.
#[derive(Clone)]
pub struct Supervisor {
    shutdown: CancellationToken,
    failure: Arc<Mutex<Option<String>>>,
}

impl Supervisor {
    /// A failure cancels `shutdown`, the service's own token, so the service
    /// drains and stops as on a signal.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            failure: Arc::default(),
        }
    }

    /// Runs `task` until it ends; it is expected to run until shutdown.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let task = tokio::spawn(task);
        let supervisor = self.clone();
        tokio::spawn(async move {
            let cause = match task.await {
                Ok(Ok(())) if supervisor.shutdown.is_cancelled() => return,
                Ok(Ok(())) => "it ended before shutdown".to_owned(),
                Ok(Err(error)) => format!("{error:#}"),
                Err(join) if join.is_panic() => {
                    let panic = join.into_panic();
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_owned());
                    format!("it panicked: {message}")
                }
                Err(_) => return,
            };
            supervisor.fail(name, &cause);
        });
    }

    /// Like [`Self::spawn`]; the handle resolves once the task has ended,
    /// for work a shutdown must wait for (a consumer committing its offsets).
    pub fn spawn_awaited<F>(&self, name: &'static str, task: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (done, ended) = tokio::sync::oneshot::channel::<()>();
        self.spawn(name, async move {
            let outcome = task.await;
            drop(done);
            outcome
        });
        tokio::spawn(async move {
            let _ = ended.await;
        })
    }

    /// Runs `work` on an OS thread of its own (blocking work: a Kafka
    /// consumer's poll loop), supervised as [`Self::spawn`] supervises a task:
    /// failing, panicking or returning before shutdown stops the service.
    pub fn spawn_thread<F>(&self, name: &'static str, work: F) -> std::io::Result<()>
    where
        F: FnOnce() -> anyhow::Result<()> + Send + 'static,
    {
        let (done, ended) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(name.replace(' ', "-"))
            .spawn(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
                let _ = done.send(outcome);
            })?;
        self.spawn(name, async move {
            match ended.await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => anyhow::bail!("its thread vanished"),
            }
        });
        Ok(())
    }

    fn fail(&self, name: &str, cause: &str) {
        tracing::error!(task = name, %cause, "a background task failed; stopping the service");
        let mut failure = self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        failure.get_or_insert(format!("background task {name}: {cause}"));
        drop(failure);
        self.shutdown.cancel();
    }

    /// After the service has stopped: the first failure, if one stopped it.
    pub fn outcome(&self) -> anyhow::Result<()> {
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match failure.as_ref() {
            Some(failure) => Err(anyhow::anyhow!("{failure}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn stopped(supervisor: &Supervisor, shutdown: &CancellationToken) -> String {
        tokio::time::timeout(Duration::from_secs(5), shutdown.cancelled())
            .await
            .expect("the failure stops the service");
        format!("{:#}", supervisor.outcome().unwrap_err())
    }

    #[tokio::test]
    async fn an_awaited_task_is_supervised_and_its_handle_resolves_when_it_ends() {
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new(shutdown.clone());
        let handle =
            supervisor.spawn_awaited("consumer", async { anyhow::bail!("cannot subscribe") });
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
        let failure = stopped(&supervisor, &shutdown).await;
        assert!(failure.contains("consumer: cannot subscribe"), "{failure}");

        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new(shutdown.clone());
        let stopping = shutdown.clone();
        let handle = supervisor.spawn_awaited("consumer", async move {
            stopping.cancelled().await;
            Ok(())
        });
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
        assert!(
            supervisor.outcome().is_ok(),
            "ending at shutdown is no failure"
        );
    }

    #[tokio::test]
    async fn a_task_that_fails_panics_or_ends_early_stops_the_service_naming_it() {
        for (name, task) in [
            (
                "fails",
                Box::pin(async { anyhow::bail!("the disk is full") })
                    as std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>,
            ),
            ("panics", Box::pin(async { panic!("an invariant broke") })),
            ("ends", Box::pin(async { Ok(()) })),
        ] {
            let shutdown = CancellationToken::new();
            let supervisor = Supervisor::new(shutdown.clone());
            supervisor.spawn(name, task);
            let failure = stopped(&supervisor, &shutdown).await;
            assert!(
                failure.contains(&format!("background task {name}")),
                "{failure}"
            );
            let cause = match name {
                "fails" => "the disk is full",
                "panics" => "an invariant broke",
                _ => "ended before shutdown",
            };
            assert!(failure.contains(cause), "{failure}");
        }
    }

    #[tokio::test]
    async fn a_thread_that_fails_panics_or_ends_early_stops_the_service_naming_it() {
        type Work = Box<dyn FnOnce() -> anyhow::Result<()> + Send>;
        let works: [(&'static str, Work, &str); 3] = [
            (
                "key store",
                Box::new(|| anyhow::bail!("the topic is gone")),
                "the topic is gone",
            ),
            (
                "live feed",
                Box::new(|| panic!("a poisoned lock")),
                "a poisoned lock",
            ),
            ("coverage", Box::new(|| Ok(())), "ended before shutdown"),
        ];
        for (name, work, cause) in works {
            let shutdown = CancellationToken::new();
            let supervisor = Supervisor::new(shutdown.clone());
            supervisor.spawn_thread(name, work).unwrap();
            let failure = stopped(&supervisor, &shutdown).await;
            assert!(
                failure.contains(&format!("background task {name}")) && failure.contains(cause),
                "{failure}"
            );
        }
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new(shutdown.clone());
        let watched = shutdown.clone();
        supervisor
            .spawn_thread("until shutdown", move || {
                while !watched.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(())
            })
            .unwrap();
        shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(supervisor.outcome().is_ok());
    }

    #[tokio::test]
    async fn a_task_that_ends_at_shutdown_is_no_failure() {
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new(shutdown.clone());
        let watched = shutdown.clone();
        supervisor.spawn("watch", async move {
            watched.cancelled().await;
            Ok(())
        });
        shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(supervisor.outcome().is_ok());
    }
}

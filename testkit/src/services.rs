//! Services run in-process on port 0, stopped when dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A service running inside the test process.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until `/health/ready` answers 200: every dependency the service
    /// registered is set up (topics, tables), or panics after 60 s.
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let url = self.url("/health/ready");
        crate::eventually("service readiness", Duration::from_secs(60), || {
            let request = client.get(&url).send();
            async move {
                request
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
    }

    /// `/health/ready`'s status and body (status 0 while it does not answer).
    pub async fn readiness(&self) -> (u16, serde_json::Value) {
        match reqwest::get(self.url("/health/ready")).await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or_default())
            }
            Err(_) => (0, serde_json::Value::Null),
        }
    }

    /// Waits (up to `patience`) until readiness fails `check`, and returns
    /// the cause it gives.
    pub async fn not_ready_because(&self, check: &str, patience: Duration) -> String {
        crate::eventually(&format!("readiness to fail {check}"), patience, || async {
            let (status, body) = self.readiness().await;
            (status == 503)
                .then(|| body["causes"][check].as_str().map(str::to_owned))
                .flatten()
        })
        .await
    }

    /// Graceful stop: cancels, then waits for the service to finish draining.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }

    /// Waits for the service to end by itself (a startup error, say), up to
    /// `timeout`; panics if it is still running then.
    pub async fn ended(mut self, timeout: Duration) -> anyhow::Result<()> {
        let task = self.task.take().expect("a running service");
        match tokio::time::timeout(timeout, task).await {
            Ok(ended) => ended?,
            Err(_) => panic!("the service still runs after {timeout:?}"),
        }
    }

    /// Abrupt stop, as a crash: the task is aborted wherever it is.
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Binds 127.0.0.1:0 and runs `serve(listener, shutdown)` as a task.
pub async fn spawn_service<F, Fut>(serve: F) -> Running
where
    F: FnOnce(TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let addr = listener.local_addr().expect("local address");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, shutdown.clone()));
    Running {
        addr,
        shutdown,
        task: Some(task),
    }
}

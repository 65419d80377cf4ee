//! Other services' readiness, for the admin status: each peer named in
//! `--status-peers` (`NAME=URL,…`) is asked for `URL/health/ready`, and
//! its checks and causes are shown beside this API's own. A peer that does
//! not answer is shown as not ready, with the reason.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_runtime::ops::Readiness;

/// How long a peer may take to answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceHealth {
    pub service: String,
    /// Where it was asked; absent for this API itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub ready: bool,
    /// Each readiness check: `true` passes.
    pub checks: BTreeMap<String, bool>,
    /// Why each failing check fails.
    pub causes: BTreeMap<String, String>,
}

impl ServiceHealth {
    pub fn of_this(service: &str, readiness: &Readiness) -> Self {
        let report = readiness.report();
        Self {
            service: service.to_owned(),
            url: None,
            ready: report.values().all(Option::is_none),
            checks: report
                .iter()
                .map(|(check, state)| ((*check).to_owned(), state.is_none()))
                .collect(),
            causes: report
                .iter()
                .filter_map(|(check, state)| Some(((*check).to_owned(), state.clone()?)))
                .collect(),
        }
    }
}

/// A peer's `/health/ready` body.
#[derive(Debug, Deserialize)]
struct ReadyBody {
    #[serde(default)]
    checks: BTreeMap<String, bool>,
    #[serde(default)]
    causes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct Peers {
    peers: Vec<(String, String)>,
    client: reqwest::Client,
}

impl Peers {
    /// Parses `NAME=URL,…` (`setting` names it in errors). URLs are plain
    /// `http://` base URLs of the services' ops ports.
    pub fn parse(list: &str, setting: &str) -> anyhow::Result<Self> {
        let mut peers = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, url)) = entry.split_once('=') else {
                anyhow::bail!("{setting}: {entry:?} is not NAME=URL");
            };
            let (name, url) = (name.trim(), url.trim().trim_end_matches('/'));
            let host = url.strip_prefix("http://").unwrap_or_default();
            // The URL is shown in the admin view: no credentials in it (the
            // health endpoints need none).
            if url.contains('@') {
                anyhow::bail!("{setting}: {name}'s URL must not carry credentials");
            }
            if name.is_empty() || host.is_empty() || host.contains(['/', '?', '#']) {
                anyhow::bail!("{setting}: {entry:?} needs a name and an http://HOST:PORT base URL");
            }
            peers.push((name.to_owned(), url.to_owned()));
        }
        let client = reqwest::Client::builder()
            .timeout(PEER_TIMEOUT)
            .build()
            .map_err(|error| anyhow::anyhow!("{setting}: {error}"))?;
        Ok(Self { peers, client })
    }

    /// Every peer's readiness, asked at once.
    pub async fn health(&self) -> Vec<ServiceHealth> {
        let asks = self.peers.iter().map(|(name, url)| async move {
            let unreachable = |cause: String| ServiceHealth {
                service: name.clone(),
                url: Some(url.clone()),
                ready: false,
                checks: BTreeMap::new(),
                causes: BTreeMap::from([("reachable".to_owned(), cause)]),
            };
            let response = match self.client.get(format!("{url}/health/ready")).send().await {
                Ok(response) => response,
                Err(error) => return unreachable(format!("no answer: {error}")),
            };
            let status = response.status();
            match response.json::<ReadyBody>().await {
                Ok(body) => ServiceHealth {
                    service: name.clone(),
                    url: Some(url.clone()),
                    ready: status.is_success(),
                    checks: body.checks,
                    causes: body.causes,
                },
                Err(error) => unreachable(format!("HTTP {status}, not a readiness body: {error}")),
            }
        });
        futures::future::join_all(asks).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_url_pairs_and_names_the_setting_when_wrong() {
        let peers = Peers::parse(
            " gateway=http://127.0.0.1:8080/ ,processor=http://proc:8082",
            "--status-peers",
        )
        .unwrap();
        assert_eq!(
            peers.peers,
            vec![
                ("gateway".to_owned(), "http://127.0.0.1:8080".to_owned()),
                ("processor".to_owned(), "http://proc:8082".to_owned())
            ]
        );
        assert!(Peers::parse("", "--status-peers").unwrap().peers.is_empty());
        for with_secret in ["g=http://user:hunter2@a:1", "g=https://user:hunter2@a:1"] {
            let error = Peers::parse(with_secret, "--status-peers")
                .unwrap_err()
                .to_string();
            assert!(
                !error.contains("hunter2") && error.contains("credentials"),
                "{error}"
            );
        }
        for bad in [
            "gateway",
            "=http://a:1",
            "g=https://a:1",
            "g=http://",
            "g=http://a/x",
        ] {
            let error = Peers::parse(bad, "--status-peers").unwrap_err().to_string();
            assert!(error.starts_with("--status-peers: "), "{bad}: {error}");
        }
    }
}

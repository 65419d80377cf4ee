//! `sluice-dev sdk-check`: real third-party SDKs pointed at a running
//! gateway, unchanged, and their events read back through the query API:
//! Segment's analytics-python (plain and
//! gzip) and analytics-node, RudderStack's Node SDK and Jitsu's @jitsu/js,
//! versions pinned in deploy/sdk-check/. The SDKs report any refused call
//! themselves. `deploy/install.sh sdks` installs them first (node and npm
//! too when missing, the SDKs into ~/.cache/sluice/sdk-check, or
//! SLUICE_SDK_CHECK_CACHE).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::bench::{HttpEndpoint, unix_seconds};
use crate::sluice_cache;

#[derive(Debug, Clone, clap::Args)]
pub struct SdkCheck {
    /// The gateway (default: the local pipeline's).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// The query API.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub query: String,
    /// A key with the ingest and read scopes.
    #[arg(long, default_value = "sluice-dev-key")]
    pub key: String,
}

/// Each tracked event, by type suffix, with the user it must name (`None`: any).
const EXPECTED: [(&str, Option<&str>); 9] = [
    ("python plain track", Some("sdk-user")),
    ("python plain anonymous", Some("sdk-anon")),
    ("python gzip track", Some("sdk-user")),
    ("python gzip anonymous", Some("sdk-anon")),
    ("segment-node track", Some("sdk-user")),
    ("segment-node anonymous", Some("sdk-anon")),
    ("rudderstack-node track", Some("sdk-user")),
    ("rudderstack-node anonymous", Some("sdk-anon")),
    ("jitsu track", None),
];

fn say(line: impl AsRef<str>) {
    println!("sdk-check: {}", line.as_ref());
}

impl SdkCheck {
    /// True when every SDK's events were read back as sent.
    pub fn run(&self, repo: &Path) -> anyhow::Result<bool> {
        let gateway = HttpEndpoint::parse(&self.gateway, "--gateway")?;
        let query = HttpEndpoint::parse(&self.query, "--query")?;
        for (endpoint, what) in [(&gateway, "gateway"), (&query, "query API")] {
            let answer = endpoint.call("GET", "/health/ready", &[], "");
            if answer.is_none_or(|(status, _)| status != 200) {
                bail!("no ready {what} at {} (deploy/local.sh up)", endpoint.url());
            }
        }
        let installed = Command::new(repo.join("deploy/install.sh"))
            .arg("sdks")
            .status();
        if !installed.is_ok_and(|status| status.success()) {
            bail!("deploy/install.sh sdks failed");
        }
        let cache = sluice_cache("SLUICE_SDK_CHECK_CACHE", "sdk-check");
        let here = repo.join("deploy/sdk-check");
        let tag = format!("sdk-check-{}-{}", unix_seconds(), std::process::id());
        say(format!("sending with run tag {tag}"));
        let python = Command::new(cache.join("venv/bin/python"))
            .arg(here.join("segment_python.py"))
            .args([&self.gateway, &self.key, &tag])
            .status()
            .context("cannot run the Python SDK check")?;
        if !python.success() {
            bail!("segment-analytics-python reported errors (above)");
        }
        let node = Command::new("node")
            .env("NODE_PATH", cache.join("node/node_modules"))
            .arg(here.join("node_sdks.js"))
            .args([&self.gateway, &self.key, &tag])
            .status()
            .context("cannot run node")?;
        if !node.success() {
            bail!("a Node SDK reported errors (above)");
        }
        let authorization = format!("Bearer {}", self.key);
        let mut all = true;
        for (suffix, user) in EXPECTED {
            let kind = format!("{tag} {suffix}");
            let path = format!("/v1/events?type={}", percent_encoded(&kind));
            let mut found = None;
            for _ in 0..60 {
                found = query
                    .call("GET", &path, &[("Authorization", &authorization)], "")
                    .filter(|(status, _)| *status == 200)
                    .and_then(|(_, body)| first_user(&body));
                if found.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            match (found, user) {
                (None, _) => {
                    say(format!("MISSING: {kind}"));
                    all = false;
                }
                (Some(found), Some(user)) if found != user => {
                    say(format!(
                        "WRONG USER: {kind} has user_id {found}, expected {user}"
                    ));
                    all = false;
                }
                (Some(found), _) => say(format!("ok: {kind} (user_id {found})")),
            }
        }
        if all {
            say("every SDK's events were read back");
        } else {
            say("error: some SDK events did not arrive as sent");
        }
        Ok(all)
    }
}

/// The first event's `user_id` in a `/v1/events` answer, if any.
fn first_user(body: &str) -> Option<String> {
    let answer: Value = serde_json::from_str(body).ok()?;
    answer
        .pointer("/events/0/user_id")?
        .as_str()
        .map(str::to_owned)
}

/// `text` for a URL's query string: unreserved characters as they are,
/// every other byte as %XX.
pub fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_encoded_for_the_query_string() {
        assert_eq!(
            percent_encoded("sdk-check-1 jitsu track"),
            "sdk-check-1%20jitsu%20track"
        );
        assert_eq!(percent_encoded("a&b=ü"), "a%26b%3D%C3%BC");
    }

    #[test]
    fn reads_the_first_events_user() {
        assert_eq!(
            first_user(r#"{"events":[{"user_id":"u1"},{"user_id":"u2"}]}"#),
            Some("u1".into())
        );
        assert_eq!(first_user(r#"{"events":[]}"#), None);
        assert_eq!(first_user(r#"{"events":[{"user_id":null}]}"#), None);
    }
}

//! Where a webhook may point: `http` or `https` URLs whose addresses are
//! public. Private, loopback, link-local (cloud metadata at
//! 169.254.169.254), shared, multicast and unspecified addresses are refused
//! (server-side request forgery), unless the operator allows a range
//! (`--allow-private-targets 127.0.0.0/8`). The check runs when a webhook is
//! written and again on every connection, through the HTTP client's
//! resolver ([`GuardedResolver`]), so a name that later resolves to a
//! private address (DNS rebinding) is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The longest target URL.
pub const MAX_URL_BYTES: usize = 2048;

/// The operator's exceptions to the address rule.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    pub allowed: Vec<IpNet>,
}

impl TargetPolicy {
    /// Whether a webhook may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        is_public(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// Checks a target URL: its form, and every address its host resolves
    /// to. The error is for the user (it names no internal detail beyond
    /// the address their own URL led to).
    pub async fn check(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = check_form(url)?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let addresses: Vec<SocketAddr> = match host_ip(&parsed) {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|_| format!("the host {host} does not resolve"))?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(format!("the host {host} does not resolve"));
        }
        if let Some(refused) = addresses.iter().find(|a| !self.permits(a.ip())) {
            return Err(format!(
                "{host} resolves to {}, a private, loopback or link-local address; \
                 an operator may allow it with --allow-private-targets",
                refused.ip()
            ));
        }
        Ok(parsed)
    }
}

/// The URL's form: absolute `http(s)`, a host, no credentials, not too long.
pub fn check_form(url: &str) -> Result<reqwest::Url, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("is longer than {MAX_URL_BYTES} bytes"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|error| format!("is not a URL: {error}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials; use the webhook's headers".into());
    }
    Ok(parsed)
}

/// The host of `url` when it is an IP literal.
pub fn host_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments and benchmarking.
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local fc00::/7 and link-local fe80::/10.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        // Documentation 2001:db8::/32.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// The HTTP client's resolver: the system's, with every address the policy
/// refuses removed, so no connection reaches one whatever DNS answers later.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub policy: Arc<TargetPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| policy.permits(address.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} has no address a webhook may reach").into());
            }
            let addresses: Addrs = Box::new(found.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        let strict = TargetPolicy::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!strict.permits(ip(refused)), "{refused}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(strict.permits(ip(public)), "{public}");
        }
        let loopback = TargetPolicy {
            allowed: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(loopback.permits(ip("127.0.0.1")));
        assert!(!loopback.permits(ip("10.0.0.1")));
    }

    #[test]
    fn urls_must_be_plain_http() {
        for (bad, reason) in [
            ("ftp://example.com/", "http or https"),
            ("not a url", "not a URL"),
            ("https://user:pw@example.com/", "credentials"),
        ] {
            let error = check_form(bad).unwrap_err();
            assert!(error.contains(reason), "{bad}: {error}");
        }
        assert!(check_form(&format!("https://e.com/{}", "a".repeat(MAX_URL_BYTES))).is_err());
        assert!(check_form("https://example.com/hook?x=1").is_ok());
    }

    #[tokio::test]
    async fn literal_addresses_are_checked_without_dns() {
        let strict = TargetPolicy::default();
        let error = strict.check("http://127.0.0.1:9/hook").await.unwrap_err();
        assert!(error.contains("--allow-private-targets"), "{error}");
        let error = strict.check("http://[::1]/").await.unwrap_err();
        assert!(error.contains("::1"), "{error}");
        let error = strict.check("http://localhost:9/").await.unwrap_err();
        assert!(error.contains("private, loopback"), "{error}");
        let allowed = TargetPolicy {
            allowed: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(allowed.check("http://127.0.0.1:9/hook").await.is_ok());
    }
}

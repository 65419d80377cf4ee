//! Who sent a request: the client IP, believing `X-Forwarded-For` only from
//! configured proxies, and the user agent.

use std::net::IpAddr;

use anyhow::Context;
use axum::http::{HeaderMap, header};
use ipnet::IpNet;

const FORWARDED_FOR: &str = "x-forwarded-for";

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses IPs and CIDRs; blank entries are skipped.
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        let mut nets = Vec::new();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let net =
                match entry.parse::<IpNet>() {
                    Ok(net) => net,
                    Err(_) => IpNet::from(entry.parse::<IpAddr>().with_context(|| {
                        format!("trusted proxy {entry:?} is not an IP or CIDR")
                    })?),
                };
            nets.push(net);
        }
        Ok(Self(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's IP: the peer, unless the peer is a trusted proxy; then the
    /// nearest address in `X-Forwarded-For` that is not a trusted proxy
    /// (reading right to left, as each proxy appends the address it saw).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let hops = headers
            .get_all(FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                // A hop we cannot read: the last proxy we trust is as far as
                // the chain can be believed.
                return client;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// IPv4 peers on a dual-stack socket appear as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

pub fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::USER_AGENT)
        .and_then(|agent| agent.to_str().ok())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ignores_the_header_from_untrusted_peers() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let headers = forwarded(&["1.2.3.4"]);
        assert_eq!(proxies.client_ip(ip("8.8.8.8"), &headers), ip("8.8.8.8"));
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(ip("10.0.0.1"), &headers), ip("10.0.0.1"));
    }

    #[test]
    fn walks_back_through_trusted_proxies_only() {
        let proxies =
            TrustedProxies::parse(&["10.0.0.0/8".into(), " 192.168.1.5 ".into(), String::new()])
                .unwrap();
        // spoofed, real client, then two of our proxies
        let headers = forwarded(&["6.6.6.6, 1.2.3.4", "192.168.1.5"]);
        assert_eq!(proxies.client_ip(ip("10.1.1.1"), &headers), ip("1.2.3.4"));
        let garbage = forwarded(&["1.2.3.4, not-an-ip, 10.2.2.2"]);
        assert_eq!(proxies.client_ip(ip("10.1.1.1"), &garbage), ip("10.2.2.2"));
        let all_trusted = forwarded(&["10.9.9.9"]);
        assert_eq!(
            proxies.client_ip(ip("10.1.1.1"), &all_trusted),
            ip("10.9.9.9")
        );
        assert_eq!(
            proxies.client_ip(ip("::ffff:10.1.1.1"), &forwarded(&["2001:db8::1"])),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn refuses_bad_proxy_entries() {
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local".into()]).is_err());
    }
}

//! Sign-in attempts, limited per client IP (every attempt) and per account
//! (failed attempts), in fixed one-minute windows: enough to stop password
//! guessing, never enough to lock an account out for long.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Attempts one client IP may make per window.
pub const ATTEMPTS_PER_IP: u32 = 20;
/// Failed attempts one account may take per window.
pub const FAILURES_PER_ACCOUNT: u32 = 5;
const WINDOW_MS: i64 = 60_000;
/// Past this many tracked names, windows that ended are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// The counters; cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct LoginLimits {
    ips: Mutex<HashMap<IpAddr, Window>>,
    accounts: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: i64,
    count: u32,
}

impl LoginLimits {
    /// Counts an attempt from `ip` for `email`; `Err(seconds)` to wait when
    /// either is over its limit (the attempt is then not made).
    pub fn attempt(&self, ip: IpAddr, email: &str, now_ms: i64) -> Result<(), u64> {
        let ip_wait = count(&self.ips, ip, now_ms, ATTEMPTS_PER_IP, true);
        let account_wait = count(
            &self.accounts,
            email.trim().to_lowercase(),
            now_ms,
            FAILURES_PER_ACCOUNT,
            false,
        );
        match ip_wait.max(account_wait) {
            0 => Ok(()),
            wait => Err(wait),
        }
    }

    /// Counts a failed attempt for `email`.
    pub fn failed(&self, email: &str, now_ms: i64) {
        let Ok(mut accounts) = self.accounts.lock() else {
            return;
        };
        let window = accounts
            .entry(email.trim().to_lowercase())
            .or_insert(Window {
                start_ms: now_ms,
                count: 0,
            });
        if now_ms - window.start_ms >= WINDOW_MS {
            *window = Window {
                start_ms: now_ms,
                count: 0,
            };
        }
        window.count += 1;
    }
}

/// Seconds to wait (0: go ahead) for `name` in `windows`; counts the
/// attempt when `counting`.
fn count<K: std::hash::Hash + Eq>(
    windows: &Mutex<HashMap<K, Window>>,
    name: K,
    now_ms: i64,
    limit: u32,
    counting: bool,
) -> u64 {
    let Ok(mut windows) = windows.lock() else {
        return 0;
    };
    if windows.len() > PRUNE_ABOVE {
        windows.retain(|_, window| now_ms - window.start_ms < WINDOW_MS);
    }
    let window = windows.entry(name).or_insert(Window {
        start_ms: now_ms,
        count: 0,
    });
    if now_ms - window.start_ms >= WINDOW_MS {
        *window = Window {
            start_ms: now_ms,
            count: 0,
        };
    }
    if window.count >= limit {
        let left_ms = WINDOW_MS - (now_ms - window.start_ms);
        return u64::try_from((left_ms + 999) / 1000).unwrap_or(1).max(1);
    }
    if counting {
        window.count += 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const OTHER_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn an_account_is_paused_after_its_failures_whatever_the_ip() {
        let limits = LoginLimits::default();
        for _ in 0..FAILURES_PER_ACCOUNT {
            assert_eq!(limits.attempt(IP, "Ana@example.com", 1_000), Ok(()));
            limits.failed("ana@example.com", 1_000);
        }
        assert_eq!(limits.attempt(OTHER_IP, "ana@example.com", 31_000), Err(30));
        assert_eq!(limits.attempt(OTHER_IP, "bo@example.com", 31_000), Ok(()));
        assert_eq!(limits.attempt(OTHER_IP, "ana@example.com", 61_000), Ok(()));
    }

    #[test]
    fn an_ip_is_paused_after_its_attempts_whatever_the_account() {
        let limits = LoginLimits::default();
        for n in 0..ATTEMPTS_PER_IP {
            assert_eq!(limits.attempt(IP, &format!("u{n}@example.com"), 0), Ok(()));
        }
        assert_eq!(limits.attempt(IP, "new@example.com", 500), Err(60));
        assert_eq!(limits.attempt(OTHER_IP, "new@example.com", 500), Ok(()));
    }
}

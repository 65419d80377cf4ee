//! Rate limits (governor's GCRA): requests and events per key, each with a
//! burst, and failed authentications per client IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sluice_runtime::keys::{KeyLimits, KeyRecord};

use crate::config::RateLimitSettings;

/// The limits, as `Limited::limit` and the rate-limit metric name them.
pub const REQUESTS_LIMIT: &str = "requests";
pub const EVENTS_LIMIT: &str = "events";
pub const FAILED_AUTH_LIMIT: &str = "failed_auth";
pub const LIMITS: [&str; 3] = [REQUESTS_LIMIT, EVENTS_LIMIT, FAILED_AUTH_LIMIT];

type KeyLimiter = governor::DefaultDirectRateLimiter<StateInformationMiddleware>;

/// A key's budget after a request, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the budget is full again.
    pub reset_seconds: u64,
}

/// A request refused by a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// Which limit: `requests`, `events` or `failed_auth`.
    pub limit: &'static str,
    pub retry_after_seconds: u64,
    /// Set when the request can never pass (a batch larger than the burst).
    pub never: bool,
    pub budget: Option<Budget>,
}

/// Every limiter of the gateway.
pub struct RateLimits {
    defaults: RateLimitSettings,
    by_key: RwLock<HashMap<String, Arc<KeyLimiters>>>,
    failed_auth: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

struct KeyLimiters {
    limits: KeyLimits,
    requests: Option<(KeyLimiter, Quota)>,
    events: Option<(KeyLimiter, Quota)>,
}

impl RateLimits {
    pub fn new(defaults: RateLimitSettings) -> Self {
        let failed_auth = NonZeroU32::new(defaults.failed_auth_per_minute)
            .map(|per_minute| RateLimiter::keyed(Quota::per_minute(per_minute)));
        Self {
            defaults,
            by_key: RwLock::default(),
            failed_auth,
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request and `events` events from the key's budget.
    pub fn admit(&self, key: &KeyRecord, events: u32) -> Result<Option<Budget>, Limited> {
        let limiters = self.limiters_of(key);
        let budget = match &limiters.requests {
            Some((limiter, quota)) => match limiter.check() {
                Ok(state) => Some(self.budget(*quota, state.remaining_burst_capacity())),
                Err(not_until) => {
                    return Err(Limited {
                        limit: REQUESTS_LIMIT,
                        retry_after_seconds: self.seconds_until(&not_until),
                        never: false,
                        budget: Some(self.budget(*quota, 0)),
                    });
                }
            },
            None => None,
        };
        if let (Some((limiter, quota)), Some(events)) = (&limiters.events, NonZeroU32::new(events))
        {
            let refused = |retry_after_seconds, never| Limited {
                limit: EVENTS_LIMIT,
                retry_after_seconds,
                never,
                budget: Some(self.budget(*quota, 0)),
            };
            match limiter.check_n(events) {
                Ok(Ok(_)) => {}
                Ok(Err(not_until)) => return Err(refused(self.seconds_until(&not_until), false)),
                Err(_insufficient) => return Err(refused(0, true)),
            }
        }
        Ok(budget)
    }

    /// Counts a failed authentication from `ip`; `Err` once the IP is over
    /// its limit, so guessing keys is slow.
    pub fn failed_auth(&self, ip: IpAddr) -> Result<(), Limited> {
        let Some(limiter) = &self.failed_auth else {
            return Ok(());
        };
        limiter.check_key(&ip).map_err(|not_until| Limited {
            limit: FAILED_AUTH_LIMIT,
            retry_after_seconds: self.seconds_until(&not_until),
            never: false,
            budget: None,
        })
    }

    /// Forgets idle state, so memory follows the active keys and IPs.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.failed_auth {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    fn limiters_of(&self, key: &KeyRecord) -> Arc<KeyLimiters> {
        if let Some(found) = self.by_key.read().ok().and_then(|map| {
            map.get(&key.key_id)
                .filter(|found| found.limits == key.limits)
                .cloned()
        }) {
            return found;
        }
        let made = Arc::new(self.build(key.limits));
        if let Ok(mut map) = self.by_key.write() {
            map.insert(key.key_id.clone(), made.clone());
        }
        made
    }

    fn build(&self, limits: KeyLimits) -> KeyLimiters {
        let d = &self.defaults;
        let limiter = |rate: Option<u32>, burst: Option<u32>, default_rate, default_burst| {
            let rate = NonZeroU32::new(rate.unwrap_or(default_rate))?;
            let burst = NonZeroU32::new(burst.unwrap_or(default_burst)).unwrap_or(rate);
            let quota = Quota::per_second(rate).allow_burst(burst);
            Some((
                RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>(),
                quota,
            ))
        };
        KeyLimiters {
            limits,
            requests: limiter(
                limits.requests_per_second,
                limits.request_burst,
                d.requests_per_second,
                d.request_burst,
            ),
            events: limiter(
                limits.events_per_second,
                limits.event_burst,
                d.events_per_second,
                d.event_burst,
            ),
        }
    }

    fn budget(&self, quota: Quota, remaining: u32) -> Budget {
        let limit = quota.burst_size().get();
        let missing = limit.saturating_sub(remaining);
        let refill = quota.replenish_interval().saturating_mul(missing);
        Budget {
            limit,
            remaining,
            reset_seconds: ceil_seconds(refill),
        }
    }

    fn seconds_until(
        &self,
        not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>,
    ) -> u64 {
        ceil_seconds(not_until.wait_time_from(self.clock.now())).max(1)
    }
}

fn ceil_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use sluice_runtime::keys::Scope;

    use super::*;

    fn settings(
        requests: u32,
        request_burst: u32,
        events: u32,
        event_burst: u32,
    ) -> RateLimitSettings {
        RateLimitSettings {
            requests_per_second: requests,
            request_burst,
            events_per_second: events,
            event_burst,
            failed_auth_per_minute: 2,
        }
    }

    fn key(limits: KeyLimits) -> KeyRecord {
        KeyRecord::for_key(
            "rate-key-123",
            "p",
            vec![Scope::Ingest],
            String::new(),
            limits,
            0,
        )
    }

    #[test]
    fn requests_beyond_the_burst_wait() {
        let limits = RateLimits::new(settings(1, 2, 0, 0));
        let key = key(KeyLimits::default());
        assert_eq!(limits.admit(&key, 1).unwrap().unwrap().remaining, 1);
        assert_eq!(limits.admit(&key, 1).unwrap().unwrap().remaining, 0);
        let refused = limits.admit(&key, 1).unwrap_err();
        assert_eq!(refused.limit, "requests");
        assert_eq!(refused.retry_after_seconds, 1);
        assert!(!refused.never);
    }

    #[test]
    fn events_are_counted_per_event_and_keys_override_defaults() {
        let limits = RateLimits::new(settings(0, 0, 1000, 1000));
        let own = key(KeyLimits {
            events_per_second: Some(10),
            event_burst: Some(10),
            ..KeyLimits::default()
        });
        assert!(limits.admit(&own, 6).is_ok());
        assert_eq!(limits.admit(&own, 6).unwrap_err().limit, "events");
        assert!(limits.admit(&own, 11).unwrap_err().never);
        // Without a request limit there is no budget to report.
        assert_eq!(limits.admit(&own, 4), Ok(None));
    }

    #[test]
    fn failed_auth_is_limited_per_ip() {
        let limits = RateLimits::new(settings(0, 0, 0, 0));
        let (a, b): (IpAddr, IpAddr) = ("1.1.1.1".parse().unwrap(), "2.2.2.2".parse().unwrap());
        assert!(limits.failed_auth(a).is_ok());
        assert!(limits.failed_auth(a).is_ok());
        assert_eq!(limits.failed_auth(a).unwrap_err().limit, "failed_auth");
        assert!(limits.failed_auth(b).is_ok());
    }
}

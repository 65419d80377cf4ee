//! The destinations service: every event that a project's webhook rules
//! match becomes a signed HTTP delivery to that webhook, retried with
//! backoff, dead-lettered after the last attempt, and isolated per
//! destination so one slow receiver never delays another (or ClickHouse
//! ingestion: this service reads the events topic in its own consumer group).
//!
//! Pure parts, each with its tests:
//! - [`rules`]: the rule model, its checks, matching and deterministic sampling.
//! - [`signing`]: Standard Webhooks signatures and secrets.
//! - [`backoff`]: retry delays with jitter, `Retry-After`, which answers are retried.
//! - [`breaker`]: the circuit breaker of one destination.
//! - [`offsets`]: which source offsets may be committed.
//! - [`targets`]: which URLs a webhook may point at (SSRF).

pub mod backoff;
pub mod breaker;
pub mod offsets;
pub mod rules;
pub mod signing;
pub mod targets;

//! Plumbing that the three Sluice services share, kept in one place.
//!
//! - [`auth`]: where a request carries its credential, and the admin token check.
//! - [`access`]: who is asking and what they may do: keys, users, roles, sessions.
//! - [`keys`]: API keys, their scopes and limits, in a tailed Kafka topic.
//! - [`key_admin`]: creating, rotating and revoking keys, for the APIs that do.
//! - [`record_topic`]: configuration records in a compacted topic every instance tails.
//! - [`settings`]: typed settings for Kafka, ClickHouse and telemetry, and the
//!   loader that layers defaults < config file < `SLUICE_*` environment < flags.
//! - [`telemetry`]: `tracing` set-up, text or JSON, and span export over OTLP.
//! - [`trace_context`]: W3C `traceparent` from HTTP requests through Kafka headers.
//! - [`shutdown`]: SIGINT/SIGTERM to a `CancellationToken`, with a drain deadline.
//! - [`supervise`]: background tasks whose failure stops the service, never silently.
//! - [`kafka`]: librdkafka client settings and idempotent topic creation.
//! - [`kafka_security`]: TLS and SASL towards the broker.
//! - [`secret`]: passwords from the environment or a file, never printed.
//! - [`clickhouse`]: the ClickHouse connection (HTTP or HTTPS, user and
//!   password), schema creation, and the readiness probe.
//! - [`rollups`]: the ClickHouse `rollups` row, written by the processor and read
//!   by the query API.
//! - [`progress`]: how far the pipeline has got (partition positions and
//!   watermarks, projects' newest events, late and dead-lettered messages),
//!   written by the processor and read by the query API's `/v1/status`.
//! - [`ops`]: `/health/live`, `/health/ready` and `/metrics`, plus per-route HTTP metrics.
//! - [`http`]: the JSON error body every endpoint answers with, and `serve_http`.
//! - [`docs`]: `/openapi.json`, and `/docs`: Swagger UI over it (vendored, compiled in).

pub mod access;
pub mod auth;
pub mod clickhouse;
pub mod docs;
pub mod http;
pub mod kafka;
pub mod kafka_security;
pub mod key_admin;
pub mod keys;
pub mod ops;
pub mod progress;
pub mod record_topic;
pub mod rollups;
pub mod secret;
pub mod settings;
pub mod shutdown;
pub mod supervise;
pub mod telemetry;
pub mod trace_context;

//! The event model that every Sluice service shares, and nothing else: no IO.
//!
//! Events enter over HTTP (the ingest gateway) or straight into Kafka (direct
//! producers), travel on the events topic as Avro, and land in ClickHouse. This
//! crate holds each of those shapes and the conversions between them:
//!
//! - [`event`]: [`Event`], the enriched record as it travels on the topic.
//! - [`validate`]: JSON input to [`Event`], with a precise error per field.
//! - [`rules`]: the rules on an event's values and their [`Limits`], shared by the JSON
//!   and Avro paths, and [`FieldError`], the rule an event broke.
//! - [`decode`]: a topic value (Avro or JSON) to an [`Event`], as every consumer reads it.
//! - [`avro`]: the Avro single-object codec for topic values (schema in `avro/event.avsc`).
//! - [`ddl`]: the ClickHouse tables, in the SQL subset that 18.16 and current servers
//!   share, plus what [`clickhouse_features`] says a newer server has.
//! - [`rollup`]: windowed rollups: window keys, mergeable aggregates and sketches,
//!   their stored form, and the live topic's message.
//! - [`clickhouse_features`]: a ClickHouse server's version and the features Sluice uses on it.
//! - [`time_format`]: event-time parsing and formatting (RFC 3339 and epoch milliseconds).

pub mod avro;
pub mod clickhouse_features;
pub mod ddl;
pub mod decode;
pub mod event;
pub mod rollup;
pub mod rules;
pub mod time_format;
pub mod validate;

pub use event::{Event, EventOf, EventRef};
pub use rules::{FieldError, Limits};
pub use validate::{FallbackId, Origin};

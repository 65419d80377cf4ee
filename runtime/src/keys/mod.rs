//! API keys: projects, scopes and limits, stored hashed in a Kafka topic that
//! every service reads at startup and then tails.
//!
//! Why a topic: the gateway must authenticate while ClickHouse is down, and
//! every instance must see a revocation within seconds without a database of
//! its own. The keys topic (one partition, compacted, keyed by `key_id`) is
//! the source of truth; each service holds all of it in memory (a record is
//! about 300 bytes, so a million keys fit in a few hundred MB).
//!
//! - [`record`]: one key's record, its digest, scopes and limits.
//! - [`store`]: the in-memory view, its tailing thread, and the writer.
//!
//! Creating, rotating and revoking them is [`crate::key_admin`]'s, above
//! [`crate::access`] (it notes who did it).

pub mod record;
pub mod store;

pub use record::{KeyLimits, KeyRecord, Scope, generate_key};
pub use store::{KeyRefusal, KeyStore, KeyWriter};

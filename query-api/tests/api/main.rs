//! The query API against the real broker and ClickHouse: auth on every
//! endpoint, raw events and their pagination, metrics against ground truth
//! (from raw events and from rollups written by the real pipeline), exports
//! that parse back, and live WebSocket pushes.

mod accounts;
mod auth;
mod common;
mod events;
mod export;
mod live;
mod metrics;
mod outage;
mod secrets;
mod status;

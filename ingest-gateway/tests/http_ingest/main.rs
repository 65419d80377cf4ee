//! The gateway over real HTTP, against the real broker: every endpoint, every
//! auth failure, rate limits, hostile input, and a broker outage.

mod batch;
mod common;
mod conformance;
mod keys;
mod limits;
mod outage;
mod secrets;
mod segment;

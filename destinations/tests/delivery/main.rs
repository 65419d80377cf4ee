//! The destinations service against a private tansu broker and a private
//! ClickHouse (both on free ports, stopped when the test ends) and a real
//! HTTP receiver started by the test.

mod backlog;
mod batch;
mod faults;
mod harness;
mod people;
mod receiver;
mod removal;
mod scale;
mod webhooks;

//! ClickHouse: the connection, the schema and the readiness probe.
//!
//! - [`Connection`]: the URL's transport (HTTP, or HTTPS verified against
//!   the system's roots or `--clickhouse-ca-file`), user and password,
//!   checked when it opens.
//! - [`ensure_schema`] (the processor) creates Sluice's database and tables;
//!   [`await_schema`] (the query API, whose user may only read) waits for
//!   them. Both ask the server its version once; the [`ServerFeatures`] it
//!   returns decide the DDL and whether clients validate rows.
//! - [`judge`] tells a setting to fix ([`Failure::Misconfigured`]: a wrong
//!   password, an untrusted certificate) from an outage to wait out.
//! - [`with_cluster_cause`] says what a cluster's error code means (a
//!   replica without ZooKeeper, a shard that does not answer).
//! - [`watch`] keeps the [`CLICKHOUSE_CHECK`] readiness check current.

mod connection;
mod failure;
mod schema;
mod watch;

pub use connection::Connection;
pub use failure::{Failure, judge, with_cluster_cause};
pub use schema::{await_schema, ensure_schema};
pub use sluice_schemas::clickhouse_features::ServerFeatures;
pub use watch::{CLICKHOUSE_CHECK, watch};

use sluice_schemas::ddl::Database;

use crate::settings::ClickhouseSettings;

/// A client for Sluice's database, through a connection opened for it.
pub fn client(
    settings: &ClickhouseSettings,
    features: ServerFeatures,
) -> anyhow::Result<(clickhouse::Client, Database)> {
    Ok(Connection::open(settings)?.client(features))
}

/// `url` as logs and readiness may show it: without a `user:password@`
/// part, which some users put in the URL.
pub fn shown_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
            match rest[..authority_end].rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{host}{}", &rest[authority_end..]),
                None => url.to_owned(),
            }
        }
        None => match url.rsplit_once('@') {
            // Not a URL, yet it may hold credentials: show only the host.
            Some((_, host)) => format!("[credentials]@{host}"),
            None => url.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_credentials() {
        assert_eq!(
            shown_url("https://reader:s3cret@ch.example.com:8443/?database=x"),
            "https://ch.example.com:8443/?database=x"
        );
        assert_eq!(shown_url("http://127.0.0.1:8123"), "http://127.0.0.1:8123");
        assert_eq!(shown_url("http://h/path@x"), "http://h/path@x");
        assert_eq!(shown_url("reader:s3cret@h:8123"), "[credentials]@h:8123");
    }
}

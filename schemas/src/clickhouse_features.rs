//! What a ClickHouse server can do, decided once from its `SELECT version()`.
//!
//! Sluice is tested against Debian's 18.16 (2018) and a current engine (26.x).
//! Features beyond the common subset are used only where they exist; anything
//! unknown, including a version string that does not parse, gets the subset,
//! which every server since 18.16 accepts.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A server's release, `major.minor` (e.g. 26.9 for "26.9.2.1").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u16,
    pub minor: u16,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("not a ClickHouse version: {0:?} (expected e.g. 26.9.2.1)")]
pub struct InvalidServerVersion(pub String);

impl ServerVersion {
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }
}

impl FromStr for ServerVersion {
    type Err = InvalidServerVersion;

    /// Takes the first two numbers; builds add more (patch, build, "-lts").
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidServerVersion(text.to_owned());
        let mut parts = text.trim().split('.');
        let mut number = || -> Result<u16, InvalidServerVersion> {
            parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(invalid)
        };
        let (major, minor) = (number()?, number()?);
        Ok(Self::new(major, minor))
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// From this release on, the DDL uses `LowCardinality` and `TTL`. Both exist
/// earlier (LowCardinality without its experimental setting since 19.x, TTL
/// since 19.6); 20.3, the first LTS after both, is a line users actually ran.
const MODERN_DDL: ServerVersion = ServerVersion::new(20, 3);

/// From this release on, the `clickhouse` crate validates row structs against
/// the server's column types. The crate supports only releases that still get
/// security fixes; 24.8 (LTS) is older than any of those and newer than the
/// `DESCRIBE TABLE` and `RowBinaryWithNamesAndTypes` shapes it relies on.
/// 18.16 answers `DESCRIBE` with fewer columns, so validation is off there.
const CRATE_VALIDATION: ServerVersion = ServerVersion::new(24, 8);

/// The features Sluice uses beyond the common subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFeatures {
    /// Low-cardinality text columns as `LowCardinality(String)`, not `String`.
    pub low_cardinality: bool,
    /// Retention as a table `TTL`; without it, by dropping day partitions.
    pub ttl: bool,
    /// The crate's row validation (`RowBinaryWithNamesAndTypes`).
    pub row_validation: bool,
    /// The server has the SharedMergeTree engines: it is ClickHouse Cloud,
    /// whose replicas share one storage, turn every MergeTree table into its
    /// Shared variant and replicate DDL themselves (docs/scaling.md). Not in
    /// the version: detected from `system.table_engines`.
    pub shared_merge_tree: bool,
}

impl ServerFeatures {
    /// What every supported server accepts (18.16 and later).
    pub const COMMON_SUBSET: Self = Self {
        low_cardinality: false,
        ttl: false,
        row_validation: false,
        shared_merge_tree: false,
    };

    pub fn of(version: ServerVersion) -> Self {
        Self {
            low_cardinality: version >= MODERN_DDL,
            ttl: version >= MODERN_DDL,
            row_validation: version >= CRATE_VALIDATION,
            shared_merge_tree: false,
        }
    }

    /// Features for the server's `version()` text; the common subset when it
    /// does not parse (with the error, for the log).
    pub fn detect(version: &str) -> (Self, Option<InvalidServerVersion>) {
        match version.parse() {
            Ok(version) => (Self::of(version), None),
            Err(error) => (Self::COMMON_SUBSET, Some(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_strings() {
        assert_eq!("18.16.1".parse(), Ok(ServerVersion::new(18, 16)));
        assert_eq!("26.9.2.1".parse(), Ok(ServerVersion::new(26, 9)));
        assert_eq!(" 24.8 \n".parse(), Ok(ServerVersion::new(24, 8)));
        for garbage in ["", "garbage", "26", "26.x.1", "v26.9", "-1.2", "70000.1"] {
            assert_eq!(
                garbage.parse::<ServerVersion>(),
                Err(InvalidServerVersion(garbage.into())),
                "{garbage:?}"
            );
        }
        assert!(ServerVersion::new(20, 3) > ServerVersion::new(19, 17));
        assert!(ServerVersion::new(26, 9) > ServerVersion::new(24, 12));
    }

    #[test]
    fn old_servers_get_the_common_subset() {
        assert_eq!(
            ServerFeatures::detect("18.16.1"),
            (ServerFeatures::COMMON_SUBSET, None)
        );
        let (features, error) = ServerFeatures::detect("garbage");
        assert_eq!(features, ServerFeatures::COMMON_SUBSET);
        assert!(error.is_some());
    }

    #[test]
    fn current_servers_get_every_feature() {
        let all = ServerFeatures {
            low_cardinality: true,
            ttl: true,
            row_validation: true,
            shared_merge_tree: false,
        };
        assert_eq!(ServerFeatures::detect("26.9.2.1"), (all, None));
        assert_eq!(ServerFeatures::detect("24.8.4.13"), (all, None));
        let between = ServerFeatures::detect("23.8.1").0;
        assert!(between.low_cardinality && between.ttl && !between.row_validation);
    }
}

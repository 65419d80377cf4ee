//! Sluice's development stack, in Rust rather than shell: the broker
//! (tansu), ClickHouse 18.16 and the chdb fixture as plain background
//! processes, with the same guarantees for every caller: `deploy/stack.sh`
//! and `deploy/local.sh` and `deploy/test.sh` (thin wrappers of the
//! `sluice-dev` binary), the benchmarks and the conformance run
//! (`sluice-dev bench`, `sluice-dev conformance`), and testkit, which
//! starts its private brokers and ClickHouse servers through this crate
//! instead of shelling out.
//!
//! - [`settings`]: where the stack lives and listens (`SLUICE_*` variables).
//! - [`components`]: how each component starts, answers and reports its version.
//! - [`local`]: the whole pipeline on this machine (`deploy/local.sh`).
//! - [`stack`]: `up`, `down [--wipe]`, `restart`, `status`, `env`.
//! - [`cluster`]: ZooKeeper and three ClickHouse servers as a replicated,
//!   sharded cluster (`sluice-dev cluster`), with single-member faults.
//! - [`test_matrix`]: every test, once per ClickHouse engine, as CI runs them.
//! - [`bench`]: the benchmark stages of BENCHMARKS.md (`sluice-dev bench`).
//! - [`conformance`]: the OpenAPI conformance run, then [`sdk_check`]'s
//!   real SDKs against the gateway.
//! - [`browser_check`]: the services' pages (`/docs`) in headless chromium.
//! - [`process`]: pid files, liveness, launching in a session, stopping.
//! - [`probe`]: Kafka ApiVersions and HTTP requests, std only.
//! - [`clickhouse_config`]: the one place that writes ClickHouse's config.
//! - [`certificates`]: a throwaway CA and server certificate (openssl).

pub mod bench;
pub mod browser_check;
pub mod certificates;
pub mod clickhouse_config;
pub mod cluster;
pub mod components;
pub mod conformance;
pub mod local;
pub mod probe;
pub mod process;
pub mod sdk_check;
pub mod settings;
pub mod stack;
pub mod test_matrix;

use std::path::PathBuf;

pub use cluster::{Cluster, ClusterSettings, Member};
pub use components::Component;
pub use settings::StackSettings;
pub use stack::Stack;

/// `name` in a directory of PATH, as an executable file.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A tool's cache: `variable` when set, else `~/.cache/sluice/<name>`.
pub fn sluice_cache(variable: &str, name: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| sluice_cache_dir(name), PathBuf::from)
}

/// `~/.cache/sluice/<name>`.
pub fn sluice_cache_dir(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/sluice")
        .join(name)
}

/// The repository this crate was built from.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

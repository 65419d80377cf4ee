//! The SQL that Sluice sends, on the ClickHouse engine this run targets
//! (`deploy/test.sh` runs the suite once per engine): the features detected
//! from its version, each DDL rendering the engine takes, and row validation.

use sluice_runtime::clickhouse::{ServerFeatures, client};
use sluice_schemas::Event;
use sluice_schemas::clickhouse_features::ServerVersion;
use sluice_schemas::ddl::{ClusterName, Database};
use sluice_schemas::time_format::now_ms;
use sluice_stream_processor::sink::{EventRow, EventSink};
use sluice_testkit::{TestEnv, stack};

const ALL_FEATURES: ServerFeatures = ServerFeatures {
    low_cardinality: true,
    ttl: true,
    row_validation: true,
    shared_merge_tree: false,
};

#[test]
fn each_engine_gets_the_features_of_its_version() {
    let stack = stack();
    let version = &stack.clickhouse_version;
    match stack.engine.as_str() {
        "clickhouse-18" => {
            assert!(
                version.starts_with("18."),
                "clickhouse-18 answers {version}"
            );
            assert_eq!(stack.features, ServerFeatures::COMMON_SUBSET);
        }
        "chdb" => {
            let major: u16 = version.split('.').next().unwrap().parse().unwrap();
            assert!(major >= 26, "chdb answers {version}");
            assert_eq!(stack.features, ALL_FEATURES);
        }
        other => eprintln!("engine {other} (version {version}): {:?}", stack.features),
    }
}

/// The services detect what the harness does, the question current servers
/// get about SharedMergeTree (ClickHouse Cloud) included: neither engine
/// here has it.
#[tokio::test]
async fn the_services_detect_the_features_the_harness_expects() {
    let env = TestEnv::new("dialect_features");
    let detected = env.ensure_schema().await;
    assert_eq!(detected, stack().features);
    assert!(!detected.shared_merge_tree);
}

/// The subset must work everywhere (a current server may hold tables created
/// under it); the detected features, with a retention, where they differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_table_takes_rows_in_every_rendering_the_engine_has() {
    let detected = stack().features;
    let mut renderings = vec![("subset", ServerFeatures::COMMON_SUBSET, None)];
    if detected != ServerFeatures::COMMON_SUBSET {
        renderings.push(("detected", detected, Some(30)));
    }
    for (name, features, retention_days) in renderings {
        let env = TestEnv::new(&format!("dialect_{name}"));
        let database = Database::new(&env.clickhouse.database).unwrap();
        let ddl = clickhouse::Client::default()
            .with_url(&env.clickhouse.url)
            .with_validation(false);
        for statement in database.create_statements(features, retention_days) {
            ddl.query(&statement)
                .execute()
                .await
                .unwrap_or_else(|error| {
                    panic!("{name} on {}: {statement}: {error}", stack().engine)
                });
        }

        let (writer, _) = client(&env.clickhouse, detected).unwrap();
        let row = EventRow::new(event(), 3, 42);
        EventSink::new(writer)
            .insert(&[row.clone(), row])
            .await
            .unwrap();
        assert_eq!(env.query_u64("SELECT count() FROM events FINAL").await, 1);

        let reader = env.clickhouse();
        let column_type: String = reader
            .query("SELECT toTypeName(type) FROM events LIMIT 1")
            .fetch_one()
            .await
            .unwrap();
        let expected = if features.low_cardinality {
            "LowCardinality(String)"
        } else {
            "String"
        };
        assert_eq!(column_type, expected, "{name}");
        let create: String = reader
            .query("SHOW CREATE TABLE events")
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(
            create.contains("TTL timestamp + toIntervalDay(30)"),
            features.ttl && retention_days.is_some(),
            "{name}: {create}"
        );
    }
}

/// Without validation, a row type that does not match the column reads as
/// garbage; with it (current servers), the mismatch is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_validation_catches_type_mismatches_where_the_engine_has_it() {
    let env = TestEnv::new("validation");
    env.ensure_schema().await;
    let result = env
        .clickhouse()
        .query("SELECT toInt64(-1)")
        .fetch_one::<u64>()
        .await;
    if stack().features.row_validation {
        let error = result.expect_err("an Int64 column read as u64");
        assert!(error.to_string().contains("Int64"), "{error}");
    } else {
        assert_eq!(result.unwrap(), u64::MAX);
    }
}

/// The cluster DDL, as far as one server can check it: a current engine
/// parses every statement in each rendering (`formatQuery`; running them
/// needs `remote_servers`, macros and ZooKeeper, which only a cluster has).
/// 18.16 has no `formatQuery`: devstack/tests/cluster.rs runs the DDL on a
/// real 18.16 cluster instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_ddl_parses_where_the_engine_can_say() {
    let detected = stack().features;
    let version: ServerVersion = stack().clickhouse_version.parse().unwrap();
    // formatQuery came with 23.10.
    if version < ServerVersion::new(23, 10) {
        eprintln!(
            "engine {} has no formatQuery; devstack/tests/cluster.rs runs the cluster DDL on 18.16",
            stack().engine
        );
        return;
    }
    let env = TestEnv::new("cluster_ddl");
    let database = Database::new(&env.clickhouse.database).unwrap();
    let cluster = ClusterName::new("sluice").unwrap();
    // No default database: the test's own is not created here.
    let reader = clickhouse::Client::default()
        .with_url(&env.clickhouse.url)
        .with_validation(false);
    for features in [ServerFeatures::COMMON_SUBSET, detected] {
        for statement in database.create_cluster_statements(&cluster, features, Some(30)) {
            let formatted: String = reader
                .query("SELECT formatQuerySingleLine(?)")
                .bind(statement.as_str())
                .fetch_one()
                .await
                .unwrap_or_else(|error| panic!("{}: {statement}: {error}", stack().engine));
            assert!(formatted.contains("ON CLUSTER sluice"), "{formatted}");
        }
    }
}

fn event() -> Event {
    Event {
        event_id: "evt-dialect-1".into(),
        project_id: "p1".into(),
        event_type: "page_view".into(),
        timestamp_ms: now_ms() - 1_000,
        received_at_ms: now_ms(),
        user_id: Some("u1".into()),
        session_id: None,
        source: Some("web".into()),
        duration_ms: Some(12.5),
        status: Some("200".into()),
        tags: vec!["a".into(), "b".into()],
        properties: r#"{"path":"/"}"#.into(),
        client_ip: Some("127.0.0.1".into()),
        user_agent: None,
    }
}

//! Exports: every format parses back to the rows the API returns, CSV
//! formulas are escaped, files are named.

use serde_json::{Value, json};
use sluice_query_api::config::QuerySettings;
use sluice_schemas::time_format::now_ms;
use sluice_testkit::TestEnv;

use crate::common::{
    ALL_METRICS, Api, HOUR, all_pages, generate, insert_events, project, read_key,
};

/// A CSV cell as written, without the formula escape.
fn unescape(cell: &str) -> String {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest.to_owned(),
        _ => cell.to_owned(),
    }
}

/// A CSV row as the JSON event it stands for.
fn event_of(header: &csv::StringRecord, record: &csv::StringRecord) -> Value {
    let mut event = serde_json::Map::new();
    for (name, cell) in header.iter().zip(record.iter()) {
        let cell = unescape(cell);
        let value = match name {
            "tags" | "properties" => serde_json::from_str(&cell).unwrap(),
            "duration_ms" if !cell.is_empty() => json!(cell.parse::<f64>().unwrap()),
            _ if cell.is_empty() && !matches!(name, "event_id" | "project_id" | "type") => {
                Value::Null
            }
            _ => json!(cell),
        };
        event.insert(name.to_owned(), value);
    }
    Value::Object(event)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_parse_back_to_the_same_rows() {
    let env = TestEnv::new("qexport");
    env.ensure_schema().await;
    // Small slices, so the files are stitched from several queries.
    let settings = QuerySettings {
        export_slice_rows: 400,
        ..QuerySettings::default()
    };
    let api = Api::start_with(&env, settings).await;
    let p = project(&env, "p");
    let now = now_ms();
    let mut events = generate(&p, 2_500, now - 3 * HOUR, 2 * HOUR, 41);
    let hostile = [
        "=HYPERLINK(\"http://x\")",
        "+1+1",
        "-2",
        "@SUM(A1)",
        "a,b \"c\"\nd",
    ];
    for (event, text) in events.iter_mut().zip(hostile) {
        event.user_id = Some(text.into());
        event.source = Some(text.into());
        event.tags = vec![text.into(), "x,y".into()];
        event.properties = json!({"note": text, "n": -1}).to_string();
    }
    insert_events(&env.clickhouse(), &events).await;
    let key = read_key(&env, &api, &p).await;

    let expected = all_pages(&api, &key, "/v1/events?limit=1000").await;
    assert_eq!(expected.len(), 2_500);

    let json_file = api.get("/v1/export/events?format=json", &key).await;
    assert_eq!(json_file.status, 200);
    assert_eq!(json_file.headers["content-type"], "application/json");
    let disposition = json_file.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"sluice-events-")
            && disposition.ends_with(".json\""),
        "{disposition}"
    );
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&json_file.text).unwrap(),
        expected
    );

    let ndjson = api.get("/v1/export/events?format=ndjson", &key).await;
    let lines: Vec<Value> = ndjson
        .text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines, expected);

    let csv_file = api.get("/v1/export/events?format=csv", &key).await;
    assert!(
        csv_file.headers["content-disposition"]
            .to_str()
            .unwrap()
            .ends_with(".csv\"")
    );
    for formula in ["=HYPERLINK", "+1+1", "-2", "@SUM"] {
        assert!(
            !csv_file.text.contains(&format!(",{formula}")),
            "{formula} escaped"
        );
        assert!(
            csv_file.text.contains(&format!("\"'{formula}")),
            "{formula} escaped"
        );
    }
    let mut reader = csv::Reader::from_reader(csv_file.text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let parsed: Vec<Value> = reader
        .records()
        .map(|r| event_of(&header, &r.unwrap()))
        .collect();
    assert_eq!(parsed, expected);

    let filtered = api
        .get("/v1/export/events?format=ndjson&type=click&tag=beta", &key)
        .await;
    let clicks = expected
        .iter()
        .filter(|e| e["type"] == "click" && e["tags"].as_array().unwrap().contains(&json!("beta")))
        .count();
    assert_eq!(filtered.text.lines().count(), clicks);

    let query = format!(
        "interval=1h&group_by=type,source&metrics={ALL_METRICS}&exact=true&from={}&to={now}",
        now - 4 * HOUR
    );
    let metrics = api.get_ok(&format!("/v1/metrics?{query}"), &key).await;
    let rows = metrics["rows"].as_array().unwrap();
    let file = api
        .get(&format!("/v1/export/metrics?format=json&{query}"), &key)
        .await;
    assert!(
        file.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("sluice-metrics-")
    );
    assert_eq!(
        &serde_json::from_str::<Vec<Value>>(&file.text).unwrap(),
        rows
    );
    let csv_file = api
        .get(&format!("/v1/export/metrics?format=csv&{query}"), &key)
        .await;
    let mut reader = csv::Reader::from_reader(csv_file.text.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        metrics["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect::<Vec<_>>()
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), rows.len());
    for (record, row) in records.iter().zip(rows) {
        assert_eq!(unescape(&record[2]), row["source"].as_str().unwrap());
        assert_eq!(
            record[3].parse::<u64>().unwrap(),
            row["count"].as_u64().unwrap()
        );
    }
}

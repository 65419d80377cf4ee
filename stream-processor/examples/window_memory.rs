//! Measures the memory that open windows take: builds one partition's windows
//! with N distinct window keys and reports the growth of the resident set.
//!
//! `cargo run --release -p sluice-stream-processor --example window_memory -- 1000000 3`
//! (keys, then events per key; each event has a user, a session and a duration).

use sluice_schemas::Event;
use sluice_stream_processor::windows::PartitionWindows;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("a number"));
    let keys = args.next().unwrap_or(1_000_000);
    let per_key = args.next().unwrap_or(3);
    let before = resident_bytes();
    // A lateness of a year keeps every window open.
    let mut windows = PartitionWindows::new(365 * 86_400_000);
    let mut emitted = Vec::new();
    let now = sluice_schemas::time_format::now_ms();
    let mut offset = 0;
    for round in 0..per_key {
        for key in 0..keys {
            let event = Event {
                event_id: format!("e{offset}"),
                project_id: format!("project-{}", key % 100),
                event_type: format!("type-{}", key / 100),
                timestamp_ms: now,
                received_at_ms: now,
                user_id: Some(format!("user-{}", key * 7 + round)),
                session_id: Some(format!("session-{}", key * 3 + round)),
                source: Some("web".into()),
                duration_ms: Some((key % 1_000 + round) as f64),
                status: Some("200".into()),
                tags: vec![],
                properties: "{}".into(),
                client_ip: None,
                user_agent: None,
            };
            windows.add(&event, offset, &[], &mut emitted);
            offset += 1;
        }
    }
    let grown = resident_bytes().saturating_sub(before);
    println!(
        "{} open windows, {per_key} events each: {:.0} MB resident, {:.0} bytes per window \
         (= MB per million windows)",
        windows.open_windows(),
        grown as f64 / 1e6,
        grown as f64 / keys as f64,
    );
}

use super::*;

const T0: i64 = 1_700_000_040_000; // a minute boundary

fn event(n: u64, timestamp_ms: i64) -> Event {
    Event {
        event_id: format!("e{n}"),
        project_id: "p".into(),
        event_type: ["view", "click"][(n % 2) as usize].into(),
        timestamp_ms,
        received_at_ms: timestamp_ms.max(T0 + 3_600_000),
        user_id: Some(format!("u{}", n % 7)),
        session_id: None,
        source: None,
        duration_ms: Some(n as f64),
        status: Some("200".into()),
        tags: vec![],
        // Two values of a rolled-up property, and events without it.
        properties: match n % 3 {
            0 => "{}".into(),
            1 => r#"{"plan":"pro","n":1}"#.into(),
            _ => r#"{"plan":"free"}"#.into(),
        },
        client_ip: None,
        user_agent: None,
    }
}

/// A stream that mostly moves forward, with stragglers that arrive late.
fn stream() -> Vec<Event> {
    (0..400u64)
        .map(|n| {
            let forward = T0 + (n as i64) * 1_000;
            let time = if n % 13 == 5 {
                forward - 150_000
            } else {
                forward
            };
            event(n, time)
        })
        .collect()
}

fn rolled_up() -> Vec<String> {
    vec!["plan".to_owned()]
}

fn run(windows: &mut PartitionWindows, events: &[(i64, Event)], out: &mut Vec<Emitted>) {
    for (offset, event) in events {
        windows.add(event, *offset, &rolled_up(), out);
    }
}

#[test]
fn windows_close_when_the_watermark_passes_their_end() {
    let mut windows = PartitionWindows::new(5_000);
    let mut out = Vec::new();
    windows.add(&event(0, T0 + 1_000), 0, &[], &mut out);
    windows.add(&event(2, T0 + 59_000), 1, &[], &mut out);
    // 64.9 s minus 5 s of lateness is still inside the first minute.
    windows.add(&event(4, T0 + 64_900), 2, &[], &mut out);
    assert!(out.is_empty());
    windows.add(&event(6, T0 + 65_000), 3, &[], &mut out);
    assert_eq!(out.len(), 1);
    let closed = &out[0];
    assert!(!closed.is_correction);
    assert_eq!((closed.partial.seq, closed.partial.aggregate.count), (0, 2));
    assert_eq!(closed.partial.key.minute as i64 * 1000, T0);
    assert_eq!(windows.open_windows(), 1);
}

#[test]
fn late_events_become_corrections_at_the_next_minute_or_marker() {
    let mut windows = PartitionWindows::new(0);
    let mut out = Vec::new();
    windows.add(&event(0, T0), 0, &[], &mut out);
    windows.add(&event(2, T0 + 61_000), 1, &[], &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        windows.add(&event(4, T0 + 10), 2, &[], &mut out),
        Placement::Late
    );
    assert_eq!(
        windows.add(&event(6, T0 + 20), 3, &[], &mut out),
        Placement::Late
    );
    assert_eq!(out.len(), 1, "corrections wait");
    windows.apply_marker(T0 + 62_000, &mut out);
    assert_eq!(out.len(), 2);
    let correction = &out[1];
    assert!(correction.is_correction);
    assert_eq!(
        (correction.partial.seq, correction.partial.aggregate.count),
        (2, 2)
    );
    // The marker did not reach the end of the second minute.
    assert_eq!(windows.open_windows(), 1);
    windows.apply_marker(T0 + 120_000, &mut out);
    assert_eq!(out.len(), 3);
    assert!(!windows.has_pending());
}

#[test]
fn every_event_is_emitted_exactly_once() {
    let events: Vec<(i64, Event)> = stream()
        .into_iter()
        .enumerate()
        .map(|(o, e)| (o as i64, e))
        .collect();
    let mut windows = PartitionWindows::new(10_000);
    let mut out = Vec::new();
    run(&mut windows, &events, &mut out);
    windows.apply_marker(i64::MAX / 2, &mut out);
    let count = |value: Option<&str>| {
        out.iter()
            .filter(|e| e.partial.property.as_ref().map(|p| p.value.as_str()) == value)
            .map(|e| e.partial.aggregate.count)
            .sum::<u64>()
    };
    assert_eq!(count(None), 400);
    // Each event once more under its value of the rolled-up property.
    assert_eq!(
        (count(Some("")), count(Some("pro")), count(Some("free"))),
        (134, 133, 133)
    );
    assert!(out.iter().any(|e| e.is_correction));
    let mut ids: Vec<(WindowKey, Option<PropertyValue>, u64)> = out
        .iter()
        .map(|e| {
            (
                e.partial.key.clone(),
                e.partial.property.clone(),
                e.partial.seq,
            )
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), out.len(), "row keys are unique");
}

/// A restart from a checkpoint taken after any message emits exactly what an
/// uninterrupted run emits from there on.
#[test]
fn resuming_from_any_checkpoint_is_identical() {
    let events: Vec<(i64, Event)> = stream()
        .into_iter()
        .enumerate()
        .map(|(o, e)| (o as i64, e))
        .collect();
    let mut reference = PartitionWindows::new(10_000);
    let mut all = Vec::new();
    let mut emitted_before = Vec::new();
    for (offset, event) in &events {
        emitted_before.push(all.len());
        reference.add(event, *offset, &rolled_up(), &mut all);
    }
    for cut in (0..events.len()).step_by(7) {
        let mut first = PartitionWindows::new(10_000);
        let mut out = Vec::new();
        run(&mut first, &events[..cut], &mut out);
        let mut bytes = Vec::new();
        first.encode(&mut bytes);
        let mut resumed = PartitionWindows::decode(&bytes).unwrap();
        run(&mut resumed, &events[cut..], &mut out);
        assert_eq!(out.len(), all.len(), "cut {cut}");
        for (a, b) in out.iter().zip(&all) {
            assert_eq!(
                (
                    &a.partial.key,
                    &a.partial.property,
                    a.partial.seq,
                    &a.partial.aggregate
                ),
                (
                    &b.partial.key,
                    &b.partial.property,
                    b.partial.seq,
                    &b.partial.aggregate
                ),
                "cut {cut}"
            );
        }
    }
    assert!(PartitionWindows::decode(&[9]).is_err());
}

/// Checkpoints written before property partials existed (version 1) still
/// resume.
#[test]
fn version_one_states_decode() {
    let mut windows = PartitionWindows::new(10_000);
    let mut out = Vec::new();
    windows.add(&event(1, T0), 7, &[], &mut out);
    let partial = windows
        .open
        .values()
        .next()
        .unwrap()
        .values()
        .next()
        .unwrap();
    let mut bytes = vec![1];
    put_zigzag(&mut bytes, 10_000);
    put_zigzag(&mut bytes, windows.watermark_ms);
    put_varint(&mut bytes, 1);
    for text in ["p", "click", "", "200"] {
        put_text(&mut bytes, text);
    }
    put_varint(&mut bytes, u64::from(partial.key.minute));
    put_varint(&mut bytes, 7);
    partial.aggregate.encode(&mut bytes);
    put_varint(&mut bytes, 0);
    let decoded = PartitionWindows::decode(&bytes).unwrap();
    assert_eq!(decoded, windows);
}

#[test]
fn live_sees_each_change_once() {
    let mut windows = PartitionWindows::new(60_000);
    let mut out = Vec::new();
    windows.add(&event(0, T0), 0, &[], &mut out);
    windows.add(&event(1, T0), 1, &[], &mut out);
    let mut seen = Vec::new();
    windows.drain_dirty(|partial| seen.push(partial.aggregate.count));
    windows.drain_dirty(|partial| seen.push(partial.aggregate.count));
    assert_eq!(seen, [1, 1]);
}

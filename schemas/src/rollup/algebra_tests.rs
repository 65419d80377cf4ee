//! The algebra the pipeline relies on, checked on random events: merging is
//! associative and commutative, partials merge into the whole, and a replay
//! from a stored state reaches the same result.

use proptest::prelude::*;

use super::{Aggregate, Contribution, Granularity, WindowKey, merge_by_bucket};

#[derive(Debug, Clone)]
struct Event {
    user: Option<u16>,
    session: Option<u16>,
    duration_ms: Option<f64>,
}

fn event() -> impl Strategy<Value = Event> {
    (
        proptest::option::of(0u16..500),
        proptest::option::of(0u16..2_000),
        proptest::option::of(prop_oneof![Just(0.0), 0.0f64..1e7, 0.0f64..2.0]),
    )
        .prop_map(|(user, session, duration_ms)| Event {
            user,
            session,
            duration_ms,
        })
}

fn build(events: &[Event]) -> Aggregate {
    let mut aggregate = Aggregate::default();
    for event in events {
        let user = event.user.map(|u| format!("user-{u}"));
        let session = event.session.map(|s| format!("session-{s}"));
        aggregate.add(Contribution {
            user_id: user.as_deref(),
            session_id: session.as_deref(),
            duration_ms: event.duration_ms,
        });
    }
    aggregate
}

fn merged(a: &Aggregate, b: &Aggregate) -> Aggregate {
    let mut out = a.clone();
    out.merge(b);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merge_is_associative_and_commutative(
        a in prop::collection::vec(event(), 0..200),
        b in prop::collection::vec(event(), 0..200),
        c in prop::collection::vec(event(), 0..200),
    ) {
        let (a, b, c) = (build(&a), build(&b), build(&c));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&a, &Aggregate::default()), a);
    }

    /// Partials (e.g. one per Kafka partition, stored and read back) merge into
    /// exactly the aggregate of all their events.
    #[test]
    fn partials_merge_into_the_whole(
        events in prop::collection::vec(event(), 0..3_000),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(events.len() + 1)).collect();
        bounds.extend([0, events.len()]);
        bounds.sort_unstable();
        let mut total = Aggregate::default();
        for pair in bounds.windows(2) {
            let part = build(&events[pair[0]..pair[1]]);
            let stored = Aggregate::from_bytes(&part.to_bytes()).unwrap();
            total.merge(&stored);
        }
        let whole = build(&events);
        prop_assert_eq!(total.to_bytes(), whole.to_bytes());
        // Up to hll::EXACT_MAX distinct ids, uniques are exact.
        let distinct = |id: fn(&Event) -> Option<u16>| {
            events.iter().filter_map(id).collect::<std::collections::BTreeSet<_>>().len() as u64
        };
        prop_assert_eq!(total.summary().users, distinct(|e| e.user));
        prop_assert_eq!(total.summary().sessions, distinct(|e| e.session));
        prop_assert_eq!(total, whole);
    }

    /// A processor that stored its state after any prefix and replays the rest
    /// ends where one that never stopped ends.
    #[test]
    fn replay_from_any_prefix_is_consistent(
        events in prop::collection::vec(event(), 1..1_500),
        at in any::<prop::sample::Index>(),
    ) {
        let cut = at.index(events.len());
        let stored = build(&events[..cut]).to_bytes();
        let mut resumed = Aggregate::from_bytes(&stored).unwrap();
        let rest = build(&events[cut..]);
        resumed.merge(&rest);
        prop_assert_eq!(resumed, build(&events));
    }

    /// Buckets merged from minutes equal buckets built from the events.
    #[test]
    fn coarser_buckets_merge_exactly(
        minutes in prop::collection::vec((0u32..180, event()), 0..400),
    ) {
        let key = |minute: u32| WindowKey {
            project_id: "p".into(),
            minute: 1_700_000_040 + minute * 60,
            event_type: "t".into(),
            source: String::new(),
            status: String::new(),
        };
        let per_minute: Vec<(WindowKey, Aggregate)> = minutes
            .iter()
            .map(|(minute, event)| (key(*minute), build(std::slice::from_ref(event))))
            .collect();
        for granularity in [Granularity::FiveMinutes, Granularity::Hour] {
            let buckets = merge_by_bucket(per_minute.iter().map(|(k, a)| (k, a)), granularity);
            for (bucket, aggregate) in &buckets {
                let events: Vec<Event> = minutes
                    .iter()
                    .filter(|(m, _)| key(*m).coarsen(granularity) == *bucket)
                    .map(|(_, e)| e.clone())
                    .collect();
                prop_assert_eq!(aggregate, &build(&events));
            }
            let total: u64 = buckets.values().map(|a| a.count).sum();
            prop_assert_eq!(total, minutes.len() as u64);
        }
    }
}

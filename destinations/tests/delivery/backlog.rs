//! The backlog of the SIGKILL tests: orders for a slow webhook, signups for
//! a flaky one (so that retries are pending at the kill) and events that
//! match neither; and what the tests check after the kill.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use sluice_schemas::Event;
use sluice_testkit::eventually;
use sluice_testkit::processes::Printing;

use crate::harness::{PrivateStack, committed, create, event_id, ids, named};
use crate::receiver::{Received, Receiver};

pub struct Backlog {
    pub orders: Vec<Event>,
    signups: Vec<Event>,
    /// Where each order was written: partition and offset.
    offset_of: HashMap<String, (i32, i64)>,
}

/// What the group had done when an instance was killed.
pub struct AtKill {
    pub committed: HashMap<i32, i64>,
    /// The orders the receiver had got.
    pub delivered: HashSet<String>,
}

impl Backlog {
    /// Creates the slow webhook (orders) and the flaky one (signups, each
    /// attempt of which fails twice first) through the API at `hooks`.
    pub async fn webhooks(
        client: &reqwest::Client,
        hooks: &str,
        receiver: SocketAddr,
    ) -> [String; 2] {
        let mut ids = Vec::new();
        for (path, rule) in [("slow", "order"), ("flaky", "signup")] {
            let url = format!("http://{receiver}/{path}");
            let body = json!({"project_id": "shop", "url": url, "rules": [{"type": rule}]});
            ids.push(create(client, hooks, body).await);
        }
        ids.try_into().expect("two webhooks")
    }

    /// Writes `orders` orders, 20 signups and 50 unmatched events.
    pub async fn send(stack: &PrivateStack, orders: usize) -> Self {
        let producer = stack.producer();
        let (orders, signups) = (named("order", orders), named("signup", 20));
        let offsets = stack.send(&producer, &orders).await;
        stack.send(&producer, &signups).await;
        stack.send(&producer, &named("page_view", 50)).await;
        let offset_of = orders
            .iter()
            .map(|e| e.event_id.clone())
            .zip(offsets)
            .collect();
        Self {
            orders,
            signups,
            offset_of,
        }
    }

    /// The partitions the orders were written to.
    pub fn partitions(&self) -> HashSet<i32> {
        self.offset_of.values().map(|&(p, _)| p).collect()
    }

    /// Once `delivered` orders arrived and `group` committed some offset,
    /// SIGKILLs `service`; what was committed and delivered then.
    pub async fn kill_midway(
        &self,
        (stack, group): (&PrivateStack, &str),
        receiver: &Receiver,
        delivered: usize,
        service: &mut Printing,
    ) -> AtKill {
        let patience = Duration::from_secs(180);
        eventually("part of the backlog delivered", patience, || async {
            Some(()).filter(|()| receiver.received("slow").len() >= delivered)
        })
        .await;
        eventually("a commit", patience, || async {
            Some(()).filter(|()| committed(stack, group).values().any(|&o| o > 0))
        })
        .await;
        service.signal("KILL");
        assert_eq!(
            service.exit_code_within(Duration::from_secs(60)).await,
            Some(None),
            "killed by the signal"
        );
        let at_kill = AtKill {
            committed: committed(stack, group),
            delivered: receiver.received("slow").iter().map(event_id).collect(),
        };
        assert!(
            at_kill.delivered.len() < self.orders.len(),
            "the backlog was not finished at the kill"
        );
        at_kill
    }

    /// Waits until every order arrived and every signup was answered 200;
    /// the requests for orders.
    pub async fn all_arrived(&self, receiver: &Receiver, patience: Duration) -> Vec<Received> {
        let expected = ids(&self.orders);
        let received = eventually("every order delivered", patience, || async {
            let received = receiver.received("slow");
            let ids: HashSet<String> = received.iter().map(event_id).collect();
            Some(received).filter(|_| ids.is_superset(&expected))
        })
        .await;
        eventually("every signup answered 200", patience, || async {
            let mut attempts: HashMap<String, usize> = HashMap::new();
            for received in receiver.received("flaky") {
                *attempts.entry(event_id(&received)).or_default() += 1;
            }
            // The receiver answers 200 from the third attempt of a delivery on.
            let answered = |e: &Event| attempts.get(&e.event_id) >= Some(&3);
            Some(()).filter(|()| self.signups.iter().all(answered))
        })
        .await;
        received
    }

    /// The orders sent more than once among `received`, after checking
    /// that nothing unmatched arrived and that each repeat lies at or after
    /// the offset committed at the kill (the documented redelivery window).
    pub fn repeats(&self, received: &[Received], at_kill: &AtKill) -> Vec<String> {
        let mut copies: HashMap<String, usize> = HashMap::new();
        for delivery in received {
            *copies.entry(event_id(delivery)).or_default() += 1;
        }
        assert_eq!(copies.len(), self.orders.len(), "nothing unmatched arrived");
        let repeats: Vec<String> = copies
            .into_iter()
            .filter(|&(_, count)| count > 1)
            .map(|(id, _)| id)
            .collect();
        let committed = &at_kill.committed;
        for id in &repeats {
            let (partition, offset) = self.offset_of[id];
            assert!(
                offset >= committed[&partition],
                "{id} at {partition}/{offset} was committed ({committed:?}) yet sent again"
            );
        }
        repeats
    }
}

//! Minimal reproductions of tansu 0.6.0's faults with bare rdkafka clients,
//! without any Sluice service: each scenario starts a private tansu (sqlite
//! engine, `deploy/stack.sh`), runs plain consumers or producers against it
//! and prints what the broker did. docs/failure-modes.md quotes the output.
//!
//! ```sh
//! cargo run -p sluice-testkit --example tansu_faults -- restart-within-session
//! cargo run -p sluice-testkit --example tansu_faults -- survivor
//! cargo run -p sluice-testkit --example tansu_faults -- idempotent-restart
//! ```
//!
//! `member GROUP TOPIC BROKERS` is one group member in a process of its own,
//! so that a scenario can SIGKILL it; it prints its assignment as it changes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_testkit::PrivateBroker;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PARTITIONS: i32 = 4;
const SESSION_TIMEOUT_MS: &str = "10000";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["member", group, topic, brokers] => member(group, topic, brokers),
        ["restart-within-session"] => restart_within_session().await,
        ["survivor"] => survivor().await,
        ["idempotent-restart"] => {
            idempotent_restart(true).await?;
            idempotent_restart(false).await
        }
        _ => anyhow::bail!(
            "usage: tansu_faults restart-within-session | survivor | idempotent-restart"
        ),
    }
}

/// A consumer group member that prints `assigned [..]` whenever its
/// assignment changes, until killed.
fn member(group: &str, topic: &str, brokers: &str) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("session.timeout.ms", SESSION_TIMEOUT_MS)
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut last = None;
    loop {
        let _ = consumer.poll(Duration::from_millis(200));
        let assigned: Vec<i32> = consumer
            .assignment()?
            .elements()
            .iter()
            .map(|p| p.partition())
            .collect();
        if last.as_ref() != Some(&assigned) {
            println!("assigned {assigned:?}");
            last = Some(assigned);
        }
    }
}

/// A member process, and its output lines as they come.
struct Member {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    name: &'static str,
}

impl Member {
    fn start(name: &'static str, group: &str, topic: &str, brokers: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["member", group, topic, brokers])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (send, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = send.send(line);
            }
        });
        Ok(Self { child, lines, name })
    }

    /// Prints what it reports for `how_long`, from `clock`; returns the last
    /// assignment it reported.
    async fn watch(&mut self, how_long: Duration, clock: Instant) -> String {
        let until = tokio::time::Instant::now() + how_long;
        let mut last = String::from("(nothing)");
        while let Ok(Some(line)) = tokio::time::timeout_at(until, self.lines.recv()).await {
            println!(
                "  {:>5.1} s  {}: {line}",
                clock.elapsed().as_secs_f64(),
                self.name
            );
            last = line;
        }
        last
    }

    async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }
}

async fn create_topic(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let topic = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    admin
        .create_topics(&[topic], &AdminOptions::new())
        .await?
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|(topic, code)| anyhow::anyhow!("{topic}: {code}"))?;
    Ok(())
}

/// Bug 1: a member SIGKILLed, and a new one started 3 s later, within the
/// dead member's 10 s session.
async fn restart_within_session() -> anyhow::Result<()> {
    let broker = PrivateBroker::start();
    let brokers = broker.brokers();
    create_topic(&brokers, "faults").await?;
    let clock = Instant::now();
    println!("restart-within-session: member A alone, SIGKILLed, member B started 3 s later");
    let mut first = Member::start("A", "g1", "faults", &brokers)?;
    first.watch(Duration::from_secs(8), clock).await;
    first.kill().await?;
    println!("  {:>5.1} s  A: SIGKILL", clock.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut second = Member::start("B", "g1", "faults", &brokers)?;
    let last = second.watch(Duration::from_secs(45), clock).await;
    println!("restart-within-session: B's assignment after 45 s: {last}");
    second.kill().await
}

/// Bug 2: two members, one SIGKILLed; does the survivor take its partitions?
async fn survivor() -> anyhow::Result<()> {
    let broker = PrivateBroker::start();
    let brokers = broker.brokers();
    create_topic(&brokers, "faults").await?;
    let clock = Instant::now();
    println!("survivor: members A and B, then A SIGKILLed");
    let mut first = Member::start("A", "g2", "faults", &brokers)?;
    first.watch(Duration::from_secs(6), clock).await;
    let mut second = Member::start("B", "g2", "faults", &brokers)?;
    second.watch(Duration::from_secs(12), clock).await;
    first.watch(Duration::ZERO, clock).await;
    first.kill().await?;
    println!("  {:>5.1} s  A: SIGKILL", clock.elapsed().as_secs_f64());
    let last = second.watch(Duration::from_secs(60), clock).await;
    println!("survivor: B's assignment 60 s after A died: {last}");
    second.kill().await
}

/// Bug 3: a producer sending to every partition through a broker outage
/// longer than its message timeout, with and without idempotence.
async fn idempotent_restart(idempotence: bool) -> anyhow::Result<()> {
    let broker = PrivateBroker::start();
    let brokers = broker.brokers();
    create_topic(&brokers, "faults").await?;
    println!(
        "idempotent-restart: enable.idempotence={idempotence}; broker down from 3 s to 11 s (message.timeout.ms=5000)"
    );
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("enable.idempotence", idempotence.to_string())
        .set("message.timeout.ms", "5000")
        .set("linger.ms", "5")
        .create()?;
    let clock = Instant::now();
    let (mut stopped, mut restarted) = (false, false);
    let (mut acked, mut failed) = (0u32, 0u32);
    let mut first_ack_after_restart = None;
    let mut last_error = String::new();
    while clock.elapsed() < Duration::from_secs(40) {
        if !stopped && clock.elapsed() > Duration::from_secs(3) {
            broker.stop();
            stopped = true;
            println!("  {:>5.1} s  broker stopped", clock.elapsed().as_secs_f64());
        }
        if !restarted && clock.elapsed() > Duration::from_secs(11) {
            broker.restart();
            restarted = true;
            println!("  {:>5.1} s  broker started", clock.elapsed().as_secs_f64());
        }
        // 100 messages over the four partitions, in flight together.
        let sends: Vec<_> = (0..100)
            .map(|n| {
                let key = format!("k{n}");
                let record = FutureRecord::to("faults").key(&key).payload("v");
                producer.send_result(record).map_err(|(error, _)| error)
            })
            .collect();
        for send in sends {
            match send {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => {
                        acked += 1;
                        if restarted && first_ack_after_restart.is_none() {
                            first_ack_after_restart = Some(clock.elapsed());
                        }
                    }
                    Ok(Err((error, _))) => {
                        failed += 1;
                        last_error = error.to_string();
                    }
                    Err(_) => failed += 1,
                },
                Err(error) => {
                    failed += 1;
                    last_error = error.to_string();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "idempotent-restart: enable.idempotence={idempotence}: {acked} acked, {failed} failed (last error: {last_error}); first ack after the restart at {}",
        first_ack_after_restart.map_or("never".to_owned(), |at| format!(
            "{:.1} s",
            at.as_secs_f64()
        ))
    );
    let log = std::fs::read_to_string(broker.log_path()).unwrap_or_default();
    for line in log.lines().filter(|line| line.contains("panicked")) {
        println!("  broker log: {line}");
    }
    Ok(())
}

//! Per-destination isolation: each webhook has its own bounded queue, its
//! own workers (at most `--destination-concurrency` requests in flight) and
//! its own circuit breaker. Handing a delivery over never waits on a
//! receiver: when a queue is full, the delivery is parked in the retry
//! topic instead, so a dead or slow endpoint holds at most its queue in
//! memory and never delays another destination or the consumer.
//!
//! In batch mode ([`crate::batch`]) a worker that takes a fresh delivery
//! gathers more from the queue before it sends, so each in-flight slot
//! holds up to `max_events` deliveries: a destination holds at most
//! `queue_capacity + concurrency * max_events` events in memory. The queue
//! is bounded in events, not jobs, so that batches coming back from the
//! retry topic keep that bound (an event is at most 32 KiB either way). A
//! batch is one attempt for the circuit breaker; its metrics count events.
//!
//! A webhook deleted or disabled keeps nothing here: a delivery for it is
//! settled (its offset released) without an attempt, and its worker, once
//! idle, takes its destination out of the map, settles what is still
//! queued, waits for its attempts in flight and drops the webhook's
//! metric series.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_runtime::record_topic::RecordStore;
use sluice_schemas::time_format::now_ms;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backoff::{Backoff, Outcome, random_unit};
use crate::batch::{gather, joins_batches};
use crate::breaker::{Breaker, BreakerState, Permit};
use crate::deliveries_log::{DeliveryLog, LogRow};
use crate::delivery::Delivery;
use crate::metrics::{DestinationMetrics, OutcomeLabels, ParkLabels};
use crate::offsets::Pending;
use crate::sender::Sender;
use crate::spool::Spool;
use crate::webhook::WebhookRecord;

/// How long a delivery that found its queue full waits in the retry topic.
const QUEUE_FULL_PAUSE: Duration = Duration::from_secs(1);

/// How long a worker waits for a job before it checks that its webhook is
/// still active.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Parks of deliveries that met an open circuit that may wait for the
/// broker's ack at once. The consumer waits only when this many are
/// unacknowledged (the broker, not a receiver, is slow); one at a time, it
/// was held to one park per broker round trip while any circuit was open.
const PARKS_IN_FLIGHT: usize = 1024;

/// A delivery and the source offsets it holds back until it is settled:
/// one, or for a batch formed here, one per member (a batch read back from
/// the retry topic holds its record's one offset).
pub struct Job {
    pub delivery: Delivery,
    pub pending: Vec<Pending>,
}

impl Job {
    /// The batch of `jobs` (fresh deliveries of `webhook_id`), holding all
    /// their offsets, settled together when the batch is.
    fn batch(webhook_id: &str, jobs: Vec<Job>) -> Self {
        let (members, pending): (Vec<Delivery>, Vec<Vec<Pending>>) = jobs
            .into_iter()
            .map(|job| (job.delivery, job.pending))
            .unzip();
        Self {
            delivery: Delivery::batch_of(webhook_id, &members, now_ms()),
            pending: pending.into_iter().flatten().collect(),
        }
    }

    fn settle(self) {
        for pending in self.pending {
            pending.settle();
        }
    }
}

/// Limits and schedules of the destinations.
#[derive(Debug, Clone)]
pub struct DispatchLimits {
    pub queue_capacity: usize,
    pub concurrency: usize,
    pub backoff: Backoff,
    pub breaker_threshold: u32,
    pub breaker_pause: Duration,
    /// The longest pause of a breaker that keeps failing its trials.
    pub breaker_max_pause: Duration,
}

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

/// What the dispatcher works with: where webhooks, attempts, parked
/// deliveries, the log and the metrics go, and when to stop.
pub struct DispatchParts {
    pub webhooks: RecordStore<WebhookRecord>,
    pub sender: Sender,
    pub spool: Spool,
    pub log: DeliveryLog,
    pub metrics: DestinationMetrics,
    pub limits: DispatchLimits,
    pub shutdown: CancellationToken,
}

struct Inner {
    destinations: Mutex<HashMap<String, Destination>>,
    parts: DispatchParts,
    tasks: TaskTracker,
    /// Permits for [`PARKS_IN_FLIGHT`].
    parking: Arc<Semaphore>,
}

#[derive(Clone)]
struct Destination {
    queue: mpsc::Sender<Job>,
    /// Events in the queue: a batch counts its members.
    queued: Arc<AtomicUsize>,
    breaker: Arc<Mutex<Breaker>>,
}

impl Dispatcher {
    pub fn new(parts: DispatchParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                destinations: Mutex::default(),
                parts,
                tasks: TaskTracker::new(),
                parking: Arc::new(Semaphore::new(PARKS_IN_FLIGHT)),
            }),
        }
    }

    /// Hands `job` to its destination's queue, or parks it in the retry
    /// topic when the queue is full or the circuit open. Never waits on a
    /// receiver.
    pub async fn dispatch(&self, job: Job) {
        let webhook_id = job.delivery.webhook_id.clone();
        if !self.is_active(&webhook_id) {
            // Deleted or disabled since the match (or since it was parked):
            // nothing to deliver, and no destination to keep for it.
            job.settle();
            return;
        }
        let destination = self.destination(&webhook_id);
        let reopens_at = destination
            .breaker
            .lock()
            .ok()
            .and_then(|b| b.reopens_at(Instant::now()));
        if let Some(at) = reopens_at {
            // Straight back to the retry topic, until the next trial,
            // rather than through the queue (and a park for a full one).
            let wait = at.saturating_duration_since(Instant::now());
            self.park_in_background(job, now_ms() + wait.as_millis() as i64, "circuit_open")
                .await;
            return;
        }
        let events = job.delivery.events();
        let queued = destination.queued.fetch_add(events, Ordering::Relaxed);
        // A batch larger than the whole queue still goes into an empty one.
        let full = queued > 0 && queued + events > self.inner.parts.limits.queue_capacity;
        let sent = if full {
            Err(job)
        } else {
            destination.queue.try_send(job).map_err(|e| e.into_inner())
        };
        match sent {
            Ok(()) => {
                self.depth(&webhook_id).inc_by(events as i64);
            }
            Err(job) => {
                destination.queued.fetch_sub(events, Ordering::Relaxed);
                // Awaited: a receiver that is alive but slower than the
                // consumer would otherwise have most of its deliveries parked
                // and read back every second (measured: half the deliveries
                // per second while draining a backlog).
                let due = now_ms() + QUEUE_FULL_PAUSE.as_millis() as i64;
                self.park(job, due, "queue_full").await;
            }
        }
    }

    /// The circuit state of a destination, as the API and metrics show it.
    pub fn circuit(&self, webhook_id: &str) -> BreakerState {
        self.lock()
            .get(webhook_id)
            .and_then(|d| d.breaker.lock().ok().map(|b| b.state(Instant::now())))
            .unwrap_or(BreakerState::Closed)
    }

    /// Waits for the attempts in flight to end, up to `limit`.
    pub async fn drain(&self, limit: Duration) {
        self.inner.tasks.close();
        let _ = tokio::time::timeout(limit, self.inner.tasks.wait()).await;
    }

    fn is_active(&self, webhook_id: &str) -> bool {
        self.inner
            .parts
            .webhooks
            .get(webhook_id)
            .is_some_and(|webhook| webhook.is_active())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Destination>> {
        self.inner
            .destinations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn depth(&self, webhook_id: &str) -> prometheus_client::metrics::gauge::Gauge {
        self.inner
            .parts
            .metrics
            .queue_depth
            .get_or_create(&DestinationMetrics::webhook(webhook_id))
            .clone()
    }

    fn destination(&self, webhook_id: &str) -> Destination {
        let mut destinations = self.lock();
        if let Some(destination) = destinations.get(webhook_id) {
            return destination.clone();
        }
        let limits = &self.inner.parts.limits;
        let (queue, jobs) = mpsc::channel(limits.queue_capacity.max(1));
        let destination = Destination {
            queue,
            queued: Arc::default(),
            breaker: Arc::new(Mutex::new(Breaker::new(
                limits.breaker_threshold,
                limits.breaker_pause,
                limits.breaker_max_pause,
            ))),
        };
        destinations.insert(webhook_id.to_owned(), destination.clone());
        let metrics = &self.inner.parts.metrics;
        metrics.destinations.set(destinations.len() as i64);
        let worker = self.clone();
        let breaker = destination.breaker.clone();
        let queued = destination.queued.clone();
        let id = webhook_id.to_owned();
        self.inner
            .tasks
            .spawn(async move { worker.work(id, jobs, queued, breaker).await });
        destination
    }

    /// One destination's life: takes jobs until shutdown or until its
    /// webhook is gone; then, once its attempts in flight have ended, drops
    /// its metric series.
    async fn work(
        self,
        webhook_id: String,
        jobs: mpsc::Receiver<Job>,
        queued: Arc<AtomicUsize>,
        breaker: Arc<Mutex<Breaker>>,
    ) {
        let concurrency = self.inner.parts.limits.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let retired = self
            .take_jobs(&webhook_id, jobs, &queued, &breaker, &slots)
            .await;
        if !retired {
            return;
        }
        let shutdown = &self.inner.parts.shutdown;
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = slots.acquire_many(concurrency as u32) => {}
        }
        self.forget(&webhook_id);
    }

    /// Takes the destination of `webhook_id` out of the map, if `queued` is
    /// still its: the queue closes once the dispatches under way are done,
    /// and the worker settles what is left in it.
    fn retire(&self, webhook_id: &str, queued: &Arc<AtomicUsize>) {
        let mut destinations = self.lock();
        if destinations
            .get(webhook_id)
            .is_some_and(|d| Arc::ptr_eq(&d.queued, queued))
        {
            destinations.remove(webhook_id);
            let metrics = &self.inner.parts.metrics;
            metrics.destinations.set(destinations.len() as i64);
        }
    }

    /// Drops the metric series of a retired webhook, unless it came back
    /// (enabled again) and has a destination anew.
    fn forget(&self, webhook_id: &str) {
        let destinations = self.lock();
        if !destinations.contains_key(webhook_id) {
            self.inner.parts.metrics.forget(webhook_id);
        }
    }

    /// Takes jobs while fewer than the concurrency limit are in flight,
    /// until shutdown (`false`) or until the webhook is gone and its queue
    /// closed (`true`). Jobs still queued at shutdown stay unsettled; their
    /// offsets are not committed and the next run delivers them.
    async fn take_jobs(
        &self,
        webhook_id: &str,
        mut jobs: mpsc::Receiver<Job>,
        queued: &Arc<AtomicUsize>,
        breaker: &Arc<Mutex<Breaker>>,
        slots: &Arc<Semaphore>,
    ) -> bool {
        let webhook_id = webhook_id.to_owned();
        let depth = self.depth(&webhook_id);
        let taken = |job: &Job| {
            let events = job.delivery.events();
            queued.fetch_sub(events, Ordering::Relaxed);
            depth.dec_by(events as i64);
        };
        let shutdown = &self.inner.parts.shutdown;
        // A delivery that ended a batch by not fitting: the next one's first.
        let mut held: Option<Job> = None;
        let mut retiring = false;
        loop {
            let slot = tokio::select! {
                () = shutdown.cancelled() => return false,
                slot = slots.clone().acquire_owned() => slot,
            };
            let Ok(slot) = slot else { return false };
            let job = match held.take() {
                Some(job) => job,
                None => {
                    let job = tokio::select! {
                        () = shutdown.cancelled() => return false,
                        job = jobs.recv() => job,
                        () = tokio::time::sleep(IDLE_CHECK), if !retiring => {
                            if !self.is_active(&webhook_id) {
                                self.retire(&webhook_id, queued);
                                retiring = true;
                            }
                            continue;
                        }
                    };
                    let Some(job) = job else { return true };
                    taken(&job);
                    job
                }
            };
            let batching = self
                .inner
                .parts
                .webhooks
                .get(&webhook_id)
                .and_then(|webhook| webhook.batch)
                .filter(|_| joins_batches(&job.delivery));
            let job = match batching {
                None => job,
                Some(config) => {
                    let joins = |job: &Job| joins_batches(&job.delivery);
                    let size = |job: &Job| job.delivery.body.len();
                    let Some(gathered) =
                        gather(job, &mut jobs, config.into(), joins, size, shutdown).await
                    else {
                        return false;
                    };
                    gathered.items[1..]
                        .iter()
                        .chain(gathered.held.as_ref())
                        .for_each(taken);
                    held = gathered.held;
                    self.inner
                        .parts
                        .metrics
                        .batch_size
                        .get_or_create(&DestinationMetrics::webhook(&webhook_id))
                        .observe(gathered.items.len() as f64);
                    Job::batch(&webhook_id, gathered.items)
                }
            };
            let worker = self.clone();
            let breaker = breaker.clone();
            self.inner.tasks.spawn(async move {
                worker.handle(job, &breaker).await;
                drop(slot);
            });
        }
    }

    async fn handle(&self, mut job: Job, breaker: &Mutex<Breaker>) {
        let webhook_id = job.delivery.webhook_id.clone();
        let label = DestinationMetrics::webhook(&webhook_id);
        let Some(webhook) = self
            .inner
            .parts
            .webhooks
            .get(&webhook_id)
            .filter(|webhook| webhook.is_active())
        else {
            // Deleted or disabled since the match: nothing to deliver.
            job.settle();
            return;
        };
        let permit = breaker
            .lock()
            .map(|mut b| b.permit(Instant::now()))
            .unwrap_or(Permit::Attempt);
        if let Permit::WaitUntil(at) = permit {
            let wait = at.saturating_duration_since(Instant::now());
            self.park_in_background(job, now_ms() + wait.as_millis() as i64, "circuit_open")
                .await;
            return;
        }
        let attempted = self
            .inner
            .parts
            .sender
            .attempt(&webhook, &job.delivery)
            .await;
        job.delivery.attempts += 1;
        let metrics = &self.inner.parts.metrics;
        metrics.attempts.get_or_create(&label).inc();
        metrics
            .latency
            .get_or_create(&label)
            .observe(attempted.latency.as_secs_f64());
        let outcome = attempted.outcome;
        if let Ok(mut breaker) = breaker.lock() {
            if outcome.is_retryable() {
                breaker.failed(Instant::now());
            } else {
                breaker.succeeded();
            }
            metrics
                .circuit_state
                .get_or_create(&label)
                .set(breaker.state(Instant::now()).as_gauge());
        }
        let attempts = job.delivery.attempts;
        let (status, error) = match &outcome {
            Outcome::Delivered { .. } => {
                let end_to_end = metrics.end_to_end.get_or_create(&label);
                for received_at_ms in job.delivery.received_at() {
                    end_to_end.observe((now_ms() - received_at_ms).max(0) as f64 / 1000.0);
                }
                ("delivered", String::new())
            }
            Outcome::Refused { status } => ("refused", format!("refused with HTTP {status}")),
            Outcome::Retryable { status, .. } if attempts >= webhook.max_attempts => (
                "dead",
                format!("HTTP {status} on the last of {attempts} attempts"),
            ),
            Outcome::NoAnswer { cause } if attempts >= webhook.max_attempts => (
                "dead",
                format!("{cause} on the last of {attempts} attempts"),
            ),
            Outcome::Retryable { status, .. } => ("retrying", format!("HTTP {status}")),
            Outcome::NoAnswer { cause } => ("retrying", cause.clone()),
        };
        metrics
            .deliveries
            .get_or_create(&OutcomeLabels {
                webhook_id: webhook_id.clone(),
                outcome: status,
            })
            .inc_by(job.delivery.events() as u64);
        self.inner.parts.log.record(LogRow {
            project_id: job.delivery.project_id.clone(),
            webhook_id: webhook_id.clone(),
            delivery_id: job.delivery.delivery_id.clone(),
            event_id: job.delivery.event_id.clone(),
            attempt: attempts,
            status: status.to_owned(),
            response_status: outcome.status(),
            latency_ms: attempted.latency.as_millis().min(u128::from(u32::MAX)) as u32,
            error: error.clone(),
            at: (now_ms() / 1000) as u32,
            at_ms: now_ms() as u64,
            kafka_partition: job.pending.first().map_or(0, |p| p.partition().max(0)) as u32,
            body: job.delivery.body.clone(),
        });
        match status {
            "delivered" => job.settle(),
            "refused" | "dead" => {
                if self.inner.parts.spool.bury(&job.delivery, &error).await {
                    job.settle();
                }
            }
            _ => {
                let backoff = self.inner.parts.limits.backoff;
                let wait = match outcome {
                    Outcome::Retryable {
                        retry_after: Some(asked),
                        ..
                    } => backoff.after_retry_after(asked),
                    _ => backoff.delay(attempts, random_unit()),
                };
                self.park(job, now_ms() + wait.as_millis() as i64, "retry")
                    .await;
            }
        }
    }

    /// [`Self::park`] on a task of its own, so that the caller (the
    /// consumer) goes on at once; it waits only while [`PARKS_IN_FLIGHT`]
    /// parks are unacknowledged. The job's offsets are settled, as ever,
    /// only once the broker has it.
    async fn park_in_background(&self, job: Job, due_ms: i64, reason: &'static str) {
        let Ok(permit) = self.inner.parking.clone().acquire_owned().await else {
            // The semaphore is never closed; were it, park here and now.
            return self.park(job, due_ms, reason).await;
        };
        let dispatcher = self.clone();
        self.inner.tasks.spawn(async move {
            dispatcher.park(job, due_ms, reason).await;
            drop(permit);
        });
    }

    /// Writes the job's delivery to the retry topic, due at `due_ms`, and
    /// settles it once the broker has it.
    async fn park(&self, mut job: Job, due_ms: i64, reason: &'static str) {
        job.delivery.not_before_ms = due_ms;
        self.inner
            .parts
            .metrics
            .parked
            .get_or_create(&ParkLabels {
                webhook_id: job.delivery.webhook_id.clone(),
                reason,
            })
            .inc();
        if self.inner.parts.spool.park(&job.delivery).await {
            job.settle();
        }
    }
}

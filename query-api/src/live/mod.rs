//! `GET /v1/live`: a WebSocket that pushes metrics of the processor's live
//! topic as they change.
//!
//! The client sends `{"action":"subscribe","id":"a","window":"5s","filters":{"type":"click"}}`
//! and `{"action":"unsubscribe","id":"a"}`; the server answers `subscribed` /
//! `unsubscribed`, then pushes `update` messages: the merged metrics of the
//! project's one-minute windows that overlap the rolling window (the live
//! topic's resolution is the processor's one-minute window), at most every
//! 250 ms per subscription, whenever a matching window changed.
//!
//! Every connection has a bounded queue of unsent messages: a client that
//! does not read fast enough fills it and is dropped, and one that falls
//! behind the live feed skips updates (it gets a `lagged` notice); neither
//! ever slows the others. Heartbeats (a ping and a `heartbeat` message) go out
//! every `--live-heartbeat-ms`; a client silent for three of them is dropped.

pub mod feed;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_schemas::rollup::{Aggregate, LiveUpdate};
use sluice_schemas::time_format::{format_rfc3339_ms, now_ms};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::auth::LiveProject;
use crate::error::{ApiError, Result};
use crate::filters::Filters;
use crate::metrics::shape::all_values;
use crate::metrics::{Cell, dominant};
use crate::params::Params;
use crate::state::AppState;

const PUSH_INTERVAL: Duration = Duration::from_millis(250);
const MAX_WINDOW_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
const MAX_SUBSCRIPTIONS: usize = 100;

/// `1s`, `5s`, `1m`, `15m`, `1h`: whole seconds, minutes or hours up to 1 h.
pub fn parse_window(text: &str) -> Result<i64, String> {
    let invalid = || format!("{text:?} is not a window like 5s, 1m or 1h (at most 1h)");
    let (number, unit_ms) = match text.as_bytes().last() {
        Some(b's') => (&text[..text.len() - 1], 1_000),
        Some(b'm') => (&text[..text.len() - 1], 60_000),
        Some(b'h') => (&text[..text.len() - 1], 3_600_000),
        _ => return Err(invalid()),
    };
    let number: i64 = number.parse().map_err(|_| invalid())?;
    let window = number * unit_ms;
    if (1_000..=MAX_WINDOW_MS).contains(&window) {
        Ok(window)
    } else {
        Err(invalid())
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
enum Command {
    Subscribe {
        id: String,
        window: String,
        #[serde(default)]
        filters: DimensionFilters,
    },
    Unsubscribe {
        id: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DimensionFilters {
    #[serde(rename = "type")]
    event_type: Option<String>,
    source: Option<String>,
    status: Option<String>,
}

struct Subscription {
    window: String,
    window_ms: i64,
    filters: Filters,
    dirty: bool,
}

/// Identity of a partial in the live topic: window key, partition, seq.
type PartialId = (i64, String, String, String, u32, u64);

/// One connection's view: the latest partial of each window of its project,
/// and its subscriptions.
struct Session {
    project_id: String,
    partials: BTreeMap<PartialId, Arc<LiveUpdate>>,
    subscriptions: HashMap<String, Subscription>,
}

/// An `error` answer; `id` is the subscription it refuses, when the message
/// named one, so that a client with several can tell which failed.
fn error_message(id: Option<&str>, code: &str, message: impl Into<String>) -> Value {
    let mut error = json!({"type": "error", "error": code, "message": message.into()});
    if let Some(id) = id {
        error["id"] = id.into();
    }
    error
}

/// The `id` of a message that is not a valid command, if it has a string one.
fn id_of(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct WithId {
        id: String,
    }
    serde_json::from_str::<WithId>(text)
        .ok()
        .map(|message| message.id)
}

impl Session {
    fn command(&mut self, text: &str) -> Value {
        let command = match serde_json::from_str::<Command>(text) {
            Ok(command) => command,
            Err(error) => {
                let id = id_of(text);
                return error_message(id.as_deref(), "invalid_message", error.to_string());
            }
        };
        match command {
            Command::Subscribe {
                id,
                window,
                filters,
            } => {
                let window_ms = match parse_window(&window) {
                    Ok(window_ms) => window_ms,
                    Err(reason) => return error_message(Some(&id), "invalid_window", reason),
                };
                if self.subscriptions.len() >= MAX_SUBSCRIPTIONS
                    && !self.subscriptions.contains_key(&id)
                {
                    return error_message(
                        Some(&id),
                        "too_many_subscriptions",
                        format!("at most {MAX_SUBSCRIPTIONS} per connection"),
                    );
                }
                let filters = Filters {
                    event_type: filters.event_type,
                    source: filters.source,
                    status: filters.status,
                    ..Filters::default()
                };
                self.subscriptions.insert(
                    id.clone(),
                    Subscription {
                        window: window.clone(),
                        window_ms,
                        filters,
                        dirty: true,
                    },
                );
                json!({"type": "subscribed", "id": id, "window": window})
            }
            Command::Unsubscribe { id } => match self.subscriptions.remove(&id) {
                Some(_) => json!({"type": "unsubscribed", "id": id}),
                None => error_message(
                    Some(&id),
                    "unknown_subscription",
                    format!("no subscription {id:?}"),
                ),
            },
        }
    }

    fn update(&mut self, update: Arc<LiveUpdate>) {
        if update.project_id != self.project_id {
            return;
        }
        for subscription in self.subscriptions.values_mut() {
            if subscription.filters.matches_dimensions(
                &update.event_type,
                &update.source,
                &update.status,
            ) {
                subscription.dirty = true;
            }
        }
        let id = (
            update.minute_ms,
            update.event_type.clone(),
            update.source.clone(),
            update.status.clone(),
            update.kafka_partition,
            update.seq,
        );
        self.partials.insert(id, update);
    }

    /// Forgets windows that no window can reach any more.
    fn prune(&mut self, now: i64) {
        let oldest = now - MAX_WINDOW_MS - MINUTE_MS;
        self.partials.retain(|id, _| id.0 >= oldest);
    }

    /// The pushes due now.
    fn pushes(&mut self, now: i64) -> Vec<Value> {
        let mut pushes = Vec::new();
        for (id, subscription) in &mut self.subscriptions {
            if !subscription.dirty {
                continue;
            }
            subscription.dirty = false;
            let from = now - subscription.window_ms;
            let first_minute = from - from.rem_euclid(MINUTE_MS);
            let mut aggregate = Aggregate::default();
            let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
            for update in self
                .partials
                .range(
                    (
                        first_minute,
                        String::new(),
                        String::new(),
                        String::new(),
                        0,
                        0,
                    )..,
                )
                .map(|(_, u)| u)
            {
                if !subscription.filters.matches_dimensions(
                    &update.event_type,
                    &update.source,
                    &update.status,
                ) {
                    continue;
                }
                // An undecodable partial is skipped: pushes are best effort.
                if let Ok(partial) = update.aggregate() {
                    aggregate.merge(&partial);
                    if !update.status.is_empty() {
                        *statuses.entry(update.status.clone()).or_default() += partial.count;
                    }
                }
            }
            let cell = Cell {
                summary: aggregate.summary(),
                dominant_status: dominant(&statuses),
            };
            let mut push = json!({
                "type": "update",
                "id": id,
                "window": subscription.window,
                "from": format_rfc3339_ms(first_minute),
                "to": format_rfc3339_ms(now),
            });
            if let Value::Object(fields) = &mut push {
                fields.extend(all_values(&cell));
            }
            pushes.push(push);
        }
        pushes
    }
}

/// The key ([`LiveProject`]) is checked before the handshake, so a plain
/// GET gets the same 401 as any other endpoint, and a keyed one that is no
/// WebSocket handshake gets the error body, not axum's plain-text
/// rejection.
pub async fn live_socket(
    State(state): State<AppState>,
    LiveProject(project_id): LiveProject,
    mut params: Params,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    // (`key` was the extractor's, if the key came that way.)
    params.take("key")?;
    params.finish()?;
    let upgrade = upgrade.map_err(|rejection| ApiError::NotWebSocket {
        status: rejection.status(),
        reason: rejection.body_text(),
    })?;
    let session = Session {
        project_id,
        partials: BTreeMap::new(),
        subscriptions: HashMap::new(),
    };
    Ok(upgrade.on_upgrade(move |socket| run(socket, session, state)))
}

fn text(value: &Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

async fn run(socket: WebSocket, mut session: Session, state: AppState) {
    let settings = &state.settings;
    let (mut sink, mut incoming) = socket.split();
    let (outbox, mut queued) = mpsc::channel::<Message>(settings.live_client_buffer.max(1));
    let writer = tokio::spawn(async move {
        while let Some(message) = queued.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut updates = state.live.subscribe();
    let heartbeat_every = Duration::from_millis(settings.live_heartbeat_ms.max(100));
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    let mut push = tokio::time::interval(PUSH_INTERVAL);
    let mut last_heard = Instant::now();
    // A full outbox means the client reads too slowly: it is dropped.
    let send = |message: Message| outbox.try_send(message).is_ok();
    loop {
        let alive = tokio::select! {
            message = incoming.next() => match message {
                Some(Ok(Message::Text(body))) => {
                    last_heard = Instant::now();
                    send(text(&session.command(body.as_str())))
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => false,
                Some(Ok(_)) => {
                    last_heard = Instant::now();
                    true
                }
            },
            update = updates.recv() => match update {
                Ok(update) => {
                    session.update(update);
                    true
                }
                Err(RecvError::Lagged(skipped)) => {
                    send(text(&json!({"type": "lagged", "skipped": skipped})))
                }
                Err(RecvError::Closed) => false,
            },
            _ = push.tick() => {
                let now = now_ms();
                session.prune(now);
                session.pushes(now).iter().all(|push| send(text(push)))
            }
            _ = heartbeat.tick() => {
                last_heard.elapsed() < heartbeat_every * 3
                    && send(Message::Ping(Default::default()))
                    && send(text(&json!({"type": "heartbeat", "at": format_rfc3339_ms(now_ms())})))
            }
            _ = state.shutdown.cancelled() => false,
        };
        if !alive {
            break;
        }
    }
    drop(outbox);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use sluice_schemas::rollup::{Contribution, WindowKey};

    use super::*;

    fn live(minute_ms: i64, event_type: &str, partition: u32, users: &[&str]) -> Arc<LiveUpdate> {
        let key = WindowKey {
            project_id: "p".into(),
            minute: (minute_ms / 1000) as u32,
            event_type: event_type.into(),
            source: String::new(),
            status: "200".into(),
        };
        let mut aggregate = Aggregate::default();
        for user in users {
            aggregate.add(Contribution {
                user_id: Some(user),
                ..Contribution::default()
            });
        }
        Arc::new(LiveUpdate::new(&key, &aggregate, partition, 0, false))
    }

    #[test]
    fn windows_parse() {
        assert_eq!(parse_window("5s"), Ok(5_000));
        assert_eq!(parse_window("1h"), Ok(3_600_000));
        for bad in ["0s", "2h", "5", "s", "-1m", "1d"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pushes_merge_the_latest_partials_of_the_window() {
        let mut session = Session {
            project_id: "p".into(),
            partials: BTreeMap::new(),
            subscriptions: HashMap::new(),
        };
        let reply = session
            .command(r#"{"action":"subscribe","id":"a","window":"1m","filters":{"type":"click"}}"#);
        assert_eq!(reply["type"], "subscribed");
        let now = 10 * MINUTE_MS + 30_000;
        session.update(live(10 * MINUTE_MS, "click", 0, &["u1"]));
        // A newer message of the same partial replaces it.
        session.update(live(10 * MINUTE_MS, "click", 0, &["u1", "u2"]));
        session.update(live(10 * MINUTE_MS, "click", 1, &["u3"]));
        session.update(live(9 * MINUTE_MS, "click", 1, &["u4"]));
        session.update(live(10 * MINUTE_MS, "view", 1, &["u5"]));
        let mut other = (*live(10 * MINUTE_MS, "click", 2, &["x"])).clone();
        other.project_id = "q".into();
        session.update(Arc::new(other));
        let pushes = session.pushes(now);
        assert_eq!(pushes.len(), 1);
        // Minutes 9 and 10 overlap the last minute; types other than click
        // and other projects do not count.
        assert_eq!(pushes[0]["count"], 4);
        assert_eq!(pushes[0]["unique_users"], 4);
        assert_eq!(pushes[0]["dominant_status"], "200");
        assert!(session.pushes(now).is_empty(), "nothing changed");
        assert_eq!(
            session.command(r#"{"action":"unsubscribe","id":"a"}"#)["type"],
            "unsubscribed"
        );
        assert_eq!(
            session.command(r#"{"action":"unsubscribe","id":"a"}"#)["type"],
            "error"
        );
        assert_eq!(session.command("{}")["type"], "error");
    }
}

//! Event-time windows of one source partition: a deterministic state machine
//! over the partition's message sequence.
//!
//! The watermark is the largest `min(event time, received time)` seen so far,
//! minus the allowed lateness, or the value of a watermark marker message if
//! that is larger ([`crate::marker`]). Taking the received time caps what a
//! client clock far in the future can do. An event whose one-minute window
//! ends at or before the watermark is late: it goes to a correction for its
//! window instead. When the watermark enters a new minute, every window that
//! ended closes and every pending correction is emitted; a marker also emits
//! the corrections. Each emitted partial is identified by the offset of its
//! first event (`seq`), so the same messages always yield the same rows.
//!
//! Besides the partials of `rollups`, an event adds to one partial per
//! rolled-up property (`--rollup-properties`): its window split by the
//! property's value, for `property_rollups`.

use std::collections::{BTreeMap, HashMap};

use sluice_schemas::Event;
use sluice_schemas::rollup::codec::{DecodeError, Reader, decode_exact, put_varint, put_zigzag};
use sluice_schemas::rollup::hash::hash_fields;
use sluice_schemas::rollup::property::property_values;
use sluice_schemas::rollup::{Aggregate, Contribution, WINDOW_SECONDS, WindowKey};

const WINDOW_MS: i64 = WINDOW_SECONDS as i64 * 1000;
/// Version 2 added property partials; version 1 states still decode.
const STATE_VERSION: u8 = 2;

/// A partial aggregate of one window: what becomes one rollup row.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    pub key: WindowKey,
    /// The rolled-up property and value this partial is split by; `None`
    /// for a partial of `rollups`.
    pub property: Option<PropertyValue>,
    /// Offset of its first event.
    pub seq: u64,
    pub aggregate: Aggregate,
    /// Changed since the live topic last saw it.
    pub dirty: bool,
}

/// A rolled-up property's key and one of its values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PropertyValue {
    pub key: String,
    pub value: String,
}

/// A closed window or a correction, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub partial: Partial,
    pub is_correction: bool,
}

/// Where an event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    OnTime,
    Late,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PartitionWindows {
    lateness_ms: i64,
    watermark_ms: i64,
    /// Open windows by minute (Unix seconds), then by key hash.
    open: BTreeMap<u32, HashMap<u128, Partial>>,
    /// Late events waiting for the next minute boundary or marker.
    corrections: HashMap<u128, Partial>,
}

/// Two independent 64-bit hashes of the window key's fields: a collision
/// (which would merge two windows) is as likely as guessing a 128-bit value.
fn key_hash(project: &str, minute: u32, event_type: &str, source: &str, status: &str) -> u128 {
    let fields: [&[u8]; 5] = [
        project.as_bytes(),
        &minute.to_le_bytes(),
        event_type.as_bytes(),
        source.as_bytes(),
        status.as_bytes(),
    ];
    (u128::from(hash_fields(0x1111, &fields)) << 64) | u128::from(hash_fields(0x2222, &fields))
}

/// The hash of a property partial: its window's hash extended by the
/// property's key and value.
fn property_hash(window: u128, key: &str, value: &str) -> u128 {
    let fields: [&[u8]; 3] = [&window.to_le_bytes(), key.as_bytes(), value.as_bytes()];
    (u128::from(hash_fields(0x3131, &fields)) << 64) | u128::from(hash_fields(0x3232, &fields))
}

fn hash_of(partial: &Partial) -> u128 {
    let key = &partial.key;
    let window = key_hash(
        &key.project_id,
        key.minute,
        &key.event_type,
        &key.source,
        &key.status,
    );
    match &partial.property {
        None => window,
        Some(property) => property_hash(window, &property.key, &property.value),
    }
}

impl PartitionWindows {
    pub fn new(lateness_ms: i64) -> Self {
        Self {
            lateness_ms,
            watermark_ms: i64::MIN,
            open: BTreeMap::new(),
            corrections: HashMap::new(),
        }
    }

    pub fn watermark_ms(&self) -> Option<i64> {
        (self.watermark_ms != i64::MIN).then_some(self.watermark_ms)
    }

    /// Windows or corrections are waiting for the watermark.
    pub fn has_pending(&self) -> bool {
        !self.open.is_empty() || !self.corrections.is_empty()
    }

    pub fn open_windows(&self) -> usize {
        self.open.values().map(HashMap::len).sum()
    }

    /// Adds the event at `offset` to its window, and to the window's partial
    /// for its value of each of `rolled_up` (property keys); closes what its
    /// watermark ends into `out`.
    pub fn add(
        &mut self,
        event: &Event,
        offset: i64,
        rolled_up: &[String],
        out: &mut Vec<Emitted>,
    ) -> Placement {
        let progress = event.timestamp_ms.min(event.received_at_ms);
        self.advance(progress.saturating_sub(self.lateness_ms), out);
        let minute = WindowKey::minute_of(event.timestamp_ms);
        let (source, status) = (
            event.source.as_deref().unwrap_or(""),
            event.status.as_deref().unwrap_or(""),
        );
        let window = key_hash(&event.project_id, minute, &event.event_type, source, status);
        // Built only for a partial's first event.
        let key = || WindowKey {
            project_id: event.project_id.clone(),
            minute,
            event_type: event.event_type.clone(),
            source: source.to_owned(),
            status: status.to_owned(),
        };
        let window_end_ms = i64::from(minute) * 1000 + WINDOW_MS;
        let (placement, partials) = if window_end_ms <= self.watermark_ms {
            (Placement::Late, &mut self.corrections)
        } else {
            (Placement::OnTime, self.open.entry(minute).or_default())
        };
        // Ids hashed once for the window and each rolled-up property.
        let contribution = Contribution {
            user_id: event.user_id.as_deref(),
            session_id: event.session_id.as_deref(),
            duration_ms: event.duration_ms,
        }
        .hashed();
        let seq = u64::try_from(offset).unwrap_or(0);
        let values = if rolled_up.is_empty() {
            Vec::new()
        } else {
            property_values(&event.properties, rolled_up)
        };
        for (property_key, value) in rolled_up.iter().zip(values) {
            let hash = property_hash(window, property_key, &value);
            let partial = partials.entry(hash).or_insert_with(|| Partial {
                key: key(),
                property: Some(PropertyValue {
                    key: property_key.clone(),
                    value: value.into_owned(),
                }),
                seq,
                aggregate: Aggregate::default(),
                dirty: false,
            });
            partial.aggregate.add_hashed(contribution);
        }
        let partial = partials.entry(window).or_insert_with(|| Partial {
            key: key(),
            property: None,
            seq,
            aggregate: Aggregate::default(),
            dirty: false,
        });
        partial.aggregate.add_hashed(contribution);
        partial.dirty = true;
        placement
    }

    /// Applies a watermark marker: the watermark becomes at least
    /// `watermark_ms`, and pending corrections are emitted.
    pub fn apply_marker(&mut self, watermark_ms: i64, out: &mut Vec<Emitted>) {
        self.advance(watermark_ms, out);
        self.emit_corrections(out);
    }

    fn advance(&mut self, candidate_ms: i64, out: &mut Vec<Emitted>) {
        if candidate_ms <= self.watermark_ms {
            return;
        }
        let old_minute = self.watermark_ms.div_euclid(WINDOW_MS);
        self.watermark_ms = candidate_ms;
        let new_minute = candidate_ms.div_euclid(WINDOW_MS);
        if new_minute == old_minute {
            return;
        }
        // Windows starting before `new_minute` have ended.
        let still_open_from = u32::try_from(new_minute * WINDOW_SECONDS as i64)
            .unwrap_or(if new_minute < 0 { 0 } else { u32::MAX });
        let still_open = self.open.split_off(&still_open_from);
        let closed = std::mem::replace(&mut self.open, still_open);
        for partial in closed.into_values().flat_map(sorted) {
            out.push(Emitted {
                partial,
                is_correction: false,
            });
        }
        self.emit_corrections(out);
    }

    fn emit_corrections(&mut self, out: &mut Vec<Emitted>) {
        for partial in sorted(std::mem::take(&mut self.corrections)) {
            out.push(Emitted {
                partial,
                is_correction: true,
            });
        }
    }

    /// Calls `publish` for every open window changed since the last call
    /// (partials of `rollups` only: the live topic has no property values).
    pub fn drain_dirty(&mut self, mut publish: impl FnMut(&Partial)) {
        for partial in self.open.values_mut().flat_map(HashMap::values_mut) {
            if partial.dirty && partial.property.is_none() {
                partial.dirty = false;
                publish(partial);
            }
        }
    }

    /// The state as bytes, for the checkpoint.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(STATE_VERSION);
        put_zigzag(out, self.lateness_ms);
        put_zigzag(out, self.watermark_ms);
        for partials in [
            self.open
                .values()
                .flat_map(HashMap::values)
                .collect::<Vec<_>>(),
            self.corrections.values().collect(),
        ] {
            put_varint(out, partials.len() as u64);
            for partial in partials {
                let key = &partial.key;
                for text in [&key.project_id, &key.event_type, &key.source, &key.status] {
                    put_text(out, text);
                }
                match &partial.property {
                    None => out.push(0),
                    Some(property) => {
                        out.push(1);
                        put_text(out, &property.key);
                        put_text(out, &property.value);
                    }
                }
                put_varint(out, u64::from(key.minute));
                put_varint(out, partial.seq);
                partial.aggregate.encode(out);
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(bytes, |reader| {
            let version = reader.byte()?;
            if !(1..=STATE_VERSION).contains(&version) {
                return Err(DecodeError("unknown window state version"));
            }
            let mut windows = Self::new(reader.zigzag()?);
            windows.watermark_ms = reader.zigzag()?;
            for is_correction in [false, true] {
                for _ in 0..reader.length(1)? {
                    let partial = decode_partial(reader, version)?;
                    let hash = hash_of(&partial);
                    let partials = if is_correction {
                        &mut windows.corrections
                    } else {
                        windows.open.entry(partial.key.minute).or_default()
                    };
                    partials.insert(hash, partial);
                }
            }
            Ok(windows)
        })
    }
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn decode_partial(reader: &mut Reader<'_>, version: u8) -> Result<Partial, DecodeError> {
    fn text(reader: &mut Reader<'_>) -> Result<String, DecodeError> {
        let len = reader.length(1)?;
        String::from_utf8(reader.bytes(len)?.to_vec()).map_err(|_| DecodeError("key not UTF-8"))
    }
    let (project_id, event_type, source, status) =
        (text(reader)?, text(reader)?, text(reader)?, text(reader)?);
    let property = if version >= 2 && reader.byte()? == 1 {
        Some(PropertyValue {
            key: text(reader)?,
            value: text(reader)?,
        })
    } else {
        None
    };
    let minute = u32::try_from(reader.varint()?).map_err(|_| DecodeError("minute"))?;
    Ok(Partial {
        key: WindowKey {
            project_id,
            minute,
            event_type,
            source,
            status,
        },
        property,
        seq: reader.varint()?,
        aggregate: Aggregate::decode(reader)?,
        dirty: true,
    })
}

/// Partials in key order, so the rows of one close come out in a fixed order.
fn sorted(partials: HashMap<u128, Partial>) -> Vec<Partial> {
    let mut partials: Vec<Partial> = partials.into_values().collect();
    partials.sort_by(|a, b| (&a.key, &a.property).cmp(&(&b.key, &b.property)));
    partials
}

#[cfg(test)]
mod tests;

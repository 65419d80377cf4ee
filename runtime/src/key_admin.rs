//! Creating, rotating and revoking keys, for every API that manages them:
//! the gateway's `/v1/admin/keys` (every project) and the query API's
//! `/v1/keys` (one project, for its developers and admins). Writes go to the
//! keys topic, and each answer waits until this instance's store shows the
//! write, so a key made here works here at once.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use sluice_schemas::time_format::{format_rfc3339_ms, now_ms, parse_rfc3339_ms};

use crate::access::{Access, AccessStore};
use crate::http::ErrorBody;
use crate::keys::record::{MAX_KEY_BYTES, MIN_IMPORTED_KEY_BYTES};
use crate::keys::{KeyLimits, KeyRecord, KeyStore, KeyWriter, Scope, generate_key};

/// How long an answer waits for the store to show its own write.
const READ_YOUR_WRITE: Duration = Duration::from_secs(10);

/// A key to create (`POST`); the project comes from the route or the grant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[serde(default)]
    pub project_id: Option<String>,
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub label: String,
    /// An existing secret to import (e.g. a Segment write key); generated when absent.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default, deserialize_with = "limits_object")]
    pub limits: KeyLimits,
    /// RFC 3339; the key stops working then.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A rotation (`POST …/rotate`): a new key with the old one's project,
/// scopes, label and limits; the old one keeps working until `old_key_valid_until`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// RFC 3339, not in the past; absent: the old key stops at once.
    #[serde(default)]
    pub old_key_valid_until: Option<String>,
    /// The new key's expiry (RFC 3339); absent: the old key's expiry is not carried over.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// `limits` as an object only: serde would also read the struct from an
/// array of its fields, so `[1000, 2000]` would quietly set two limits.
fn limits_object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<KeyLimits, D::Error> {
    let object = serde_json::Map::<String, Value>::deserialize(deserializer)?;
    KeyLimits::deserialize(Value::Object(object)).map_err(serde::de::Error::custom)
}

/// Why a key request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("this key already exists (key_id {0}); revoke it first or leave `key` out")]
    Exists(String),
    #[error("no key {0:?} here")]
    NotFound(String),
    #[error("the keys topic cannot be written now; retry")]
    Store,
}

impl ManageError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for ManageError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match self {
            ManageError::Invalid { field, reason } => ErrorBody::new("invalid_request", message)
                .with_details(json!({"fields": [{"field": field, "reason": reason}]}))
                .into_response(StatusCode::BAD_REQUEST),
            ManageError::Exists(_) => {
                ErrorBody::new("key_exists", message).into_response(StatusCode::CONFLICT)
            }
            ManageError::NotFound(_) => {
                ErrorBody::new("not_found", message).into_response(StatusCode::NOT_FOUND)
            }
            ManageError::Store => ErrorBody::new("broker_unavailable", message)
                .into_response(StatusCode::SERVICE_UNAVAILABLE),
        }
    }
}

/// The keys of every project, with the writer and the usage notes.
#[derive(Clone)]
pub struct KeyAdmin {
    pub keys: KeyStore,
    pub writer: Arc<KeyWriter>,
    pub usage: AccessStore,
}

impl KeyAdmin {
    pub fn new(access: &Access, writer: KeyWriter) -> Self {
        Self {
            keys: access.keys().clone(),
            writer: Arc::new(writer),
            usage: access.accounts().clone(),
        }
    }

    /// Creates `request` in `project_id`: 201 with the key, shown this once.
    pub async fn create(
        &self,
        project_id: &str,
        request: NewKey,
        created_by: String,
    ) -> Result<Response, ManageError> {
        sluice_schemas::rules::project_id(project_id)
            .map_err(|reason| ManageError::invalid("project_id", reason))?;
        if request.scopes.is_empty() {
            return Err(ManageError::invalid(
                "scopes",
                "must name at least one of ingest, read, admin, webhooks",
            ));
        }
        if request.label.len() > 256 {
            return Err(ManageError::invalid("label", "is longer than 256 bytes"));
        }
        let expires_at_ms = future_instant("expires_at", request.expires_at.as_deref())?;
        let key = match request.key {
            Some(key) => {
                let fits = (MIN_IMPORTED_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len());
                if !fits || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(ManageError::invalid(
                        "key",
                        format!(
                            "must be {MIN_IMPORTED_KEY_BYTES} to {MAX_KEY_BYTES} bytes without spaces or control characters"
                        ),
                    ));
                }
                key
            }
            None => generate_key(),
        };
        let mut scopes = request.scopes;
        scopes.sort_by_key(|scope| scope.as_str());
        scopes.dedup();
        let mut record = KeyRecord::for_key(
            &key,
            project_id,
            scopes,
            request.label,
            request.limits,
            now_ms(),
        );
        record.expires_at_ms = expires_at_ms;
        record.created_by = created_by;
        if let Some(existing) = self.keys.get(&record.key_id)
            && !existing.is_revoked()
        {
            return Err(ManageError::Exists(existing.key_id.clone()));
        }
        self.write(&record).await?;
        Ok(self.shown_once(&record, key))
    }

    /// Replaces `key_id` (of `project_id`, or of any project when `None`)
    /// with a new key; the old one works until `rotation.old_key_valid_until`.
    pub async fn rotate(
        &self,
        project_id: Option<&str>,
        key_id: &str,
        rotation: Rotation,
        created_by: String,
    ) -> Result<Response, ManageError> {
        let old = self.find(project_id, key_id)?;
        if old.is_revoked() {
            return Err(ManageError::invalid("key_id", "this key is revoked"));
        }
        let now = now_ms();
        let old_until = future_instant(
            "old_key_valid_until",
            rotation.old_key_valid_until.as_deref(),
        )?
        .unwrap_or(now);
        let expires_at_ms = future_instant("expires_at", rotation.expires_at.as_deref())?;
        let key = generate_key();
        let mut new = KeyRecord::for_key(
            &key,
            &old.project_id,
            old.scopes.clone(),
            old.label.clone(),
            old.limits,
            now,
        );
        new.expires_at_ms = expires_at_ms;
        new.created_by = created_by;
        new.replaces = Some(old.key_id.clone());
        let mut retiring = (*old).clone();
        retiring.replaced_by = Some(new.key_id.clone());
        retiring.expires_at_ms = Some(old.expires_at_ms.map_or(old_until, |at| at.min(old_until)));
        self.write(&new).await?;
        self.write(&retiring).await?;
        Ok(self.shown_once(&new, key))
    }

    /// Revokes `key_id` everywhere within seconds.
    pub async fn revoke(
        &self,
        project_id: Option<&str>,
        key_id: &str,
    ) -> Result<Value, ManageError> {
        let record = self.find(project_id, key_id)?;
        if record.is_revoked() {
            return Ok(self.view(&record));
        }
        let mut revoked = (*record).clone();
        revoked.revoked_at_ms = Some(now_ms());
        self.write(&revoked).await?;
        Ok(self.view(&revoked))
    }

    /// The keys of `project_id` (all when `None`), without secrets.
    pub fn list(&self, project_id: Option<&str>) -> Value {
        let keys: Vec<Value> = self
            .keys
            .list(project_id)
            .iter()
            .map(|record| self.view(record))
            .collect();
        json!({"keys": keys})
    }

    /// A record as the API shows it: everything but the digest.
    pub fn view(&self, record: &KeyRecord) -> Value {
        json!({
            "key_id": record.key_id,
            "project_id": record.project_id,
            "scopes": record.scopes,
            "label": record.label,
            "created_at": format_rfc3339_ms(record.created_at_ms),
            "created_by": (!record.created_by.is_empty()).then_some(&record.created_by),
            "revoked_at": record.revoked_at_ms.map(format_rfc3339_ms),
            "expires_at": record.expires_at_ms.map(format_rfc3339_ms),
            "last_used_at": self.usage.key_last_used(&record.key_id).map(format_rfc3339_ms),
            "replaces": record.replaces,
            "replaced_by": record.replaced_by,
            "limits": record.limits,
        })
    }

    fn shown_once(&self, record: &KeyRecord, key: String) -> Response {
        let mut body = self.view(record);
        body["key"] = Value::String(key);
        (StatusCode::CREATED, Json(body)).into_response()
    }

    fn find(&self, project_id: Option<&str>, key_id: &str) -> Result<Arc<KeyRecord>, ManageError> {
        self.keys
            .get(key_id)
            .filter(|record| project_id.is_none_or(|project| record.project_id == project))
            .ok_or_else(|| ManageError::NotFound(key_id.to_owned()))
    }

    async fn write(&self, record: &KeyRecord) -> Result<(), ManageError> {
        if let Err(error) = self.writer.put(record).await {
            tracing::error!(cause = %format!("{error:#}"), key_id = %record.key_id, "cannot write a key record");
            return Err(ManageError::Store);
        }
        if !self.keys.wait_for(record, READ_YOUR_WRITE).await {
            tracing::warn!(key_id = %record.key_id, "key written but not yet visible in this instance's store");
        }
        tracing::info!(key_id = %record.key_id, project_id = %record.project_id, revoked = record.is_revoked(), "key record written");
        Ok(())
    }
}

/// The OpenAPI schemas of keys (`Key`, `NewKey`, `KeyRotation`,
/// `KeyLimits`), for every service that manages them.
pub fn key_schemas() -> Value {
    let limit = json!({"type": "integer", "minimum": 0, "maximum": u32::MAX, "nullable": true});
    let scope = json!({"type": "string", "enum": ["ingest", "read", "admin", "webhooks"]});
    let time = |description: &str| json!({"type": "string", "format": "date-time", "nullable": true, "description": description});
    json!({
        "KeyLimits": {"type": "object", "additionalProperties": false,
            "description": "Per-key rate limits; one left out takes the gateway's default, 0 turns it off.",
            "properties": {
                "requests_per_second": limit, "request_burst": limit,
                "events_per_second": limit, "event_burst": limit}},
        "NewKey": {"type": "object", "required": ["scopes"], "additionalProperties": false, "properties": {
            "project_id": {"type": "string", "nullable": true, "pattern": "^[A-Za-z0-9_.-]{1,64}$",
                "description": "Needed by /v1/admin/keys; on /v1/keys it is the request's project (or left out)."},
            "scopes": {"type": "array", "minItems": 1, "items": scope},
            "label": {"type": "string", "maxLength": 256, "description": "At most 256 bytes."},
            "key": {"type": "string", "nullable": true, "minLength": 12, "maxLength": 256,
                "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]*$",
                "description": "An existing secret to import (12-256 bytes, no spaces or control characters); generated when absent."},
            "limits": {"$ref": "#/components/schemas/KeyLimits"},
            "expires_at": time("RFC 3339, not in the past: the key stops working then (401 `key_expired`).")}},
        "KeyRotation": {"type": "object", "additionalProperties": false, "properties": {
            "old_key_valid_until": time("RFC 3339, not in the past: the old key works until then; absent: it stops at once."),
            "expires_at": time("The new key's expiry.")}},
        "Key": {"type": "object", "additionalProperties": false,
            "required": ["key_id", "project_id", "scopes", "label", "created_at", "revoked_at", "limits"], "properties": {
            "key_id": {"type": "string"}, "project_id": {"type": "string"},
            "scopes": {"type": "array", "items": scope}, "label": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "created_by": {"type": "string", "nullable": true, "description": "admin-token, key:KEY_ID or user:EMAIL."},
            "revoked_at": time("When it was revoked."),
            "expires_at": time("When it stops (or stopped) working."),
            "last_used_at": time("When a service last saw it used (to about a minute)."),
            "replaces": {"type": "string", "nullable": true, "description": "The key this one replaced by rotation."},
            "replaced_by": {"type": "string", "nullable": true, "description": "The key that replaced this one by rotation."},
            "limits": {"$ref": "#/components/schemas/KeyLimits"},
            "key": {"type": "string", "description": "Only in the answer to a create or rotate: the secret, this once."}}},
    })
}

/// `text` as epoch milliseconds, which must not be in the past.
fn future_instant(field: &'static str, text: Option<&str>) -> Result<Option<i64>, ManageError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let at = parse_rfc3339_ms(text).ok_or_else(|| {
        ManageError::invalid(field, "must be an RFC 3339 time, e.g. 2027-01-31T00:00:00Z")
    })?;
    if at < now_ms() {
        return Err(ManageError::invalid(field, "is in the past"));
    }
    Ok(Some(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_must_be_rfc3339_and_not_past() {
        assert!(future_instant("expires_at", None).unwrap().is_none());
        assert!(
            future_instant("expires_at", Some("2999-01-01T00:00:00Z"))
                .unwrap()
                .is_some()
        );
        let past = future_instant("expires_at", Some("2001-01-01T00:00:00Z")).unwrap_err();
        assert_eq!(past.to_string(), "expires_at: is in the past");
        let bad = future_instant("old_key_valid_until", Some("tomorrow")).unwrap_err();
        assert!(
            bad.to_string().starts_with("old_key_valid_until: must be"),
            "{bad}"
        );
    }

    #[test]
    fn limits_must_be_an_object() {
        let array: Result<NewKey, _> =
            serde_json::from_str(r#"{"scopes":["read"],"limits":[1000,2000]}"#);
        assert!(array.is_err());
        let unknown: Result<NewKey, _> = serde_json::from_str(r#"{"scopes":["read"],"colour":1}"#);
        assert!(unknown.unwrap_err().to_string().contains("colour"));
    }
}

//! How an element's provider webhooks are received, as data: which instance a payload is
//! for, how its sender is verified, and how it becomes normalized events.
//!
//! Facebook, Dropbox and Box differ only in header names, encodings, the configuration
//! entry holding the key and a handshake; all of that is declared in the element's
//! `events:` block, so the ingress code has no per-provider branches. What data cannot
//! express goes into the element's `event` hook (JavaScript).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The Verify Token Cloud Elements documented for Facebook subscriptions; what
/// `event.vendor.verify.token` defaults to, so existing Facebook app settings keep working.
pub const DEFAULT_VERIFY_TOKEN: &str = "CloudElements@123";

/// Configuration entry holding the token a subscription handshake must echo.
pub const VERIFY_TOKEN_KEY: &str = "event.vendor.verify.token";

/// An element's `events:` block.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsSpec {
    /// A `GET` the provider sends to prove the URL is ours before it sends events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<Handshake>,
    /// Signatures over the raw body; when any is declared, a payload passes only with
    /// one of them valid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<SignatureSpec>,
    /// Finds the instance from the payload when neither the `Element-Instances` header
    /// nor the per-instance URL names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finder: Option<InstanceFinder>,
    /// How the payload becomes events, when no `event` hook does it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Normalize>,
}

/// A subscription handshake: when the query carries `mode` (and, if set, it equals
/// `modeValue`), Junction answers with the value of `challenge` as plain text, provided
/// the `verifyToken` parameter (if declared) matches the instance's
/// `event.vendor.verify.token` (default [`DEFAULT_VERIFY_TOKEN`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Handshake {
    /// Query parameter whose value is echoed (`hub.challenge`, `challenge`).
    pub challenge: String,
    /// Query parameter naming the handshake, and the value it must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_value: Option<String>,
    /// Query parameter carrying the verify token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<String>,
}

/// One accepted signature: `header` holds `prefix` + the HMAC-SHA256 of the raw body
/// (followed by the value of `timestampHeader`, when declared) under the configuration
/// entry `key`, in `encoding`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignatureSpec {
    pub header: String,
    /// Configuration entry holding the HMAC key (`oauth.api.secret`).
    pub key: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// Header whose value is appended to the body before signing; it must name a time
    /// (RFC 3339) within [`MAX_TIMESTAMP_SKEW_SECONDS`] of now, so a captured payload
    /// cannot be replayed later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
}

/// How far a signed delivery time may lie from now.
pub const MAX_TIMESTAMP_SKEW_SECONDS: i64 = 600;

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
}

/// Cloud Elements' `event.notification.instance.finder`: the instance whose
/// configuration entry `config` holds the value at `path` in the payload (one of the
/// values, when `separator` splits the entry, as Facebook page ids are).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceFinder {
    pub path: String,
    pub config: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
}

/// Where the events are in a payload. `items` selects the event items (see [`select`]);
/// each field is read relative to an item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Normalize {
    /// Path of the items; empty: the payload is one item.
    #[serde(default)]
    pub items: String,
    pub object_type: Field,
    pub object_id: Field,
    pub event_type: Field,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<Field>,
}

/// A value read from an item: a constant, or the value at `path` (from the whole payload
/// when the path starts with `$.`), optionally mapped (`map`, with `default` for values
/// the map lacks).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Field {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub map: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl Field {
    /// The field's text for `item` of `payload`, if it has one.
    pub fn read(&self, item: &Value, payload: &Value) -> Option<String> {
        let raw = match (&self.value, &self.path) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(path)) => self.at(item, payload, path).and_then(text),
            (None, None) => None,
        };
        match raw {
            Some(r) if !self.map.is_empty() => {
                self.map.get(&r).cloned().or_else(|| self.default.clone())
            }
            Some(r) => Some(r),
            None => self.default.clone(),
        }
    }
}

impl Field {
    /// The first value at `path`, relative to `item` or (`$.`) to `payload`.
    pub fn at<'a>(&self, item: &'a Value, payload: &'a Value, path: &str) -> Option<&'a Value> {
        match path.strip_prefix("$.") {
            Some(rooted) => select(payload, rooted).into_iter().next(),
            None => select(item, path).into_iter().next(),
        }
    }
}

/// A scalar as text; objects and arrays have none.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The values at a dotted path: `entry.*.changes.*.value` walks into `entry`, every
/// element of that array, their `changes`, every element of those, and their `value`.
/// A numeric segment indexes an array. An empty path is the value itself.
pub fn select<'a>(value: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![value];
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let mut next = Vec::new();
        for v in current {
            match (segment, v) {
                ("*", Value::Array(items)) => next.extend(items.iter()),
                ("*", Value::Object(map)) => next.extend(map.values()),
                (s, Value::Array(items)) => {
                    if let Some(item) = s.parse::<usize>().ok().and_then(|i| items.get(i)) {
                        next.push(item);
                    }
                }
                (s, Value::Object(map)) => {
                    if let Some(item) = map.get(s) {
                        next.push(item);
                    }
                }
                _ => {}
            }
        }
        current = next;
    }
    current
}

/// What kind of change an event reports.
pub const EVENT_TYPES: &[&str] = &["CREATED", "UPDATED", "DELETED"];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_walk_objects_arrays_and_wildcards() {
        let v = json!({"entry": [{"id": "1", "changes": [{"v": 1}, {"v": 2}]}, {"id": "2", "changes": [{"v": 3}]}]});
        let ids: Vec<_> = select(&v, "entry.*.id").into_iter().cloned().collect();
        assert_eq!(ids, vec![json!("1"), json!("2")]);
        assert_eq!(select(&v, "entry.*.changes.*").len(), 3);
        assert_eq!(select(&v, "entry.1.id"), vec![&json!("2")]);
        assert!(select(&v, "entry.9.id").is_empty());
        assert_eq!(select(&v, ""), vec![&v]);
    }

    #[test]
    fn fields_read_constants_paths_and_maps() {
        let item = json!({"trigger": "FILE.TRASHED", "source": {"id": 7}});
        let constant = Field {
            value: Some("leads".into()),
            path: None,
            map: BTreeMap::new(),
            default: None,
        };
        assert_eq!(constant.read(&item, &item).as_deref(), Some("leads"));
        let id = Field {
            value: None,
            path: Some("source.id".into()),
            map: BTreeMap::new(),
            default: None,
        };
        assert_eq!(id.read(&item, &item).as_deref(), Some("7"));
        let kind = Field {
            value: None,
            path: Some("trigger".into()),
            map: BTreeMap::from([("FILE.TRASHED".into(), "DELETED".into())]),
            default: Some("UPDATED".into()),
        };
        assert_eq!(kind.read(&item, &item).as_deref(), Some("DELETED"));
        assert_eq!(
            kind.read(&json!({"trigger": "FILE.RENAMED"}), &item)
                .as_deref(),
            Some("UPDATED")
        );
    }
}

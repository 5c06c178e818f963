//! Provider webhooks in: find the instance, verify the sender as the element declares,
//! normalize, and store the event with its notifications before answering, so the
//! provider is told "accepted" only for what is durable.

use super::{EventHub, WEBHOOK_EVENTS_PER_NOTIFICATION, keys};
use crate::{ServiceError, Services, now_ms};
use hmac::{Hmac, KeyInit, Mac};
use junction_core::events::{
    DEFAULT_VERIFY_TOKEN, EventsSpec, MAX_TIMESTAMP_SKEW_SECONDS, SignatureEncoding,
    VERIFY_TOKEN_KEY, select, text,
};
use junction_core::{ElementDefinition, InstanceId};
use junction_store::{InstanceRecord, NewEvent, StoreError};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A webhook as it arrived.
#[derive(Debug, Default)]
pub struct WebhookRequest {
    pub element_key: String,
    /// From the per-instance URL.
    pub instance: Option<String>,
    /// The `Element-Instances` header.
    pub instance_header: Option<String>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: bytes::Bytes,
}

impl WebhookRequest {
    fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the provider is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAnswer {
    /// A handshake: echo this text.
    Challenge(String),
    /// Stored; this is the event's id.
    Accepted { event_id: i64 },
    /// The instance's events are off: accepted and not kept.
    Dropped,
}

impl Services {
    /// A provider's `GET`: its subscription handshake, answered with the challenge when
    /// the element declares one and the verify token matches.
    pub async fn webhook_handshake(
        &self,
        request: &WebhookRequest,
    ) -> Result<WebhookAnswer, ServiceError> {
        let (element, record) = match self.named_instance(request).await? {
            Some(record) => (self.element_of(&record).await?, Some(record)),
            None => (self.webhook_element(&request.element_key)?, None),
        };
        let handshake = element
            .events
            .as_ref()
            .and_then(|e| e.handshake.as_ref())
            .ok_or_else(|| {
                ServiceError::bad_request(
                    "no_webhook_handshake",
                    format!("element '{}' declares no webhook handshake", element.key),
                )
            })?;
        if let Some(mode) = &handshake.mode {
            let given = request.param(mode);
            if given.is_none()
                || handshake
                    .mode_value
                    .as_deref()
                    .is_some_and(|want| given != Some(want))
            {
                return Err(ServiceError::bad_request(
                    "invalid_handshake",
                    format!(
                        "the handshake needs {mode}={}",
                        handshake.mode_value.as_deref().unwrap_or("…")
                    ),
                ));
            }
        }
        if let Some(param) = &handshake.verify_token {
            let expected = record
                .as_ref()
                .and_then(|r| r.config.get(VERIFY_TOKEN_KEY).cloned().flatten())
                .or_else(|| {
                    element
                        .config_entry(VERIFY_TOKEN_KEY)
                        .and_then(|e| e.default.clone())
                })
                .unwrap_or_else(|| DEFAULT_VERIFY_TOKEN.to_owned());
            let given = request.param(param).unwrap_or_default();
            if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                return Err(ServiceError::Unauthorized(format!(
                    "{param} does not match the instance's {VERIFY_TOKEN_KEY}"
                )));
            }
        }
        let challenge = request.param(&handshake.challenge).ok_or_else(|| {
            ServiceError::bad_request(
                "invalid_handshake",
                format!("the handshake carries no {}", handshake.challenge),
            )
        })?;
        Ok(WebhookAnswer::Challenge(challenge.to_owned()))
    }

    /// A provider's `POST`: verified, normalized and stored with its notifications, or
    /// refused with nothing stored.
    pub async fn receive_webhook(
        &self,
        request: &WebhookRequest,
    ) -> Result<WebhookAnswer, ServiceError> {
        let named = self.named_instance(request).await?;
        let payload: Value = serde_json::from_slice(&request.body).map_err(|e| {
            ServiceError::bad_request(
                "invalid_body",
                format!("the webhook body must be JSON: {e}"),
            )
        })?;
        let (element, record) = match named {
            Some(record) => (self.element_of(&record).await?, record),
            None => {
                let element = self.webhook_element(&request.element_key)?;
                let record = self.find_instance(&element, &payload).await?;
                (element, record)
            }
        };
        let spec = element.events.clone().unwrap_or_default();
        verify_signatures(&spec, &record, request, now_ms())?;
        let on = record
            .config
            .get(keys::ENABLED)
            .cloned()
            .flatten()
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !on || record.disabled {
            self.events.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(instance_id = %record.id, "webhook for an instance whose events are off: dropped");
            return Ok(WebhookAnswer::Dropped);
        }
        let now = now_ms();
        let headers: Map<String, Value> = request
            .headers
            .iter()
            .filter(|(k, _)| !junction_core::config::looks_like_credential(k))
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let configuration: Map<String, Value> = record
            .config
            .iter()
            .filter(|(k, _)| !element.is_secret_key(k))
            .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
            .collect();
        let events = self
            .events
            .normalize(&element, &payload, &headers, configuration, now)
            .await?;
        let raw = String::from_utf8_lossy(&request.body).into_owned();
        let event = self.events.new_event(
            &record,
            "webhook",
            raw,
            payload,
            events,
            WEBHOOK_EVENTS_PER_NOTIFICATION,
        );
        let event_id = self.events.writer.write(event).await?;
        Ok(WebhookAnswer::Accepted { event_id })
    }

    /// A built-in element that receives webhooks (custom elements are reached through
    /// their instances).
    fn webhook_element(&self, key: &str) -> Result<Arc<ElementDefinition>, ServiceError> {
        self.catalog
            .get(key)
            .cloned()
            .ok_or_else(|| ServiceError::ElementNotFound(key.to_owned()))
    }

    /// The instance the URL or the `Element-Instances` header names, if either does; it
    /// must be an instance of the URL's element.
    async fn named_instance(
        &self,
        request: &WebhookRequest,
    ) -> Result<Option<InstanceRecord>, ServiceError> {
        let raw = request.instance.as_deref().or_else(|| {
            request
                .instance_header
                .as_deref()
                .and_then(|h| h.split(',').next())
        });
        let Some(raw) = raw.map(str::trim) else {
            return Ok(None);
        };
        let unknown = || ServiceError::bad_request_404();
        let id: i64 = raw.parse().map_err(|_| unknown())?;
        let account = match self.store.instance_account(InstanceId(id)).await {
            Ok(a) => a,
            Err(StoreError::NotFound) => return Err(unknown()),
            Err(e) => return Err(e.into()),
        };
        let record = match self.store.get_instance(account, InstanceId(id)).await {
            Ok(r) => r,
            Err(StoreError::NotFound) => return Err(unknown()),
            Err(e) => return Err(e.into()),
        };
        if record.element_key != request.element_key {
            return Err(unknown());
        }
        Ok(Some(record))
    }

    /// The element's instance finder: the instance whose configuration holds the
    /// payload's value.
    async fn find_instance(
        &self,
        element: &ElementDefinition,
        payload: &Value,
    ) -> Result<InstanceRecord, ServiceError> {
        let finder = element
            .events
            .as_ref()
            .and_then(|e| e.finder.as_ref())
            .ok_or_else(|| {
                ServiceError::bad_request(
                    "missing_instance",
                    format!(
                        "element '{}' cannot tell the instance from the payload: send the \
                         Element-Instances header or use the instance's webhook URL \
                         (/events/{}/{{instanceId}})",
                        element.key, element.key
                    ),
                )
            })?;
        let wanted = select(payload, &finder.path)
            .into_iter()
            .next()
            .and_then(text)
            .ok_or_else(ServiceError::bad_request_404)?;
        let candidates = self
            .store
            .finder_candidates(&element.key, &finder.config, &wanted)
            .await?;
        let found = candidates.into_iter().find(|c| {
            c.value.as_deref().is_some_and(|v| match &finder.separator {
                Some(sep) => v.split(sep.as_str()).any(|p| p.trim() == wanted),
                None => v == wanted,
            })
        });
        let found = found.ok_or_else(ServiceError::bad_request_404)?;
        self.store
            .get_instance(found.account_id, found.id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ServiceError::bad_request_404(),
                e => e.into(),
            })
    }
}

impl ServiceError {
    /// The one answer for a webhook whose instance is not found, however it was looked
    /// for, so callers learn nothing of which instances exist.
    fn bad_request_404() -> Self {
        Self::WebhookInstanceNotFound
    }
}

/// Checks the element's declared signatures: one valid is enough; none declared, none
/// needed.
fn verify_signatures(
    spec: &EventsSpec,
    record: &InstanceRecord,
    request: &WebhookRequest,
    now: i64,
) -> Result<(), ServiceError> {
    if spec.signatures.is_empty() {
        return Ok(());
    }
    let mut reasons = Vec::new();
    for sig in &spec.signatures {
        let Some(given) = request.header(&sig.header) else {
            reasons.push(format!("no {} header", sig.header));
            continue;
        };
        let Some(key) = record.config.get(&sig.key).cloned().flatten() else {
            reasons.push(format!(
                "the instance has no {} to check {} with",
                sig.key, sig.header
            ));
            continue;
        };
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()) {
            Ok(mac) => mac,
            Err(_) => continue,
        };
        mac.update(&request.body);
        if let Some(ts_header) = &sig.timestamp_header {
            let Some(ts) = request.header(ts_header) else {
                reasons.push(format!("no {ts_header} header"));
                continue;
            };
            let fresh = chrono::DateTime::parse_from_rfc3339(ts)
                .map(|t| (t.timestamp_millis() - now).abs() <= MAX_TIMESTAMP_SKEW_SECONDS * 1000)
                .unwrap_or(false);
            if !fresh {
                reasons.push(format!(
                    "{ts_header} is not a time within 10 minutes of now"
                ));
                continue;
            }
            mac.update(ts.as_bytes());
        }
        let Some(encoded) = given.trim().strip_prefix(sig.prefix.as_str()) else {
            reasons.push(format!(
                "{} does not start with '{}'",
                sig.header, sig.prefix
            ));
            continue;
        };
        let decoded = match sig.encoding {
            SignatureEncoding::Hex => hex::decode(encoded.trim()).ok(),
            SignatureEncoding::Base64 => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
            }
        };
        match decoded {
            Some(bytes) if mac.verify_slice(&bytes).is_ok() => return Ok(()),
            _ => reasons.push(format!("{} does not match the body", sig.header)),
        }
    }
    Err(ServiceError::InvalidSignature(reasons.join("; ")))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl EventHub {
    /// The event record and its notifications: the normalized events in chunks of
    /// `per_notification`, each with the whole raw payload, as Cloud Elements splits them.
    pub(crate) fn new_event(
        &self,
        record: &InstanceRecord,
        source: &'static str,
        raw: String,
        payload: Value,
        events: Vec<Value>,
        per_notification: usize,
    ) -> NewEvent {
        let callback = record
            .config
            .get(keys::CALLBACK_URL)
            .cloned()
            .flatten()
            .filter(|u| !u.trim().is_empty());
        let events_json = Value::Array(events.clone()).to_string();
        let mut notifications = Vec::new();
        if let Some(url) = callback {
            let origin = super::receiver_of(&url);
            let payload = Arc::new(payload);
            let chunks: Vec<Vec<Value>> = if events.is_empty() {
                vec![Vec::new()]
            } else {
                events
                    .chunks(per_notification.max(1))
                    .map(<[Value]>::to_vec)
                    .collect()
            };
            for chunk in chunks {
                let ordering_key = ordering_key(&chunk);
                let payload = Arc::clone(&payload);
                let instance_id = record.id.0;
                let element_key = record.element_key.clone();
                notifications.push(junction_store::NewNotification {
                    webhook_id: uuid::Uuid::new_v4().to_string(),
                    body: Box::new(move |event_id| {
                        serde_json::json!({"message": {
                            "eventId": event_id.to_string(),
                            "instanceId": instance_id,
                            "elementKey": element_key,
                            "events": chunk,
                            "raw": *payload,
                        }})
                        .to_string()
                    }),
                    ordering_key,
                    callback: origin.clone(),
                });
            }
        }
        NewEvent {
            instance_id: record.id,
            account_id: record.account_id,
            element_key: record.element_key.clone(),
            source,
            provider_data: raw,
            events: events_json,
            notifications,
        }
    }
}

/// The object a notification is about, when all its events are about one; '' otherwise,
/// which orders it after everything earlier of its instance.
fn ordering_key(events: &[Value]) -> String {
    let key = |e: &Value| {
        format!(
            "{}:{}",
            e["objectType"].as_str().unwrap_or_default(),
            e["objectId"].as_str().unwrap_or_default()
        )
    };
    match events.split_first() {
        Some((first, rest)) if rest.iter().all(|e| key(e) == key(first)) => key(first),
        Some(_) => String::new(),
        // Raw only: about no object Junction knows, so ordered after nothing.
        None => format!("#{}", uuid::Uuid::new_v4()),
    }
}

//! Notifications out: claim due rows of the outbox, POST each to its instance's (or its
//! Connect session's) callback (signed when a key is set), and record what happened. Retries back off (first delay
//! × 4ⁿ, jittered); 410 Gone turns the instance's events off; the last failure leaves
//! the event FAILED for replay. A circuit breaker per receiver stops a dead one from
//! costing a timeout per notification: while it is open, notifications wait without
//! using up their retries, one probe at a time tests the receiver, and when it answers
//! again its waiting notifications are released at once.

use super::{EventHub, keys};
use crate::{ServiceError, Services, now_ms};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use junction_core::Secret;
use junction_store::{Attempt, ClaimedDelivery, DeliveryOutcome, DeliveryResult, InstanceRecord};
use sha2::Sha256;
use std::time::{Duration, Instant};

/// Failures in a row after which a receiver's circuit opens.
const BREAKER_THRESHOLD: u32 = 5;
/// How long an open circuit first stays open; each failed probe doubles it, up to
/// [`BREAKER_MAX_COOLDOWN_MS`].
const BREAKER_COOLDOWN_MS: i64 = 1_000;
const BREAKER_MAX_COOLDOWN_MS: i64 = 10_000;
/// Kept of a receiver's error answer in the attempt record.
const ERROR_SNIPPET: usize = 200;

/// What one round of delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub claimed: usize,
    pub delivered: usize,
    pub retried: usize,
    pub failed: usize,
}

/// One receiver's circuit.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    failures: u32,
    open_until: Option<i64>,
    cooldown_ms: i64,
    /// An attempt is testing whether the open circuit's receiver is back.
    probing: bool,
}

/// `sha256=` + base64 HMAC-SHA256 of the body under the key: the
/// `Elements-Webhook-Signature` header, as Cloud Elements computes it.
pub fn sign_body(key: &str, body: &[u8]) -> String {
    format!("sha256={}", BASE64.encode(hmac(key.as_bytes(), &[body])))
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The Standard Webhooks signature (`v1,<base64>` over `id.timestamp.body`); a key
/// written `whsec_<base64>` is that library's secret format and is decoded first.
fn standard_signature(key: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let secret = key
        .strip_prefix("whsec_")
        .and_then(|k| BASE64.decode(k).ok())
        .unwrap_or_else(|| key.as_bytes().to_vec());
    let ts = timestamp.to_string();
    let mac = hmac(&secret, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", BASE64.encode(mac))
}

/// Where one notification goes.
struct Target {
    url: String,
    key: Option<Secret>,
    /// The instance it is about (none for a Connect session's).
    record: Option<InstanceRecord>,
}

/// Why a notification was not sent.
enum Unsendable {
    /// Worth another attempt later.
    Retry(String),
    /// No attempt can succeed.
    Fail(String),
}

/// What an attempt's result did to its receiver's circuit.
enum Circuit {
    Unchanged,
    /// It was failing and answered.
    Recovered,
    /// It is open until this time.
    Opened(i64),
}

enum Admit {
    Send,
    /// The circuit is open: not sent, and not counted against the notification's
    /// retries (a receiver rested for longer than the retry window would otherwise fail
    /// every notification, a replayed one included, without a single request to it).
    Rested {
        until: i64,
    },
}

/// What a finished batch asks for beyond its own rows.
enum Effect {
    /// The receiver answered after failing: release its waiting retries.
    Recovered(String),
    /// The receiver's circuit opened (or stayed open after a failed probe) until this
    /// time: its waiting notifications need not be claimed before then.
    Rested(String, i64),
    /// The instance's receiver answered 410 Gone.
    Gone(Box<InstanceRecord>),
}

impl EventHub {
    fn admit(&self, callback: &str, now: i64) -> Admit {
        let mut breakers = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(b) = breakers.get_mut(callback) else {
            return Admit::Send;
        };
        match b.open_until {
            Some(until) if now < until => Admit::Rested { until },
            // Another notification is testing the receiver; look again once it has had
            // the time of a send.
            Some(_) if b.probing => Admit::Rested {
                until: now + BREAKER_COOLDOWN_MS,
            },
            Some(_) => {
                b.probing = true;
                Admit::Send
            }
            None => Admit::Send,
        }
    }

    /// Records an attempt's result and what it did to the receiver's circuit.
    fn record(&self, callback: &str, ok: bool, now: i64) -> Circuit {
        let mut breakers = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ok {
            return if breakers.remove(callback).is_some() {
                Circuit::Recovered
            } else {
                Circuit::Unchanged
            };
        }
        let b = breakers.entry(callback.to_owned()).or_default();
        b.failures = b.failures.saturating_add(1);
        if b.open_until.is_some() {
            if b.probing {
                b.cooldown_ms = (b.cooldown_ms * 2).min(BREAKER_MAX_COOLDOWN_MS);
                b.open_until = Some(now + b.cooldown_ms);
                b.probing = false;
                return Circuit::Opened(now + b.cooldown_ms);
            }
        } else if b.failures >= BREAKER_THRESHOLD {
            b.cooldown_ms = BREAKER_COOLDOWN_MS;
            b.open_until = Some(now + b.cooldown_ms);
            tracing::warn!(
                callback,
                failures = b.failures,
                "event receiver keeps failing: circuit open"
            );
            return Circuit::Opened(now + b.cooldown_ms);
        }
        Circuit::Unchanged
    }

    /// Someone asked for a receiver's notifications to be sent again (a replay): its
    /// circuit closes here, so the replay is tried at once rather than after the rest.
    pub(crate) fn close_circuit(&self, callback_url: &str) {
        self.breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&super::receiver_of(callback_url));
    }

    /// Retry or give up after a failed attempt number `attempts + 1`.
    fn after_failure(&self, attempts: i64, now: i64) -> DeliveryOutcome {
        let made = u32::try_from(attempts + 1).unwrap_or(u32::MAX);
        if made > self.settings.retries {
            DeliveryOutcome::Failed
        } else {
            DeliveryOutcome::Retry(now + self.retry_delay(made).as_millis() as i64)
        }
    }
}

impl Services {
    /// One round: claims up to `limit` due notifications, sends them at once (none of
    /// them waits on another: the claim leaves out any with an earlier undelivered one
    /// about the same object) and records every outcome in one transaction.
    pub async fn deliver_due(&self, limit: i64) -> Result<DeliveryReport, ServiceError> {
        let hub = &self.events;
        let now = now_ms();
        // Long enough for the slowest send of the batch and the write recording it; short
        // enough that a killed replica's notifications go out again soon.
        let lease = (hub.settings.timeout + Duration::from_secs(10)).as_millis() as i64;
        let claimed = self
            .store
            .claim_deliveries(&hub.owner, now, now + lease, limit)
            .await?;
        let mut report = DeliveryReport {
            claimed: claimed.len(),
            ..DeliveryReport::default()
        };
        if claimed.is_empty() {
            return Ok(report);
        }
        if claimed.len() as i64 == limit {
            // More may be due: another worker claims them while this batch is sent.
            hub.wake.notify_one();
        }
        let sent =
            futures_util::future::join_all(claimed.iter().map(|d| self.deliver_one(d))).await;
        let mut results = Vec::with_capacity(sent.len());
        let mut effects = Vec::new();
        for (result, effect) in sent {
            match result.outcome {
                DeliveryOutcome::Delivered => report.delivered += 1,
                DeliveryOutcome::Retry(_) | DeliveryOutcome::Deferred(_) => report.retried += 1,
                DeliveryOutcome::Failed => report.failed += 1,
            }
            results.push(result);
            effects.extend(effect);
        }
        // An instance whose receiver is gone has its events turned off before the
        // event shows FAILED, so whoever sees the failure also sees why.
        let mut gone = Vec::new();
        let mut recovered = Vec::new();
        let mut rested = Vec::new();
        for effect in effects {
            match effect {
                Effect::Gone(record) => {
                    let id = record.id;
                    self.turn_events_off(*record).await;
                    gone.push(id);
                }
                Effect::Recovered(callback) => recovered.push(callback),
                Effect::Rested(callback, until) => rested.push((callback, until)),
            }
        }
        self.store
            .finish_deliveries(&hub.owner, &results, now_ms())
            .await?;
        for id in gone {
            if let Err(e) = self.store.fail_pending_deliveries(id, now_ms()).await {
                tracing::error!(instance_id = %id, error = %e, "could not fail pending notifications after 410 Gone");
            }
        }
        for (callback, until) in rested {
            // Only saves claims: a notification claimed anyway is deferred by `admit`.
            if let Err(e) = self.store.defer_callback(&callback, until, now_ms()).await {
                tracing::warn!(callback, error = %e, "could not defer a resting receiver's notifications");
            }
        }
        for callback in recovered {
            let released = self.store.release_callback(&callback, now_ms()).await?;
            if released > 0 {
                tracing::info!(
                    callback,
                    released,
                    "event receiver recovered: waiting retries released"
                );
                hub.wake.notify_waiters();
            }
        }
        Ok(report)
    }

    /// Waits until notifications may be due: new ones were stored, or `max` passed.
    pub async fn wait_for_deliveries(&self, max: Duration) {
        let notified = self.events.wake.notified();
        let wait = match self.store.next_delivery_due().await {
            Ok(Some(at)) => {
                Duration::from_millis((at - now_ms()).clamp(0, max.as_millis() as i64) as u64)
            }
            _ => max,
        };
        if wait.is_zero() {
            return;
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(wait) => {}
        }
    }

    /// A future that completes when new notifications are stored; create it before
    /// looking for work so a wake-up between the look and the wait is not lost.
    pub fn deliveries_stored(&self) -> tokio::sync::futures::OwnedNotified {
        std::sync::Arc::clone(&self.events.wake).notified_owned()
    }

    async fn deliver_one(&self, d: &ClaimedDelivery) -> (DeliveryResult, Option<Effect>) {
        let hub = &self.events;
        let now = now_ms();
        let result = |outcome, attempt| DeliveryResult {
            id: d.id,
            event_id: d.event_id,
            outcome,
            attempt: Some(attempt),
        };
        let not_sent = |error: String| Attempt {
            attempted_at: now,
            status_code: None,
            duration_ms: 0,
            error: Some(error),
        };
        let target = match self.delivery_target(d).await {
            Ok(t) => t,
            Err(Unsendable::Retry(error)) => {
                return (
                    result(hub.after_failure(d.attempts, now), not_sent(error)),
                    None,
                );
            }
            Err(Unsendable::Fail(error)) => {
                return (result(DeliveryOutcome::Failed, not_sent(error)), None);
            }
        };
        let Target { url, key, record } = target;
        if let Admit::Rested { until } = hub.admit(&d.callback, now) {
            return (
                DeliveryResult {
                    id: d.id,
                    event_id: d.event_id,
                    outcome: DeliveryOutcome::Deferred(until),
                    attempt: None,
                },
                None,
            );
        }
        let url = match hub.client.check_url(keys::CALLBACK_URL, &url) {
            Ok(u) => u,
            Err(e) => {
                return (
                    result(DeliveryOutcome::Failed, not_sent(e.to_string())),
                    None,
                );
            }
        };
        let mut request = hub
            .client
            .request(reqwest::Method::POST, url)
            .header("content-type", "application/json")
            .header("elements-webhook-id", &d.webhook_id);
        if let Some(key) = key.as_ref().map(Secret::expose).filter(|k| !k.is_empty()) {
            request = request.header(
                "elements-webhook-signature",
                sign_body(key, d.body.as_bytes()),
            );
            if hub.settings.standard_webhooks {
                let ts = now / 1000;
                request = request
                    .header("webhook-id", &d.webhook_id)
                    .header("webhook-timestamp", ts.to_string())
                    .header(
                        "webhook-signature",
                        standard_signature(key, &d.webhook_id, ts, d.body.as_bytes()),
                    );
            }
        }
        let started = Instant::now();
        let answer = hub.client.send(request.body(d.body.clone())).await;
        let duration_ms = started.elapsed().as_millis() as i64;
        let (status, error) = match &answer {
            Ok((status, body)) if status.is_success() => (Some(status.as_u16()), None),
            Ok((status, body)) => {
                let text = String::from_utf8_lossy(body);
                let cut: String = text.chars().take(ERROR_SNIPPET).collect();
                (
                    Some(status.as_u16()),
                    Some(format!("HTTP {}: {cut}", status.as_u16())),
                )
            }
            Err(e) => (None, Some(e.to_string())),
        };
        let attempt = Attempt {
            attempted_at: now,
            status_code: status.map(i64::from),
            duration_ms,
            error: error.clone(),
        };
        let ok = error.is_none();
        let circuit = hub.record(&d.callback, ok, now_ms());
        if ok {
            let effect = matches!(circuit, Circuit::Recovered)
                .then(|| Effect::Recovered(d.callback.clone()));
            return (result(DeliveryOutcome::Delivered, attempt), effect);
        }
        if status == Some(410) {
            // A session's receiver has nothing to turn off: its one notification fails.
            return (
                result(DeliveryOutcome::Failed, attempt),
                record.map(|r| Effect::Gone(Box::new(r))),
            );
        }
        tracing::debug!(webhook_id = %d.webhook_id, attempts = d.attempts + 1, error = ?error, "event notification failed");
        let effect = match circuit {
            Circuit::Opened(until) => Some(Effect::Rested(d.callback.clone(), until)),
            _ => None,
        };
        (result(hub.after_failure(d.attempts, now), attempt), effect)
    }

    /// Where a notification goes and what signs it, read when it is sent (so a changed
    /// callback or key applies to retries): the instance's configuration, or what the
    /// Connect session was created with.
    async fn delivery_target(&self, d: &ClaimedDelivery) -> Result<Target, Unsendable> {
        if let Some(session) = d.connect_session_id {
            let callback = self
                .store
                .connect_session_callback(session)
                .await
                .map_err(|e| {
                    Unsendable::Retry(format!("the Connect session could not be read: {e}"))
                })?
                .ok_or_else(|| {
                    Unsendable::Fail("the Connect session and its callback are gone".to_owned())
                })?;
            return Ok(Target {
                url: callback.url,
                key: callback.signature_key,
                record: None,
            });
        }
        let Some(instance) = d.instance_id else {
            return Err(Unsendable::Fail(
                "the notification names neither an instance nor a Connect session".to_owned(),
            ));
        };
        let record = self
            .store
            .get_instance(d.account_id, instance)
            .await
            .map_err(|e| Unsendable::Retry(format!("the instance could not be read: {e}")))?;
        let Some(url) = record.config.get(keys::CALLBACK_URL).cloned().flatten() else {
            return Err(Unsendable::Fail(
                "the instance has no event.notification.callback.url".to_owned(),
            ));
        };
        let key = record
            .config
            .get(keys::SIGNATURE_KEY)
            .cloned()
            .flatten()
            .map(Secret::new);
        Ok(Target {
            url,
            key,
            record: Some(record),
        })
    }

    /// The receiver said 410 Gone: the instance's events turn off (its pending
    /// notifications then fail, replayable once a callback is set again).
    async fn turn_events_off(&self, record: InstanceRecord) {
        let id = record.id;
        tracing::warn!(instance_id = %id, "event receiver answered 410 Gone: events turned off");
        let saved = self
            .save(record, |r| {
                r.config
                    .insert(keys::ENABLED.to_owned(), Some("false".to_owned()));
            })
            .await;
        if let Err(e) = saved {
            tracing::error!(instance_id = %id, error = %e, "could not turn events off after 410 Gone");
        }
    }

    /// Deletes delivered events older than the retention, a batch at a time; returns how
    /// many went.
    pub async fn prune_events(&self) -> Result<u64, ServiceError> {
        let before = now_ms() - self.events.settings.retention.as_millis() as i64;
        let mut total = 0;
        loop {
            let pruned = self.store.prune_events(before, 500).await?;
            total += pruned;
            if pruned < 500 {
                return Ok(total);
            }
            // Let deliveries have the writer between batches.
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_sha256_and_base64_of_the_hmac_as_cloud_elements_documents() {
        // Node: 'sha256=' + createHmac('sha256', 'key').update('{"a":1}').digest('base64')
        assert_eq!(
            sign_body("key", br#"{"a":1}"#),
            "sha256=iKZ/JLvNrtDmyZdAS7eadDuvRMa6svTCcyjjAJ0i40I="
        );
    }
}

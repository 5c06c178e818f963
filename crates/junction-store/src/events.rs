//! Events and their outbox (see migration 0010): event records written together with
//! their notifications, delivery claims under a lease, the outcome of each attempt, the
//! events API's reads, replays and pruning.

use crate::{Dialect, Store, StoreError, placeholders, value_rows};
use junction_core::{AccountId, InstanceId};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeSet;

/// What an event record's `status` says.
pub mod status {
    /// Stored; nothing was sent yet (or there is nowhere to send it).
    pub const RECEIVED: &str = "RECEIVED";
    /// At least one attempt was made; notifications are still on their way.
    pub const DISPATCHED: &str = "DISPATCHED";
    /// Every notification was delivered.
    pub const NOTIFIED: &str = "NOTIFIED";
    /// A notification used up its retries (or its callback answered 410 Gone).
    pub const FAILED: &str = "FAILED";
}

const PENDING: &str = "pending";
const DELIVERED: &str = "delivered";
const FAILED: &str = "failed";

/// One notification to send for a new event.
pub struct NewNotification {
    /// `Elements-Webhook-Id`: kept across every retry and replay.
    pub webhook_id: String,
    /// The body, given the event's id (which the insert assigns).
    pub body: Box<dyn Fn(i64) -> String + Send + Sync>,
    /// The object it is about, or '' when it holds several.
    pub ordering_key: String,
    /// The receiver's origin.
    pub callback: String,
}

/// An event to store with its notifications.
pub struct NewEvent {
    pub instance_id: InstanceId,
    pub account_id: AccountId,
    pub element_key: String,
    /// `webhook` or `polling`.
    pub source: &'static str,
    pub provider_data: String,
    /// The normalized events, a JSON array.
    pub events: String,
    pub notifications: Vec<NewNotification>,
}

/// A notification claimed for sending. It is about an instance or, for how a Connect
/// session ended, about that session.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub event_id: i64,
    pub instance_id: Option<InstanceId>,
    pub connect_session_id: Option<i64>,
    pub account_id: AccountId,
    pub webhook_id: String,
    pub body: String,
    pub callback: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// What became of one claimed notification.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at this time (epoch ms).
    Retry(i64),
    /// No more attempts: it stays failed until replayed.
    Failed,
    /// Not attempted (its receiver's circuit is open): wait until this time, with no
    /// attempt counted.
    Deferred(i64),
}

/// What one attempt got, for `notifiedData`.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub attempted_at: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

/// The result of sending one claimed notification.
#[derive(Debug, Clone)]
pub struct DeliveryResult {
    pub id: i64,
    pub event_id: i64,
    pub outcome: DeliveryOutcome,
    pub attempt: Option<Attempt>,
}

/// An event record as the events API shows it.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: i64,
    pub instance_id: InstanceId,
    pub element_key: String,
    pub source: String,
    pub status: String,
    pub provider_data: String,
    pub events: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub attempts: Vec<Attempt>,
}

/// Which events a listing wants.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub status: Option<String>,
    /// Only events received at or after this time (epoch ms).
    pub from: Option<i64>,
    /// Only events received before this time (epoch ms).
    pub to: Option<i64>,
    /// Keyset cursor: only events with a smaller id (pages go newest first).
    pub before: Option<i64>,
    pub limit: i64,
}

/// One page of events, newest first.
#[derive(Debug)]
pub struct EventPage {
    pub items: Vec<EventRecord>,
    /// Counted on a walk's first page only.
    pub total: Option<i64>,
    pub next_before: Option<i64>,
}

/// An instance a webhook may be for, with the plain (unsealed) configuration value a
/// finder compares.
#[derive(Debug, Clone)]
pub struct FinderCandidate {
    pub id: InstanceId,
    pub account_id: AccountId,
    pub value: Option<String>,
}

const EVENT_COLUMNS: &str = "id, instance_id, element_key, source, status, provider_data, events, \
     created_at, updated_at";

impl Store {
    /// Stores events and their notifications in one transaction; returns the events' ids
    /// in order. Once this returns, every notification will be sent.
    pub async fn insert_events(
        &self,
        batch: &[NewEvent],
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.writer().begin().await?;
        let ids = insert_events_in(&mut tx, batch, now).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Claims up to `limit` due notifications for `owner` until `lease_until`, oldest
    /// first, skipping any whose instance has an earlier undelivered notification about
    /// the same object (or about several objects).
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let lock = match self.dialect() {
            Dialect::Postgres => " for update skip locked",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "update event_deliveries set lease_owner = $1, lease_until = $2 \
             where (lease_until is null or lease_until < $3) and id in (\
               select d.id from event_deliveries d \
               where d.state = 'pending' and d.next_attempt_at <= $3 \
               and (d.lease_until is null or d.lease_until < $3) \
               and not exists (select 1 from event_deliveries e where e.instance_id = d.instance_id \
                 and e.ordering_key = d.ordering_key and e.state = 'pending' and e.id < d.id) \
               and not exists (select 1 from event_deliveries e where e.instance_id = d.instance_id \
                 and e.ordering_key = '' and e.state = 'pending' and e.id < d.id) \
               and (d.ordering_key <> '' or not exists (select 1 from event_deliveries e \
                 where e.instance_id = d.instance_id and e.state = 'pending' and e.id < d.id)) \
               order by d.id limit $4{lock}) \
             returning id, event_id, instance_id, connect_session_id, account_id, webhook_id, body, \
             callback, attempts"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .fetch_all(self.writer())
            .await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(ClaimedDelivery {
                    id: row.try_get("id")?,
                    event_id: row.try_get("event_id")?,
                    instance_id: row
                        .try_get::<Option<i64>, _>("instance_id")?
                        .map(InstanceId),
                    connect_session_id: row.try_get("connect_session_id")?,
                    account_id: AccountId(row.try_get("account_id")?),
                    webhook_id: row.try_get("webhook_id")?,
                    body: row.try_get("body")?,
                    callback: row.try_get("callback")?,
                    attempts: row.try_get("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        claimed.sort_by_key(|d| d.id);
        Ok(claimed)
    }

    /// When the earliest pending notification is due (epoch ms), if any is.
    pub async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "select min(next_attempt_at) from event_deliveries where state = 'pending'",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(next)
    }

    /// Writes what became of claimed notifications, their attempts and their events'
    /// status, in one transaction. A row whose lease `owner` no longer holds (it expired
    /// and another worker took it) is left to that worker.
    pub async fn finish_deliveries(
        &self,
        owner: &str,
        results: &[DeliveryResult],
        now: i64,
    ) -> Result<(), StoreError> {
        if results.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await?;
        // Delivered rows, the common case, are written with one statement; the fence
        // (`lease_owner`) says through `returning` which of them were still ours.
        let delivered: Vec<&DeliveryResult> = results
            .iter()
            .filter(|r| matches!(r.outcome, DeliveryOutcome::Delivered))
            .collect();
        let mut written: BTreeSet<i64> = BTreeSet::new();
        for chunk in delivered.chunks(500) {
            let sql = format!(
                "update event_deliveries set state = '{DELIVERED}', next_attempt_at = $1, \
                 attempts = attempts + 1, lease_owner = null, lease_until = null, updated_at = $1 \
                 where lease_owner = $2 and id in ({}) returning id",
                placeholders(3, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
                .bind(now)
                .bind(owner);
            for r in chunk {
                q = q.bind(r.id);
            }
            written.extend(q.fetch_all(&mut *tx).await?);
        }
        for r in results {
            let (state, next, counted) = match r.outcome {
                DeliveryOutcome::Delivered => continue,
                DeliveryOutcome::Retry(at) => (PENDING, at, 1),
                DeliveryOutcome::Failed => (FAILED, now, 1),
                DeliveryOutcome::Deferred(at) => (PENDING, at, 0),
            };
            let done = sqlx::query(
                "update event_deliveries set state = $1, next_attempt_at = $2, \
                 attempts = attempts + $3, lease_owner = null, lease_until = null, updated_at = $4 \
                 where id = $5 and lease_owner = $6",
            )
            .bind(state)
            .bind(next)
            .bind(counted)
            .bind(now)
            .bind(r.id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                written.insert(r.id);
            }
        }
        let attempts: Vec<(&DeliveryResult, &Attempt)> = results
            .iter()
            .filter(|r| written.contains(&r.id))
            .filter_map(|r| r.attempt.as_ref().map(|a| (r, a)))
            .collect();
        for chunk in attempts.chunks(100) {
            let sql = format!(
                "insert into event_attempts (event_id, delivery_id, attempted_at, status_code, \
                 duration_ms, error) values {}",
                value_rows(chunk.len(), 6, 0, "(?1, ?2, ?3, ?4, ?5, ?6)")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (r, a) in chunk {
                q = q
                    .bind(r.event_id)
                    .bind(r.id)
                    .bind(a.attempted_at)
                    .bind(a.status_code)
                    .bind(a.duration_ms)
                    .bind(a.error.clone());
            }
            q.execute(&mut *tx).await?;
        }
        let events: BTreeSet<i64> = results
            .iter()
            .filter(|r| written.contains(&r.id))
            .map(|r| r.event_id)
            .collect();
        settle_status(&mut tx, &events.into_iter().collect::<Vec<_>>(), now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The receiver at `callback` is failing: its pending notifications due before
    /// `until` wait until then. Rows in flight keep their lease.
    pub async fn defer_callback(
        &self,
        callback: &str,
        until: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "update event_deliveries set next_attempt_at = $1 \
             where callback = $2 and state = 'pending' and next_attempt_at < $1 \
             and (lease_until is null or lease_until < $3)",
        )
        .bind(until)
        .bind(callback)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// The receiver at `callback` answers again: its waiting retries are due now rather
    /// than at their scheduled times.
    pub async fn release_callback(&self, callback: &str, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "update event_deliveries set next_attempt_at = $1 \
             where callback = $2 and state = 'pending' and next_attempt_at > $1",
        )
        .bind(now)
        .bind(callback)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// The instance's receiver is gone (410): its pending notifications fail, to be
    /// replayed once a callback is set again.
    pub async fn fail_pending_deliveries(
        &self,
        instance: InstanceId,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer().begin().await?;
        let events: Vec<i64> = sqlx::query_scalar(
            "select distinct event_id from event_deliveries where instance_id = $1 and state = 'pending'",
        )
        .bind(instance.0)
        .fetch_all(&mut *tx)
        .await?;
        let done = sqlx::query(
            "update event_deliveries set state = 'failed', lease_owner = null, lease_until = null, \
             updated_at = $1 where instance_id = $2 and state = 'pending'",
        )
        .bind(now)
        .bind(instance.0)
        .execute(&mut *tx)
        .await?;
        settle_status(&mut tx, &events, now).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Releases every delivery lease. Only for a process that knows it is the database's
    /// sole user (SQLite, at start): any lease found is a dead process's, and its
    /// notifications are sent again at once, under the same ids.
    pub async fn release_all_delivery_leases(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "update event_deliveries set lease_owner = null, lease_until = null \
             where lease_owner is not null",
        )
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// The account owning an instance, for webhooks, which carry no credentials.
    pub async fn instance_account(&self, id: InstanceId) -> Result<AccountId, StoreError> {
        // An instance never changes accounts, so any in-process copy answers.
        if let Some(record) = self.cache().instance(id.0) {
            return Ok(record.account_id);
        }
        let account: Option<i64> =
            sqlx::query_scalar("select account_id from instances where id = $1")
                .bind(id.0)
                .fetch_optional(self.pool())
                .await?;
        account.map(AccountId).ok_or(StoreError::NotFound)
    }

    /// The element's enabled instances with the plain configuration value of `key`, for
    /// an instance finder: those whose stored configuration contains `wanted` at all
    /// (the database narrows them down, so a webhook does not read every instance), each
    /// with its value of `key` for the exact comparison. Sealed (secret) entries are
    /// never compared.
    pub async fn finder_candidates(
        &self,
        element_key: &str,
        key: &str,
        wanted: &str,
    ) -> Result<Vec<FinderCandidate>, StoreError> {
        // `wanted` as it appears inside a JSON string, as a LIKE pattern.
        let quoted =
            serde_json::to_string(wanted).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let inner = &quoted[1..quoted.len() - 1];
        let mut pattern = String::with_capacity(inner.len() + 2);
        pattern.push('%');
        for c in inner.chars() {
            if matches!(c, '%' | '_' | '!') {
                pattern.push('!');
            }
            pattern.push(c);
        }
        pattern.push('%');
        let rows = sqlx::query(
            "select id, account_id, config from instances where element_key = $1 and disabled = 0 \
             and config like $2 escape '!' order by id",
        )
        .bind(element_key)
        .bind(pattern)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let config: String = row.try_get("config")?;
                let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&config)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(FinderCandidate {
                    id: InstanceId(row.try_get("id")?),
                    account_id: AccountId(row.try_get("account_id")?),
                    value: map.get(key).and_then(|v| v.as_str()).map(str::to_owned),
                })
            })
            .collect()
    }

    /// The account's events of an instance, newest first.
    pub async fn list_events(
        &self,
        account: AccountId,
        instance: InstanceId,
        query: &EventQuery,
    ) -> Result<EventPage, StoreError> {
        let mut filters = String::from("account_id = $1 and instance_id = $2");
        let mut binds: Vec<Bind> = Vec::new();
        let mut n = 3;
        if let Some(s) = &query.status {
            filters.push_str(&format!(" and status = ${n}"));
            binds.push(Bind::Text(s.clone()));
            n += 1;
        }
        if let Some(from) = query.from {
            filters.push_str(&format!(" and created_at >= ${n}"));
            binds.push(Bind::Int(from));
            n += 1;
        }
        if let Some(to) = query.to {
            filters.push_str(&format!(" and created_at < ${n}"));
            binds.push(Bind::Int(to));
            n += 1;
        }
        let total = match query.before {
            Some(_) => None,
            None => {
                let sql = format!("select count(*) from events where {filters}");
                let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
                    .bind(account.0)
                    .bind(instance.0);
                for b in &binds {
                    q = match b {
                        Bind::Text(t) => q.bind(t.clone()),
                        Bind::Int(i) => q.bind(*i),
                    };
                }
                Some(q.fetch_one(self.pool()).await?)
            }
        };
        if let Some(before) = query.before {
            filters.push_str(&format!(" and id < ${n}"));
            binds.push(Bind::Int(before));
            n += 1;
        }
        let sql = format!(
            "select {EVENT_COLUMNS} from events where {filters} order by id desc limit ${n}"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(account.0)
            .bind(instance.0);
        for b in &binds {
            q = match b {
                Bind::Text(t) => q.bind(t.clone()),
                Bind::Int(i) => q.bind(*i),
            };
        }
        let mut rows = q.bind(query.limit + 1).fetch_all(self.pool()).await?;
        let has_more = rows.len() as i64 > query.limit;
        if has_more {
            rows.pop();
        }
        let mut items = rows
            .iter()
            .map(decode_event)
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        self.attach_attempts(&mut items).await?;
        Ok(EventPage {
            next_before: if has_more {
                items.last().map(|e| e.id)
            } else {
                None
            },
            items,
            total,
        })
    }

    /// One event of the account about an instance (`instance`, when given).
    pub async fn get_event(
        &self,
        account: AccountId,
        instance: Option<InstanceId>,
        id: i64,
    ) -> Result<EventRecord, StoreError> {
        let sql = format!(
            "select {EVENT_COLUMNS} from events where account_id = $1 and id = $2 \
             and instance_id is not null and ($3 = 0 or instance_id = $3)"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(account.0)
            .bind(id)
            .bind(instance.map_or(0, |i| i.0))
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut items = vec![decode_event(&row)?];
        self.attach_attempts(&mut items).await?;
        items.pop().ok_or(StoreError::NotFound)
    }

    async fn attach_attempts(&self, items: &mut [EventRecord]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "select event_id, attempted_at, status_code, duration_ms, error from event_attempts \
             where event_id in ({}) order by id",
            placeholders(1, items.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for e in items.iter() {
            q = q.bind(e.id);
        }
        for row in q.fetch_all(self.pool()).await? {
            let event_id: i64 = row.try_get("event_id")?;
            if let Some(e) = items.iter_mut().find(|e| e.id == event_id) {
                e.attempts.push(Attempt {
                    attempted_at: row.try_get("attempted_at")?,
                    status_code: row.try_get("status_code")?,
                    duration_ms: row.try_get("duration_ms")?,
                    error: row.try_get("error")?,
                });
            }
        }
        Ok(())
    }

    /// Sends an event's notifications again, now, under their ids; `false` when the
    /// account has no such event.
    pub async fn replay_event(
        &self,
        account: AccountId,
        instance: InstanceId,
        id: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer().begin().await?;
        let found: Option<i64> = sqlx::query_scalar(
            "select id from events where account_id = $1 and instance_id = $2 and id = $3",
        )
        .bind(account.0)
        .bind(instance.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "update event_deliveries set state = 'pending', attempts = 0, next_attempt_at = $1, \
             updated_at = $1 where event_id = $2 and (state <> 'pending' or next_attempt_at > $1)",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        settle_status(&mut tx, &[id], now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Replays every failed event of the instance; returns how many.
    pub async fn replay_failed_events(
        &self,
        account: AccountId,
        instance: InstanceId,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer().begin().await?;
        let events: Vec<i64> = sqlx::query_scalar(
            "select id from events where account_id = $1 and instance_id = $2 and status = 'FAILED' \
             order by id",
        )
        .bind(account.0)
        .bind(instance.0)
        .fetch_all(&mut *tx)
        .await?;
        for chunk in events.chunks(500) {
            let sql = format!(
                "update event_deliveries set state = 'pending', attempts = 0, next_attempt_at = $1, \
                 updated_at = $1 where state = 'failed' and event_id in ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(now);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
            settle_status(&mut tx, chunk, now).await?;
        }
        tx.commit().await?;
        Ok(events.len() as u64)
    }

    /// Deletes up to `limit` delivered events last changed before `before` (with their
    /// notifications and attempts); returns how many. Small batches keep each
    /// transaction short, so delivery never waits long behind pruning.
    pub async fn prune_events(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        let mut tx = self.writer().begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "select id from events where status = 'NOTIFIED' and updated_at < $1 order by id limit $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let list = placeholders(1, ids.len());
        for table in ["event_attempts", "event_deliveries"] {
            let sql = format!("delete from {table} where event_id in ({list})");
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in &ids {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        let sql = format!("delete from events where id in ({list})");
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(*id);
        }
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}

/// Stores the event and the one notification telling the app how a Connect session ended,
/// inside the transaction that ends the session, so neither exists without the other.
pub(crate) async fn insert_session_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    session_id: i64,
    account_id: AccountId,
    element_key: &str,
    callback_url: &str,
    body: &(dyn Fn(i64) -> String + Sync),
    now: i64,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "insert into events (connect_session_id, account_id, element_key, source, status, \
         provider_data, events, created_at, updated_at) \
         values ($1, $2, $3, 'connect', $4, '{}', '[]', $5, $5) returning id",
    )
    .bind(session_id)
    .bind(account_id.0)
    .bind(element_key)
    .bind(status::RECEIVED)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let origin = url::Url::parse(callback_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| callback_url.to_owned());
    sqlx::query(
        "insert into event_deliveries (event_id, connect_session_id, account_id, webhook_id, body, \
         ordering_key, callback, state, attempts, next_attempt_at, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9, $9)",
    )
    .bind(id)
    .bind(session_id)
    .bind(account_id.0)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(body(id))
    .bind(format!("connect-session:{session_id}"))
    .bind(origin)
    .bind(PENDING)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Inserts events and their notifications in the caller's transaction; returns the
/// events' ids in order.
pub(crate) async fn insert_events_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    batch: &[NewEvent],
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    // Multi-row statements: on SQLite every statement is a round trip to the
    // connection's thread, and two per event were most of a group commit's time.
    let mut ids = Vec::with_capacity(batch.len());
    for chunk in batch.chunks(EVENT_ROWS) {
        let row = format!("(?1, ?2, ?3, ?4, '{}', ?5, ?6, ?7, ?7)", status::RECEIVED);
        let sql = format!(
            "insert into events (instance_id, account_id, element_key, source, status, \
             provider_data, events, created_at, updated_at) values {} returning id",
            value_rows(chunk.len(), 7, 0, &row)
        );
        let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
        for event in chunk {
            q = q
                .bind(event.instance_id.0)
                .bind(event.account_id.0)
                .bind(&event.element_key)
                .bind(event.source)
                .bind(&event.provider_data)
                .bind(&event.events)
                .bind(now);
        }
        let mut got = q.fetch_all(&mut **tx).await?;
        // Ids are drawn row by row in the order of the values (SQLite's next rowid, a
        // PostgreSQL sequence), though RETURNING promises no order: sorted, the n-th is
        // the n-th event's.
        got.sort_unstable();
        if got.len() != chunk.len() {
            return Err(StoreError::Corrupt(format!(
                "{} events stored, {} ids returned",
                chunk.len(),
                got.len()
            )));
        }
        ids.extend(got);
    }
    let notifications: Vec<(i64, &NewEvent, &NewNotification)> = batch
        .iter()
        .zip(&ids)
        .flat_map(|(event, &id)| event.notifications.iter().map(move |n| (id, event, n)))
        .collect();
    for chunk in notifications.chunks(DELIVERY_ROWS) {
        let sql = format!(
            "insert into event_deliveries (event_id, instance_id, account_id, webhook_id, body, \
             ordering_key, callback, state, attempts, next_attempt_at, created_at, updated_at) \
             values {}",
            value_rows(
                chunk.len(),
                7,
                2,
                "(?1, ?2, ?3, ?4, ?5, ?6, ?7, $1, 0, $2, $2, $2)"
            )
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(PENDING).bind(now);
        for (id, event, n) in chunk {
            q = q
                .bind(*id)
                .bind(event.instance_id.0)
                .bind(event.account_id.0)
                .bind(&n.webhook_id)
                .bind((n.body)(*id))
                .bind(&n.ordering_key)
                .bind(&n.callback);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(ids)
}

/// Rows of one multi-row insert: well under SQLite's and PostgreSQL's bound parameters.
const EVENT_ROWS: usize = 256;
const DELIVERY_ROWS: usize = 256;

enum Bind {
    Text(String),
    Int(i64),
}

/// Recomputes the status of events from their notifications.
async fn settle_status(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    events: &[i64],
    now: i64,
) -> Result<(), StoreError> {
    for chunk in events.chunks(500) {
        if chunk.is_empty() {
            continue;
        }
        let sql = format!(
            "update events set updated_at = $1, status = case \
               when not exists (select 1 from event_deliveries d where d.event_id = events.id) then status \
               when exists (select 1 from event_deliveries d where d.event_id = events.id and d.state = 'failed') then 'FAILED' \
               when not exists (select 1 from event_deliveries d where d.event_id = events.id and d.state = 'pending') then 'NOTIFIED' \
               when exists (select 1 from event_deliveries d where d.event_id = events.id and d.attempts > 0) then 'DISPATCHED' \
               else 'RECEIVED' end \
             where id in ({})",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(now);
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

fn decode_event(row: &AnyRow) -> Result<EventRecord, sqlx::Error> {
    Ok(EventRecord {
        id: row.try_get("id")?,
        instance_id: InstanceId(row.try_get("instance_id")?),
        element_key: row.try_get("element_key")?,
        source: row.try_get("source")?,
        status: row.try_get("status")?,
        provider_data: row.try_get("provider_data")?,
        events: row.try_get("events")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        attempts: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_group_commit_gives_each_notification_its_own_events_id() {
        let (_dir, store) = crate::tests::migrated_store().await;
        // Only the events' own bookkeeping is under test, not the instances they name.
        sqlx::query("pragma foreign_keys = off")
            .execute(store.writer())
            .await
            .unwrap();
        // More than one multi-row statement's worth, with none, one or two notifications.
        let batch: Vec<NewEvent> = (0..600)
            .map(|n: usize| NewEvent {
                instance_id: InstanceId(7),
                account_id: AccountId(3),
                element_key: "sfdc".to_owned(),
                source: "webhook",
                provider_data: format!("{{\"n\": {n}}}"),
                events: "[]".to_owned(),
                notifications: (0..n % 3)
                    .map(|k| NewNotification {
                        webhook_id: format!("w-{n}-{k}"),
                        body: Box::new(move |id| format!("{id}/{n}/{k}")),
                        ordering_key: format!("o-{n}"),
                        callback: "http://app.example".to_owned(),
                    })
                    .collect(),
            })
            .collect();
        let ids = store.insert_events(&batch, 1).await.unwrap();
        assert_eq!(ids.len(), 600);
        for (n, id) in ids.iter().enumerate() {
            let data: String = sqlx::query_scalar("select provider_data from events where id = $1")
                .bind(*id)
                .fetch_one(store.pool())
                .await
                .unwrap();
            assert_eq!(data, format!("{{\"n\": {n}}}"));
        }
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("select event_id, webhook_id, body from event_deliveries")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(rows.len(), (0..600).map(|n| n % 3).sum::<usize>());
        for (event_id, webhook_id, body) in rows {
            let (id, rest) = body.split_once('/').unwrap();
            assert_eq!(id, event_id.to_string(), "{body}");
            let (n, k) = rest.split_once('/').unwrap();
            assert_eq!(webhook_id, format!("w-{n}-{k}"));
            assert_eq!(ids[n.parse::<usize>().unwrap()], event_id);
        }
    }
}

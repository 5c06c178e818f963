//! Event pollers (see migrations 0010 and 0014): one row per polling instance with its
//! watermark and a lease, so one replica polls an instance at a time, and the changes it
//! emitted near its watermark (`event_poller_seen`).
//!
//! The instance writes create and remove the rows in their own transaction
//! ([`PollerWrite`]); [`Store::repair_poller`] fixes, at start, what they did not.
//!
//! A replica claims due rows with a compare-and-set on `lease_until` (`FOR UPDATE SKIP
//! LOCKED` on PostgreSQL, so replicas claiming together take different rows). Every write
//! of a poll is fenced by `lease_owner = <me>`: the events a page produced and the rows
//! that say they were emitted commit together or not at all, and a replica whose lease
//! expired (it stalled, another took over) writes nothing.

use crate::events::insert_events_in;
use crate::instances::COLUMNS;
use crate::{Dialect, InstanceRecord, Store, StoreError, placeholders, value_rows};
use junction_core::{AccountId, ConfigMap, InstanceId};
use sqlx::{AssertSqlSafe, Row};

/// A poller claimed for one run.
#[derive(Debug, Clone)]
pub struct ClaimedPoller {
    pub instance_id: InstanceId,
    pub account_id: AccountId,
    pub watermark: String,
    /// Failed runs in a row, for the backoff.
    pub failures: i64,
}

/// A change a poll emitted: the record, what its change looked like and when it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenChange {
    pub resource: String,
    pub object_id: String,
    pub change: String,
    pub changed_at: i64,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum PollOutcome {
    /// Every resource was read: the next run is due at `next_run_at`.
    Done {
        next_run_at: i64,
        polled_at: i64,
        /// The watermark the complete poll leaves for the next.
        watermark: String,
        /// Emitted changes of these resources before this time are forgotten; those of
        /// resources not named are forgotten altogether (they are no longer polled).
        forget_before: Vec<(String, i64)>,
    },
    /// The vendor failed or asked to slow down: try again at `retry_at`.
    Failed { retry_at: i64, error: String },
    /// The instance cannot poll until it is fixed (re-authorized, re-configured).
    Stopped { reason: String },
}

/// What the events API shows of an instance's poller.
#[derive(Debug, Clone)]
pub struct PollerRecord {
    pub next_run_at: i64,
    pub failures: i64,
    pub stopped_reason: Option<String>,
    pub last_polled_at: Option<i64>,
    pub last_error: Option<String>,
    pub leased: bool,
    pub watermark: String,
}

/// What an instance write does to the instance's poller. The service decides whether the
/// instance polls (that needs its element); the store applies it in the write's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollerWrite {
    /// Leave the poller as it is (a write that cannot change whether the instance polls).
    Keep,
    /// The instance polls: a missing poller is created, due at once, reading changes from
    /// `watermark` on; a stopped one runs again when the instance is valid.
    Poll { watermark: String },
    /// The instance does not poll: its poller and the changes it remembered go, so turning
    /// events on again starts from that moment rather than replaying the gap.
    Off,
}

/// A poller row as the start-up reconciliation finds it.
#[derive(Debug, Clone, Copy)]
pub struct PollerRow {
    pub instance_id: InstanceId,
    /// The poller stopped until its instance is fixed.
    pub stopped: bool,
}

/// The page of [`Store::polling_candidates`] after its selected columns (`$1`: the id
/// after which it starts, `$2`: its size).
pub(crate) const POLLING_CANDIDATES: &str = "from instances where id > $1 and disabled = 0 \
     and events_on = 1 order by id limit $2";

/// Whether a configuration, as written to an instance's `config` column, has events on:
/// the value of `instances.events_on`. Any value but "false" counts (null too), as the
/// text match migration 0017 filled the column with did: the start-up reconciliation
/// judges the value itself, and must see every instance that may poll.
pub(crate) fn events_on(config: &ConfigMap) -> bool {
    config
        .get(junction_core::config::keys::EVENTS_ENABLED)
        .is_some_and(|value| value.as_deref() != Some("false"))
}

/// Applies `write` to the poller of `instance` inside an instance write's transaction.
pub(crate) async fn write_poller_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    instance: InstanceId,
    write: &PollerWrite,
    valid: bool,
    now: i64,
) -> Result<(), StoreError> {
    match write {
        PollerWrite::Keep => {}
        PollerWrite::Poll { watermark } => {
            sqlx::query(
                "insert into event_pollers (instance_id, watermark, next_run_at, failures, updated_at) \
                 values ($1, $2, $3, 0, $3) on conflict (instance_id) do nothing",
            )
            .bind(instance.0)
            .bind(watermark)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            if valid {
                resume_in(tx, instance, now).await?;
            }
        }
        PollerWrite::Off => delete_poller_in(tx, instance).await?,
    }
    Ok(())
}

/// Lets a stopped poller run again, due now: its instance was fixed.
async fn resume_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    instance: InstanceId,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "update event_pollers set stopped_reason = null, failures = 0, next_run_at = $1, \
         updated_at = $1 where instance_id = $2 and stopped_reason is not null",
    )
    .bind(now)
    .bind(instance.0)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes an instance's poller and what it remembered, inside an instance write.
pub(crate) async fn delete_poller_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    instance: InstanceId,
) -> Result<(), StoreError> {
    for table in ["event_poller_seen", "event_pollers"] {
        sqlx::query(AssertSqlSafe(format!(
            "delete from {table} where instance_id = $1"
        )))
        .bind(instance.0)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// One page of the enabled instances whose stored configuration has events on
    /// ([`events_on`]), by id after `after`, for the start-up reconciliation to check
    /// further (the value, the vendor type, element defaults). Tags are not read: whether
    /// an instance polls does not depend on them.
    pub async fn polling_candidates(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        // The partial index of migration 0017 holds just these instances: the others are
        // neither read nor decrypted.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "select {COLUMNS} {POLLING_CANDIDATES}"
        )))
        .bind(after)
        .bind(limit)
        .fetch_all(self.writer())
        .await?;
        rows.iter()
            .map(|row| self.decode(row, Vec::new()))
            .collect()
    }

    /// The poller rows of the instances with an id in `after + 1 ..= upto`.
    pub async fn poller_rows(&self, after: i64, upto: i64) -> Result<Vec<PollerRow>, StoreError> {
        let rows = sqlx::query(
            "select instance_id, stopped_reason from event_pollers \
             where instance_id > $1 and instance_id <= $2 order by instance_id",
        )
        .bind(after)
        .bind(upto)
        .fetch_all(self.writer())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PollerRow {
                    instance_id: InstanceId(row.try_get("instance_id")?),
                    stopped: row
                        .try_get::<Option<String>, _>("stopped_reason")?
                        .is_some(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Repairs one instance's poller found wrong by the start-up reconciliation, which
    /// decided from the instance as last written at `seen_updated_at`. It is applied only
    /// while the instance is still that write: an instance written since kept its poller
    /// itself, and must not be undone by a decision made from an older read. PostgreSQL
    /// locks the instance row for the check, so a write cannot commit in between.
    /// Returns whether anything changed.
    pub async fn repair_poller(
        &self,
        instance: InstanceId,
        seen_updated_at: i64,
        write: &PollerWrite,
        valid: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let lock = match self.dialect() {
            Dialect::Postgres => " for share",
            Dialect::Sqlite => "",
        };
        let mut tx = self.writer().begin().await?;
        let unchanged: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "select id from instances where id = $1 and updated_at = $2{lock}"
        )))
        .bind(instance.0)
        .bind(seen_updated_at)
        .fetch_optional(&mut *tx)
        .await?;
        if unchanged.is_none() {
            return Ok(false);
        }
        let changed = match write {
            PollerWrite::Keep => false,
            PollerWrite::Poll { watermark } => {
                let created = sqlx::query(
                    "insert into event_pollers (instance_id, watermark, next_run_at, failures, updated_at) \
                     values ($1, $2, $3, 0, $3) on conflict (instance_id) do nothing",
                )
                .bind(instance.0)
                .bind(watermark)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                let resumed = valid && resume_in(&mut tx, instance, now).await?;
                created || resumed
            }
            PollerWrite::Off => {
                let gone = sqlx::query("delete from event_pollers where instance_id = $1")
                    .bind(instance.0)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("delete from event_poller_seen where instance_id = $1")
                    .bind(instance.0)
                    .execute(&mut *tx)
                    .await?;
                gone == 1
            }
        };
        tx.commit().await?;
        Ok(changed)
    }

    /// Claims up to `limit` due, running pollers for `owner` until `lease_until`, the
    /// longest waiting first.
    pub async fn claim_pollers(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedPoller>, StoreError> {
        let lock = match self.dialect() {
            Dialect::Postgres => " for update skip locked",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "update event_pollers set lease_owner = $1, lease_until = $2 \
             where (lease_until is null or lease_until < $3) and instance_id in (\
               select p.instance_id from event_pollers p \
               where p.next_run_at <= $3 and p.stopped_reason is null \
               and (p.lease_until is null or p.lease_until < $3) \
               order by p.next_run_at limit $4{lock}) \
             returning instance_id, watermark, failures"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .fetch_all(self.writer())
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("instance_id")?;
            claimed.push(ClaimedPoller {
                instance_id: InstanceId(id),
                account_id: self.instance_account(InstanceId(id)).await?,
                watermark: row.try_get("watermark")?,
                failures: row.try_get("failures")?,
            });
        }
        Ok(claimed)
    }

    /// Stores the events one page produced and the changes they report (`seen`), in one
    /// transaction, and extends the lease to `lease_until`. `None` means the lease was
    /// lost and nothing was written.
    pub async fn save_poll_page(
        &self,
        owner: &str,
        instance: InstanceId,
        events: &[crate::NewEvent],
        seen: &[SeenChange],
        lease_until: i64,
        now: i64,
    ) -> Result<Option<Vec<i64>>, StoreError> {
        let mut tx = self.writer().begin().await?;
        let done = sqlx::query(
            "update event_pollers set lease_until = $1, updated_at = $2 \
             where instance_id = $3 and lease_owner = $4",
        )
        .bind(lease_until)
        .bind(now)
        .bind(instance.0)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let ids = insert_events_in(&mut tx, events, now).await?;
        for chunk in seen.chunks(100) {
            let sql = format!(
                "insert into event_poller_seen (instance_id, resource, object_id, change, changed_at) \
                 values {} on conflict (instance_id, resource, object_id) do update \
                 set change = excluded.change, changed_at = excluded.changed_at",
                value_rows(chunk.len(), 4, 1, "($1, ?1, ?2, ?3, ?4)")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(instance.0);
            for c in chunk {
                q = q
                    .bind(c.resource.clone())
                    .bind(c.object_id.clone())
                    .bind(c.change.clone())
                    .bind(c.changed_at);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Some(ids))
    }

    /// Ends a run: records how it went and releases the lease. `false` means the lease
    /// was lost and nothing was written.
    pub async fn finish_poll(
        &self,
        owner: &str,
        instance: InstanceId,
        outcome: &PollOutcome,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = match outcome {
            PollOutcome::Done {
                next_run_at,
                polled_at,
                watermark,
                forget_before,
            } => {
                let mut tx = self.writer().begin().await?;
                let done = sqlx::query(
                    "update event_pollers set next_run_at = $1, last_polled_at = $2, failures = 0, \
                     last_error = null, lease_owner = null, lease_until = null, updated_at = $3, \
                     watermark = $6 where instance_id = $4 and lease_owner = $5",
                )
                .bind(*next_run_at)
                .bind(*polled_at)
                .bind(now)
                .bind(instance.0)
                .bind(owner)
                .bind(watermark)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                for (resource, before) in forget_before {
                    sqlx::query(
                        "delete from event_poller_seen where instance_id = $1 and resource = $2 \
                         and changed_at < $3",
                    )
                    .bind(instance.0)
                    .bind(resource)
                    .bind(*before)
                    .execute(&mut *tx)
                    .await?;
                }
                let kept: Vec<&String> = forget_before.iter().map(|(r, _)| r).collect();
                let sql = if kept.is_empty() {
                    "delete from event_poller_seen where instance_id = $1".to_owned()
                } else {
                    format!(
                        "delete from event_poller_seen where instance_id = $1 and resource not in ({})",
                        placeholders(2, kept.len())
                    )
                };
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(instance.0);
                for r in kept {
                    q = q.bind(r.clone());
                }
                q.execute(&mut *tx).await?;
                tx.commit().await?;
                done
            }
            PollOutcome::Failed { retry_at, error } => {
                sqlx::query(
                    "update event_pollers set next_run_at = $1, failures = failures + 1, \
                     last_error = $2, lease_owner = null, lease_until = null, updated_at = $3 \
                     where instance_id = $4 and lease_owner = $5",
                )
                .bind(*retry_at)
                .bind(error)
                .bind(now)
                .bind(instance.0)
                .bind(owner)
                .execute(self.writer())
                .await?
            }
            PollOutcome::Stopped { reason } => {
                sqlx::query(
                    "update event_pollers set stopped_reason = $1, lease_owner = null, \
                     lease_until = null, updated_at = $2 where instance_id = $3 and lease_owner = $4",
                )
                .bind(reason)
                .bind(now)
                .bind(instance.0)
                .bind(owner)
                .execute(self.writer())
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    /// The changes already emitted for one resource of an instance: object id → change.
    pub async fn poll_seen(
        &self,
        instance: InstanceId,
        resource: &str,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let rows = sqlx::query(
            "select object_id, change from event_poller_seen where instance_id = $1 and resource = $2",
        )
        .bind(instance.0)
        .bind(resource)
        .fetch_all(self.writer())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("object_id")?, row.try_get("change")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The poller of an instance, if it polls.
    pub async fn poller(
        &self,
        instance: InstanceId,
        now: i64,
    ) -> Result<Option<PollerRecord>, StoreError> {
        let row = sqlx::query(
            "select watermark, next_run_at, failures, stopped_reason, last_polled_at, last_error, \
             lease_until from event_pollers where instance_id = $1",
        )
        .bind(instance.0)
        .fetch_optional(self.writer())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let lease: Option<i64> = row.try_get("lease_until")?;
        Ok(Some(PollerRecord {
            next_run_at: row.try_get("next_run_at")?,
            failures: row.try_get("failures")?,
            stopped_reason: row.try_get("stopped_reason")?,
            last_polled_at: row.try_get("last_polled_at")?,
            last_error: row.try_get("last_error")?,
            leased: lease.is_some_and(|l| l >= now),
            watermark: row.try_get("watermark")?,
        }))
    }

    /// Releases every poller lease. Only for a process that knows it is the database's
    /// sole user (SQLite, at start): any lease found is a dead process's.
    pub async fn release_all_poller_leases(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "update event_pollers set lease_owner = null, lease_until = null \
             where lease_owner is not null",
        )
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use crate::instances::tests::{drop_database, organization, postgres_organization};
    use crate::{InstanceUpdate, NewInstance, RefreshedCredentials, Store};
    use junction_core::{AccountId, ConfigMap, InstanceId, Secret, UserId};

    fn events(value: Option<Option<&str>>) -> ConfigMap {
        let mut config: ConfigMap =
            [("base.url".to_owned(), Some("https://x.example".to_owned()))].into();
        if let Some(value) = value {
            config.insert(
                "event.notification.enabled".into(),
                value.map(str::to_owned),
            );
        }
        config
    }

    async fn candidates(store: &Store) -> Vec<InstanceId> {
        store
            .polling_candidates(0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    /// Every write of an instance's configuration (single and batch insert, update,
    /// refresh) decides whether it is a polling candidate, on one store.
    async fn candidates_follow_configuration_writes(
        store: &Store,
        account: AccountId,
        user: UserId,
    ) {
        let tokens: Vec<Secret> = (0..3).map(|i| Secret::new(format!("token-{i}"))).collect();
        let no_secrets = ConfigMap::new();
        let on = events(Some(Some("true")));
        let new = |token: usize, config| NewInstance {
            account_id: account,
            user_id: user,
            element_id: 23,
            element_key: "sfdc",
            name: "n",
            token: &tokens[token],
            config,
            secrets: &no_secrets,
            tags: &[],
            external_authentication: "none",
            token_expires_at: None,
            now: 1,
        };
        let id = store.insert_instance(new(0, &on)).await.unwrap().id;
        assert_eq!(candidates(store).await, vec![id]);

        let update = |config, now| InstanceUpdate {
            account_id: account,
            id,
            name: "n",
            config,
            secrets: &no_secrets,
            tags: &[],
            valid: true,
            disabled: false,
            trace_logging_until: None,
            external_authentication: "none",
            token_expires_at: None,
            keep_credentials: false,
            now,
        };
        let off = events(Some(Some("false")));
        store.update_instance(update(&off, 2)).await.unwrap();
        assert!(candidates(store).await.is_empty());
        store.update_instance(update(&on, 3)).await.unwrap();
        assert_eq!(candidates(store).await, vec![id]);
        let without = events(None);
        store.update_instance(update(&without, 4)).await.unwrap();
        assert!(candidates(store).await.is_empty());
        // Null is a value other than "false": the reconciliation judges it.
        let null = events(Some(None));
        store
            .update_instance(InstanceUpdate {
                keep_credentials: true,
                ..update(&null, 5)
            })
            .await
            .unwrap();
        assert_eq!(candidates(store).await, vec![id]);

        // A refresh writes the configuration too.
        assert!(store.acquire_refresh_lease(id, "me", 6, 100).await.unwrap());
        let refreshed = events(Some(Some("false")));
        let saved = store
            .save_refreshed_credentials(RefreshedCredentials {
                id,
                owner: "me",
                config: &refreshed,
                secrets: &no_secrets,
                token_expires_at: None,
                now: 6,
            })
            .await
            .unwrap();
        assert!(saved);
        assert!(candidates(store).await.is_empty());

        let batch = store
            .insert_instances(&[new(1, &without), new(2, &on)])
            .await
            .unwrap();
        assert_eq!(candidates(store).await, vec![batch[1]]);
    }

    #[tokio::test]
    async fn polling_candidates_follow_configuration_writes_on_sqlite() {
        let (_dir, store, account, user) = organization().await;
        candidates_follow_configuration_writes(&store, account, user).await;
    }

    #[tokio::test]
    async fn polling_candidates_follow_configuration_writes_on_postgres() {
        let Some((store, account, user, name, admin)) = postgres_organization().await else {
            eprintln!("JUNCTION_TEST_DATABASE_URL is not set: the PostgreSQL case did not run");
            return;
        };
        candidates_follow_configuration_writes(&store, account, user).await;
        drop_database(store, &name, &admin).await;
    }

    #[tokio::test]
    async fn instances_with_events_turned_off_are_no_polling_candidates() {
        let (_dir, store, account, user) = organization().await;
        let mut ids = Vec::new();
        for (i, value) in [Some("false"), Some("true"), Some(" false "), None]
            .into_iter()
            .enumerate()
        {
            let mut config = ConfigMap::new();
            if let Some(v) = value {
                config.insert("event.notification.enabled".into(), Some(v.into()));
            }
            let record = store
                .insert_instance(NewInstance {
                    account_id: account,
                    user_id: user,
                    element_id: 23,
                    element_key: "sfdc",
                    name: "n",
                    token: &Secret::new(format!("token-{i}")),
                    config: &config,
                    secrets: &ConfigMap::new(),
                    tags: &[],
                    external_authentication: "none",
                    token_expires_at: None,
                    now: 1,
                })
                .await
                .unwrap();
            ids.push(record.id);
        }
        let candidates: Vec<_> = store
            .polling_candidates(0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        // "false" is left out; any other value is the reconciliation's to judge.
        assert_eq!(candidates, vec![ids[1], ids[2]]);
    }
}

//! The refresh lease and what a refresh writes.
//!
//! Spending a refresh token twice gets the whole grant revoked by providers that rotate
//! them, so one replica at a time may refresh an instance. A replica claims the instance
//! with a compare-and-set on `refresh_lease_until`; every write of a refresh's outcome is
//! fenced by `refresh_lease_owner = <me>` and releases the lease in the same statement.
//! A replica that dies mid-refresh leaves a lease that frees itself when it expires.

use crate::cache::Change;
use crate::instances::secrets_context;
use crate::{Store, StoreError};
use junction_core::{AccountId, ConfigMap, InstanceId};
use sqlx::{AssertSqlSafe, Row};

/// New credentials from a successful refresh, written while holding the lease.
pub struct RefreshedCredentials<'a> {
    pub id: InstanceId,
    /// The lease owner that spent the refresh token.
    pub owner: &'a str,
    /// Entries the refresh set that are stored as plain JSON (`base.url` from a token
    /// response, refresh times). Entries not named here keep their stored value, so an
    /// update that landed during the refresh is not undone.
    pub config: &'a ConfigMap,
    /// Entries the refresh set that are sealed with the keyring (the tokens).
    pub secrets: &'a ConfigMap,
    pub token_expires_at: Option<i64>,
    pub now: i64,
}

/// An instance whose token expires soon, for the background sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshCandidate {
    pub account_id: AccountId,
    pub id: InstanceId,
    /// When its token expires (epoch ms); with `id`, where the next batch starts.
    pub expires_at: i64,
}

impl Store {
    /// Claims the refresh lease of an instance until `until` (epoch ms), unless another
    /// owner holds an unexpired one. `false` means someone else is refreshing.
    pub async fn acquire_refresh_lease(
        &self,
        id: InstanceId,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "update instances set refresh_lease_owner = $1, refresh_lease_until = $2 \
             where id = $3 and (refresh_lease_until is null or refresh_lease_until < $4)",
        )
        .bind(owner)
        .bind(until)
        .bind(id.0)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease back without writing anything else (nothing needed refreshing).
    pub async fn release_refresh_lease(
        &self,
        id: InstanceId,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "update instances set refresh_lease_owner = null, refresh_lease_until = null \
             where id = $1 and refresh_lease_owner = $2",
        )
        .bind(id.0)
        .bind(owner)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Releases every refresh lease, whoever holds it. Only for a process that knows it
    /// is the database's sole user (SQLite, at start): anyone else's lease is a dead
    /// process's.
    pub async fn release_all_refresh_leases(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "update instances set refresh_lease_owner = null, refresh_lease_until = null \
             where refresh_lease_owner is not null",
        )
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// Whether an unexpired lease is held on the instance (by anyone).
    pub async fn refresh_lease_held(&self, id: InstanceId, now: i64) -> Result<bool, StoreError> {
        let until: Option<Option<i64>> =
            sqlx::query_scalar("select refresh_lease_until from instances where id = $1")
                .bind(id.0)
                .fetch_optional(self.pool())
                .await?;
        match until {
            None => Err(StoreError::NotFound),
            Some(until) => Ok(until.is_some_and(|u| u >= now)),
        }
    }

    /// Writes a refresh's new credentials over the stored configuration, clears any
    /// backoff and releases the lease, in one transaction fenced by the lease owner.
    /// `false` means the lease was lost (it expired and another owner claimed it), and
    /// nothing was written.
    pub async fn save_refreshed_credentials(
        &self,
        new: RefreshedCredentials<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer().begin().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "select token_hash, config, secrets, refresh_lease_owner from instances where id = $1{}",
            self.row_lock()
        )))
        .bind(new.id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        if row
            .try_get::<Option<String>, _>("refresh_lease_owner")?
            .as_deref()
            != Some(new.owner)
        {
            return Ok(false);
        }
        let (token_hash, mut config, mut secrets) = self.open_stored(&row)?;
        let context = secrets_context(&token_hash);
        for (key, value) in new.config {
            secrets.remove(key);
            config.insert(key.clone(), value.clone());
        }
        for (key, value) in new.secrets {
            config.remove(key);
            secrets.insert(key.clone(), value.clone());
        }
        let config_json =
            serde_json::to_string(&config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let secrets_json =
            serde_json::to_vec(&secrets).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sealed = self.keyring().seal(&context, &secrets_json)?;
        let done = sqlx::query(
            "update instances set config = $1, secrets = $2, token_expires_at = $3, \
             refresh_retry_at = null, refresh_failures = 0, \
             refresh_lease_owner = null, refresh_lease_until = null, updated_at = $4, \
             events_on = $7 where id = $5 and refresh_lease_owner = $6",
        )
        .bind(config_json)
        .bind(sealed)
        .bind(new.token_expires_at)
        .bind(new.now)
        .bind(new.id.0)
        .bind(new.owner)
        .bind(i64::from(crate::pollers::events_on(&config)))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.commit_announced(tx, Change::Instance(new.id.0))
            .await?;
        Ok(true)
    }

    /// The provider refused the refresh for good: the instance turns invalid with the
    /// provider's reason, and the lease is released.
    pub async fn invalidate_after_refresh(
        &self,
        id: InstanceId,
        owner: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "update instances set valid = 0, invalid_reason = $1, refresh_retry_at = null, \
             refresh_lease_owner = null, refresh_lease_until = null, updated_at = $2 \
             where id = $3 and refresh_lease_owner = $4",
        )
        .bind(reason)
        .bind(now)
        .bind(id.0)
        .bind(owner)
        .execute(self.writer())
        .await?;
        Ok(self.changed_if_written(id, done.rows_affected()).await)
    }

    /// A transient failure (network, 5xx, 429): no new attempt before `retry_at`; the
    /// lease is released.
    pub async fn defer_refresh(
        &self,
        id: InstanceId,
        owner: &str,
        retry_at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "update instances set refresh_retry_at = $1, refresh_failures = refresh_failures + 1, \
             refresh_lease_owner = null, refresh_lease_until = null \
             where id = $2 and refresh_lease_owner = $3",
        )
        .bind(retry_at)
        .bind(id.0)
        .bind(owner)
        .execute(self.writer())
        .await?;
        Ok(self.changed_if_written(id, done.rows_affected()).await)
    }

    /// Re-provisioning gave the instance new credentials: forget earlier refresh failures.
    pub async fn clear_refresh_failures(
        &self,
        account: AccountId,
        id: InstanceId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "update instances set invalid_reason = null, refresh_retry_at = null, \
             refresh_failures = 0 where account_id = $1 and id = $2",
        )
        .bind(account.0)
        .bind(id.0)
        .execute(self.writer())
        .await?;
        self.changed(id).await;
        Ok(())
    }

    /// A fenced single-row write took effect when it touched the row: then the copies go.
    async fn changed_if_written(&self, id: InstanceId, rows: u64) -> bool {
        let written = rows == 1;
        if written {
            self.changed(id).await;
        }
        written
    }

    /// After a single-statement write: drops this process's copy and tells the other
    /// replicas. Their copies also expire with the cache's time to live, which bounds a
    /// notification lost here.
    async fn changed(&self, id: InstanceId) {
        self.forget(Change::Instance(id.0));
        if let Err(e) = self.announce(self.writer(), Change::Instance(id.0)).await {
            tracing::warn!(instance_id = %id, error = %e, "could not tell other replicas about an instance change");
        }
    }

    /// Valid instances whose token expires before `before`, that are neither backing off
    /// nor leased, soonest first, `limit` at a time: pass the last one of a batch as
    /// `after` to get the next.
    pub async fn instances_due_for_refresh(
        &self,
        now: i64,
        before: i64,
        after: Option<(i64, InstanceId)>,
        limit: i64,
    ) -> Result<Vec<RefreshCandidate>, StoreError> {
        let (after_expiry, after_id) = after.map_or((i64::MIN, 0), |(at, id)| (at, id.0));
        let rows = sqlx::query(
            "select account_id, id, token_expires_at from instances \
             where valid = 1 and token_expires_at is not null and token_expires_at < $1 \
             and (refresh_retry_at is null or refresh_retry_at <= $2) \
             and (refresh_lease_until is null or refresh_lease_until < $2) \
             and (token_expires_at > $3 or (token_expires_at = $3 and id > $4)) \
             order by token_expires_at, id limit $5",
        )
        .bind(before)
        .bind(now)
        .bind(after_expiry)
        .bind(after_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RefreshCandidate {
                    account_id: AccountId(row.try_get("account_id")?),
                    id: InstanceId(row.try_get("id")?),
                    expires_at: row.try_get("token_expires_at")?,
                })
            })
            .collect()
    }
}

//! Instances: provisioned, authenticated connections of an account to one element.

use crate::{Store, StoreError, placeholders};
use junction_core::{AccountId, ConfigMap, InstanceId, Secret, UserId};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;

pub struct NewInstance<'a> {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub element_id: i64,
    pub element_key: &'a str,
    pub name: &'a str,
    pub token: &'a Secret,
    /// Configuration stored as plain JSON.
    pub config: &'a ConfigMap,
    /// Configuration sealed with the keyring (client secrets, tokens).
    pub secrets: &'a ConfigMap,
    pub tags: &'a [String],
    pub external_authentication: &'a str,
    pub token_expires_at: Option<i64>,
    pub now: i64,
}

#[derive(Debug, Clone)]
pub struct InstanceRecord {
    pub id: InstanceId,
    pub account_id: AccountId,
    pub user_id: UserId,
    pub element_id: i64,
    pub element_key: String,
    pub name: String,
    /// The Element token, for the instance's owner to read back.
    pub token: Secret,
    /// The whole configuration, secrets decrypted: callers mask before showing it.
    pub config: ConfigMap,
    pub tags: Vec<String>,
    pub valid: bool,
    pub disabled: bool,
    pub trace_logging: bool,
    pub external_authentication: String,
    pub token_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Filters for listing an account's instances.
#[derive(Debug, Clone, Default)]
pub struct InstanceQuery {
    /// Only instances carrying every one of these tags.
    pub tags: Vec<String>,
    /// Only this instance (callers authenticated by an Element token see just their own).
    pub only: Option<InstanceId>,
}

const COLUMNS: &str = "id, account_id, user_id, element_id, element_key, name, token_hash, token_sealed, \
    config, secrets, valid, disabled, trace_logging, external_authentication, token_expires_at, \
    created_at, updated_at";

/// Binds a sealed blob to its row: a ciphertext moved to another instance fails to open.
/// Reads a 0/1 flag column.
pub(crate) fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

fn secrets_context(token_hash: &[u8]) -> Vec<u8> {
    let mut context = b"junction:instance-secrets:".to_vec();
    context.extend_from_slice(token_hash);
    context
}

fn token_context(token_hash: &[u8]) -> Vec<u8> {
    let mut context = b"junction:element-token:".to_vec();
    context.extend_from_slice(token_hash);
    context
}

impl Store {
    /// Stores a new instance and its tags in one transaction.
    pub async fn insert_instance(
        &self,
        new: NewInstance<'_>,
    ) -> Result<InstanceRecord, StoreError> {
        let token_hash = self.keyring().lookup_hash(new.token.expose());
        let config_json =
            serde_json::to_string(new.config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let secrets_json =
            serde_json::to_vec(new.secrets).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sealed = self
            .keyring()
            .seal(&secrets_context(&token_hash), &secrets_json)?;
        let token_sealed = self
            .keyring()
            .seal(&token_context(&token_hash), new.token.expose().as_bytes())?;
        let mut tx = self.pool().begin().await?;
        let id: i64 = sqlx::query_scalar(
            "insert into instances (account_id, user_id, element_id, element_key, name, token_hash, \
             token_sealed, config, secrets, valid, disabled, trace_logging, external_authentication, \
             token_expires_at, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) returning id",
        )
        .bind(new.account_id.0)
        .bind(new.user_id.0)
        .bind(new.element_id)
        .bind(new.element_key)
        .bind(new.name)
        .bind(token_hash)
        .bind(token_sealed)
        .bind(config_json)
        .bind(sealed)
        .bind(1i64)
        .bind(0i64)
        .bind(0i64)
        .bind(new.external_authentication)
        .bind(new.token_expires_at)
        .bind(new.now)
        .fetch_one(&mut *tx)
        .await?;
        let mut tags: Vec<String> = Vec::new();
        for tag in new.tags {
            if !tags.contains(tag) {
                sqlx::query("insert into instance_tags (instance_id, tag) values ($1, $2)")
                    .bind(id)
                    .bind(tag)
                    .execute(&mut *tx)
                    .await?;
                tags.push(tag.clone());
            }
        }
        tx.commit().await?;
        let mut config = new.config.clone();
        config.extend(new.secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(InstanceRecord {
            id: InstanceId(id),
            account_id: new.account_id,
            user_id: new.user_id,
            element_id: new.element_id,
            element_key: new.element_key.to_owned(),
            name: new.name.to_owned(),
            token: new.token.clone(),
            config,
            tags,
            valid: true,
            disabled: false,
            trace_logging: false,
            external_authentication: new.external_authentication.to_owned(),
            token_expires_at: new.token_expires_at,
            created_at: new.now,
            updated_at: new.now,
        })
    }

    /// One instance of the account; another account's instance is `NotFound`, exactly
    /// like a missing one.
    pub async fn get_instance(
        &self,
        account: AccountId,
        id: InstanceId,
    ) -> Result<InstanceRecord, StoreError> {
        let sql = format!("select {COLUMNS} from instances where account_id = $1 and id = $2");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(account.0)
            .bind(id.0)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut tags = self.tags_of(&[id.0]).await?;
        self.decode(&row, tags.remove(&id.0).unwrap_or_default())
    }

    /// The account's instances, oldest first.
    pub async fn list_instances(
        &self,
        account: AccountId,
        query: &InstanceQuery,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        let mut sql = format!("select {COLUMNS} from instances i where account_id = $1");
        let mut next = 2;
        if query.only.is_some() {
            sql.push_str(&format!(" and id = ${next}"));
            next += 1;
        }
        for _ in &query.tags {
            sql.push_str(&format!(
                " and exists (select 1 from instance_tags t where t.instance_id = i.id and t.tag = ${next})"
            ));
            next += 1;
        }
        sql.push_str(" order by id");
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(account.0);
        if let Some(only) = query.only {
            q = q.bind(only.0);
        }
        for tag in &query.tags {
            q = q.bind(tag.as_str());
        }
        let rows = q.fetch_all(self.pool()).await?;
        let ids: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get::<i64, _>("id"))
            .collect::<Result<_, _>>()?;
        let mut tags = self.tags_of(&ids).await?;
        rows.iter()
            .zip(ids)
            .map(|(row, id)| self.decode(row, tags.remove(&id).unwrap_or_default()))
            .collect()
    }

    /// Deletes the instance (its tags go with it); afterwards its Element token is unknown.
    pub async fn delete_instance(
        &self,
        account: AccountId,
        id: InstanceId,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        // SQLite enforces the cascade only with foreign keys on; deleting tags first keeps
        // both dialects identical regardless.
        sqlx::query(
            "delete from instance_tags where instance_id in \
             (select id from instances where account_id = $1 and id = $2)",
        )
        .bind(account.0)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("delete from instances where account_id = $1 and id = $2")
            .bind(account.0)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn tags_of(&self, ids: &[i64]) -> Result<BTreeMap<i64, Vec<String>>, StoreError> {
        let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        // Bounded batches keep the parameter count under every backend's limit.
        for chunk in ids.chunks(500) {
            let sql = format!(
                "select instance_id, tag from instance_tags where instance_id in ({}) order by instance_id, tag",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(self.pool()).await? {
                out.entry(row.try_get("instance_id")?)
                    .or_default()
                    .push(row.try_get("tag")?);
            }
        }
        Ok(out)
    }

    fn decode(&self, row: &AnyRow, tags: Vec<String>) -> Result<InstanceRecord, StoreError> {
        let token_hash: Vec<u8> = row.try_get("token_hash")?;
        let config_json: String = row.try_get("config")?;
        let sealed: Vec<u8> = row.try_get("secrets")?;
        let mut config: ConfigMap = serde_json::from_str(&config_json)
            .map_err(|e| StoreError::Corrupt(format!("instance config: {e}")))?;
        let opened = self
            .keyring()
            .open(&secrets_context(&token_hash), &sealed)?;
        let secrets: ConfigMap = serde_json::from_slice(&opened)
            .map_err(|e| StoreError::Corrupt(format!("instance secrets: {e}")))?;
        config.extend(secrets);
        let token_sealed: Vec<u8> = row.try_get("token_sealed")?;
        let token = self
            .keyring()
            .open(&token_context(&token_hash), &token_sealed)?;
        let token = String::from_utf8(token.to_vec())
            .map_err(|_| StoreError::Corrupt("element token is not UTF-8".into()))?;
        Ok(InstanceRecord {
            id: InstanceId(row.try_get("id")?),
            account_id: AccountId(row.try_get("account_id")?),
            user_id: UserId(row.try_get("user_id")?),
            element_id: row.try_get("element_id")?,
            element_key: row.try_get("element_key")?,
            name: row.try_get("name")?,
            token: Secret::new(token),
            config,
            tags,
            valid: flag(row, "valid")?,
            disabled: flag(row, "disabled")?,
            trace_logging: flag(row, "trace_logging")?,
            external_authentication: row.try_get("external_authentication")?,
            token_expires_at: row.try_get("token_expires_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

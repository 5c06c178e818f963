//! Instances: provisioned, authenticated connections of an account to one element.

use crate::cache::Change;
use crate::pollers::{PollerWrite, delete_poller_in, events_on, write_poller_in};
use crate::{Store, StoreError, UserRecord, placeholders};
use junction_core::{AccountId, ConfigMap, InstanceId, Secret, UserId};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;
use std::sync::Arc;

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

/// `Debug` lists configuration keys only: values include decrypted secrets.
#[derive(Clone)]
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
    /// When trace logging turns itself off (epoch ms); it is on until then. The older
    /// `trace_logging` column is no longer read, and is written 0 by new instances only:
    /// this time alone says whether an instance is traced.
    pub trace_logging_until: Option<i64>,
    pub external_authentication: String,
    pub token_expires_at: Option<i64>,
    /// Why the instance stopped being valid, when a refresh failed for good.
    pub invalid_reason: Option<String>,
    /// After a transient refresh failure: no new attempt before this time (epoch ms).
    pub refresh_retry_at: Option<i64>,
    /// Transient refresh failures in a row, for the backoff.
    pub refresh_failures: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl InstanceRecord {
    /// Trace logging is on: its period has not run out at `now` (epoch ms).
    pub fn is_tracing(&self, now: i64) -> bool {
        self.trace_logging_until.is_some_and(|until| until > now)
    }
}

impl std::fmt::Debug for InstanceRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceRecord")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("element_key", &self.element_key)
            .field("name", &self.name)
            .field("config_keys", &self.config.keys().collect::<Vec<_>>())
            .field("tags", &self.tags)
            .field("valid", &self.valid)
            .field("disabled", &self.disabled)
            .field("token_expires_at", &self.token_expires_at)
            .finish_non_exhaustive()
    }
}

/// Filters and paging for listing an account's instances.
#[derive(Debug, Clone, Default)]
pub struct InstanceQuery {
    /// Only instances carrying every one of these tags.
    pub tags: Vec<String>,
    /// Only this instance (callers authenticated by an Element token see just their own).
    pub only: Option<InstanceId>,
    /// Only instances whose name contains this text, ignoring case.
    pub search_text: Option<String>,
    /// Only this element's instances.
    pub element_key: Option<String>,
    /// Keyset cursor: only instances with a larger id. Ids only grow, so a walk neither
    /// repeats nor skips an instance while others are inserted or deleted.
    pub after: Option<i64>,
    /// Page size; `None` returns everything.
    pub limit: Option<i64>,
}

/// One page of instances.
#[derive(Debug)]
pub struct InstancePage {
    pub items: Vec<InstanceRecord>,
    /// Instances matching the filters, over all pages; counted only on a walk's first
    /// page, because counting is a scan and repeating it on every page would make a full
    /// walk quadratic in the number of instances.
    pub total: Option<i64>,
    /// Cursor of the next page, when there is one.
    pub next_after: Option<i64>,
}

/// Everything a full update writes; the id and Element token never change.
pub struct InstanceUpdate<'a> {
    pub account_id: AccountId,
    pub id: InstanceId,
    pub name: &'a str,
    pub config: &'a ConfigMap,
    pub secrets: &'a ConfigMap,
    pub tags: &'a [String],
    pub valid: bool,
    pub disabled: bool,
    pub trace_logging_until: Option<i64>,
    pub external_authentication: &'a str,
    pub token_expires_at: Option<i64>,
    /// Keep the stored credentials (tokens, refresh times, expiry, validity) instead of
    /// the ones in this update, which may be older than a refresh that happened since
    /// they were read. Only a re-authorization writes new credentials.
    pub keep_credentials: bool,
    pub now: i64,
}

enum Param<'a> {
    Int(i64),
    Text(&'a str),
    Owned(String),
}

impl InstanceQuery {
    /// The `where` clause after `account_id = $1`, and its parameters from `$2` on.
    fn filters(&self) -> (String, Vec<Param<'_>>) {
        let mut sql = String::new();
        let mut params = Vec::new();
        if let Some(only) = self.only {
            params.push(Param::Int(only.0));
            sql.push_str(&format!(" and i.id = ${}", params.len() + 1));
        }
        if let Some(key) = &self.element_key {
            params.push(Param::Text(key));
            sql.push_str(&format!(" and i.element_key = ${}", params.len() + 1));
        }
        if let Some(text) = self.search_text.as_deref().filter(|t| !t.is_empty()) {
            let escaped = text
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            params.push(Param::Owned(format!("%{escaped}%")));
            sql.push_str(&format!(
                " and lower(i.name) like ${} escape '\\'",
                params.len() + 1
            ));
        }
        // One set-based predicate for all tags: an instance matches when it carries as
        // many of the given (distinct) tags as were asked for. One `exists` per tag made
        // the planner's work grow much faster than the number of tags.
        let mut tags: Vec<&str> = Vec::new();
        for tag in &self.tags {
            if !tags.contains(&tag.as_str()) {
                tags.push(tag);
            }
        }
        if !tags.is_empty() {
            let first = params.len() + 2;
            let wanted = tags.len();
            params.extend(tags.into_iter().map(Param::Text));
            params.push(Param::Int(wanted as i64));
            sql.push_str(&format!(
                " and i.id in (select t.instance_id from instance_tags t where t.tag in ({}) \
                 group by t.instance_id having count(*) = ${})",
                placeholders(first, wanted),
                first + wanted
            ));
        }
        (sql, params)
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    params: &'q [Param<'q>],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for p in params {
        q = match p {
            Param::Int(v) => q.bind(*v),
            Param::Text(v) => q.bind(*v),
            Param::Owned(v) => q.bind(v.as_str()),
        };
    }
    q
}

pub(crate) const COLUMNS: &str = "id, account_id, user_id, element_id, element_key, name, token_hash, token_sealed, \
    config, secrets, valid, disabled, trace_logging_until, external_authentication, \
    token_expires_at, invalid_reason, refresh_retry_at, refresh_failures, created_at, updated_at";

/// Binds a sealed blob to its row: a ciphertext moved to another instance fails to open.
/// Reads a 0/1 flag column.
pub(crate) fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

pub(crate) fn secrets_context(token_hash: &[u8]) -> Vec<u8> {
    let mut context = b"junction:instance-secrets:".to_vec();
    context.extend_from_slice(token_hash);
    context
}

fn token_context(token_hash: &[u8]) -> Vec<u8> {
    let mut context = b"junction:element-token:".to_vec();
    context.extend_from_slice(token_hash);
    context
}

/// A new instance's columns as stored: configuration as JSON, secrets and token sealed.
struct SealedInstance {
    token_hash: Vec<u8>,
    config_json: String,
    /// For the `events_on` column, which must agree with `config_json`.
    events_on: bool,
    secrets: Vec<u8>,
    token: Vec<u8>,
}

/// The columns a new instance's insert writes, and their values: `$1` … `$16` as
/// [`bind_instance`] binds them.
const INSERT_COLUMNS: &str = "account_id, user_id, element_id, element_key, name, token_hash, \
    token_sealed, config, secrets, valid, disabled, trace_logging, external_authentication, \
    token_expires_at, created_at, updated_at, events_on";
const INSERT_VALUES: &str =
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $16";
/// How many parameters [`INSERT_VALUES`] takes.
const INSERT_PARAMS: usize = 16;
/// The owner's columns of the answer, read by the insert itself (`$2` is the user).
const OWNER: &str = "(select email from users where id = $2) as email, \
    (select first_name from users where id = $2) as first_name, \
    (select last_name from users where id = $2) as last_name";

/// What a new instance's insert gave back.
struct Inserted {
    id: i64,
    tags: Vec<String>,
    user: Option<UserRecord>,
}

fn bind_instance<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    new: &NewInstance<'q>,
    sealed: SealedInstance,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(new.account_id.0)
        .bind(new.user_id.0)
        .bind(new.element_id)
        .bind(new.element_key)
        .bind(new.name)
        .bind(sealed.token_hash)
        .bind(sealed.token)
        .bind(sealed.config_json)
        .bind(sealed.secrets)
        .bind(1i64)
        .bind(0i64)
        .bind(0i64)
        .bind(new.external_authentication)
        .bind(new.token_expires_at)
        .bind(new.now)
        .bind(i64::from(sealed.events_on))
}

/// The owner's columns of an insert's row ([`OWNER`]); a user gone before the insert
/// leaves them null, which the instance's foreign key refuses before this.
fn owner_of(row: &AnyRow, new: &NewInstance<'_>) -> Result<UserRecord, StoreError> {
    let column = |name: &str| -> Result<String, StoreError> {
        row.try_get::<Option<String>, _>(name)?
            .ok_or(StoreError::NotFound)
    };
    Ok(UserRecord {
        id: new.user_id,
        account_id: new.account_id,
        email: column("email")?,
        first_name: column("first_name")?,
        last_name: column("last_name")?,
    })
}

/// Tags in their first order, each once.
fn distinct(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        if !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    out
}

impl Store {
    fn seal_instance(&self, new: &NewInstance<'_>) -> Result<SealedInstance, StoreError> {
        let token_hash = self.keyring().lookup_hash(new.token.expose());
        let config_json =
            serde_json::to_string(new.config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let secrets_json =
            serde_json::to_vec(new.secrets).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let secrets = self
            .keyring()
            .seal(&secrets_context(&token_hash), &secrets_json)?;
        let token = self
            .keyring()
            .seal(&token_context(&token_hash), new.token.expose().as_bytes())?;
        Ok(SealedInstance {
            token_hash,
            config_json,
            events_on: events_on(new.config),
            secrets,
            token,
        })
    }

    /// The row and its tags, inside the caller's transaction; returns the id, the
    /// distinct tags written and, with `owner`, the user the instance belongs to as the
    /// insert read it back.
    async fn insert_sealed(
        &self,
        conn: &mut sqlx::AnyConnection,
        new: &NewInstance<'_>,
        sealed: SealedInstance,
        owner: bool,
    ) -> Result<Inserted, StoreError> {
        if new.element_id >= junction_core::element::CUSTOM_ELEMENT_IDS_START {
            // Shared with other new instances, exclusive of the element's deletion (which
            // locks the row, then counts instances): the instance is counted there, or it
            // finds the element gone here.
            let lock = match self.dialect() {
                crate::Dialect::Postgres => " for share",
                crate::Dialect::Sqlite => "",
            };
            let element = sqlx::query(AssertSqlSafe(format!(
                "select id from custom_elements where id = $1{lock}"
            )))
            .bind(new.element_id)
            .fetch_optional(&mut *conn)
            .await?;
            if element.is_none() {
                return Err(StoreError::ElementGone);
            }
        }
        let sql = if owner {
            format!(
                "insert into instances ({INSERT_COLUMNS}) values ({INSERT_VALUES}) returning id, {OWNER}"
            )
        } else {
            format!(
                "insert into instances ({INSERT_COLUMNS}) values ({INSERT_VALUES}) returning id"
            )
        };
        let row = bind_instance(sqlx::query(AssertSqlSafe(sql)), new, sealed)
            .fetch_one(&mut *conn)
            .await?;
        let id: i64 = row.try_get("id")?;
        let user = if owner {
            Some(owner_of(&row, new)?)
        } else {
            None
        };
        let tags = distinct(new.tags);
        if !tags.is_empty() {
            let sql = format!(
                "insert into instance_tags (instance_id, tag) values {}",
                crate::value_rows(tags.len(), 1, 1, "($1, ?1)")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(id);
            for tag in &tags {
                q = q.bind(tag.as_str());
            }
            q.execute(&mut *conn).await?;
        }
        Ok(Inserted { id, tags, user })
    }

    /// PostgreSQL: the instance, its tags and its poller in one statement, which is its
    /// own transaction: one statement where the transaction took five or more.
    async fn insert_in_one_statement(
        &self,
        new: &NewInstance<'_>,
        sealed: SealedInstance,
        poller: &PollerWrite,
    ) -> Result<Inserted, StoreError> {
        let tags = distinct(new.tags);
        // The instance (INSERT_VALUES); then the tags; then the watermark.
        let custom = new.element_id >= junction_core::element::CUSTOM_ELEMENT_IDS_START;
        // Shared with other new instances, exclusive of the element's deletion (which locks
        // the row, then counts instances): the instance is counted there, or it finds the
        // element gone here and nothing is inserted.
        let source = if custom {
            format!(
                "select {INSERT_VALUES} where exists \
                 (select 1 from custom_elements where id = $3 for share)"
            )
        } else {
            format!("values ({INSERT_VALUES})")
        };
        let mut sql = format!(
            "with new_instance as (insert into instances ({INSERT_COLUMNS}) {source} returning id)"
        );
        if !tags.is_empty() {
            sql.push_str(&format!(
                ", new_tags as (insert into instance_tags (instance_id, tag) \
                 select id, tag from new_instance, (values {}) as t (tag))",
                crate::value_rows(tags.len(), 1, INSERT_PARAMS, "(?1)")
            ));
        }
        let watermark = match poller {
            PollerWrite::Poll { watermark } => Some(watermark),
            PollerWrite::Keep | PollerWrite::Off => None,
        };
        if watermark.is_some() {
            sql.push_str(&format!(
                ", new_poller as (insert into event_pollers \
                 (instance_id, watermark, next_run_at, failures, updated_at) \
                 select id, ${}, $15, 0, $15 from new_instance)",
                INSERT_PARAMS + 1 + tags.len()
            ));
        }
        sql.push_str(&format!(" select id, {OWNER} from new_instance"));
        let mut q = bind_instance(sqlx::query(AssertSqlSafe(sql)), new, sealed);
        for tag in &tags {
            q = q.bind(tag.as_str());
        }
        if let Some(watermark) = watermark {
            q = q.bind(watermark.as_str());
        }
        let row = q
            .fetch_optional(self.writer())
            .await?
            .ok_or(StoreError::ElementGone)?;
        Ok(Inserted {
            id: row.try_get("id")?,
            user: Some(owner_of(&row, new)?),
            tags,
        })
    }

    /// Stores many new instances in one transaction, all or none: a bulk load pays one
    /// commit (one fsync, one turn of the single SQLite writer) for the lot instead of
    /// one per instance. Ids come back in the order given. No pollers: a bulk load is
    /// reconciled with them when Junction starts.
    pub async fn insert_instances(
        &self,
        news: &[NewInstance<'_>],
    ) -> Result<Vec<InstanceId>, StoreError> {
        // Sealed before the transaction, so the writer is held for the statements only.
        let sealed = news
            .iter()
            .map(|new| self.seal_instance(new))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tx = self.writer().begin().await?;
        let mut ids = Vec::with_capacity(news.len());
        for (new, sealed) in news.iter().zip(sealed) {
            let inserted = self.insert_sealed(&mut tx, new, sealed, false).await?;
            ids.push(InstanceId(inserted.id));
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Stores a new instance and its tags in one transaction, without a poller.
    pub async fn insert_instance(
        &self,
        new: NewInstance<'_>,
    ) -> Result<InstanceRecord, StoreError> {
        Ok(self
            .insert_instance_polling(new, &PollerWrite::Off)
            .await?
            .0)
    }

    /// Stores a new instance, its tags and, when it polls, its poller in one transaction;
    /// returns it and the user it belongs to (for the answer, read by the same write).
    pub async fn insert_instance_polling(
        &self,
        new: NewInstance<'_>,
        poller: &PollerWrite,
    ) -> Result<(InstanceRecord, UserRecord), StoreError> {
        let sealed = self.seal_instance(&new)?;
        let inserted = match self.dialect() {
            crate::Dialect::Postgres => self.insert_in_one_statement(&new, sealed, poller).await?,
            crate::Dialect::Sqlite
                if new.tags.is_empty()
                    && !matches!(poller, PollerWrite::Poll { .. })
                    && new.element_id < junction_core::element::CUSTOM_ELEMENT_IDS_START =>
            {
                // One statement is its own transaction: `BEGIN` and `COMMIT` would be two
                // more round trips to SQLite's thread for nothing.
                let mut conn = self.writer().acquire().await?;
                self.insert_sealed(&mut conn, &new, sealed, true).await?
            }
            crate::Dialect::Sqlite => {
                let mut tx = self.writer().begin().await?;
                let inserted = self.insert_sealed(&mut tx, &new, sealed, true).await?;
                // A new instance has no poller rows to remove (ids are never reused, and
                // a deleted instance's rows went with it), so only `Poll` writes one.
                if let PollerWrite::Poll { watermark } = poller {
                    sqlx::query(
                        "insert into event_pollers (instance_id, watermark, next_run_at, failures, updated_at) \
                         values ($1, $2, $3, 0, $3)",
                    )
                    .bind(inserted.id)
                    .bind(watermark)
                    .bind(new.now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                inserted
            }
        };
        let Inserted { id, tags, user } = inserted;
        let user = user.ok_or_else(|| StoreError::Corrupt("the insert read no owner".into()))?;
        let mut config = new.config.clone();
        config.extend(new.secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
        let record = InstanceRecord {
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
            trace_logging_until: None,
            external_authentication: new.external_authentication.to_owned(),
            token_expires_at: new.token_expires_at,
            invalid_reason: None,
            refresh_retry_at: None,
            refresh_failures: 0,
            created_at: new.now,
            updated_at: new.now,
        };
        Ok((record, user))
    }

    /// One instance of the account; another account's instance is `NotFound`, exactly
    /// like a missing one. Served from the in-process copy when there is one.
    pub async fn get_instance(
        &self,
        account: AccountId,
        id: InstanceId,
    ) -> Result<InstanceRecord, StoreError> {
        self.get_instance_shared(account, id)
            .await
            .map(Arc::unwrap_or_clone)
    }

    /// `get_instance` without copying the record, for the paths every proxied call takes.
    pub async fn get_instance_shared(
        &self,
        account: AccountId,
        id: InstanceId,
    ) -> Result<Arc<InstanceRecord>, StoreError> {
        if let Some(record) = self.cache().instance(id.0) {
            return if record.account_id == account {
                Ok(record)
            } else {
                Err(StoreError::NotFound)
            };
        }
        let ticket = self.cache().ticket();
        let record = Arc::new(self.get_instance_fresh(account, id).await?);
        if let Some(ticket) = ticket {
            self.cache().keep_instance(ticket, Arc::clone(&record));
        }
        Ok(record)
    }

    /// Like `get_instance`, but always the row as last committed: for decisions that
    /// must not act on a copy a moment old, such as spending a refresh token.
    pub async fn get_instance_fresh(
        &self,
        account: AccountId,
        id: InstanceId,
    ) -> Result<InstanceRecord, StoreError> {
        let mut record = self.get_credentials_fresh(account, id).await?;
        record.tags = self
            .tags_of(&[id.0])
            .await?
            .remove(&id.0)
            .unwrap_or_default();
        Ok(record)
    }

    /// The row as last committed, without its tags (`tags` is empty): what a refresh
    /// decides on, one statement instead of two.
    pub async fn get_credentials_fresh(
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
        self.decode(&row, Vec::new())
    }

    /// The account's instances matching `query`, oldest first, one page at a time.
    pub async fn list_instances(
        &self,
        account: AccountId,
        query: &InstanceQuery,
    ) -> Result<InstancePage, StoreError> {
        let (filters, params) = query.filters();
        // The filters are the caller's: if the caller goes away, so does the query.
        let mut guard = self.cancellable().await?;
        let count_sql =
            format!("select count(*) from instances i where i.account_id = $1{filters}");
        let mut sql = format!("select {COLUMNS} from instances i where i.account_id = $1{filters}");
        let mut tail: Vec<Param<'_>> = Vec::new();
        if let Some(after) = query.after {
            tail.push(Param::Int(after));
            sql.push_str(&format!(" and i.id > ${}", params.len() + tail.len() + 1));
        }
        sql.push_str(" order by i.id");
        if let Some(limit) = query.limit {
            // One extra row tells whether another page follows.
            tail.push(Param::Int(limit + 1));
            sql.push_str(&format!(" limit ${}", params.len() + tail.len() + 1));
        }
        let outcome = async {
            let conn = guard.conn()?;
            let total: Option<i64> = match query.after {
                None => Some(
                    bind_all(
                        sqlx::query(AssertSqlSafe(count_sql)).bind(account.0),
                        &params,
                    )
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get(0)?,
                ),
                Some(_) => None,
            };
            let q = bind_all(sqlx::query(AssertSqlSafe(sql)).bind(account.0), &params);
            let rows = bind_all(q, &tail).fetch_all(&mut *conn).await?;
            Ok::<_, StoreError>((total, rows))
        }
        .await;
        // Finished one way or the other: only a drop before this point cancels.
        guard.finish();
        let (total, mut rows) = outcome?;
        let has_more = query.limit.is_some_and(|l| rows.len() as i64 > l);
        if has_more {
            rows.pop();
        }
        let ids: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get::<i64, _>("id"))
            .collect::<Result<_, _>>()?;
        let mut tags = self.tags_of(&ids).await?;
        let items = rows
            .iter()
            .zip(ids.iter())
            .map(|(row, id)| self.decode(row, tags.remove(id).unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(InstancePage {
            items,
            total,
            next_after: if has_more { ids.last().copied() } else { None },
        })
    }

    /// Writes a full update: name, configuration (secrets re-sealed), flags and tags (the
    /// list is replaced), in one transaction. The id and the Element token stay; the
    /// instance's poller is left as it is.
    pub async fn update_instance(&self, update: InstanceUpdate<'_>) -> Result<(), StoreError> {
        self.update_instance_polling(update, &PollerWrite::Keep)
            .await
    }

    /// [`Store::update_instance`], applying `poller` to the instance's poller in the same
    /// transaction (a stopped poller resumes only if the instance is valid once written).
    pub async fn update_instance_polling(
        &self,
        update: InstanceUpdate<'_>,
        poller: &PollerWrite,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await?;
        // PostgreSQL: `no key update` still keeps other writers of the instance out until
        // this one commits, but not a poll storing its events (their foreign key takes a
        // `key share` lock on the instance while the poll holds its poller row, which this
        // write may change next): the stronger `for update` would let the two wait on
        // each other.
        let lock = match self.dialect() {
            crate::Dialect::Postgres => " for no key update",
            crate::Dialect::Sqlite => "",
        };
        let row = sqlx::query(AssertSqlSafe(format!(
            "select token_hash, config, secrets, valid from instances where account_id = $1 and id = $2{lock}"
        )))
        .bind(update.account_id.0)
        .bind(update.id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let token_hash: Vec<u8> = row.try_get("token_hash")?;
        // Kept credentials keep the stored validity too.
        let valid = if update.keep_credentials {
            flag(&row, "valid")?
        } else {
            update.valid
        };
        let mut config = update.config.clone();
        let mut secrets = update.secrets.clone();
        if update.keep_credentials {
            let (_, stored_config, stored_secrets) = self.open_stored(&row)?;
            for key in junction_core::config::keys::CREDENTIALS {
                let (key, in_secrets) = (key.to_string(), secrets.contains_key(*key));
                config.remove(&key);
                secrets.remove(&key);
                if let Some(v) = stored_secrets.get(&key) {
                    secrets.insert(key, v.clone());
                } else if let Some(v) = stored_config.get(&key) {
                    if in_secrets {
                        secrets.insert(key, v.clone());
                    } else {
                        config.insert(key, v.clone());
                    }
                }
            }
        }
        let config_json =
            serde_json::to_string(&config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let secrets_json =
            serde_json::to_vec(&secrets).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sealed = self
            .keyring()
            .seal(&secrets_context(&token_hash), &secrets_json)?;
        let (credentials, next) = if update.keep_credentials {
            ("", 9)
        } else {
            (", valid = $9, token_expires_at = $10", 11)
        };
        let mut query = sqlx::query(AssertSqlSafe(format!(
            "update instances set name = $1, config = $2, secrets = $3, disabled = $4, \
             external_authentication = $5, updated_at = $6, \
             trace_logging_until = $7, events_on = $8{credentials} \
             where account_id = ${} and id = ${}",
            next,
            next + 1
        )))
        .bind(update.name)
        .bind(config_json)
        .bind(sealed)
        .bind(i64::from(update.disabled))
        .bind(update.external_authentication)
        .bind(update.now)
        .bind(update.trace_logging_until)
        .bind(i64::from(events_on(&config)));
        if !update.keep_credentials {
            query = query
                .bind(i64::from(update.valid))
                .bind(update.token_expires_at);
        }
        query = query.bind(update.account_id.0).bind(update.id.0);
        query.execute(&mut *tx).await?;
        sqlx::query("delete from instance_tags where instance_id = $1")
            .bind(update.id.0)
            .execute(&mut *tx)
            .await?;
        let mut seen: Vec<&str> = Vec::new();
        for tag in update.tags {
            if !seen.contains(&tag.as_str()) {
                sqlx::query("insert into instance_tags (instance_id, tag) values ($1, $2)")
                    .bind(update.id.0)
                    .bind(tag.as_str())
                    .execute(&mut *tx)
                    .await?;
                seen.push(tag);
            }
        }
        write_poller_in(&mut tx, update.id, poller, valid, update.now).await?;
        self.commit_announced(tx, Change::Instance(update.id.0))
            .await?;
        Ok(())
    }

    /// Deletes the instance (its tags and poller go with it); afterwards its Element token
    /// is unknown.
    pub async fn delete_instance(
        &self,
        account: AccountId,
        id: InstanceId,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await?;
        let owned: Option<i64> =
            sqlx::query_scalar("select id from instances where account_id = $1 and id = $2")
                .bind(account.0)
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        if owned.is_none() {
            return Err(StoreError::NotFound);
        }
        // The poller row before the instance row, in the order a poll storing its events
        // takes them, so the two never wait on each other.
        delete_poller_in(&mut tx, id).await?;
        // Then its deliveries, before the cascade reaches its events: a delivery's outcome
        // is recorded by locking the delivery row and then its event (the attempt's
        // foreign key), and the cascade from the instance row would take the event first,
        // a deadlock on PostgreSQL when both run at once.
        sqlx::query("delete from event_deliveries where instance_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        // SQLite enforces the cascade only with foreign keys on; deleting tags first keeps
        // both dialects identical regardless.
        for table in ["instance_tags", "instance_trace_logs"] {
            sqlx::query(AssertSqlSafe(format!(
                "delete from {table} where instance_id in \
                 (select id from instances where account_id = $1 and id = $2)"
            )))
            .bind(account.0)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query("delete from instances where account_id = $1 and id = $2")
            .bind(account.0)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.commit_announced(tx, Change::Instance(id.0)).await?;
        Ok(())
    }

    /// Appended to a `select` that precedes a write in the same transaction. PostgreSQL:
    /// lock the row, so a write on another replica cannot commit between this read and
    /// ours. SQLite has one writer at a time anyway.
    pub(crate) fn row_lock(&self) -> &'static str {
        match self.dialect() {
            crate::Dialect::Postgres => " for update",
            crate::Dialect::Sqlite => "",
        }
    }

    /// A row's token hash, plain configuration and opened secrets, read for a write.
    pub(crate) fn open_stored(
        &self,
        row: &AnyRow,
    ) -> Result<(Vec<u8>, ConfigMap, ConfigMap), StoreError> {
        let token_hash: Vec<u8> = row.try_get("token_hash")?;
        let config: ConfigMap = serde_json::from_str(&row.try_get::<String, _>("config")?)
            .map_err(|e| StoreError::Corrupt(format!("instance config: {e}")))?;
        let opened = self.keyring().open(
            &secrets_context(&token_hash),
            &row.try_get::<Vec<u8>, _>("secrets")?,
        )?;
        let secrets: ConfigMap = serde_json::from_slice(&opened)
            .map_err(|e| StoreError::Corrupt(format!("instance secrets: {e}")))?;
        Ok((token_hash, config, secrets))
    }

    /// The instance stored under any of an Element token's lookup hashes.
    pub(crate) async fn instance_by_token_hashes(
        &self,
        hashes: &[Vec<u8>],
    ) -> Result<Option<InstanceRecord>, StoreError> {
        let sql = format!(
            "select {COLUMNS} from instances where token_hash in ({})",
            placeholders(1, hashes.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for hash in hashes {
            query = query.bind(hash.as_slice());
        }
        let Some(row) = query.fetch_optional(self.pool()).await? else {
            return Ok(None);
        };
        let id: i64 = row.try_get("id")?;
        let mut tags = self.tags_of(&[id]).await?;
        self.decode(&row, tags.remove(&id).unwrap_or_default())
            .map(Some)
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

    pub(crate) fn decode(
        &self,
        row: &AnyRow,
        tags: Vec<String>,
    ) -> Result<InstanceRecord, StoreError> {
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
            trace_logging_until: row.try_get("trace_logging_until")?,
            external_authentication: row.try_get("external_authentication")?,
            token_expires_at: row.try_get("token_expires_at")?,
            invalid_reason: row.try_get("invalid_reason")?,
            refresh_retry_at: row.try_get("refresh_retry_at")?,
            refresh_failures: row.try_get("refresh_failures")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A migrated SQLite store with its first organization.
    pub(crate) async fn organization() -> (tempfile::TempDir, Store, AccountId, UserId) {
        let (dir, store) = crate::tests::migrated_store().await;
        let (account, user) = first_organization(&store).await;
        (dir, store, account, user)
    }

    /// The first organization of a fresh store: its account and user.
    pub(crate) async fn first_organization(store: &Store) -> (AccountId, UserId) {
        let created = store
            .create_first_organization(
                crate::NewOrganization {
                    name: "o",
                    account_name: "a",
                    email: "e@example.com",
                    first_name: "f",
                    last_name: "l",
                    organization_secret: &Secret::new("organization-secret"),
                    user_secret: &Secret::new("user-secret"),
                    now: 1,
                },
                false,
            )
            .await
            .unwrap();
        (created.account_id, created.user_id)
    }

    /// The same store on PostgreSQL, in a database of its own on the cluster
    /// `JUNCTION_TEST_DATABASE_URL` names (`None` without one), and that database's
    /// name and the cluster's URL, to drop it after.
    pub(crate) async fn postgres_organization() -> Option<(Store, AccountId, UserId, String, String)>
    {
        use sqlx::{Connection, Executor};
        let admin = std::env::var("JUNCTION_TEST_DATABASE_URL").ok()?;
        let name = format!("jt_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::postgres::PgConnection::connect(&admin).await.unwrap();
        conn.execute(AssertSqlSafe(format!("create database {name}")))
            .await
            .unwrap();
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        let url = crate::DatabaseUrl::parse(url.as_str()).unwrap();
        let key = junction_crypto::generate_key().unwrap();
        let keyring = Arc::new(junction_crypto::Keyring::parse(&key).unwrap());
        let store = Store::connect(&url, keyring).await.unwrap();
        store.migrate().await.unwrap();
        let (account, user) = first_organization(&store).await;
        Some((store, account, user, name, admin))
    }

    pub(crate) async fn drop_database(store: Store, name: &str, admin: &str) {
        use sqlx::{Connection, Executor};
        store.close().await;
        let mut conn = sqlx::postgres::PgConnection::connect(admin).await.unwrap();
        conn.execute(AssertSqlSafe(format!(
            "drop database if exists {name} with (force)"
        )))
        .await
        .unwrap();
        let _ = conn.close().await;
    }

    /// A delivery's outcome being recorded (the delivery row updated, then an attempt
    /// written against its event) while its instance is deleted: both finish, in either
    /// order of arrival, where the cascade alone deadlocked on PostgreSQL.
    #[tokio::test]
    async fn an_instance_is_deleted_while_a_delivery_of_its_event_is_recorded_on_postgres() {
        use sqlx::{Connection, Executor};
        let Some((store, account, user, name, admin)) = postgres_organization().await else {
            eprintln!("JUNCTION_TEST_DATABASE_URL is not set: the PostgreSQL case did not run");
            return;
        };
        let token = Secret::new("delivery-token");
        let none = ConfigMap::new();
        let (record, _) = store
            .insert_instance_polling(
                NewInstance {
                    account_id: account,
                    user_id: user,
                    element_id: 23,
                    element_key: "sfdc",
                    name: "n",
                    token: &token,
                    config: &none,
                    secrets: &none,
                    tags: &[],
                    external_authentication: "none",
                    token_expires_at: None,
                    now: 7,
                },
                &PollerWrite::Off,
            )
            .await
            .unwrap();
        let id = record.id.0;
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        let mut delivery = sqlx::postgres::PgConnection::connect(url.as_str())
            .await
            .unwrap();
        let event: i64 = sqlx::query_scalar(
            "insert into events (instance_id, account_id, element_key, source, status, \
             provider_data, events, created_at, updated_at) \
             values ($1, $2, 'sfdc', 'webhook', 'DISPATCHED', '{}', '[]', 1, 1) returning id",
        )
        .bind(id)
        .bind(account.0)
        .fetch_one(&mut delivery)
        .await
        .unwrap();
        let delivery_id: i64 = sqlx::query_scalar(
            "insert into event_deliveries (event_id, instance_id, account_id, webhook_id, body, \
             ordering_key, callback, state, next_attempt_at, created_at, updated_at) \
             values ($1, $2, $3, 'w-1', '{}', 'k', 'http://r.example/', 'pending', 1, 1, 1) \
             returning id",
        )
        .bind(event)
        .bind(id)
        .bind(account.0)
        .fetch_one(&mut delivery)
        .await
        .unwrap();

        // The delivery's transaction takes its row, as `finish_deliveries` does first.
        delivery.execute("begin").await.unwrap();
        sqlx::query("update event_deliveries set attempts = attempts + 1 where id = $1")
            .bind(delivery_id)
            .execute(&mut delivery)
            .await
            .unwrap();
        let deleting = tokio::spawn({
            let store = store.clone();
            async move { store.delete_instance(account, record.id).await }
        });
        // The delete waits on a lock before the delivery goes on.
        let mut watch = sqlx::postgres::PgConnection::connect(url.as_str())
            .await
            .unwrap();
        for _ in 0..500 {
            let waiting: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity where datname = current_database() \
                 and wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watch)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // Then it writes the attempt against the event, and commits.
        sqlx::query(
            "insert into event_attempts (event_id, delivery_id, attempted_at, status_code, \
             duration_ms) values ($1, $2, 2, 200, 1)",
        )
        .bind(event)
        .bind(delivery_id)
        .execute(&mut delivery)
        .await
        .expect("the attempt is written, not chosen as a deadlock's victim");
        delivery.execute("commit").await.unwrap();
        deleting.await.unwrap().expect("the instance is deleted");
        for table in ["events", "event_deliveries", "event_attempts"] {
            let left: i64 =
                sqlx::query_scalar(AssertSqlSafe(format!("select count(*) from {table}")))
                    .fetch_one(&mut watch)
                    .await
                    .unwrap();
            assert_eq!(left, 0, "{table}");
        }
        let _ = delivery.close().await;
        let _ = watch.close().await;
        drop_database(store, &name, &admin).await;
    }

    /// What a provisioning stores and answers, on one store: the instance with its owner
    /// as the insert read it, each tag once, the poller of a polling instance, and
    /// nothing at all for an instance of a custom element that is gone.
    async fn a_new_instance_is_written_whole(store: &Store, account: AccountId, user: UserId) {
        let config: ConfigMap = [(
            "event.notification.enabled".to_owned(),
            Some("true".to_owned()),
        )]
        .into();
        let tags = vec!["b".to_owned(), "a".to_owned(), "b".to_owned()];
        let tokens: Vec<Secret> = (0..3).map(|i| Secret::new(format!("token-{i}"))).collect();
        let no_secrets = ConfigMap::new();
        let new = |element_id, token: usize| NewInstance {
            account_id: account,
            user_id: user,
            element_id,
            element_key: "sfdc",
            name: "n",
            token: &tokens[token],
            config: &config,
            secrets: &no_secrets,
            tags: &tags,
            external_authentication: "none",
            token_expires_at: Some(99),
            now: 7,
        };
        let polling = PollerWrite::Poll {
            watermark: "w0".to_owned(),
        };
        let (record, owner) = store
            .insert_instance_polling(new(23, 0), &polling)
            .await
            .unwrap();
        assert_eq!(owner, store.get_user(user).await.unwrap());
        assert_eq!(record.tags, vec!["b".to_owned(), "a".to_owned()]);
        let stored = store.get_instance_fresh(account, record.id).await.unwrap();
        let mut stored_tags = stored.tags.clone();
        stored_tags.sort();
        assert_eq!(stored_tags, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(stored.token_expires_at, Some(99));
        let poller = store.poller(record.id, 7).await.unwrap().expect("a poller");
        assert_eq!(poller.watermark, "w0");

        let (quiet, _) = store
            .insert_instance_polling(new(23, 1), &PollerWrite::Off)
            .await
            .unwrap();
        assert!(store.poller(quiet.id, 7).await.unwrap().is_none());

        // No tags and no poller: the insert alone, which is its own transaction.
        let no_tags: Vec<String> = Vec::new();
        let bare_token = Secret::new("token-bare".to_owned());
        let (bare, bare_owner) = store
            .insert_instance_polling(
                NewInstance {
                    tags: &no_tags,
                    token: &bare_token,
                    ..new(23, 0)
                },
                &PollerWrite::Off,
            )
            .await
            .unwrap();
        assert_eq!(bare_owner, owner);
        let stored = store.get_instance_fresh(account, bare.id).await.unwrap();
        assert!(stored.tags.is_empty());
        assert_eq!(stored.token.expose(), "token-bare");
        assert_eq!(stored.token_expires_at, Some(99));
        assert!(store.poller(bare.id, 7).await.unwrap().is_none());

        let gone = junction_core::element::CUSTOM_ELEMENT_IDS_START + 12345;
        let count = || async {
            sqlx::query_scalar::<_, i64>("select count(*) from instances")
                .fetch_one(store.pool())
                .await
                .unwrap()
        };
        let before = count().await;
        let refused = store.insert_instance_polling(new(gone, 2), &polling).await;
        assert!(
            matches!(refused, Err(StoreError::ElementGone)),
            "{refused:?}"
        );
        assert_eq!(count().await, before);
    }

    #[tokio::test]
    async fn a_new_instance_is_written_whole_on_sqlite() {
        let (_dir, store, account, user) = organization().await;
        a_new_instance_is_written_whole(&store, account, user).await;
    }

    #[tokio::test]
    async fn a_new_instance_is_written_whole_on_postgres() {
        let Some((store, account, user, name, admin)) = postgres_organization().await else {
            eprintln!("JUNCTION_TEST_DATABASE_URL is not set: the PostgreSQL case did not run");
            return;
        };
        a_new_instance_is_written_whole(&store, account, user).await;
        drop_database(store, &name, &admin).await;
    }

    #[tokio::test]
    async fn a_batch_of_instances_is_stored_sealed_and_reads_back_like_single_inserts() {
        let (_dir, store, account, user) = organization().await;
        let config: ConfigMap =
            [("base.url".to_owned(), Some("https://x.example".to_owned()))].into();
        let secrets: ConfigMap = [(
            "oauth.api.secret".to_owned(),
            Some("client-secret".to_owned()),
        )]
        .into();
        let tokens: Vec<Secret> = (0..3).map(|i| Secret::new(format!("token-{i}"))).collect();
        let names: Vec<String> = (0..3).map(|i| format!("batch {i}")).collect();
        let tags = vec!["t".to_owned(), "t".to_owned()];
        let news: Vec<NewInstance<'_>> = (0..3)
            .map(|i| NewInstance {
                account_id: account,
                user_id: user,
                element_id: 23,
                element_key: "sfdc",
                name: &names[i],
                token: &tokens[i],
                config: &config,
                secrets: &secrets,
                tags: &tags,
                external_authentication: "initial",
                token_expires_at: Some(1000 + i as i64),
                now: 5,
            })
            .collect();
        let ids = store.insert_instances(&news).await.unwrap();
        assert_eq!(ids.len(), 3);
        for (i, id) in ids.iter().enumerate() {
            let record = store.get_credentials_fresh(account, *id).await.unwrap();
            assert_eq!(record.name, names[i]);
            assert_eq!(record.token.expose(), tokens[i].expose());
            assert_eq!(record.token_expires_at, Some(1000 + i as i64));
            assert_eq!(
                record.config.get("oauth.api.secret"),
                Some(&Some("client-secret".to_owned()))
            );
            let listed = store.get_instance(account, *id).await.unwrap();
            assert_eq!(listed.tags, vec!["t".to_owned()]);
        }
        let stored: Vec<u8> = sqlx::query_scalar("select secrets from instances where id = $1")
            .bind(ids[0].0)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&stored).contains("client-secret"),
            "secrets are stored in the clear"
        );
    }

    #[tokio::test]
    async fn a_batch_with_one_bad_instance_stores_none_of_them() {
        let (_dir, store, account, user) = organization().await;
        let empty = ConfigMap::new();
        let tokens = [Secret::new("token-a"), Secret::new("token-b")];
        let news: Vec<NewInstance<'_>> = [23, junction_core::element::CUSTOM_ELEMENT_IDS_START + 7]
            .iter()
            .zip(&tokens)
            .map(|(element_id, token)| NewInstance {
                account_id: account,
                user_id: user,
                element_id: *element_id,
                element_key: "sfdc",
                name: "n",
                token,
                config: &empty,
                secrets: &empty,
                tags: &[],
                external_authentication: "none",
                token_expires_at: None,
                now: 5,
            })
            .collect();
        let err = store.insert_instances(&news).await.unwrap_err();
        assert!(matches!(err, StoreError::ElementGone), "{err}");
        let count: i64 = sqlx::query_scalar("select count(*) from instances")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(count, 0, "the first instance of the failed batch was kept");
    }

    #[test]
    fn debug_output_shows_no_configuration_value() {
        let mut config = ConfigMap::new();
        config.insert("oauth.user.token".into(), Some("access-token-value".into()));
        let record = InstanceRecord {
            id: InstanceId(1),
            account_id: AccountId(1),
            user_id: UserId(1),
            element_id: 1,
            element_key: "sfdc".into(),
            name: "n".into(),
            token: Secret::new("element-token-value"),
            config,
            tags: vec![],
            valid: true,
            disabled: false,
            trace_logging_until: None,
            external_authentication: "none".into(),
            token_expires_at: None,
            invalid_reason: None,
            refresh_retry_at: None,
            refresh_failures: 0,
            created_at: 0,
            updated_at: 0,
        };
        let shown = format!("{record:?}");
        assert!(shown.contains("oauth.user.token"), "{shown}");
        assert!(!shown.contains("access-token-value"), "{shown}");
        assert!(!shown.contains("element-token-value"), "{shown}");
    }
}

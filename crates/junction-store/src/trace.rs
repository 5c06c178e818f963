//! Trace logs: the calls Junction made to an instance's provider while its trace logging
//! was on, already redacted by the caller. Only the newest [`TRACE_ENTRIES_KEPT`] of an
//! instance are kept.

use crate::{Store, StoreError};
use junction_core::{AccountId, InstanceId};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

/// Entries kept per instance; each is at most a few KiB (two 4 KiB bodies and headers).
pub const TRACE_ENTRIES_KEPT: i64 = 500;

/// One provider call, as recorded.
#[derive(Debug, Clone)]
pub struct TraceEntry {
    pub id: i64,
    pub instance_id: InstanceId,
    /// When the call was sent (epoch ms).
    pub created_at: i64,
    pub method: String,
    pub url: String,
    pub status: Option<i64>,
    pub duration_ms: i64,
    /// JSON object of header name to value.
    pub request_headers: String,
    pub response_headers: Option<String>,
    pub request_body: Option<String>,
    pub request_body_bytes: i64,
    pub response_body: Option<String>,
    pub response_body_bytes: i64,
    pub error: Option<String>,
}

/// One page of an instance's trace log, newest first.
#[derive(Debug)]
pub struct TracePage {
    pub items: Vec<TraceEntry>,
    /// Entries over all pages, counted on a walk's first page only.
    pub total: Option<i64>,
    /// Cursor of the next (older) page, when there is one.
    pub next_before: Option<i64>,
}

const COLUMNS: &str = "t.id, t.instance_id, t.created_at, t.method, t.url, t.status, t.duration_ms, \
    t.request_headers, t.response_headers, t.request_body, t.request_body_bytes, t.response_body, \
    t.response_body_bytes, t.error";

impl Store {
    /// Appends an entry and drops the instance's entries beyond the newest
    /// [`TRACE_ENTRIES_KEPT`]. An instance deleted meanwhile is no error: the entry
    /// is simply not kept.
    pub async fn insert_trace_entry(&self, entry: &TraceEntry) -> Result<(), StoreError> {
        self.insert_trace_entries(std::slice::from_ref(entry)).await
    }

    /// [`Self::insert_trace_entry`] for several entries in one transaction, pruning each
    /// instance once.
    pub async fn insert_trace_entries(&self, entries: &[TraceEntry]) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await?;
        let mut kept: Vec<i64> = Vec::new();
        for entry in entries {
            // Inserting through a select keeps the entry of an instance deleted meanwhile
            // from failing on the foreign key.
            let inserted = sqlx::query(
                "insert into instance_trace_logs (instance_id, created_at, method, url, status, \
                 duration_ms, request_headers, response_headers, request_body, request_body_bytes, \
                 response_body, response_body_bytes, error) \
                 select id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 from instances where id = $1",
            )
            .bind(entry.instance_id.0)
            .bind(entry.created_at)
            .bind(entry.method.as_str())
            .bind(entry.url.as_str())
            .bind(entry.status)
            .bind(entry.duration_ms)
            .bind(entry.request_headers.as_str())
            .bind(entry.response_headers.as_deref())
            .bind(entry.request_body.as_deref())
            .bind(entry.request_body_bytes)
            .bind(entry.response_body.as_deref())
            .bind(entry.response_body_bytes)
            .bind(entry.error.as_deref())
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() > 0 && !kept.contains(&entry.instance_id.0) {
                kept.push(entry.instance_id.0);
            }
        }
        for instance in kept {
            sqlx::query(
                "delete from instance_trace_logs where instance_id = $1 and id <= \
                 (select id from instance_trace_logs where instance_id = $1 \
                  order by id desc limit 1 offset $2)",
            )
            .bind(instance)
            .bind(TRACE_ENTRIES_KEPT)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The account's instance's entries older than `before` (all when `None`), newest
    /// first, at most `limit`.
    pub async fn list_trace_entries(
        &self,
        account: AccountId,
        instance: InstanceId,
        before: Option<i64>,
        limit: i64,
    ) -> Result<TracePage, StoreError> {
        let scope = "from instance_trace_logs t join instances i on i.id = t.instance_id \
                     where i.account_id = $1 and t.instance_id = $2";
        let total: Option<i64> = match before {
            Some(_) => None,
            None => Some(
                sqlx::query_scalar(AssertSqlSafe(format!("select count(*) {scope}")))
                    .bind(account.0)
                    .bind(instance.0)
                    .fetch_one(self.pool())
                    .await?,
            ),
        };
        let (cursor, limit_at) = match before {
            Some(_) => (" and t.id < $3", 4),
            None => ("", 3),
        };
        let sql = format!("select {COLUMNS} {scope}{cursor} order by t.id desc limit ${limit_at}");
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(account.0)
            .bind(instance.0);
        if let Some(before) = before {
            query = query.bind(before);
        }
        // One extra row tells whether another page follows.
        let mut rows = query.bind(limit + 1).fetch_all(self.pool()).await?;
        let has_more = rows.len() as i64 > limit;
        if has_more {
            rows.pop();
        }
        let items = rows
            .iter()
            .map(decode)
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(TracePage {
            next_before: if has_more {
                items.last().map(|e| e.id)
            } else {
                None
            },
            items,
            total,
        })
    }
}

fn decode(row: &AnyRow) -> Result<TraceEntry, sqlx::Error> {
    Ok(TraceEntry {
        id: row.try_get("id")?,
        instance_id: InstanceId(row.try_get("instance_id")?),
        created_at: row.try_get("created_at")?,
        method: row.try_get("method")?,
        url: row.try_get("url")?,
        status: row.try_get("status")?,
        duration_ms: row.try_get("duration_ms")?,
        request_headers: row.try_get("request_headers")?,
        response_headers: row.try_get("response_headers")?,
        request_body: row.try_get("request_body")?,
        request_body_bytes: row.try_get("request_body_bytes")?,
        response_body: row.try_get("response_body")?,
        response_body_bytes: row.try_get("response_body_bytes")?,
        error: row.try_get("error")?,
    })
}

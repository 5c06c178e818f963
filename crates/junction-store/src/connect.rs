//! OAuth apps and Connect sessions, for the hosted Connect page. Client secrets are
//! sealed here; session tokens and OAuth states are kept only as keyed lookup hashes, so
//! a copy of the database lets nobody finish someone else's connection.

use crate::{Store, StoreError};
use junction_core::{AccountId, Secret, UserId};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct OAuthAppRecord {
    pub id: i64,
    pub account_id: AccountId,
    pub element_key: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// App-wide configuration every instance created through the app starts with.
    pub configuration: BTreeMap<String, String>,
    pub created_at: i64,
}

pub struct NewOAuthApp<'a> {
    pub account_id: AccountId,
    pub element_key: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a Secret,
    pub configuration: &'a BTreeMap<String, String>,
    pub now: i64,
}

fn app_context(account: AccountId, element_key: &str) -> Vec<u8> {
    format!("oauth-app:{}:{element_key}", account.0).into_bytes()
}

fn session_context(token_hash: &[u8]) -> Vec<u8> {
    let mut context = b"connect-session-app:".to_vec();
    context.extend_from_slice(token_hash);
    context
}

fn session_pkce_context(token_hash: &[u8]) -> Vec<u8> {
    let mut context = b"connect-session-pkce:".to_vec();
    context.extend_from_slice(token_hash);
    context
}

fn session_callback_key_context(token_hash: &[u8]) -> Vec<u8> {
    let mut context = b"connect-session-callback-key:".to_vec();
    context.extend_from_slice(token_hash);
    context
}

fn session_config_context(token_hash: &[u8]) -> Vec<u8> {
    let mut context = b"connect-session-configuration:".to_vec();
    context.extend_from_slice(token_hash);
    context
}

/// The states a session goes through. An open session past its time reads `Expired` at
/// once; the expiry job then stores it, with the session's notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectStatus {
    Pending,
    Authorizing,
    Completing,
    Completed,
    Denied,
    Failed,
    Expired,
}

impl ConnectStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Authorizing => "authorizing",
            Self::Completing => "completing",
            Self::Completed => "completed",
            Self::Denied => "denied",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "pending" => Self::Pending,
            "authorizing" => Self::Authorizing,
            "completing" => Self::Completing,
            "completed" => Self::Completed,
            "denied" => Self::Denied,
            "failed" => Self::Failed,
            "expired" => Self::Expired,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "connect session status {other}"
                )));
            }
        })
    }

    /// Whether the session can still be used to connect.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Authorizing)
    }
}

#[derive(Debug, Clone)]
pub struct ConnectSessionRecord {
    pub id: i64,
    pub account_id: AccountId,
    pub user_id: UserId,
    pub elements: Vec<String>,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub return_url: String,
    pub base_url: String,
    /// Where the app is told how the session ended, if it asked to be.
    pub callback_url: Option<String>,
    /// A client id and secret given with the session instead of a stored OAuth app.
    pub app: Option<(String, Secret)>,
    /// What the end customer typed when the authorization started.
    pub configuration: BTreeMap<String, String>,
    /// The PKCE verifier of the authorization in progress.
    pub pkce_verifier: Option<Secret>,
    token_hash: Vec<u8>,
    /// The lookup hash of the OAuth `state` bound when this record was read.
    state_hash: Option<Vec<u8>>,
    /// Stored status, or `Expired` once an open session's time is up.
    pub status: ConnectStatus,
    pub element_key: Option<String>,
    pub instance_id: Option<i64>,
    pub error: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
}

pub struct NewConnectSession<'a> {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub token: &'a Secret,
    pub elements: &'a [String],
    pub name: Option<&'a str>,
    pub tags: &'a [String],
    pub return_url: &'a str,
    pub base_url: &'a str,
    pub app: Option<(&'a str, &'a Secret)>,
    /// The app's callback for the session's ending, and the key its notification is
    /// signed with.
    pub callback: Option<(&'a str, Option<&'a Secret>)>,
    pub expires_at: i64,
    pub now: i64,
}

/// How a session ended, for the notification the app receives.
#[derive(Debug, Clone)]
pub struct ConnectSessionEnd {
    pub id: i64,
    pub account_id: AccountId,
    /// `Completed`, `Denied`, `Failed` or `Expired`.
    pub status: ConnectStatus,
    /// The element the customer chose, if they got that far.
    pub element_key: Option<String>,
    pub elements: Vec<String>,
    pub instance_id: Option<i64>,
    pub error: Option<String>,
    pub name: Option<String>,
    pub tags: Vec<String>,
}

/// Builds a session notification's body from how it ended and its event's id.
pub type SessionEventBody = dyn Fn(&ConnectSessionEnd, i64) -> String + Send + Sync;

/// Where a session's notification goes.
pub struct SessionCallback {
    pub url: String,
    pub signature_key: Option<Secret>,
}

const SESSION_COLUMNS: &str = "id, account_id, user_id, token_hash, elements, name, tags, \
    return_url, base_url, callback_url, app_client_id, app_sealed, config_sealed, pkce_sealed, state_hash, \
    status, element_key, instance_id, error, expires_at, created_at";

/// Sessions still open: the ones that can still end.
const OPEN: &str = "('pending', 'authorizing')";

fn json_list(row: &AnyRow, column: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(&row.try_get::<String, _>(column)?)
        .map_err(|e| StoreError::Corrupt(format!("connect session {column}: {e}")))
}

fn to_json(value: &impl ToJson) -> Result<String, StoreError> {
    Ok(value.to_json().to_string())
}

trait ToJson {
    fn to_json(&self) -> serde_json::Value;
}

impl ToJson for serde_json::Value {
    fn to_json(&self) -> serde_json::Value {
        self.clone()
    }
}

impl ToJson for &[String] {
    fn to_json(&self) -> serde_json::Value {
        self.iter()
            .map(|s| serde_json::Value::from(s.as_str()))
            .collect()
    }
}

impl Store {
    /// Creates or replaces the account's OAuth app for an element.
    pub async fn put_oauth_app(&self, new: NewOAuthApp<'_>) -> Result<OAuthAppRecord, StoreError> {
        // What an OAuth app holds beyond its client id is sealed as one value.
        let sealed = to_json(&serde_json::json!({
            "clientSecret": new.client_secret.expose(),
            "configuration": new.configuration,
        }))?;
        let sealed = self.keyring().seal(
            &app_context(new.account_id, new.element_key),
            sealed.as_bytes(),
        )?;
        let id: i64 = sqlx::query_scalar(
            "insert into oauth_apps (account_id, element_key, client_id, sealed, created_at) \
             values ($1, $2, $3, $4, $5) \
             on conflict (account_id, element_key) do update \
             set client_id = excluded.client_id, sealed = excluded.sealed, created_at = excluded.created_at \
             returning id",
        )
        .bind(new.account_id.0)
        .bind(new.element_key)
        .bind(new.client_id)
        .bind(sealed)
        .bind(new.now)
        .fetch_one(self.writer())
        .await?;
        Ok(OAuthAppRecord {
            id,
            account_id: new.account_id,
            element_key: new.element_key.to_owned(),
            client_id: new.client_id.to_owned(),
            client_secret: Secret::new(new.client_secret.expose()),
            configuration: new.configuration.clone(),
            created_at: new.now,
        })
    }

    fn oauth_app(&self, row: &AnyRow) -> Result<OAuthAppRecord, StoreError> {
        let account_id = AccountId(row.try_get("account_id")?);
        let element_key: String = row.try_get("element_key")?;
        let opened = self.keyring().open(
            &app_context(account_id, &element_key),
            &row.try_get::<Vec<u8>, _>("sealed")?,
        )?;
        let sealed: serde_json::Value = serde_json::from_slice(&opened)
            .map_err(|e| StoreError::Corrupt(format!("oauth app: {e}")))?;
        let client_secret = sealed["clientSecret"]
            .as_str()
            .ok_or_else(|| StoreError::Corrupt("oauth app: no client secret".into()))?;
        let configuration: BTreeMap<String, String> =
            serde_json::from_value(sealed["configuration"].clone())
                .map_err(|e| StoreError::Corrupt(format!("oauth app configuration: {e}")))?;
        Ok(OAuthAppRecord {
            id: row.try_get("id")?,
            account_id,
            element_key,
            client_id: row.try_get("client_id")?,
            client_secret: Secret::new(client_secret),
            configuration,
            created_at: row.try_get("created_at")?,
        })
    }

    pub async fn list_oauth_apps(
        &self,
        account: AccountId,
    ) -> Result<Vec<OAuthAppRecord>, StoreError> {
        sqlx::query(
            "select id, account_id, element_key, client_id, sealed, created_at \
             from oauth_apps where account_id = $1 order by id",
        )
        .bind(account.0)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| self.oauth_app(row))
        .collect()
    }

    pub async fn oauth_app_for(
        &self,
        account: AccountId,
        element_key: &str,
    ) -> Result<Option<OAuthAppRecord>, StoreError> {
        sqlx::query(
            "select id, account_id, element_key, client_id, sealed, created_at \
             from oauth_apps where account_id = $1 and element_key = $2",
        )
        .bind(account.0)
        .bind(element_key)
        .fetch_optional(self.pool())
        .await?
        .map(|row| self.oauth_app(&row))
        .transpose()
    }

    pub async fn delete_oauth_app(&self, account: AccountId, id: i64) -> Result<(), StoreError> {
        let done = sqlx::query("delete from oauth_apps where account_id = $1 and id = $2")
            .bind(account.0)
            .bind(id)
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn insert_connect_session(
        &self,
        new: NewConnectSession<'_>,
    ) -> Result<i64, StoreError> {
        let token_hash = self.keyring().lookup_hash(new.token.expose());
        let (app_client_id, app_sealed) = match new.app {
            Some((client_id, secret)) => (
                Some(client_id),
                Some(
                    self.keyring()
                        .seal(&session_context(&token_hash), secret.expose().as_bytes())?,
                ),
            ),
            None => (None, None),
        };
        let (callback_url, callback_key) = match new.callback {
            Some((url, key)) => (
                Some(url),
                key.map(|k| {
                    self.keyring().seal(
                        &session_callback_key_context(&token_hash),
                        k.expose().as_bytes(),
                    )
                })
                .transpose()?,
            ),
            None => (None, None),
        };
        let id: i64 = sqlx::query_scalar(
            "insert into connect_sessions (account_id, user_id, token_hash, elements, name, tags, \
             return_url, base_url, app_client_id, app_sealed, status, expires_at, created_at, \
             callback_url, callback_key_sealed) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12, $13, $14) \
             returning id",
        )
        .bind(new.account_id.0)
        .bind(new.user_id.0)
        .bind(token_hash)
        .bind(to_json(&new.elements)?)
        .bind(new.name)
        .bind(to_json(&new.tags)?)
        .bind(new.return_url)
        .bind(new.base_url)
        .bind(app_client_id)
        .bind(app_sealed)
        .bind(new.expires_at)
        .bind(new.now)
        .bind(callback_url)
        .bind(callback_key)
        .fetch_one(self.writer())
        .await?;
        Ok(id)
    }

    fn connect_session(&self, row: &AnyRow, now: i64) -> Result<ConnectSessionRecord, StoreError> {
        let token_hash: Vec<u8> = row.try_get("token_hash")?;
        let app_client_id: Option<String> = row.try_get("app_client_id")?;
        let app_sealed: Option<Vec<u8>> = row.try_get("app_sealed")?;
        let app = match (app_client_id, app_sealed) {
            (Some(client_id), Some(sealed)) => {
                let opened = self
                    .keyring()
                    .open(&session_context(&token_hash), &sealed)?;
                let secret = String::from_utf8(opened.to_vec())
                    .map_err(|e| StoreError::Corrupt(format!("connect session app: {e}")))?;
                Some((client_id, Secret::new(secret)))
            }
            _ => None,
        };
        let configuration = match row.try_get::<Option<Vec<u8>>, _>("config_sealed")? {
            Some(sealed) => {
                let opened = self
                    .keyring()
                    .open(&session_config_context(&token_hash), &sealed)?;
                serde_json::from_slice(&opened).map_err(|e| {
                    StoreError::Corrupt(format!("connect session configuration: {e}"))
                })?
            }
            None => BTreeMap::new(),
        };
        let pkce_verifier = match row.try_get::<Option<Vec<u8>>, _>("pkce_sealed")? {
            Some(sealed) => {
                let opened = self
                    .keyring()
                    .open(&session_pkce_context(&token_hash), &sealed)?;
                Some(Secret::new(String::from_utf8(opened.to_vec()).map_err(
                    |e| StoreError::Corrupt(format!("connect session verifier: {e}")),
                )?))
            }
            None => None,
        };
        let expires_at: i64 = row.try_get("expires_at")?;
        let mut status = ConnectStatus::parse(&row.try_get::<String, _>("status")?)?;
        if status.is_open() && now >= expires_at {
            status = ConnectStatus::Expired;
        }
        Ok(ConnectSessionRecord {
            id: row.try_get("id")?,
            account_id: AccountId(row.try_get("account_id")?),
            user_id: UserId(row.try_get("user_id")?),
            elements: json_list(row, "elements")?,
            name: row.try_get("name")?,
            tags: json_list(row, "tags")?,
            return_url: row.try_get("return_url")?,
            base_url: row.try_get("base_url")?,
            callback_url: row.try_get("callback_url")?,
            app,
            configuration,
            pkce_verifier,
            token_hash,
            state_hash: row.try_get("state_hash")?,
            status,
            element_key: row.try_get("element_key")?,
            instance_id: row.try_get("instance_id")?,
            error: row.try_get("error")?,
            expires_at,
            created_at: row.try_get("created_at")?,
        })
    }

    async fn session_where(
        &self,
        condition: &str,
        hashes: &[Vec<u8>],
        now: i64,
    ) -> Result<Option<ConnectSessionRecord>, StoreError> {
        for hash in hashes {
            let sql =
                format!("select {SESSION_COLUMNS} from connect_sessions where {condition} = $1");
            if let Some(row) = sqlx::query(AssertSqlSafe(sql))
                .bind(hash.as_slice())
                .fetch_optional(self.pool())
                .await?
            {
                return self.connect_session(&row, now).map(Some);
            }
        }
        Ok(None)
    }

    /// The session a Connect token names, in any state.
    pub async fn connect_session_by_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<ConnectSessionRecord>, StoreError> {
        let hashes = self.keyring().lookup_hashes(token);
        self.session_where("token_hash", &hashes, now).await
    }

    /// The session an OAuth `state` came back for, in any state.
    pub async fn connect_session_by_state(
        &self,
        state: &str,
        now: i64,
    ) -> Result<Option<ConnectSessionRecord>, StoreError> {
        let hashes = self.keyring().lookup_hashes(state);
        self.session_where("state_hash", &hashes, now).await
    }

    pub async fn get_connect_session(
        &self,
        account: AccountId,
        id: i64,
        now: i64,
    ) -> Result<ConnectSessionRecord, StoreError> {
        let sql = format!(
            "select {SESSION_COLUMNS} from connect_sessions where account_id = $1 and id = $2"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(account.0)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound)?;
        self.connect_session(&row, now)
    }

    /// Binds a new OAuth `state` to an open session (replacing an earlier one, so only the
    /// latest authorization can finish it). False when the session is no longer open.
    pub async fn start_connect_authorization(
        &self,
        session: &ConnectSessionRecord,
        element_key: &str,
        state: &Secret,
        configuration: &BTreeMap<String, String>,
        pkce_verifier: Option<&Secret>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let pkce = pkce_verifier
            .map(|v| {
                self.keyring().seal(
                    &session_pkce_context(&session.token_hash),
                    v.expose().as_bytes(),
                )
            })
            .transpose()?;
        let config =
            serde_json::to_vec(configuration).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sealed = self
            .keyring()
            .seal(&session_config_context(&session.token_hash), &config)?;
        let done = sqlx::query(
            "update connect_sessions set status = 'authorizing', element_key = $1, state_hash = $2, \
             config_sealed = $3, pkce_sealed = $4 \
             where id = $5 and status in ('pending', 'authorizing') and expires_at > $6",
        )
        .bind(element_key)
        .bind(self.keyring().lookup_hash(state.expose()))
        .bind(sealed)
        .bind(pkce)
        .bind(session.id)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes an open session for finishing: exactly one caller wins, so a session creates
    /// at most one instance however often its callback is replayed.
    pub async fn claim_connect_session(
        &self,
        id: i64,
        element_key: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "update connect_sessions set status = 'completing', element_key = $1, state_hash = null \
             where id = $2 and status in ('pending', 'authorizing') and expires_at > $3",
        )
        .bind(element_key)
        .bind(id)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes a session whose provider answered with a code for finishing, only while the
    /// authorization that answered is still the session's latest: a `state` an
    /// authorization started since has replaced cannot finish it.
    pub async fn claim_connect_authorization(
        &self,
        session: &ConnectSessionRecord,
        now: i64,
    ) -> Result<bool, StoreError> {
        let Some(state_hash) = session.state_hash.as_deref() else {
            return Ok(false);
        };
        let done = sqlx::query(
            "update connect_sessions set status = 'completing', state_hash = null \
             where id = $1 and status = 'authorizing' and state_hash = $2 and expires_at > $3",
        )
        .bind(session.id)
        .bind(state_hash)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a session whose provider answered with an error, in the same statement that
    /// checks the authorization is still waiting for its answer: a code that came back
    /// for the same `state` and already claimed the session keeps it. False when it did.
    /// The app's notification is stored in the same transaction.
    pub async fn end_connect_authorization(
        &self,
        session: &ConnectSessionRecord,
        status: ConnectStatus,
        error: &str,
        body: &SessionEventBody,
        now: i64,
    ) -> Result<bool, StoreError> {
        let Some(state_hash) = session.state_hash.as_deref() else {
            return Ok(false);
        };
        let mut tx = self.writer().begin().await?;
        let done = sqlx::query(
            "update connect_sessions set status = $1, error = $2, state_hash = null, \
             config_sealed = null, pkce_sealed = null \
             where id = $3 and status = 'authorizing' and state_hash = $4",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(session.id)
        .bind(state_hash)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        notify_session_end(&mut tx, session.id, body, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Gives a claimed session back when creating its instance failed on what the end
    /// customer typed, so they can correct it and try again.
    pub async fn reopen_connect_session(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "update connect_sessions set status = 'pending' where id = $1 and status = 'completing'",
        )
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Records how an open or claimed session ended, with the app's notification in the
    /// same transaction; false when it had already ended.
    pub async fn finish_connect_session(
        &self,
        id: i64,
        status: ConnectStatus,
        instance_id: Option<i64>,
        error: Option<&str>,
        body: &SessionEventBody,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer().begin().await?;
        let done = sqlx::query(
            "update connect_sessions set status = $1, instance_id = $2, error = $3, state_hash = null, \
             config_sealed = null, pkce_sealed = null \
             where id = $4 and status in ('pending', 'authorizing', 'completing')",
        )
        .bind(status.as_str())
        .bind(instance_id)
        .bind(error)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        notify_session_end(&mut tx, id, body, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends up to `batch` open sessions whose time was up at `now`, oldest first, each
    /// with its notification, in one transaction; returns how many it ended. The status
    /// condition is checked again by the update itself, so a session a replica is
    /// finishing meanwhile, or another replica's expiry, ends it only once.
    pub async fn expire_connect_sessions(
        &self,
        now: i64,
        batch: i64,
        body: &SessionEventBody,
    ) -> Result<u64, StoreError> {
        let lock = match self.dialect() {
            crate::Dialect::Postgres => " for update skip locked",
            crate::Dialect::Sqlite => "",
        };
        let mut tx = self.writer().begin().await?;
        let sql = format!(
            "update connect_sessions set status = 'expired', state_hash = null, \
             config_sealed = null, pkce_sealed = null \
             where status in {OPEN} and expires_at <= $1 and id in \
             (select id from connect_sessions where status in {OPEN} and expires_at <= $1 \
              order by expires_at limit $2{lock}) returning id"
        );
        let ended: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(now)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
        for id in &ended {
            notify_session_end(&mut tx, *id, body, now).await?;
        }
        tx.commit().await?;
        Ok(ended.len() as u64)
    }

    /// Where a session's notification goes, read when it is sent; `None` once the session
    /// is gone.
    pub async fn connect_session_callback(
        &self,
        id: i64,
    ) -> Result<Option<SessionCallback>, StoreError> {
        let Some(row) = sqlx::query(
            "select token_hash, callback_url, callback_key_sealed from connect_sessions where id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        let Some(url) = row.try_get::<Option<String>, _>("callback_url")? else {
            return Ok(None);
        };
        let token_hash: Vec<u8> = row.try_get("token_hash")?;
        let signature_key = match row.try_get::<Option<Vec<u8>>, _>("callback_key_sealed")? {
            Some(sealed) => {
                let opened = self
                    .keyring()
                    .open(&session_callback_key_context(&token_hash), &sealed)?;
                Some(Secret::new(String::from_utf8(opened.to_vec()).map_err(
                    |e| StoreError::Corrupt(format!("connect session callback key: {e}")),
                )?))
            }
            None => None,
        };
        Ok(Some(SessionCallback { url, signature_key }))
    }

    /// Deletes up to `batch` sessions that expired before `expired_before`, with their
    /// token hashes and whatever sealed values they still hold; returns how many went.
    /// Small batches keep each delete short, so it never holds up sessions being created.
    /// An open session is kept until the expiry has ended it (and so told the app), and
    /// a session until its notification is delivered or has failed for good: the
    /// callback and key it is sent with live on the session.
    pub async fn purge_connect_sessions(
        &self,
        expired_before: i64,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "delete from connect_sessions where id in \
             (select s.id from connect_sessions s where s.expires_at < $1 \
              and s.status not in ('pending', 'authorizing') \
              and not exists (select 1 from events e where e.connect_session_id = s.id \
                and e.status in ('RECEIVED', 'DISPATCHED')) \
              order by s.expires_at limit $2)",
        )
        .bind(expired_before)
        .bind(batch)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }
}

/// Stores the notification of a session that just ended, when its app asked for one.
async fn notify_session_end(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    body: &SessionEventBody,
    now: i64,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "select account_id, elements, element_key, status, instance_id, error, name, tags, \
         callback_url from connect_sessions where id = $1",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    let Some(callback_url) = row.try_get::<Option<String>, _>("callback_url")? else {
        return Ok(());
    };
    let end = ConnectSessionEnd {
        id,
        account_id: AccountId(row.try_get("account_id")?),
        status: ConnectStatus::parse(&row.try_get::<String, _>("status")?)?,
        element_key: row.try_get("element_key")?,
        elements: json_list(&row, "elements")?,
        instance_id: row.try_get("instance_id")?,
        error: row.try_get("error")?,
        name: row.try_get("name")?,
        tags: json_list(&row, "tags")?,
    };
    let element_key = end
        .element_key
        .clone()
        .or_else(|| end.elements.first().cloned())
        .unwrap_or_default();
    crate::events::insert_session_event(
        tx,
        id,
        end.account_id,
        &element_key,
        &callback_url,
        &|event_id| body(&end, event_id),
        now,
    )
    .await?;
    Ok(())
}

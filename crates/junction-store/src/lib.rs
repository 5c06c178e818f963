//! Junction's persistence.
//!
//! One `Store` over `sqlx::Any` runs the same SQL on SQLite (embedded, the default) and
//! PostgreSQL (several replicas sharing one database). Migrations are kept per dialect
//! under `migrations/{sqlite,postgres}` with the same numbers. The store owns encryption at
//! rest: secret configuration goes in as plaintext and is sealed here, so no caller can
//! forget to. Every instance query is scoped by account; the store never answers with
//! another tenant's row.

mod accounts;
mod cache;
mod connect;
mod elements;
pub mod events;
mod hubs;
mod instances;
mod pollers;
mod rate;
mod refresh;
mod startup;
mod tenancy;
mod trace;

pub use accounts::{
    AccountRecord, AccountRemoval, AccountUpdate, NewAccount, NewUser, Role, UserDetails,
    UserRemoval,
};
pub use cache::CacheSettings;
pub use connect::{
    ConnectSessionEnd, ConnectSessionRecord, ConnectStatus, NewConnectSession, NewOAuthApp,
    OAuthAppRecord, SessionCallback, SessionEventBody,
};
pub use elements::{CustomElement, OrganizationElements};
pub use events::{
    Attempt, ClaimedDelivery, DeliveryOutcome, DeliveryResult, EventPage, EventQuery, EventRecord,
    FinderCandidate, NewEvent, NewNotification,
};
pub use hubs::{HubRecord, NewHub};
pub use instances::{InstancePage, InstanceQuery, InstanceRecord, InstanceUpdate, NewInstance};
pub use pollers::{ClaimedPoller, PollOutcome, PollerRecord, PollerRow, PollerWrite, SeenChange};
pub use rate::{Pace, Slot};
pub use refresh::{RefreshCandidate, RefreshedCredentials};
pub use startup::UnrevealedFirstStart;
pub use tenancy::{NewOrganization, OrganizationCreated, Principal, TokenPrincipal, UserRecord};
pub use trace::{TRACE_ENTRIES_KEPT, TraceEntry, TracePage};

use cache::{Cache, Change};
use junction_crypto::{CryptoError, Keyring};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// A custom element cannot be deleted while instances use it.
    #[error("the element still has {instances} instance(s)")]
    ElementInUse { instances: i64 },
    /// The custom element a new instance names was deleted meanwhile.
    #[error("the element no longer exists")]
    ElementGone,
    #[error("stored data could not be decrypted: {0}")]
    Crypto(#[from] CryptoError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A statement ran past the statement timeout, or no connection freed up in time:
    /// the database is overloaded, and the caller may try again later.
    #[error("the database did not answer in time")]
    Timeout(#[source] sqlx::Error),
    /// The database cannot be reached (stopped, restarting, the network is down), or no
    /// connection to it could be had in time: the caller may try again later.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The database cannot store what it is asked to (a full disk, a read-only file):
    /// nothing was written.
    #[error("the database cannot write")]
    Unwritable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    #[error("cannot connect to PostgreSQL at {server}")]
    Connect {
        server: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the SQLite file {path}")]
    CreateFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the encryption key with id {key_id} is not the key this database's data was sealed with"
    )]
    WrongKey { key_id: u32 },
    #[error(
        "none of the configured encryption keys sealed this database's data (it was sealed with key ids {stored:?})"
    )]
    NoKnownKey { stored: Vec<u32> },
}

impl StoreError {
    /// This failure again, for another caller that waited on the same statement (a group
    /// commit answers every writer of its batch). The kind, and so the caller's answer
    /// (503 with `Retry-After` for a database that is away, full or slow), is kept; the
    /// cause travels as text.
    pub fn for_another_waiter(&self) -> StoreError {
        let cause = |e: &sqlx::Error| sqlx::Error::Protocol(e.to_string());
        match self {
            Self::Timeout(e) => Self::Timeout(cause(e)),
            Self::Unavailable(e) => Self::Unavailable(cause(e)),
            Self::Unwritable(e) => Self::Unwritable(cause(e)),
            other => Self::Database(sqlx::Error::Protocol(other.to_string())),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let code = e.as_database_error().and_then(|db| db.code());
        match (&e, code.as_deref()) {
            // 57014 (query_canceled): PostgreSQL's statement timeout, or a cancellation.
            (_, Some("57014")) => Self::Timeout(e),
            // Class 08 (connection exception); 57P01-57P03: the server is shutting down,
            // crashed or is still starting; 53300: too many connections.
            (_, Some(c))
                if c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "53300") =>
            {
                Self::Unavailable(e)
            }
            // SQLite's primary result codes: 13 SQLITE_FULL, 8 SQLITE_READONLY, 10 SQLITE_IOERR
            // (extended codes keep the primary one in their low byte).
            (_, Some(c)) if sqlite_primary(c).is_some_and(|p| matches!(p, 8 | 10 | 13)) => {
                Self::Unwritable(e)
            }
            // A stopped server refuses connections, and the pool keeps trying until its
            // acquire timeout: from outside that is the database being unavailable.
            (
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
                _,
            ) => Self::Unavailable(e),
            _ => Self::Database(e),
        }
    }
}

/// A SQLite result code's primary part. SQLite's (extended) codes are numbers below
/// 10000; PostgreSQL's SQLSTATEs are always five characters, some of them digits only.
fn sqlite_primary(code: &str) -> Option<u32> {
    (code.len() <= 4)
        .then(|| code.parse::<u32>().ok())
        .flatten()
        .map(|c| c & 0xff)
}

/// What `GET /ready` reports of the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// A trivial statement answered within the check's time limit.
    pub reachable: bool,
    /// Every migration this build knows was applied (and no newer one is missing here).
    pub migrations_current: bool,
    /// PostgreSQL with in-memory copies: whether the listener for other replicas' writes
    /// is connected. `None` where there is no such listener.
    pub listener_connected: Option<bool>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.reachable && self.migrations_current && self.listener_connected != Some(false)
    }
}

/// How the store talks to its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreSettings {
    pub cache: CacheSettings,
    /// Longest one statement may run on PostgreSQL before the server cancels it; `None`:
    /// no limit. SQLite has no such setting; there, what callers may ask for is bounded
    /// instead (tag filters, search text, page sizes).
    pub statement_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A database URL whose `Debug` and `Display` hide the password.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Accepts `postgres://…`, `sqlite:path`, `sqlite://path` (`sqlite:///abs` for an
    /// absolute path), or a plain file path. A SQLite file is created if missing unless
    /// the URL asks for another `mode`.
    pub fn parse(input: &str) -> Result<Self, StoreError> {
        let input = input.trim();
        if input.starts_with("postgres://") || input.starts_with("postgresql://") {
            url::Url::parse(input).map_err(|e| StoreError::BadUrl(e.to_string()))?;
            Ok(Self(input.to_owned()))
        } else if let Some(rest) = input.strip_prefix("sqlite:") {
            // The same reading as sqlx's: `sqlite://` or `sqlite:`, then the file name up
            // to `?`, then the parameters.
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let (file, params) = rest.split_once('?').unwrap_or((rest, ""));
            if file.is_empty() && !params.contains("mode=memory") {
                return Err(StoreError::BadUrl("the sqlite: URL names no file".into()));
            }
            let has_mode = url::form_urlencoded::parse(params.as_bytes()).any(|(k, _)| k == "mode");
            let params = match (params.is_empty(), has_mode) {
                (_, true) => params.to_owned(),
                (true, false) => "mode=rwc".to_owned(),
                (false, false) => format!("{params}&mode=rwc"),
            };
            Ok(Self(format!("sqlite://{file}?{params}")))
        } else if input.is_empty() || input.contains("://") {
            Err(StoreError::BadUrl(
                "expected postgres://…, sqlite:… or a file path".into(),
            ))
        } else {
            // sqlx percent-decodes the file name, so these three must not stand for
            // themselves in it.
            let file = input
                .replace('%', "%25")
                .replace('?', "%3F")
                .replace('#', "%23");
            Ok(Self(format!("sqlite://{file}?mode=rwc")))
        }
    }

    pub fn dialect(&self) -> Dialect {
        if self.0.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        }
    }

    /// The SQLite file this URL points at, if any (the key and lock files live beside it).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        let rest = self.0.strip_prefix("sqlite://")?;
        let (file, params) = rest.split_once('?').unwrap_or((rest, ""));
        if file.is_empty() || file == ":memory:" || params.contains("mode=memory") {
            return None;
        }
        let file = percent_encoding::percent_decode_str(file).decode_utf8_lossy();
        Some(std::path::PathBuf::from(file.as_ref()))
    }

    /// Whether connecting creates a missing SQLite file: only in sqlx's `mode=rwc`, which
    /// [`Self::parse`] adds when the URL names no mode; `mode=ro` and `mode=rw` open an
    /// existing file or fail.
    pub fn creates_file(&self) -> bool {
        let Some(rest) = self.0.strip_prefix("sqlite://") else {
            return false;
        };
        let params = rest.split_once('?').map_or("", |(_, p)| p);
        url::form_urlencoded::parse(params.as_bytes())
            .filter(|(k, _)| k == "mode")
            .last()
            .is_some_and(|(_, v)| v == "rwc")
    }

    /// `host:port` of a PostgreSQL server, for messages (never the credentials).
    pub fn server(&self) -> Option<String> {
        let url = url::Url::parse(&self.0).ok()?;
        if self.dialect() != Dialect::Postgres {
            return None;
        }
        let host = url.host_str().unwrap_or("localhost");
        Some(format!("{host}:{}", url.port().unwrap_or(5432)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatabaseUrl {
    /// Masks the password wherever libpq reads one: after the user name, and in query
    /// parameters such as `password` and `sslpassword`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dialect() != Dialect::Postgres {
            return f.write_str(&self.0);
        }
        let Ok(mut u) = url::Url::parse(&self.0) else {
            // Checked by `parse`; never shown unparsed, in case it holds a password.
            return f.write_str("postgres://…");
        };
        if u.password().is_some() {
            let _ = u.set_password(Some(MASKED));
        }
        if u.query_pairs()
            .any(|(k, _)| junction_core::config::looks_secret(&k))
        {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if junction_core::config::looks_secret(&k) {
                        MASKED.to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        f.write_str(u.as_str())
    }
}

const MASKED: &str = "********";

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// SQLite admits one writer at a time, and a writer that finds the database locked
    /// sleeps in its busy handler. Sending every write through one connection makes
    /// writers queue in the pool instead. On PostgreSQL this is the main pool.
    writer: AnyPool,
    dialect: Dialect,
    keyring: Arc<Keyring>,
    cache: Arc<Cache>,
    /// Stops the PostgreSQL listener that keeps `cache` in step with other replicas;
    /// dropping the last clone of the store stops it too.
    stop_follower: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
    /// Where a cancellation goes (`Cancellable`): a connection of its own, since the
    /// pool may be exhausted by the very queries being cancelled.
    url: DatabaseUrl,
    /// Cancellations in flight, each on a connection outside the pool; see
    /// [`CANCELS_IN_FLIGHT`].
    cancels: Arc<tokio::sync::Semaphore>,
    /// Outbound rate-limit budgets on SQLite (`rate.rs`); PostgreSQL keeps them in a table.
    budgets: Arc<rate::MemoryBudgets>,
}

/// Cancellations (each a new PostgreSQL connection) in flight at once. Beyond this, an
/// abandoned statement is left to the statement timeout: clients that go away in a flood
/// must not open connections without bound.
const CANCELS_IN_FLIGHT: usize = 4;

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl Store {
    pub async fn connect(url: &DatabaseUrl, keyring: Arc<Keyring>) -> Result<Self, StoreError> {
        Self::connect_with(url, keyring, StoreSettings::default()).await
    }

    /// Connects with explicit settings: the in-process copies of instances and users (see
    /// `cache.rs`) and the statement timeout. On PostgreSQL this also starts listening for
    /// other replicas' writes; until that listener is connected every read goes to the
    /// database.
    pub async fn connect_with(
        url: &DatabaseUrl,
        keyring: Arc<Keyring>,
        settings: StoreSettings,
    ) -> Result<Self, StoreError> {
        let cache = settings.cache;
        install_default_drivers();
        let dialect = url.dialect();
        match url.sqlite_path() {
            Some(path) if url.creates_file() => create_private_file(&path)?,
            Some(_) => {}
            None if dialect == Dialect::Postgres => {
                // A pool retries a refused connection until its acquire timeout and then
                // reports only that it timed out; one plain attempt first says why.
                use sqlx::Connection;
                let probe = sqlx::AnyConnection::connect(url.expose())
                    .await
                    .map_err(|source| StoreError::Connect {
                        server: url.server().unwrap_or_default(),
                        source,
                    })?;
                let _ = probe.close().await;
            }
            None => {}
        }
        let (pool, writer) = match dialect {
            Dialect::Sqlite => {
                // WAL lets readers proceed during a write; the busy timeout covers other
                // processes (a `junction migrate` next to a running server).
                let sqlite = |max: u32| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(Duration::from_secs(10))
                        // A file has no server to go away: the pool's check of each
                        // connection it hands out would be one more round trip to
                        // SQLite's thread before every statement, for nothing.
                        .test_before_acquire(false)
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                conn.execute(
                                    "pragma journal_mode = wal; pragma busy_timeout = 5000; \
                                     pragma foreign_keys = on; pragma synchronous = normal;",
                                )
                                .await?;
                                Ok(())
                            })
                        })
                };
                let writer = sqlite(1).connect(url.expose()).await?;
                let pool = sqlite(8).connect(url.expose()).await?;
                (pool, writer)
            }
            Dialect::Postgres => {
                // Set on every connection, so no statement (a caller's expensive filter,
                // a lock wait) can hold a pooled connection for longer.
                let timeout_ms = settings
                    .statement_timeout
                    .map_or(0, |t| t.as_millis().max(1));
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            let sql = format!("set statement_timeout = {timeout_ms}");
                            conn.execute(sqlx::AssertSqlSafe(sql)).await?;
                            Ok(())
                        })
                    })
                    .connect(url.expose())
                    .await?;
                (pool.clone(), pool)
            }
        };
        // SQLite is one process's database: its own writes are all there is to hear.
        let cache = Arc::new(Cache::new(cache, dialect == Dialect::Sqlite));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        if dialect == Dialect::Postgres && cache.enabled() {
            tokio::spawn(cache::follow(
                url.expose().to_owned(),
                Arc::clone(&cache),
                stopped,
            ));
        }
        Ok(Self {
            pool,
            writer,
            dialect,
            keyring,
            cache,
            stop_follower: Arc::new(Mutex::new(Some(stop))),
            url: url.clone(),
            cancels: Arc::new(tokio::sync::Semaphore::new(CANCELS_IN_FLIGHT)),
            budgets: Arc::new(rate::MemoryBudgets::new()),
        })
    }

    /// A pooled connection for a statement whose cost the caller's input decides. If the
    /// request is dropped while the statement runs (the client went away), PostgreSQL is
    /// told to cancel it: sqlx only stops waiting, and the backend would otherwise run
    /// on to the statement timeout, holding its connection.
    pub(crate) async fn cancellable(&self) -> Result<Cancellable, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let backend = match self.dialect {
            Dialect::Postgres => Some(Backend {
                pid: sqlx::query_scalar::<_, i32>("select pg_backend_pid()")
                    .fetch_one(&mut *conn)
                    .await?,
                url: self.url.clone(),
                cancels: Arc::clone(&self.cancels),
            }),
            Dialect::Sqlite => None,
        };
        Ok(Cancellable {
            conn: Some(conn),
            backend,
            finished: false,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Applies pending migrations for this dialect; returns how many ran.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let migrator = self.migrator();
        // A migration (an index over a large table) and the wait for another replica's
        // migration lock may rightly take longer than any request's statement: run them,
        // and count them, without the statement timeout, on a connection that is then
        // closed rather than handed back to the pool without its timeout.
        let mut conn = self.writer.acquire().await?;
        if self.dialect == Dialect::Postgres {
            conn.execute("set statement_timeout = 0").await?;
        }
        let before = applied_migrations(&mut conn).await.unwrap_or(0);
        let ran = migrator.run(&mut *conn).await;
        let after = match ran {
            Ok(()) => applied_migrations(&mut conn).await,
            Err(_) => Ok(before),
        };
        if self.dialect == Dialect::Postgres {
            conn.close().await?;
        }
        ran?;
        Ok(after?.saturating_sub(before))
    }

    fn migrator(&self) -> sqlx::migrate::Migrator {
        match self.dialect {
            Dialect::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Dialect::Postgres => sqlx::migrate!("./migrations/postgres"),
        }
    }

    /// What `GET /ready` needs to know, each check bounded by `limit`.
    pub async fn readiness(&self, limit: Duration) -> Readiness {
        let checked = tokio::time::timeout(limit, async {
            sqlx::query("select 1").execute(&self.pool).await?;
            let applied: Option<i64> =
                sqlx::query_scalar("select max(version) from _sqlx_migrations where success")
                    .fetch_one(&self.pool)
                    .await?;
            Ok::<_, sqlx::Error>(applied)
        })
        .await;
        let (reachable, applied) = match checked {
            Ok(Ok(applied)) => (true, applied),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "readiness: the database did not answer");
                (false, None)
            }
            Err(_) => (false, None),
        };
        let known = self.migrator().iter().map(|m| m.version).max();
        let listener_connected = (self.dialect == Dialect::Postgres && self.cache.enabled())
            .then(|| self.cache.is_coherent());
        junction_telemetry::database_up(reachable);
        Readiness {
            reachable,
            migrations_current: reachable && applied == known,
            listener_connected,
        }
    }

    /// Samples the connection pools into the metrics (read when they are exposed).
    pub fn record_pool_metrics(&self) {
        let record = |name, pool: &AnyPool| {
            junction_telemetry::pool(
                name,
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            );
        };
        match self.dialect {
            Dialect::Sqlite => {
                record("reader", &self.pool);
                record("writer", &self.writer);
            }
            Dialect::Postgres => record("main", &self.pool),
        }
    }

    /// A consistent copy of a SQLite database in a new file, taken while it serves
    /// (`VACUUM INTO` reads one snapshot; writers carry on meanwhile). The file is created
    /// readable by its owner only. PostgreSQL is backed up with its own tools.
    pub async fn backup_sqlite(&self, target: &std::path::Path) -> Result<(), StoreError> {
        if self.dialect != Dialect::Sqlite {
            return Err(StoreError::BadUrl(
                "only a SQLite database is backed up by Junction itself".into(),
            ));
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        // SQLite writes into an empty file it is given, keeping its permissions.
        options
            .open(target)
            .map_err(|source| StoreError::CreateFile {
                path: target.display().to_string(),
                source,
            })?;
        let written = sqlx::query("vacuum into $1")
            .bind(target.to_string_lossy().into_owned())
            .execute(&self.pool)
            .await;
        if let Err(e) = written {
            let _ = std::fs::remove_file(target);
            return Err(e.into());
        }
        Ok(())
    }

    /// Cheap liveness check for `/health`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        let stop = self
            .stop_follower
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Seals a value handed to callers to bring back (a page token) under the primary
    /// key; `context` binds it to where it may be used.
    pub fn seal_opaque(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(self.keyring.seal(context, plaintext)?)
    }

    /// Opens what [`Store::seal_opaque`] sealed under the same `context`; `None` for
    /// anything forged, altered or sealed for another context.
    pub fn open_opaque(&self, context: &[u8], blob: &[u8]) -> Option<Vec<u8>> {
        self.keyring.open(context, blob).ok().map(|p| p.to_vec())
    }

    pub(crate) fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool every write goes through.
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    pub(crate) fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Tells other replicas what a write changed. Run inside the write's transaction, so
    /// PostgreSQL delivers it exactly when (and only if) the write commits.
    pub(crate) async fn announce<'e, E>(
        &self,
        executor: E,
        change: Change,
    ) -> Result<(), StoreError>
    where
        E: Executor<'e, Database = sqlx::Any>,
    {
        if self.dialect == Dialect::Postgres {
            // The payload is built from numbers and fixed words (`Change::payload`).
            let sql = format!("notify {}, '{}'", cache::CHANNEL, change.payload());
            executor.execute(sqlx::AssertSqlSafe(sql)).await?;
        }
        Ok(())
    }

    /// Drops this process's copies a committed write made stale.
    pub(crate) fn forget(&self, change: Change) {
        self.cache.forget(change);
    }

    /// Commits a write, announcing `change` to other replicas inside the transaction and
    /// dropping this process's stale copies once it has committed.
    pub(crate) async fn commit_announced(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        change: Change,
    ) -> Result<(), StoreError> {
        self.announce(&mut *tx, change).await?;
        tx.commit().await?;
        self.forget(change);
        Ok(())
    }
}

/// Creates a missing SQLite file readable by its owner only. SQLite gives its `-wal` and
/// `-shm` files the database file's permissions, so they stay private too.
fn create_private_file(path: &std::path::Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::CreateFile {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// See [`Store::cancellable`]. Call [`Cancellable::finish`] once the statements are done;
/// dropped before that, it cancels whatever its connection is running.
pub(crate) struct Cancellable {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
    /// PostgreSQL: the backend process serving `conn`, and how to cancel its statement.
    backend: Option<Backend>,
    finished: bool,
}

struct Backend {
    pid: i32,
    url: DatabaseUrl,
    cancels: Arc<tokio::sync::Semaphore>,
}

impl Cancellable {
    pub(crate) fn conn(&mut self) -> Result<&mut sqlx::AnyConnection, StoreError> {
        self.conn
            .as_deref_mut()
            .ok_or_else(|| StoreError::Corrupt("connection already released".into()))
    }

    /// The statements completed (or failed): nothing is left to cancel.
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Cancellable {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (Some(mut conn), Some(backend)) = (self.conn.take(), self.backend.take()) else {
            return;
        };
        // What the connection was in the middle of is unknown: never reuse it.
        conn.close_on_drop();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Backend { pid, url, cancels } = backend;
        let Ok(permit) = cancels.try_acquire_owned() else {
            tracing::debug!(
                pid,
                "too many cancellations in flight: the statement timeout ends this one"
            );
            return;
        };
        runtime.spawn(async move {
            let _permit = permit;
            use sqlx::Connection;
            let cancelled = async {
                let mut other = sqlx::postgres::PgConnection::connect(url.expose()).await?;
                sqlx::query("select pg_cancel_backend($1)")
                    .bind(pid)
                    .execute(&mut other)
                    .await?;
                other.close().await
            };
            match cancelled.await {
                Ok(()) => tracing::debug!(pid, "cancelled the statement of a dropped request"),
                Err(e) => {
                    tracing::warn!(pid, error = %e, "could not cancel the statement of a dropped request");
                }
            }
            // Only now: the connection must stay out of the pool until the cancel landed.
            drop(conn);
        });
    }
}

/// `$n, $n+1, …` for an `IN (…)` list starting at placeholder `start`.
pub(crate) fn placeholders(start: usize, count: usize) -> String {
    (start..start + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of a multi-row `VALUES` list: `row` repeated `count` times, where `?k` in
/// it stands for the k-th (1-based) of each row's `width` parameters, which follow the
/// `shared` ones bound first (`$1` … `$shared`, written as such in `row`).
pub(crate) fn value_rows(count: usize, width: usize, shared: usize, row: &str) -> String {
    let mut out = String::with_capacity(count * (row.len() + 8));
    for i in 0..count {
        if i > 0 {
            out.push_str(", ");
        }
        let first = shared + i * width;
        let mut rest = row;
        while let Some(at) = rest.find('?') {
            out.push_str(&rest[..at]);
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            let k: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
            out.push_str(&format!("${}", first + k));
            rest = &rest[at + 1 + digits..];
        }
        out.push_str(rest);
    }
    out
}

/// How many migrations the database has applied.
async fn applied_migrations(conn: &mut sqlx::AnyConnection) -> Result<usize, sqlx::Error> {
    let count: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations")
        .fetch_one(&mut *conn)
        .await?;
    Ok(usize::try_from(count).unwrap_or(0))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A migrated SQLite store in a directory of its own, kept while the directory is.
    pub(crate) async fn migrated_store() -> (tempfile::TempDir, Store) {
        let (dir, store) = unmigrated_store().await;
        store.migrate().await.unwrap();
        (dir, store)
    }

    /// A SQLite store in a directory of its own, before any migration ran.
    async fn unmigrated_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(dir.path().join("j.db").to_str().unwrap()).unwrap();
        let key = junction_crypto::generate_key().unwrap();
        let keyring = Arc::new(junction_crypto::Keyring::parse(&key).unwrap());
        let store = Store::connect(&url, keyring).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn sqlite_keeps_one_plan_per_statement_whatever_its_bound_values() {
        // Without the planner stability guarantee a statement is compiled again for each
        // new value bound to it, and the statement cache saves nothing.
        let (_dir, store) = unmigrated_store().await;
        let used: i64 = sqlx::query_scalar("select sqlite_compileoption_used('ENABLE_QPSG')")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(used, 1, "SQLite is built without SQLITE_ENABLE_QPSG");
    }

    #[tokio::test]
    async fn releasing_refresh_leases_at_start_reads_only_the_leased_instances() {
        // At a million instances a scan here was most of the time from start to ready.
        let (_dir, store) = migrated_store().await;
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "explain query plan update instances set refresh_lease_owner = null, \
             refresh_lease_until = null where refresh_lease_owner is not null",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let steps: Vec<&str> = plan.iter().map(|(_, _, _, step)| step.as_str()).collect();
        assert!(
            steps.iter().any(|s| s.contains("instances_refresh_lease")),
            "{steps:?}"
        );
    }

    #[tokio::test]
    async fn upgrading_marks_the_instances_whose_configuration_has_events_on() {
        let (_dir, store) = unmigrated_store().await;
        let mut conn = store.writer().acquire().await.unwrap();
        store.migrator().run_to(16, &mut *conn).await.unwrap();
        drop(conn);
        let (account, user) = crate::instances::tests::first_organization(&store).await;
        let configs = [
            r#"{"event.notification.enabled":"true"}"#,
            r#"{"event.notification.enabled":"false"}"#,
            r#"{"base.url":"u","event.notification.enabled":null}"#,
            r#"{"base.url":"u"}"#,
        ];
        for (i, config) in configs.iter().enumerate() {
            sqlx::query(
                "insert into instances (account_id, user_id, element_id, element_key, name, \
                 token_hash, token_sealed, config, secrets, valid, disabled, trace_logging, \
                 external_authentication, created_at, updated_at) \
                 values ($1, $2, 23, 'sfdc', 'n', $3, $3, $4, $3, 1, 0, 0, 'none', 1, 1)",
            )
            .bind(account.0)
            .bind(user.0)
            .bind(vec![u8::try_from(i).unwrap()])
            .bind(*config)
            .execute(store.writer())
            .await
            .unwrap();
        }
        store.migrate().await.unwrap();
        let on: Vec<(String, i64)> =
            sqlx::query_as("select config, events_on from instances order by id")
                .fetch_all(store.pool())
                .await
                .unwrap();
        let flags: Vec<i64> = on.iter().map(|(_, flag)| *flag).collect();
        assert_eq!(flags, vec![1, 0, 1, 0], "{on:?}");
    }

    #[tokio::test]
    async fn polling_candidates_read_only_the_instances_with_events_on() {
        let (_dir, store) = migrated_store().await;
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "explain query plan select id {}",
            crate::pollers::POLLING_CANDIDATES
        )))
        .bind(0_i64)
        .bind(500_i64)
        .fetch_all(store.pool())
        .await
        .unwrap();
        let steps: Vec<&str> = plan.iter().map(|(_, _, _, step)| step.as_str()).collect();
        assert!(
            steps.iter().any(|s| s.contains("instances_events_on")),
            "{steps:?}"
        );
    }

    #[test]
    fn value_rows_number_each_rows_parameters_after_the_shared_ones() {
        assert_eq!(
            value_rows(2, 3, 1, "($1, ?1, ?2, ?3, ?3)"),
            "($1, $2, $3, $4, $4), ($1, $5, $6, $7, $7)"
        );
        assert_eq!(value_rows(1, 2, 0, "(?1, 'x', ?2)"), "($1, 'x', $2)");
        assert_eq!(value_rows(0, 2, 0, "(?1, ?2)"), "");
    }

    #[test]
    fn database_url_hides_the_password() {
        let url = DatabaseUrl::parse("postgres://junction:s3cret@db:5432/junction").unwrap();
        assert!(!format!("{url}").contains("s3cret"));
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(url.dialect(), Dialect::Postgres);
    }

    #[test]
    fn database_url_hides_passwords_given_as_parameters() {
        let url = DatabaseUrl::parse(
            "postgres://db/junction?user=j&password=s3cret&sslmode=require&sslpassword=k3y-pass",
        )
        .unwrap();
        for shown in [format!("{url}"), format!("{url:?}")] {
            assert!(
                !shown.contains("s3cret") && !shown.contains("k3y-pass"),
                "{shown}"
            );
            assert!(
                shown.contains("user=j") && shown.contains("sslmode=require"),
                "{shown}"
            );
        }
    }

    #[test]
    fn only_the_default_sqlite_mode_creates_the_file() {
        assert!(DatabaseUrl::parse("./j.db").unwrap().creates_file());
        assert!(
            DatabaseUrl::parse("sqlite:j.db?cache=shared")
                .unwrap()
                .creates_file()
        );
        assert!(
            DatabaseUrl::parse("sqlite:j.db?mode=rwc")
                .unwrap()
                .creates_file()
        );
        for url in [
            "sqlite:j.db?mode=ro",
            "sqlite://j.db?mode=rw",
            "postgres://db/j",
        ] {
            assert!(!DatabaseUrl::parse(url).unwrap().creates_file(), "{url}");
        }
    }

    #[test]
    fn both_dialects_have_the_same_migrations() {
        let names = |dir: &str| {
            let mut v: Vec<String> =
                std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
            v.sort();
            v
        };
        assert_eq!(names("sqlite"), names("postgres"));
        assert!(!names("sqlite").is_empty());
    }

    #[test]
    fn a_plain_path_is_a_sqlite_file() {
        let url = DatabaseUrl::parse("./junction.db").unwrap();
        assert_eq!(url.dialect(), Dialect::Sqlite);
        assert_eq!(
            url.sqlite_path().unwrap(),
            std::path::PathBuf::from("./junction.db")
        );
        assert!(DatabaseUrl::parse("mysql://x").is_err());
    }

    #[test]
    fn every_sqlite_url_form_names_a_file_created_if_missing() {
        for (input, path) in [
            ("sqlite://./j.db", "./j.db"),
            ("sqlite:./j.db", "./j.db"),
            ("sqlite:///abs/j.db", "/abs/j.db"),
            ("sqlite:j.db?cache=shared", "j.db"),
            ("./odd?name#1%.db", "./odd?name#1%.db"),
        ] {
            let url = DatabaseUrl::parse(input).unwrap();
            assert_eq!(url.dialect(), Dialect::Sqlite);
            assert_eq!(
                url.sqlite_path().unwrap(),
                std::path::PathBuf::from(path),
                "{input}"
            );
            assert!(
                url.expose().contains("mode=rwc"),
                "{input}: {}",
                url.expose()
            );
        }
        let read_only = DatabaseUrl::parse("sqlite:./j.db?mode=ro").unwrap();
        assert!(!read_only.expose().contains("rwc"));
        assert!(DatabaseUrl::parse("sqlite:").is_err());
    }
}

//! Settings: environment variables (`JUNCTION_…`), mirrored by command-line flags,
//! validated before anything starts.

use anyhow::{Context, bail};
use clap::Args;
use junction_core::Secret;
use junction_crypto::Keyring;
use junction_service::events::EventSettings;
use junction_store::{CacheSettings, DatabaseUrl, Dialect, StoreSettings};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every setting, with its default. `junction config example` prints this table.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    (
        "JUNCTION_LISTEN",
        "127.0.0.1:8080",
        "Address (or host name) and port the API listens on.",
    ),
    (
        "JUNCTION_PUBLIC_URL",
        "",
        "The URL clients reach Junction at, such as https://hub.example.com (a path prefix is kept), as the element API documents name it. Unset: the request's Host, over http.",
    ),
    (
        "JUNCTION_DATABASE_URL",
        "./junction.db",
        "SQLite file (created if missing; also `sqlite:path`) or postgres://user:password@host/db to share one PostgreSQL between replicas. JUNCTION_DATABASE_URL_FILE: read it from a file.",
    ),
    (
        "JUNCTION_ENCRYPTION_KEY",
        "",
        "Base64 of 32 random bytes (`junction config generate-key`), or `id:base64,id:base64` to rotate (first is primary). Unset with SQLite: a key file is created beside a new database. Required with PostgreSQL. JUNCTION_ENCRYPTION_KEY_FILE: read it from a file.",
    ),
    (
        "JUNCTION_BOOTSTRAP_USER_SECRET",
        "",
        "User secret of the first user, created on a database without organizations. Unset: generated and printed once. JUNCTION_BOOTSTRAP_USER_SECRET_FILE: read it from a file.",
    ),
    (
        "JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET",
        "",
        "Organization secret of the first organization. Unset: generated and printed once. JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET_FILE: read it from a file.",
    ),
    (
        "JUNCTION_OUTBOUND_ALLOW_PRIVATE",
        "false",
        "Allow calls to loopback and private addresses (local providers, tests). Link-local and metadata addresses are always refused.",
    ),
    (
        "JUNCTION_OUTBOUND_TIMEOUT",
        "30",
        "Seconds a call to a provider may take in all (connecting takes at most 5 of them).",
    ),
    (
        "JUNCTION_REFRESH_INTERVAL",
        "60",
        "Seconds between sweeps that renew provider tokens about to expire; 0 turns the sweep off (tokens are still renewed when a call needs them).",
    ),
    (
        "JUNCTION_REFRESH_CONCURRENCY",
        "16",
        "Token refreshes a sweep runs at once (each is one call to a provider's token endpoint).",
    ),
    (
        "JUNCTION_EVENTS_WORKERS",
        "4",
        "Event delivery workers in each replica; each sends up to 32 notifications at once. 0 turns delivery off here (webhooks are still received and stored, for another replica to deliver).",
    ),
    (
        "JUNCTION_EVENTS_RETRIES",
        "9",
        "Retries of an event notification the app's callback did not accept (any answer but 2xx, or none in time); after the last the event is FAILED and can be replayed.",
    ),
    (
        "JUNCTION_EVENTS_RETRY_DELAY_MS",
        "4000",
        "Milliseconds before the first retry; each later retry waits four times longer (Cloud Elements' 4^n seconds), give or take 20%.",
    ),
    (
        "JUNCTION_EVENTS_TIMEOUT",
        "10",
        "Seconds the app's callback has to answer one notification.",
    ),
    (
        "JUNCTION_EVENTS_RETENTION",
        "168",
        "Hours delivered events are kept for the events API before they are deleted (failed ones are kept until replayed).",
    ),
    (
        "JUNCTION_EVENTS_STANDARD_WEBHOOKS",
        "true",
        "Also send the Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature) when a signature key is set.",
    ),
    (
        "JUNCTION_EVENTS_POLL_TICK_MS",
        "5000",
        "Milliseconds between this replica's claims of the pollers due (each instance polls every event.poller.refresh_interval minutes, one replica at a time); a tick reads no instance, and the replica reconciles the pollers with the instances once at start. 0 turns polling off here.",
    ),
    (
        "JUNCTION_EVENTS_POLL_MINUTE_MS",
        "60000",
        "Milliseconds one minute of event.poller.refresh_interval lasts; also scales the poll backoff (a quarter of it, doubled per failure, up to 60 of it) and the poll lease another replica waits out after a crash (5 of it). Only tests shorten it.",
    ),
    (
        "JUNCTION_CACHE_TTL",
        "30",
        "Seconds an in-process copy of an instance or user may serve calls. Copies are dropped on every write, by every replica (PostgreSQL LISTEN/NOTIFY); this bounds only what a silently lost notification could leave. 0 turns the copies off.",
    ),
    (
        "JUNCTION_CACHE_CAPACITY",
        "10000",
        "Most instances (and, separately, users) kept in memory, in units of a typical 2 KB instance: copies are weighed by size, so larger instances count as several.",
    ),
    (
        "JUNCTION_DATABASE_STATEMENT_TIMEOUT",
        "30",
        "Seconds one PostgreSQL statement may run before the database cancels it (the call answers 503 database_timeout); 0 turns the limit off. SQLite bounds what callers may ask for instead.",
    ),
    (
        "JUNCTION_CALLER_CONCURRENCY",
        "8",
        "Calls one caller (a user, or an Element token) may have in progress at once, proxied calls aside; more answer 429 too_many_requests with Retry-After.",
    ),
    (
        "JUNCTION_HOOK_TIMEOUT",
        "1000",
        "Milliseconds one JavaScript hook of an element may run; a longer one ends the call with 502 hook_failed.",
    ),
    (
        "JUNCTION_HOOK_MEMORY",
        "32",
        "MiB of JavaScript heap one hook run may use, its inputs included; more ends the call with 502 hook_failed.",
    ),
    (
        "JUNCTION_CONNECT_RETENTION",
        "24",
        "Hours a Connect session is kept after it expires, whatever its status (an app can poll it until then); it and its hashed token are then deleted, once its notification (if it has a callback) is delivered or has failed.",
    ),
    (
        "JUNCTION_HEADER_READ_TIMEOUT",
        "10",
        "Seconds a client has to send a request's headers. A kept-alive connection that sends no new request is closed after the same time.",
    ),
    (
        "JUNCTION_IDLE_TIMEOUT",
        "30",
        "Seconds a request body may pause with nothing arriving; the request then fails with 400 and its connection closes.",
    ),
    (
        "JUNCTION_BODY_TIMEOUT",
        "60",
        "Seconds a whole request body may take to arrive, however steadily it comes; a slower one fails with 400 like a paused one. Raise it for large proxied uploads over slow links.",
    ),
    (
        "JUNCTION_MAX_CONNECTIONS",
        "1024",
        "Client connections served at once. Further ones wait to be accepted until one closes; keep it below the open-file limit (`ulimit -n`).",
    ),
    (
        "JUNCTION_SHUTDOWN_TIMEOUT",
        "10",
        "Seconds in-flight requests get to finish after SIGTERM or Ctrl-C; connections still open then are closed.",
    ),
    (
        "JUNCTION_AUTH_FAILURE_LIMIT",
        "30",
        "Failed authentications one client address (an IPv6 /64) may make per minute; beyond them it gets 429 until its budget refills. Successful calls are never counted. 0 turns the limit off.",
    ),
    (
        "JUNCTION_TRUST_FORWARDED_FOR",
        "false",
        "Count failed authentications against the last X-Forwarded-For address instead of the TCP peer. Set it only behind a proxy that adds that header; otherwise clients choose their own address.",
    ),
    (
        "JUNCTION_METRICS_LISTEN",
        "",
        "Address and port of a separate listener serving GET /metrics in the Prometheus text format, such as 127.0.0.1:9090. Unset: no metrics are kept or served.",
    ),
    (
        "JUNCTION_LOG",
        "info",
        "Log filter, e.g. `info` or `junction_service=debug,info`.",
    ),
    ("JUNCTION_LOG_FORMAT", "text", "`text` or `json`."),
    (
        "JUNCTION_OTLP_ENDPOINT",
        "",
        "Base URL of an OpenTelemetry collector, such as http://127.0.0.1:4318: spans of requests and provider calls go to its /v1/traces over OTLP/HTTP (protobuf). Unset: no spans are exported.",
    ),
];

/// `JUNCTION_X (--x)`: how an error names a setting, so that whoever set either form
/// recognizes it.
pub fn setting_name(env: &str) -> String {
    let flag = env
        .strip_prefix("JUNCTION_")
        .unwrap_or(env)
        .to_ascii_lowercase()
        .replace('_', "-");
    format!("{env} (--{flag})")
}

/// Where the data lives and the key that seals it: all that commands opening the
/// database without serving it need.
#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// SQLite file path (or sqlite:path) or postgres:// URL.
    #[arg(
        long,
        env = "JUNCTION_DATABASE_URL",
        default_value = "./junction.db",
        hide_env_values = true
    )]
    pub database_url: String,
    /// File holding the database URL (keeps a password out of the process list).
    #[arg(
        long,
        env = "JUNCTION_DATABASE_URL_FILE",
        value_name = "PATH",
        conflicts_with = "database_url"
    )]
    pub database_url_file: Option<PathBuf>,
    /// Base64 32-byte key, or `id:base64,…` for rotation.
    #[arg(long, env = "JUNCTION_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
    /// File holding the encryption key.
    #[arg(
        long,
        env = "JUNCTION_ENCRYPTION_KEY_FILE",
        value_name = "PATH",
        conflicts_with = "encryption_key"
    )]
    pub encryption_key_file: Option<PathBuf>,
}

/// The raw settings of `junction serve` as flags and environment variables give them.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address (or host name) and port to listen on.
    #[arg(long, env = "JUNCTION_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The URL clients reach Junction at, as API documents name it.
    #[arg(long, env = "JUNCTION_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// First user's secret on an empty database.
    #[arg(long, env = "JUNCTION_BOOTSTRAP_USER_SECRET", hide_env_values = true)]
    pub bootstrap_user_secret: Option<String>,
    /// File holding the first user's secret.
    #[arg(
        long,
        env = "JUNCTION_BOOTSTRAP_USER_SECRET_FILE",
        value_name = "PATH",
        conflicts_with = "bootstrap_user_secret"
    )]
    pub bootstrap_user_secret_file: Option<PathBuf>,
    /// First organization's secret on an empty database.
    #[arg(
        long,
        env = "JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET",
        hide_env_values = true
    )]
    pub bootstrap_organization_secret: Option<String>,
    /// File holding the first organization's secret.
    #[arg(
        long,
        env = "JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET_FILE",
        value_name = "PATH",
        conflicts_with = "bootstrap_organization_secret"
    )]
    pub bootstrap_organization_secret_file: Option<PathBuf>,
    /// Allow outbound calls to loopback and private addresses (`--outbound-allow-private`
    /// alone means true).
    #[arg(
        long,
        env = "JUNCTION_OUTBOUND_ALLOW_PRIVATE",
        default_value = "false",
        value_parser = parse_bool,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub outbound_allow_private: bool,
    /// Seconds a provider call may take.
    #[arg(long, env = "JUNCTION_OUTBOUND_TIMEOUT", default_value = "30")]
    pub outbound_timeout: u64,
    /// Seconds between token refresh sweeps; 0 disables them.
    #[arg(long, env = "JUNCTION_REFRESH_INTERVAL", default_value = "60")]
    pub refresh_interval: u64,
    /// Token refreshes a sweep runs at once.
    #[arg(long, env = "JUNCTION_REFRESH_CONCURRENCY", default_value = "16")]
    pub refresh_concurrency: usize,
    /// Event delivery workers; 0 turns delivery off in this process.
    #[arg(long, env = "JUNCTION_EVENTS_WORKERS", default_value = "4")]
    pub events_workers: usize,
    /// Retries of an event notification.
    #[arg(long, env = "JUNCTION_EVENTS_RETRIES", default_value = "9")]
    pub events_retries: u32,
    /// Milliseconds before the first retry (each later one waits four times longer).
    #[arg(long, env = "JUNCTION_EVENTS_RETRY_DELAY_MS", default_value = "4000")]
    pub events_retry_delay_ms: u64,
    /// Seconds a callback has to answer.
    #[arg(long, env = "JUNCTION_EVENTS_TIMEOUT", default_value = "10")]
    pub events_timeout: u64,
    /// Hours delivered events are kept.
    #[arg(long, env = "JUNCTION_EVENTS_RETENTION", default_value = "168")]
    pub events_retention: u64,
    /// Also send the Standard Webhooks headers.
    #[arg(long, env = "JUNCTION_EVENTS_STANDARD_WEBHOOKS", default_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub events_standard_webhooks: bool,
    /// Milliseconds between looks for instances due to poll; 0 turns polling off here.
    #[arg(long, env = "JUNCTION_EVENTS_POLL_TICK_MS", default_value = "5000")]
    pub events_poll_tick_ms: u64,
    /// Milliseconds in one minute of `event.poller.refresh_interval` (tests shorten it).
    #[arg(long, env = "JUNCTION_EVENTS_POLL_MINUTE_MS", default_value = "60000")]
    pub events_poll_minute_ms: u64,
    /// Seconds an in-process copy of an instance or user may serve calls; 0 disables.
    #[arg(long, env = "JUNCTION_CACHE_TTL", default_value = "30")]
    pub cache_ttl: u64,
    /// Most instances (and users) kept in memory.
    #[arg(long, env = "JUNCTION_CACHE_CAPACITY", default_value = "10000")]
    pub cache_capacity: u64,
    /// Seconds a client has to send a request's headers (and an idle kept-alive
    /// connection stays open).
    #[arg(long, env = "JUNCTION_HEADER_READ_TIMEOUT", default_value = "10")]
    pub header_read_timeout: u64,
    /// Seconds a request body may pause with nothing arriving.
    #[arg(long, env = "JUNCTION_IDLE_TIMEOUT", default_value = "30")]
    pub idle_timeout: u64,
    /// Seconds a whole request body may take to arrive.
    #[arg(long, env = "JUNCTION_BODY_TIMEOUT", default_value = "60")]
    pub body_timeout: u64,
    /// Client connections served at once.
    #[arg(long, env = "JUNCTION_MAX_CONNECTIONS", default_value = "1024")]
    pub max_connections: usize,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "JUNCTION_SHUTDOWN_TIMEOUT", default_value = "10")]
    pub shutdown_timeout: u64,
    /// Failed authentications per client address and minute; 0 disables the limit.
    #[arg(long, env = "JUNCTION_AUTH_FAILURE_LIMIT", default_value = "30")]
    pub auth_failure_limit: u32,
    /// Take the client address from X-Forwarded-For.
    #[arg(long, env = "JUNCTION_TRUST_FORWARDED_FOR", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,
    /// Seconds one PostgreSQL statement may run; 0 disables the limit.
    #[arg(
        long,
        env = "JUNCTION_DATABASE_STATEMENT_TIMEOUT",
        default_value = "30"
    )]
    pub database_statement_timeout: u64,
    /// Calls one caller may have in progress at once (proxied calls aside).
    #[arg(long, env = "JUNCTION_CALLER_CONCURRENCY", default_value = "8")]
    pub caller_concurrency: usize,
    /// Milliseconds one hook run may take.
    #[arg(long, env = "JUNCTION_HOOK_TIMEOUT", default_value = "1000")]
    pub hook_timeout: u64,
    /// MiB of JavaScript heap one hook run may use.
    #[arg(long, env = "JUNCTION_HOOK_MEMORY", default_value = "32")]
    pub hook_memory: usize,
    /// Address and port of the metrics listener (`GET /metrics`); unset: none.
    #[arg(long, env = "JUNCTION_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Hours a Connect session is kept after it expires.
    #[arg(long, env = "JUNCTION_CONNECT_RETENTION", default_value = "24")]
    pub connect_retention: u64,
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(format!("expected true or false, got '{other}'")),
    }
}

/// The database and its key, validated.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    pub encryption_key: Option<Secret>,
}

/// What the listener allows its clients.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where clients reach Junction; `None`: where each request says it went (`Host`).
    pub public_url: Option<url::Url>,
    pub database: DatabaseConfig,
    pub bootstrap_user_secret: Option<Secret>,
    pub bootstrap_organization_secret: Option<Secret>,
    pub outbound_allow_private: bool,
    pub outbound_timeout: Duration,
    /// Time between token refresh sweeps; `None`: no sweeps.
    pub refresh_interval: Option<Duration>,
    pub refresh_concurrency: usize,
    /// Event delivery.
    pub events: EventSettings,
    pub cache: CacheSettings,
    pub limits: ServerLimits,
    /// Failed authentications per client address and minute; 0: no limit.
    pub auth_failure_limit: u32,
    pub trust_forwarded_for: bool,
    /// Longest one PostgreSQL statement may run; `None`: no limit.
    pub statement_timeout: Option<std::time::Duration>,
    /// Calls one caller may have in progress at once.
    pub caller_concurrency: usize,
    /// Bounds on each run of an element's JavaScript hook.
    pub hooks: junction_sandbox::Limits,
    /// Where `GET /metrics` is served; `None`: nowhere, and nothing is recorded.
    pub metrics_listen: Option<SocketAddr>,
    /// How long a Connect session outlives its expiry before it is deleted.
    pub connect_retention: Duration,
}

/// A secret given directly or as a file (`…_FILE`), never both (clap refuses that).
/// A file's trailing newline is not part of the secret.
fn secret_setting(
    env: &str,
    value: Option<String>,
    file: Option<PathBuf>,
) -> anyhow::Result<Option<Secret>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: cannot read {}",
                setting_name(&format!("{env}_FILE")),
                path.display()
            )
        })?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            bail!(
                "{}: {} is empty",
                setting_name(&format!("{env}_FILE")),
                path.display()
            );
        }
        return Ok(Some(Secret::new(text.to_owned())));
    }
    Ok(value.filter(|v| !v.trim().is_empty()).map(Secret::new))
}

/// Settings holding secrets that were given on the command line, where every user of the
/// machine can read them in the process list.
pub fn secrets_on_the_command_line(matches: &clap::ArgMatches) -> Vec<String> {
    let mut found = Vec::new();
    for (id, env) in [
        ("encryption_key", "JUNCTION_ENCRYPTION_KEY"),
        ("bootstrap_user_secret", "JUNCTION_BOOTSTRAP_USER_SECRET"),
        (
            "bootstrap_organization_secret",
            "JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET",
        ),
        ("database_url", "JUNCTION_DATABASE_URL"),
    ] {
        let on_command_line = matches!(matches.try_get_raw(id), Ok(Some(_)))
            && matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        if !on_command_line {
            continue;
        }
        if id == "database_url" {
            let has_password = matches
                .get_one::<String>(id)
                .and_then(|v| url::Url::parse(v).ok())
                .is_some_and(|u| u.password().is_some());
            if !has_password {
                continue;
            }
        }
        found.push(env.to_owned());
    }
    found
}

impl DatabaseConfig {
    pub fn from_settings(s: DatabaseSettings) -> anyhow::Result<Self> {
        let raw_url = secret_setting(
            "JUNCTION_DATABASE_URL",
            Some(s.database_url),
            s.database_url_file,
        )?
        .ok_or_else(|| anyhow::anyhow!("{} is empty", setting_name("JUNCTION_DATABASE_URL")))?;
        let url = DatabaseUrl::parse(raw_url.expose())
            .map_err(|e| anyhow::anyhow!("{}: {e}", setting_name("JUNCTION_DATABASE_URL")))?;
        if let Some(path) = url.sqlite_path() {
            check_sqlite_path(&path)?;
        }
        let encryption_key = secret_setting(
            "JUNCTION_ENCRYPTION_KEY",
            s.encryption_key,
            s.encryption_key_file,
        )?;
        if let Some(key) = &encryption_key {
            Keyring::parse(key)
                .map_err(|e| anyhow::anyhow!("{}: {e}", setting_name("JUNCTION_ENCRYPTION_KEY")))?;
        } else if url.dialect() == Dialect::Postgres {
            bail!(
                "JUNCTION_ENCRYPTION_KEY is required with PostgreSQL (every replica must share it); \
                 create one with `junction config generate-key`"
            );
        }
        Ok(Self {
            url,
            encryption_key,
        })
    }

    /// The SQLite file and the files Junction keeps beside it, if the database is a file.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.url.sqlite_path()
    }

    /// The keyring: the configured key, or (SQLite only) the key file beside the database,
    /// created with mode 0600 when the database is created.
    pub fn keyring(&self) -> anyhow::Result<Keyring> {
        if let Some(key) = &self.encryption_key {
            return Keyring::parse(key)
                .map_err(|e| anyhow::anyhow!("{}: {e}", setting_name("JUNCTION_ENCRYPTION_KEY")));
        }
        let Some(db_path) = self.url.sqlite_path() else {
            bail!("JUNCTION_ENCRYPTION_KEY is required unless the database is a SQLite file");
        };
        let key_path = beside(&db_path, ".key");
        if !self.url.creates_file() && !db_path.exists() {
            bail!(
                "the database {} does not exist, and its URL's `mode` does not create it \
                 (only `mode=rwc`, the default, does)",
                db_path.display()
            );
        }
        let key = if key_path.exists() {
            warn_if_readable_by_others(&key_path);
            let text = std::fs::read_to_string(&key_path)
                .with_context(|| format!("reading the key file {}", key_path.display()))?;
            Secret::new(text.trim().to_owned())
        } else {
            // A new key beside an existing database would seal new data under a key that
            // cannot open the old, and every stored credential and secret would look
            // invalid. Only a new database gets a new key.
            if std::fs::metadata(&db_path).is_ok_and(|m| m.len() > 0) {
                bail!(
                    "the database {} exists but its key file {} is missing: restore the key \
                     file from your backup (or set JUNCTION_ENCRYPTION_KEY to the key this \
                     database was created with); without it its stored data cannot be read",
                    db_path.display(),
                    key_path.display()
                );
            }
            let key = junction_crypto::generate_key().map_err(|e| anyhow::anyhow!("{e}"))?;
            write_private(&key_path, key.expose())?;
            tracing::warn!(
                path = %key_path.display(),
                "JUNCTION_ENCRYPTION_KEY is not set: created a key file beside the database. \
                 Back it up with the database; without it stored credentials cannot be read"
            );
            key
        };
        Keyring::parse(&key).map_err(|e| anyhow::anyhow!("key file {}: {e}", key_path.display()))
    }
}

/// `<path><suffix>`: the key and lock files live beside the database.
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Refuses a SQLite path that cannot become a database before anything is created beside
/// it, naming what is wrong with it.
fn check_sqlite_path(path: &Path) -> anyhow::Result<()> {
    let name = setting_name("JUNCTION_DATABASE_URL");
    if path.is_dir() {
        bail!(
            "{name}: {} is a directory; name a file in it, e.g. {}",
            path.display(),
            path.join("junction.db").display()
        );
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!(
            "{name}: the directory {} does not exist; create it first",
            parent.display()
        );
    }
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "the key file is readable by other users of this machine, who can then \
                     read every stored credential; restrict it with `chmod 600 {}`",
                    path.display()
                );
            }
        }
    }
}

impl Config {
    pub fn from_settings(s: Settings) -> anyhow::Result<Self> {
        let listen = resolve_listen(&s.listen)?;
        let database = DatabaseConfig::from_settings(s.database)?;
        let bootstrap = |env: &str, v: Option<String>, file: Option<PathBuf>| match secret_setting(
            env, v, file,
        )? {
            Some(v) if v.expose().len() < 16 => {
                bail!("{} must be at least 16 characters", setting_name(env))
            }
            other => Ok(other),
        };
        let at_least_one = |env: &str, value: u64| -> anyhow::Result<u64> {
            if value == 0 {
                bail!("{} must be at least 1", setting_name(env));
            }
            Ok(value)
        };
        Ok(Self {
            listen,
            public_url: s
                .public_url
                .as_deref()
                .filter(|v| !v.trim().is_empty())
                .map(public_url)
                .transpose()?,
            database,
            bootstrap_user_secret: bootstrap(
                "JUNCTION_BOOTSTRAP_USER_SECRET",
                s.bootstrap_user_secret,
                s.bootstrap_user_secret_file,
            )?,
            bootstrap_organization_secret: bootstrap(
                "JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET",
                s.bootstrap_organization_secret,
                s.bootstrap_organization_secret_file,
            )?,
            outbound_allow_private: s.outbound_allow_private,
            outbound_timeout: Duration::from_secs(at_least_one(
                "JUNCTION_OUTBOUND_TIMEOUT",
                s.outbound_timeout,
            )?),
            refresh_interval: match s.refresh_interval {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            refresh_concurrency: match s.refresh_concurrency {
                0 => bail!(
                    "{} must be at least 1",
                    setting_name("JUNCTION_REFRESH_CONCURRENCY")
                ),
                n => n,
            },
            events: EventSettings {
                workers: s.events_workers,
                retries: s.events_retries,
                first_retry_delay: Duration::from_millis(s.events_retry_delay_ms),
                timeout: Duration::from_secs(at_least_one(
                    "JUNCTION_EVENTS_TIMEOUT",
                    s.events_timeout,
                )?),
                retention: Duration::from_secs(
                    at_least_one("JUNCTION_EVENTS_RETENTION", s.events_retention)? * 3600,
                ),
                standard_webhooks: s.events_standard_webhooks,
                poll_tick: Duration::from_millis(s.events_poll_tick_ms),
                poll_minute: Duration::from_millis(at_least_one(
                    "JUNCTION_EVENTS_POLL_MINUTE_MS",
                    s.events_poll_minute_ms,
                )?),
            },
            cache: CacheSettings {
                ttl: Duration::from_secs(s.cache_ttl),
                capacity: s.cache_capacity,
            },
            limits: ServerLimits {
                header_read_timeout: Duration::from_secs(at_least_one(
                    "JUNCTION_HEADER_READ_TIMEOUT",
                    s.header_read_timeout,
                )?),
                idle_timeout: Duration::from_secs(at_least_one(
                    "JUNCTION_IDLE_TIMEOUT",
                    s.idle_timeout,
                )?),
                body_timeout: Duration::from_secs(at_least_one(
                    "JUNCTION_BODY_TIMEOUT",
                    s.body_timeout,
                )?),
                max_connections: match s.max_connections {
                    // Tokio's semaphore holds at most this many permits.
                    0 => bail!(
                        "{} must be at least 1",
                        setting_name("JUNCTION_MAX_CONNECTIONS")
                    ),
                    n if n > tokio::sync::Semaphore::MAX_PERMITS => bail!(
                        "{} must be at most {}",
                        setting_name("JUNCTION_MAX_CONNECTIONS"),
                        tokio::sync::Semaphore::MAX_PERMITS
                    ),
                    n => n,
                },
                shutdown_timeout: Duration::from_secs(s.shutdown_timeout),
            },
            auth_failure_limit: s.auth_failure_limit,
            trust_forwarded_for: s.trust_forwarded_for,
            statement_timeout: match s.database_statement_timeout {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            caller_concurrency: match s.caller_concurrency {
                0 => bail!(
                    "{} must be at least 1",
                    setting_name("JUNCTION_CALLER_CONCURRENCY")
                ),
                n => n,
            },
            hooks: junction_sandbox::Limits {
                time: match s.hook_timeout {
                    0 => bail!(
                        "{} must be at least 1",
                        setting_name("JUNCTION_HOOK_TIMEOUT")
                    ),
                    ms => Duration::from_millis(ms),
                },
                // The sandbox reads 0 as "no limit", which a setting must not allow.
                memory_bytes: match s.hook_memory {
                    0 => bail!(
                        "{} must be at least 1",
                        setting_name("JUNCTION_HOOK_MEMORY")
                    ),
                    mib => mib.checked_mul(1024 * 1024).with_context(|| {
                        format!("{} is too large", setting_name("JUNCTION_HOOK_MEMORY"))
                    })?,
                },
            },
            metrics_listen: s
                .metrics_listen
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|raw| {
                    resolve_listen(raw).map_err(|e| {
                        anyhow::anyhow!(
                            "{}",
                            e.to_string().replace(
                                &setting_name("JUNCTION_LISTEN"),
                                &setting_name("JUNCTION_METRICS_LISTEN")
                            )
                        )
                    })
                })
                .transpose()?,
            connect_retention: Duration::from_secs(
                at_least_one("JUNCTION_CONNECT_RETENTION", s.connect_retention)?
                    .checked_mul(3600)
                    .with_context(|| {
                        format!(
                            "{} is too large",
                            setting_name("JUNCTION_CONNECT_RETENTION")
                        )
                    })?,
            ),
        })
    }

    /// What the store needs to know of these settings.
    pub fn store_settings(&self) -> StoreSettings {
        StoreSettings {
            cache: self.cache,
            statement_timeout: self.statement_timeout,
        }
    }
}

/// `JUNCTION_PUBLIC_URL`: an absolute http(s) URL with a host, nothing a document could
/// not repeat (credentials, a query, a fragment).
fn public_url(raw: &str) -> anyhow::Result<url::Url> {
    let name = setting_name("JUNCTION_PUBLIC_URL");
    let url = url::Url::parse(raw.trim()).with_context(|| {
        format!("{name}: '{raw}' is not an absolute URL like https://hub.example.com")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("{name}: '{raw}' must be an http or https URL with a host");
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        bail!("{name}: '{raw}' must not carry credentials, a query or a fragment");
    }
    Ok(url)
}

/// `JUNCTION_LISTEN`: an address, or a host name resolved once at start (its first
/// address is used).
fn resolve_listen(raw: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let name = setting_name("JUNCTION_LISTEN");
    if let Ok(addr) = raw.parse() {
        return Ok(addr);
    }
    let mut addrs = raw.to_socket_addrs().with_context(|| {
        format!("{name}: '{raw}' is not an address like 127.0.0.1:8080 or localhost:8080")
    })?;
    addrs
        .next()
        .ok_or_else(|| anyhow::anyhow!("{name}: '{raw}' resolves to no address"))
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = create_private(path)
        .with_context(|| format!("creating the key file {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(())
}

/// Creates a new file only its owner can read and write.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// The commented example printed by `junction config example`.
pub fn example() -> String {
    let mut out =
        String::from("# Junction settings (environment variables; each has a --flag twin).\n");
    for (name, default, help) in SETTINGS {
        out.push_str(&format!("\n# {help}\n"));
        if default.is_empty() {
            out.push_str(&format!("# {name}=\n"));
        } else {
            out.push_str(&format!("{name}={default}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            listen: "127.0.0.1:0".into(),
            public_url: None,
            database: DatabaseSettings {
                database_url: "./x.db".into(),
                database_url_file: None,
                encryption_key: None,
                encryption_key_file: None,
            },
            bootstrap_user_secret: None,
            bootstrap_user_secret_file: None,
            bootstrap_organization_secret: None,
            bootstrap_organization_secret_file: None,
            outbound_allow_private: false,
            outbound_timeout: 30,
            refresh_interval: 60,
            refresh_concurrency: 16,
            events_workers: 4,
            events_retries: 9,
            events_retry_delay_ms: 4000,
            events_timeout: 10,
            events_retention: 168,
            events_standard_webhooks: true,
            events_poll_tick_ms: 5000,
            events_poll_minute_ms: 60_000,
            cache_ttl: 30,
            cache_capacity: 10_000,
            header_read_timeout: 10,
            idle_timeout: 30,
            body_timeout: 60,
            max_connections: 1024,
            shutdown_timeout: 10,
            auth_failure_limit: 30,
            trust_forwarded_for: false,
            database_statement_timeout: 30,
            caller_concurrency: 8,
            hook_timeout: 1000,
            hook_memory: 32,
            metrics_listen: None,
            connect_retention: 24,
        }
    }

    #[test]
    fn hook_limits_must_be_positive_and_are_read_in_their_units() {
        let config = Config::from_settings(settings()).unwrap();
        assert_eq!(config.hooks.time, Duration::from_millis(1000));
        assert_eq!(config.hooks.memory_bytes, 32 * 1024 * 1024);
        for (timeout, memory, name) in [
            (0, 32, "JUNCTION_HOOK_TIMEOUT"),
            (1000, 0, "JUNCTION_HOOK_MEMORY"),
        ] {
            let mut s = settings();
            s.hook_timeout = timeout;
            s.hook_memory = memory;
            let err = Config::from_settings(s).unwrap_err().to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }

    #[test]
    fn a_bad_metrics_address_names_its_setting() {
        let mut s = settings();
        s.metrics_listen = Some("nowhere".into());
        let err = Config::from_settings(s).unwrap_err().to_string();
        assert!(err.starts_with("JUNCTION_METRICS_LISTEN"), "{err}");
        let mut s = settings();
        s.metrics_listen = Some(" ".into());
        assert_eq!(Config::from_settings(s).unwrap().metrics_listen, None);
    }

    #[test]
    fn zero_caller_concurrency_is_refused_and_zero_timeout_means_none() {
        let mut s = settings();
        s.caller_concurrency = 0;
        let err = Config::from_settings(s).unwrap_err().to_string();
        assert!(err.starts_with("JUNCTION_CALLER_CONCURRENCY"), "{err}");
        let mut s = settings();
        s.database_statement_timeout = 0;
        assert_eq!(Config::from_settings(s).unwrap().statement_timeout, None);
    }

    #[test]
    fn a_public_url_must_be_a_plain_http_url() {
        for bad in [
            "hub.example.com",
            "ftp://hub.example.com",
            "https://u:p@hub.example.com",
            "https://hub.example.com/?x=1",
        ] {
            let mut s = settings();
            s.public_url = Some(bad.into());
            let err = Config::from_settings(s).unwrap_err().to_string();
            assert!(err.starts_with("JUNCTION_PUBLIC_URL"), "{bad}: {err}");
        }
        let mut s = settings();
        s.public_url = Some("https://hub.example.com/junction".into());
        let url = Config::from_settings(s).unwrap().public_url.unwrap();
        assert_eq!(url.as_str(), "https://hub.example.com/junction");
    }

    #[test]
    fn postgres_without_a_key_is_refused_at_start() {
        let mut s = settings();
        s.database.database_url = "postgres://u:p@localhost/db".into();
        let err = Config::from_settings(s).unwrap_err().to_string();
        assert!(err.contains("JUNCTION_ENCRYPTION_KEY is required"), "{err}");
    }

    #[test]
    fn bad_listen_address_names_the_setting() {
        let mut s = settings();
        s.listen = "localhost".into();
        let err = Config::from_settings(s).unwrap_err().to_string();
        assert!(err.starts_with("JUNCTION_LISTEN"), "{err}");
    }

    #[test]
    fn a_malformed_key_is_reported_without_its_value() {
        let mut s = settings();
        s.database.encryption_key = Some("dG9vLXNob3J0".into());
        let err = Config::from_settings(s).unwrap_err().to_string();
        assert!(
            err.contains("32 bytes") && !err.contains("dG9vLXNob3J0"),
            "{err}"
        );
    }

    #[test]
    fn the_readme_shows_the_settings_as_config_example_prints_them() {
        let readme = include_str!("../../../README.md");
        assert!(
            readme.contains(example().trim()),
            "README.md's settings block differs from `junction config example`: paste its output"
        );
    }

    #[test]
    fn example_lists_every_setting() {
        let text = example();
        for (name, _, _) in SETTINGS {
            assert!(text.contains(name), "{name}");
        }
    }
}

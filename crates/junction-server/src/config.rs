//! Settings: environment variables (`JUNCTION_…`), mirrored by command-line flags,
//! validated before anything starts.

use anyhow::{Context, bail};
use clap::Args;
use junction_core::Secret;
use junction_crypto::Keyring;
use junction_store::{CacheSettings, DatabaseUrl, Dialect, StoreSettings};
use std::net::SocketAddr;
use std::path::Path;

/// Every setting, with its default. `junction config example` prints this table.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    (
        "JUNCTION_LISTEN",
        "127.0.0.1:8080",
        "Address and port the API listens on.",
    ),
    (
        "JUNCTION_DATABASE_URL",
        "./junction.db",
        "SQLite file (created if missing) or postgres://user:password@host/db to share one PostgreSQL between replicas.",
    ),
    (
        "JUNCTION_ENCRYPTION_KEY",
        "",
        "Base64 of 32 random bytes (`junction config generate-key`), or `id:base64,id:base64` to rotate (first is primary). Unset with SQLite: a key file is created beside the database. Required with PostgreSQL.",
    ),
    (
        "JUNCTION_BOOTSTRAP_USER_SECRET",
        "",
        "User secret of the first user, created on a database without organizations. Unset: generated and printed once.",
    ),
    (
        "JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET",
        "",
        "Organization secret of the first organization. Unset: generated and printed once.",
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
        "JUNCTION_LOG",
        "info",
        "Log filter, e.g. `info` or `junction_service=debug,info`.",
    ),
    ("JUNCTION_LOG_FORMAT", "text", "`text` or `json`."),
];

/// The raw settings as flags and environment variables give them.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address and port to listen on.
    #[arg(long, env = "JUNCTION_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// SQLite file path or postgres:// URL.
    #[arg(
        long,
        env = "JUNCTION_DATABASE_URL",
        default_value = "./junction.db",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Base64 32-byte key, or `id:base64,…` for rotation.
    #[arg(long, env = "JUNCTION_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
    /// First user's secret on an empty database.
    #[arg(long, env = "JUNCTION_BOOTSTRAP_USER_SECRET", hide_env_values = true)]
    pub bootstrap_user_secret: Option<String>,
    /// First organization's secret on an empty database.
    #[arg(
        long,
        env = "JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET",
        hide_env_values = true
    )]
    pub bootstrap_organization_secret: Option<String>,
    /// Allow outbound calls to loopback and private addresses.
    #[arg(long, env = "JUNCTION_OUTBOUND_ALLOW_PRIVATE", default_value = "false", value_parser = parse_bool, action = clap::ArgAction::Set)]
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
    /// Seconds an in-process copy of an instance or user may serve calls; 0 disables.
    #[arg(long, env = "JUNCTION_CACHE_TTL", default_value = "30")]
    pub cache_ttl: u64,
    /// Most instances (and users) kept in memory.
    #[arg(long, env = "JUNCTION_CACHE_CAPACITY", default_value = "10000")]
    pub cache_capacity: u64,
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
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(format!("expected true or false, got '{other}'")),
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: DatabaseUrl,
    pub encryption_key: Option<Secret>,
    pub bootstrap_user_secret: Option<Secret>,
    pub bootstrap_organization_secret: Option<Secret>,
    pub outbound_allow_private: bool,
    pub outbound_timeout: std::time::Duration,
    /// Time between token refresh sweeps; `None`: no sweeps.
    pub refresh_interval: Option<std::time::Duration>,
    pub refresh_concurrency: usize,
    pub cache: CacheSettings,
    /// Longest one PostgreSQL statement may run; `None`: no limit.
    pub statement_timeout: Option<std::time::Duration>,
    /// Calls one caller may have in progress at once.
    pub caller_concurrency: usize,
}

impl Config {
    pub fn from_settings(s: Settings) -> anyhow::Result<Self> {
        let listen: SocketAddr = s.listen.parse().with_context(|| {
            format!(
                "JUNCTION_LISTEN: '{}' is not an address like 127.0.0.1:8080",
                s.listen
            )
        })?;
        let database_url = DatabaseUrl::parse(&s.database_url)
            .map_err(|e| anyhow::anyhow!("JUNCTION_DATABASE_URL: {e}"))?;
        let encryption_key = s
            .encryption_key
            .filter(|k| !k.trim().is_empty())
            .map(Secret::new);
        if let Some(key) = &encryption_key {
            Keyring::parse(key).map_err(|e| anyhow::anyhow!("JUNCTION_ENCRYPTION_KEY: {e}"))?;
        } else if database_url.dialect() == Dialect::Postgres {
            bail!(
                "JUNCTION_ENCRYPTION_KEY is required with PostgreSQL (every replica must share it); \
                 create one with `junction config generate-key`"
            );
        }
        let secret = |name: &str, v: Option<String>| -> anyhow::Result<Option<Secret>> {
            match v.filter(|v| !v.is_empty()) {
                Some(v) if v.len() < 16 => bail!("{name} must be at least 16 characters"),
                Some(v) => Ok(Some(Secret::new(v))),
                None => Ok(None),
            }
        };
        Ok(Self {
            listen,
            database_url,
            encryption_key,
            bootstrap_user_secret: secret(
                "JUNCTION_BOOTSTRAP_USER_SECRET",
                s.bootstrap_user_secret,
            )?,
            bootstrap_organization_secret: secret(
                "JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET",
                s.bootstrap_organization_secret,
            )?,
            outbound_allow_private: s.outbound_allow_private,
            outbound_timeout: match s.outbound_timeout {
                0 => bail!("JUNCTION_OUTBOUND_TIMEOUT must be at least 1 second"),
                secs => std::time::Duration::from_secs(secs),
            },
            refresh_interval: match s.refresh_interval {
                0 => None,
                secs => Some(std::time::Duration::from_secs(secs)),
            },
            refresh_concurrency: match s.refresh_concurrency {
                0 => bail!("JUNCTION_REFRESH_CONCURRENCY must be at least 1"),
                n => n,
            },
            cache: CacheSettings {
                ttl: std::time::Duration::from_secs(s.cache_ttl),
                capacity: s.cache_capacity,
            },
            statement_timeout: match s.database_statement_timeout {
                0 => None,
                secs => Some(std::time::Duration::from_secs(secs)),
            },
            caller_concurrency: match s.caller_concurrency {
                0 => bail!("JUNCTION_CALLER_CONCURRENCY must be at least 1"),
                n => n,
            },
        })
    }

    /// What the store needs to know of these settings.
    pub fn store_settings(&self) -> StoreSettings {
        StoreSettings {
            cache: self.cache,
            statement_timeout: self.statement_timeout,
        }
    }

    /// The keyring: the configured key, or (SQLite only) the key file beside the database,
    /// created with mode 0600 on first start.
    pub fn keyring(&self) -> anyhow::Result<Keyring> {
        if let Some(key) = &self.encryption_key {
            return Keyring::parse(key)
                .map_err(|e| anyhow::anyhow!("JUNCTION_ENCRYPTION_KEY: {e}"));
        }
        let Some(db_path) = self.database_url.sqlite_path() else {
            bail!("JUNCTION_ENCRYPTION_KEY is required unless the database is a SQLite file");
        };
        let key_path = {
            let mut p = db_path.into_os_string();
            p.push(".key");
            std::path::PathBuf::from(p)
        };
        let key = if key_path.exists() {
            let text = std::fs::read_to_string(&key_path)
                .with_context(|| format!("reading the key file {}", key_path.display()))?;
            Secret::new(text.trim().to_owned())
        } else {
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

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating the key file {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(())
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
            database_url: "./x.db".into(),
            encryption_key: None,
            bootstrap_user_secret: None,
            bootstrap_organization_secret: None,
            outbound_allow_private: false,
            outbound_timeout: 30,
            refresh_interval: 60,
            refresh_concurrency: 16,
            cache_ttl: 30,
            cache_capacity: 10_000,
            database_statement_timeout: 30,
            caller_concurrency: 8,
        }
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
    fn postgres_without_a_key_is_refused_at_start() {
        let mut s = settings();
        s.database_url = "postgres://u:p@localhost/db".into();
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
        s.encryption_key = Some("dG9vLXNob3J0".into());
        let err = Config::from_settings(s).unwrap_err().to_string();
        assert!(
            err.contains("32 bytes") && !err.contains("dG9vLXNob3J0"),
            "{err}"
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

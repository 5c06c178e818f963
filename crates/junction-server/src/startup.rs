//! Building and running the server: store, migrations, first organization, listener.

use crate::Config;
use anyhow::{Context, bail};
use junction_catalog::Catalog;
use junction_core::Secret;
use junction_core::net::OutboundPolicy;
use junction_oauth::{OutboundClient, OutboundSettings, ProxyClient};
use junction_service::{RefreshCoordinator, Services, now_ms};
use junction_store::{NewOrganization, OrganizationCreated, Store};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The first organization, created on an empty database.
#[derive(Debug)]
pub struct Bootstrapped {
    pub ids: OrganizationCreated,
    pub organization_secret: Secret,
    pub user_secret: Secret,
    /// The secrets were generated (not taken from settings) and must be shown once.
    pub generated: bool,
}

pub struct App {
    listener: TcpListener,
    router: axum::Router,
    services: Services,
    refresh_interval: Option<std::time::Duration>,
    refresh_concurrency: usize,
    pub bootstrapped: Option<Bootstrapped>,
    /// Held while serving: see `claim_sqlite`.
    sqlite_lock: Option<std::fs::File>,
}

/// Connects and migrates the configured database.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let keyring = Arc::new(config.keyring()?);
    let store = Store::connect_with(&config.database_url, keyring, config.store_settings())
        .await
        .with_context(|| format!("connecting to {}", config.database_url))?;
    let applied = store
        .migrate()
        .await
        .context("applying database migrations")?;
    if applied > 0 {
        tracing::info!(applied, dialect = ?store.dialect(), "database migrations applied");
    }
    Ok(store)
}

/// Creates the first organization, account and user when the database has none.
pub async fn bootstrap(store: &Store, config: &Config) -> anyhow::Result<Option<Bootstrapped>> {
    if store.organization_count().await? > 0 {
        return Ok(None);
    }
    let generate = || junction_crypto::generate_secret(32).map_err(|e| anyhow::anyhow!("{e}"));
    let generated =
        config.bootstrap_user_secret.is_none() || config.bootstrap_organization_secret.is_none();
    let user_secret = match &config.bootstrap_user_secret {
        Some(s) => s.clone(),
        None => generate()?,
    };
    let organization_secret = match &config.bootstrap_organization_secret {
        Some(s) => s.clone(),
        None => generate()?,
    };
    let ids = store
        .create_organization(NewOrganization {
            name: "Default organization",
            account_name: "Default account",
            email: "admin@localhost",
            first_name: "Junction",
            last_name: "Admin",
            organization_secret: &organization_secret,
            user_secret: &user_secret,
            now: now_ms(),
        })
        .await?;
    tracing::info!(organization_id = %ids.organization_id, "created the first organization");
    Ok(Some(Bootstrapped {
        ids,
        organization_secret,
        user_secret,
        generated,
    }))
}

pub fn services(store: Store, config: &Config) -> anyhow::Result<Services> {
    let catalog = Catalog::embedded().context("loading the element catalog")?;
    let settings = OutboundSettings {
        policy: OutboundPolicy {
            allow_private: config.outbound_allow_private,
        },
        request_timeout: config.outbound_timeout,
        connect_timeout: config
            .outbound_timeout
            .min(std::time::Duration::from_secs(5)),
    };
    let outbound = OutboundClient::new(settings)?;
    // Same policy and timeouts, but the timeout bounds each wait for the provider rather
    // than the whole call, so large bodies can stream.
    let proxy = ProxyClient::new(settings)?;
    Ok(Services {
        store,
        catalog: Arc::new(catalog),
        outbound,
        proxy,
        refresh: Arc::new(RefreshCoordinator::new()),
    })
}

/// Claims a SQLite database for this process. SQLite is one server's database: a second
/// `junction serve` on the same file would share neither its in-process copies nor its
/// refresh single-flight, so it is refused with a pointer to PostgreSQL. The lock is
/// the operating system's, so a killed process holds it no longer.
fn claim_sqlite(config: &Config) -> anyhow::Result<Option<std::fs::File>> {
    let Some(db) = config.database_url.sqlite_path() else {
        return Ok(None);
    };
    let mut path = db.into_os_string();
    path.push(".lock");
    let path = std::path::PathBuf::from(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another Junction server is using {}: a SQLite database serves one process; \
             to run several, point them all at one PostgreSQL (JUNCTION_DATABASE_URL=postgres://…)",
            config.database_url
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let sqlite_lock = claim_sqlite(config)?;
        let store = open_store(config).await?;
        if sqlite_lock.is_some() {
            // This process owns the database, so a refresh lease found now was left by one
            // that stopped mid-refresh (killed, or the machine went down). Waiting for it
            // to expire would only delay the instance's next call.
            let released = store.release_all_refresh_leases().await?;
            if released > 0 {
                tracing::warn!(
                    released,
                    "released refresh leases left by a Junction process that stopped mid-refresh"
                );
            }
        }
        let bootstrapped = bootstrap(&store, config).await?;
        let services = services(store, config)?;
        let router = crate::http::router(services.clone(), config.caller_concurrency)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Ok(Self {
            listener,
            router,
            services,
            refresh_interval: config.refresh_interval,
            refresh_concurrency: config.refresh_concurrency,
            bootstrapped,
            sqlite_lock,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves (and runs the token refresh sweeps) until `shutdown` completes, then
    /// finishes in-flight requests and the sweep in progress, and closes the database pool.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = self.services.store.clone();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let job = self.refresh_interval.map(|interval| {
            crate::jobs::spawn_refresh_job(
                self.services.clone(),
                interval,
                self.refresh_concurrency,
                stop_rx,
            )
        });
        let shutdown = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP");
        if let Some(job) = job
            && let Err(e) = job.await
        {
            tracing::error!(error = %e, "the token refresh job failed");
        }
        store.close().await;
        drop(self.sqlite_lock);
        served
    }
}

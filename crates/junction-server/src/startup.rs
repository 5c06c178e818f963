//! Building and running the server: store, migrations, first organization, listener.

use crate::Config;
use crate::config::{DatabaseConfig, ServerLimits, beside};
use anyhow::{Context, bail};
use junction_catalog::Catalog;
use junction_core::Secret;
use junction_core::net::OutboundPolicy;
use junction_oauth::{OutboundClient, OutboundSettings, ProxyClient};
use junction_service::events::EventHub;
use junction_service::{FailureLimiter, Pacer, RefreshCoordinator, Services, TraceWriter, now_ms};
use junction_store::{NewOrganization, OrganizationCreated, Store, StoreError, StoreSettings};
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
    /// The secrets were generated (not taken from settings) and must be shown once; until
    /// `App::first_start_revealed` records that they were, every start generates new ones.
    pub generated: bool,
}

pub struct App {
    listener: TcpListener,
    /// `JUNCTION_METRICS_LISTEN`, bound.
    metrics_listener: Option<TcpListener>,
    router: axum::Router,
    services: Services,
    refresh_interval: Option<std::time::Duration>,
    refresh_concurrency: usize,
    connect_retention: std::time::Duration,
    limits: ServerLimits,
    pub bootstrapped: Option<Bootstrapped>,
    /// Held while serving: see `claim_sqlite`.
    sqlite_lock: Option<std::fs::File>,
}

/// Connects and migrates the configured database, and proves the configured keys are
/// the ones its data was sealed with.
pub async fn open_store(
    database: &DatabaseConfig,
    settings: StoreSettings,
) -> anyhow::Result<Store> {
    let keyring = Arc::new(database.keyring()?);
    let store = Store::connect_with(&database.url, keyring, settings)
        .await
        .with_context(|| format!("connecting to {}", database.url))?;
    let applied = store
        .migrate()
        .await
        .context("applying database migrations")?;
    if applied > 0 {
        tracing::info!(applied, dialect = ?store.dialect(), "database migrations applied");
    }
    match store.check_keys(now_ms()).await {
        Ok(()) => Ok(store),
        Err(e @ (StoreError::WrongKey { .. } | StoreError::NoKnownKey { .. })) => {
            store.close().await;
            let source = match (&database.encryption_key, database.sqlite_path()) {
                (None, Some(path)) => format!("the key file {}", beside(&path, ".key").display()),
                _ => "JUNCTION_ENCRYPTION_KEY".to_owned(),
            };
            bail!(
                "{source} does not fit this database: {e}. Nothing was started, so nothing \
                 was changed. Set the key this database was created with; to rotate keys, \
                 put the new key first and keep the old one (`2:<new>,1:<old>`)"
            )
        }
        Err(e) => {
            store.close().await;
            Err(e).context("checking the encryption key against the database")
        }
    }
}

/// Creates the first organization, account and user when the database has none. When
/// the first organization's generated secrets were never shown (the process stopped
/// before printing them), nobody can hold them: they are replaced, to be shown now.
pub async fn bootstrap(store: &Store, config: &Config) -> anyhow::Result<Option<Bootstrapped>> {
    let pending = if store.organization_count().await? > 0 {
        match store.unrevealed_first_start().await? {
            Some(pending) => Some(pending),
            None => return Ok(None),
        }
    } else {
        None
    };
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
    let ids = match pending {
        Some(pending) => {
            match store
                .replace_unrevealed_secrets(pending, &organization_secret, &user_secret, now_ms())
                .await
            {
                Ok(()) => {}
                Err(StoreError::NotFound) => {
                    tracing::info!(
                        organization_id = %pending.organization_id,
                        "another replica starting now replaced the first organization's \
                         unshown secrets and shows them"
                    );
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
            tracing::warn!(
                organization_id = %pending.organization_id,
                "the first organization's secrets were never shown (an earlier start stopped \
                 first); they have been replaced"
            );
            if !generated {
                store
                    .mark_first_start_revealed(pending.organization_id, now_ms())
                    .await?;
            }
            OrganizationCreated {
                organization_id: pending.organization_id,
                account_id: store.get_user(pending.user_id).await?.account_id,
                user_id: pending.user_id,
            }
        }
        None => {
            let ids = store
                .create_first_organization(
                    NewOrganization {
                        name: "Default organization",
                        account_name: "Default account",
                        email: "admin@localhost",
                        first_name: "Junction",
                        last_name: "Admin",
                        organization_secret: &organization_secret,
                        user_secret: &user_secret,
                        now: now_ms(),
                    },
                    generated,
                )
                .await?;
            tracing::info!(organization_id = %ids.organization_id, "created the first organization");
            ids
        }
    };
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
        ..OutboundSettings::default()
    };
    let outbound = OutboundClient::new(settings)?;
    // Same policy and timeouts, but the timeout bounds each wait for the provider rather
    // than the whole call, so large bodies can stream.
    let proxy = ProxyClient::new(settings)?;
    let traces = TraceWriter::start(store.clone());
    // Callbacks get the address policy and no redirects like provider calls, with their
    // own timeout.
    let callbacks = OutboundClient::new(OutboundSettings {
        request_timeout: config.events.timeout,
        connect_timeout: config.events.timeout.min(std::time::Duration::from_secs(5)),
        ..settings
    })?;
    let sandbox = junction_sandbox::Sandbox::new(
        config.hooks,
        std::thread::available_parallelism().map_or(2, usize::from),
    );
    let events = Arc::new(EventHub::start(
        store.clone(),
        callbacks,
        sandbox.clone(),
        config.events,
    ));
    Ok(Services {
        store,
        catalog: Arc::new(catalog),
        outbound,
        proxy,
        refresh: Arc::new(RefreshCoordinator::new()),
        auth_failures: Arc::new(FailureLimiter::new(
            config.auth_failure_limit,
            config.trust_forwarded_for,
        )),
        traces,
        events,
        sandbox,
        pacer: Arc::new(Pacer::new(config.outbound_timeout)),
    })
}

/// Claims a SQLite database for this process. SQLite is one server's database: a second
/// `junction serve` on the same file would share neither its in-process copies nor its
/// refresh single-flight, so it is refused with a pointer to PostgreSQL. The lock is
/// the operating system's, so a killed process holds it no longer.
fn claim_sqlite(config: &Config) -> anyhow::Result<Option<std::fs::File>> {
    let Some(db) = config.database.sqlite_path() else {
        return Ok(None);
    };
    let path = beside(&db, ".lock");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another Junction server is using {}: a SQLite database serves one process; \
             to run several, point them all at one PostgreSQL (JUNCTION_DATABASE_URL=postgres://…)",
            config.database.url
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let sqlite_lock = claim_sqlite(config)?;
        let store = open_store(&config.database, config.store_settings()).await?;
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
            // Likewise notifications that were being sent: they go out again at once,
            // under the same Elements-Webhook-Id.
            let resent = store.release_all_delivery_leases().await?;
            if resent > 0 {
                tracing::warn!(
                    resent,
                    "event notifications left in flight by a stopped Junction process are sent again"
                );
            }
            // And polls: the instance polls again at once, from its stored watermark.
            let repolled = store.release_all_poller_leases().await?;
            if repolled > 0 {
                tracing::warn!(
                    repolled,
                    "polls left running by a stopped Junction process start again"
                );
            }
        }
        // Bound before the first organization is created: a start that cannot listen must
        // not leave behind an organization whose secrets it never got to print.
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => {
                if junction_telemetry::install().is_none() {
                    tracing::warn!(
                        "another metrics recorder is installed in this process; /metrics shows nothing of Junction"
                    );
                }
                Some(
                    TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("binding the metrics listener {addr}"))?,
                )
            }
            None => None,
        };
        let bootstrapped = bootstrap(&store, config).await?;
        let services = services(store, config)?;
        let router = crate::http::router(
            services.clone(),
            config.caller_concurrency,
            config.public_url.clone(),
        )?;
        Ok(Self {
            listener,
            metrics_listener,
            router,
            services,
            refresh_interval: config.refresh_interval,
            refresh_concurrency: config.refresh_concurrency,
            connect_retention: config.connect_retention,
            limits: config.limits,
            bootstrapped,
            sqlite_lock,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `GET /metrics` is served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Records that the generated first-start secrets have been shown, so later starts
    /// neither show nor replace them.
    pub async fn first_start_revealed(&self) -> anyhow::Result<()> {
        if let Some(first) = self.bootstrapped.as_ref().filter(|b| b.generated) {
            self.services
                .store
                .mark_first_start_revealed(first.ids.organization_id, now_ms())
                .await
                .context("recording that the first organization's secrets were shown")?;
        }
        Ok(())
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
        // A plain server: Prometheus scrapes it from inside the deployment, and it must
        // outlive neither the API nor the process.
        let metrics = self.metrics_listener.map(|listener| {
            let router = crate::http::metrics::router(store.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            })
        });
        let purge = crate::jobs::spawn_connect_purge_job(
            self.services.clone(),
            self.connect_retention,
            stop_tx.subscribe(),
        );
        let event_jobs = crate::jobs::spawn_event_jobs(
            self.services.clone(),
            self.services.events.settings.workers,
            stop_tx.subscribe(),
        );
        let shutdown = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        let served = crate::serve::serve(self.listener, self.router, self.limits, shutdown)
            .await
            .context("serving HTTP");
        if let Some(job) = job
            && let Err(e) = job.await
        {
            tracing::error!(error = %e, "the token refresh job failed");
        }
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        if let Err(e) = purge.await {
            tracing::error!(error = %e, "the Connect session purge job failed");
        }
        for job in event_jobs {
            if let Err(e) = job.await {
                tracing::error!(error = %e, "an event job failed");
            }
        }
        store.close().await;
        drop(self.sqlite_lock);
        served
    }
}

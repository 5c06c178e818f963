use junction_server::config::{DatabaseSettings, Settings};
use junction_server::{App, Config};
use junction_testkit::db::{Backend, TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;

pub const USER_SECRET: &str = "test-user-secret-0123456789";
pub const ORG_SECRET: &str = "test-organization-secret-0123456789";
pub const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Generates `<name>::sqlite` and `<name>::postgres` tests from one async fn taking a
/// [`Backend`].
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(junction_testkit::db::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(junction_testkit::db::Backend::Postgres).await
            }
        }
    )*};
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The metrics listener, with `Options::metrics`.
    pub metrics_addr: Option<SocketAddr>,
    pub http: reqwest::Client,
    /// Shared by the replicas of one test (`TestApp::replica`).
    pub db: Arc<TestDatabase>,
    pub services: junction_service::Services,
    options: Options,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    run: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub allow_private: bool,
    pub outbound_timeout: u64,
    /// `JUNCTION_CACHE_TTL`; 0 for tests that change rows behind Junction's back.
    pub cache_ttl: u64,
    /// `JUNCTION_AUTH_FAILURE_LIMIT`.
    pub auth_failure_limit: u32,
    /// `JUNCTION_TRUST_FORWARDED_FOR`.
    pub trust_forwarded_for: bool,
    /// `JUNCTION_DATABASE_STATEMENT_TIMEOUT`, seconds.
    pub statement_timeout: u64,
    /// `JUNCTION_CALLER_CONCURRENCY`.
    pub caller_concurrency: usize,
    /// `JUNCTION_EVENTS_WORKERS`.
    pub events_workers: usize,
    /// `JUNCTION_EVENTS_RETRIES`.
    pub events_retries: u32,
    /// `JUNCTION_EVENTS_RETRY_DELAY_MS`.
    pub events_retry_delay_ms: u64,
    /// `JUNCTION_EVENTS_TIMEOUT`, seconds.
    pub events_timeout: u64,
    /// `JUNCTION_HOOK_TIMEOUT`, milliseconds.
    pub hook_timeout_ms: u64,
    /// `JUNCTION_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// `JUNCTION_METRICS_LISTEN` on a free loopback port.
    pub metrics: bool,
    /// `JUNCTION_EVENTS_POLL_TICK_MS`; 0 (no polling) unless a test polls.
    pub poll_tick_ms: u64,
    /// `JUNCTION_EVENTS_POLL_MINUTE_MS`.
    pub poll_minute_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            allow_private: true,
            outbound_timeout: 5,
            cache_ttl: 30,
            auth_failure_limit: 30,
            trust_forwarded_for: false,
            statement_timeout: 30,
            caller_concurrency: 8,
            events_workers: 2,
            events_retries: 3,
            events_retry_delay_ms: 50,
            events_timeout: 2,
            hook_timeout_ms: 1000,
            public_url: None,
            metrics: false,
            poll_tick_ms: 0,
            poll_minute_ms: 60_000,
        }
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, options: Options) -> Self {
        // TEST_LOG=1 shows the server's log, for a failing test's 5xx.
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        }
        let db = Arc::new(TestDatabase::create(backend).await);
        Self::start(db, options).await
    }

    /// Another Junction process on this app's database, with its own pools, caches and
    /// refresh single-flight: what a second replica sharing PostgreSQL is.
    pub async fn replica(&self) -> Self {
        Self::start(Arc::clone(&self.db), self.options.clone()).await
    }

    /// Stops this server, waits until it has let go of its database (a SQLite file
    /// serves one process at a time), and starts another on it with `options`.
    pub async fn restart_with(mut self, options: Options) -> Self {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(run) = self.run.take() {
            run.await
                .expect("the server task ends")
                .expect("the server stops cleanly");
        }
        let db = Arc::clone(&self.db);
        drop(self);
        Self::start(db, options).await
    }

    async fn start(db: Arc<TestDatabase>, options: Options) -> Self {
        let config = Config::from_settings(Settings {
            listen: "127.0.0.1:0".into(),
            public_url: options.public_url.clone(),
            database: DatabaseSettings {
                database_url: db.url.clone(),
                database_url_file: None,
                encryption_key: Some(KEY.into()),
                encryption_key_file: None,
            },
            bootstrap_user_secret: Some(USER_SECRET.into()),
            bootstrap_user_secret_file: None,
            bootstrap_organization_secret: Some(ORG_SECRET.into()),
            bootstrap_organization_secret_file: None,
            outbound_allow_private: options.allow_private,
            outbound_timeout: options.outbound_timeout,
            // Tests drive sweeps themselves (see refresh.rs), so counts stay exact.
            refresh_interval: 0,
            refresh_concurrency: 16,
            events_workers: options.events_workers,
            events_retries: options.events_retries,
            events_retry_delay_ms: options.events_retry_delay_ms,
            events_timeout: options.events_timeout,
            events_retention: 168,
            events_standard_webhooks: true,
            events_poll_tick_ms: options.poll_tick_ms,
            events_poll_minute_ms: options.poll_minute_ms,
            cache_ttl: options.cache_ttl,
            cache_capacity: 10_000,
            header_read_timeout: 10,
            idle_timeout: 30,
            body_timeout: 60,
            max_connections: 1024,
            shutdown_timeout: 10,
            auth_failure_limit: options.auth_failure_limit,
            trust_forwarded_for: options.trust_forwarded_for,
            database_statement_timeout: options.statement_timeout,
            caller_concurrency: options.caller_concurrency,
            hook_timeout: options.hook_timeout_ms,
            hook_memory: 32,
            metrics_listen: options.metrics.then(|| "127.0.0.1:0".to_owned()),
            connect_retention: 24,
        })
        .expect("test config is valid");
        let app = App::build(&config).await.expect("app builds");
        let addr = app.local_addr().unwrap();
        let metrics_addr = app.metrics_addr();
        let services = app.services().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(app.run(async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            addr,
            metrics_addr,
            http,
            db,
            services,
            options,
            shutdown: Some(tx),
            run: Some(run),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/elements/api-v2{path}", self.addr)
    }

    pub fn root_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn platform_auth(&self) -> String {
        format!("User {USER_SECRET}, Organization {ORG_SECRET}")
    }

    /// Sends a request with the bootstrap user's credentials and returns status and JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        self.call_as(&self.platform_auth(), method, path, body)
            .await
    }

    pub async fn call_as(
        &self,
        authorization: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("Authorization", authorization);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        assert!(response.headers().contains_key("elements-request-id"));
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Instance ids in the account, in order.
    pub async fn instance_ids(&self) -> Vec<i64> {
        let (status, body) = self.get("/instances").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    }
}

/// Asserts the Cloud Elements error shape and returns the message.
pub fn assert_error(body: &Value, code: &str) -> String {
    assert!(
        body["requestId"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert_eq!(body["code"], code, "{body}");
    body["message"].as_str().unwrap().to_owned()
}

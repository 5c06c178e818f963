//! Running Junction as an operator does, with the real binary: the metrics listener and
//! its exposition (checked by Prometheus' own `promtool`), bounded label sets, readiness,
//! backup and restore, and what happens when the database goes away: a PostgreSQL the
//! test stops and starts, and a SQLite file on a full disk.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode as AxumStatus;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_junction");
const USER_SECRET: &str = "ops-test-user-secret-0123456789";
const ORG_SECRET: &str = "ops-test-organization-secret-0123456789";
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const CLOSE_KEY: &str = "api_ops0123456789abcdef";

/// A running `junction serve`.
struct Junction {
    child: Child,
    api: Api,
}

/// A client of one server's API and metrics listener.
#[derive(Clone)]
struct Api {
    addr: String,
    metrics: Option<String>,
    http: reqwest::Client,
}

impl std::ops::Deref for Junction {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for Junction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn junction(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("JUNCTION_LOG_FORMAT", "json")
        .env("JUNCTION_LISTEN", "127.0.0.1:0")
        .env("JUNCTION_BOOTSTRAP_USER_SECRET", USER_SECRET)
        .env("JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET", ORG_SECRET)
        .env("JUNCTION_OUTBOUND_ALLOW_PRIVATE", "true")
        .env("JUNCTION_REFRESH_INTERVAL", "0");
    cmd
}

fn lines_of(reader: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts `junction serve` and waits until it logs where it listens.
fn serve(mut cmd: Command) -> Junction {
    let mut child = cmd
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    let mut metrics = None;
    let addr = loop {
        let line = stderr
            .recv_timeout(Duration::from_secs(30))
            .expect("junction did not start");
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(m) = event["fields"]["metrics_addr"].as_str() {
            metrics = Some(m.to_owned());
        }
        if let Some(a) = event["fields"]["addr"].as_str() {
            break a.to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || while stderr.recv().is_ok() {});
    Junction {
        child,
        api: Api {
            addr,
            metrics,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        },
    }
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("http://{}/elements/api-v2{path}", self.addr)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("Authorization", authorization);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn user(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let (status, _, body) = self.call(method, path, &platform_auth(), body).await;
        (status, body)
    }

    async fn root(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let response = self
            .http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn metrics(&self) -> String {
        let addr = self.metrics.as_ref().expect("metrics listener");
        let response = self
            .http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        response.text().await.unwrap()
    }

    /// Creates a Close instance against `provider`; returns its id and Element token.
    async fn close_instance(&self, provider: &str, name: &str, note: &str) -> (i64, String) {
        let (status, body) = self
            .user(
                Method::POST,
                "/instances",
                Some(&json!({
                    "element": {"key": "closeio"},
                    "name": name,
                    "configuration": {"base.url": provider, "closeio.api.key": CLOSE_KEY, "ops.note": note},
                })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["id"].as_i64().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    async fn proxied(&self, token: &str) -> (StatusCode, Value) {
        let (status, _, body) = self
            .call(
                Method::GET,
                "/proxy/leads",
                &format!("Element {token}"),
                None,
            )
            .await;
        (status, body)
    }
}

fn platform_auth() -> String {
    format!("User {USER_SECRET}, Organization {ORG_SECRET}")
}

/// A provider that answers 200 to Close's basic credential for [`CLOSE_KEY`] on any path,
/// 401 otherwise.
async fn close_provider() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLOSE_KEY}:"))
    );
    let app = Router::new().fallback(move |request: Request| {
        let expected = expected.clone();
        async move {
            let given = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            let response: Response = if given == Some(expected.as_str()) {
                axum::Json(json!({"data": [], "has_more": false})).into_response()
            } else {
                (
                    AxumStatus::UNAUTHORIZED,
                    axum::Json(json!({"error": "bad key"})),
                )
                    .into_response()
            };
            response
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Runs Prometheus' own checker on an exposition. Without promtool the check is skipped
/// with a notice, unless `JUNCTION_REQUIRE_PROMTOOL=1` (CI) makes that a failure.
fn promtool_check(exposition: &str) {
    use std::io::Write;
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var("JUNCTION_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
                "promtool is required (JUNCTION_REQUIRE_PROMTOOL=1) but not installed: apt-get install prometheus"
            );
            eprintln!("notice: promtool is not installed; the exposition was not checked by it");
            return;
        }
        Err(e) => panic!("running promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The series of the exposition (every sample line's name and labels).
fn series(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

fn with_metrics(dir: &Path) -> Command {
    let mut cmd = junction(dir);
    cmd.env("JUNCTION_METRICS_LISTEN", "127.0.0.1:0");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_listener_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(with_metrics(dir.path()));
    let provider = close_provider().await;
    let (id, token) = server.close_instance(&provider, "metered", "").await;
    let (status, body) = server.proxied(&token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = server
        .user(Method::GET, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // Never where the API is.
    let (status, _, _) = server.root("/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let text = server.metrics().await;
    promtool_check(&text);
    for family in [
        "# TYPE junction_http_requests_total counter",
        "# TYPE junction_http_request_duration_seconds histogram",
        "# TYPE junction_provider_calls_total counter",
        "# TYPE junction_provider_call_duration_seconds histogram",
        "# TYPE junction_cache_lookups_total counter",
        "# TYPE junction_db_pool_connections gauge",
        "# TYPE junction_db_statement_duration_seconds histogram",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    let all = series(&text);
    for expected in [
        r#"junction_http_requests_total{route="/elements/api-v2/instances/{id}",method="GET",status="200"}"#,
        r#"junction_http_requests_total{route="/elements/api-v2/proxy/{*vendor_path}",method="GET",status="200"}"#,
        r#"junction_provider_calls_total{element="closeio",outcome="2xx"}"#,
        r#"junction_db_pool_connections{pool="writer",state="idle"}"#,
    ] {
        assert!(all.contains(expected), "{expected} missing:\n{text}");
    }
    let statements = text
        .lines()
        .find_map(|l| l.strip_prefix("junction_db_statement_duration_seconds_count "))
        .unwrap();
    assert!(statements.parse::<u64>().unwrap() > 0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_metrics_listener_unless_one_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(junction(dir.path()));
    assert_eq!(server.metrics, None);
    let (status, _, _) = server.root("/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Random words no label may ever carry.
fn noise(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("zq{:x}{i}", rand_u64())).collect()
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

async fn request_mix(server: &Api, words: &[String]) {
    let methods = [Method::GET, Method::DELETE, Method::PATCH];
    for (i, word) in words.iter().enumerate() {
        let number = 1_000_000 + i;
        let paths = [
            format!("/instances/{number}"),
            format!("/instances/{number}/configuration"),
            format!("/{word}/{number}"),
            format!("/instances?tags[]={word}&pageSize={}", i % 7 + 1),
            format!("/elements/{word}"),
            format!("/hubs/general/{word}?q={word}"),
        ];
        for path in &paths {
            let method = methods[i % methods.len()].clone();
            let _ = server.call(method, path, &platform_auth(), None).await;
        }
        let odd = Method::from_bytes(format!("X{}", word.to_uppercase()).as_bytes()).unwrap();
        let _ = server
            .http
            .request(odd, format!("http://{}/{word}", server.addr))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_request_mix_leaves_the_series_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(with_metrics(dir.path()));
    // A warm-up round first: copies kept in memory turn later lookups into hits, a series
    // of its own that the first round cannot show yet.
    let warm_up = noise(20);
    request_mix(&server, &warm_up).await;
    let first = noise(60);
    request_mix(&server, &first).await;
    let after_first = series(&server.metrics().await);
    let second = noise(60);
    request_mix(&server, &second).await;
    let text = server.metrics().await;
    let after_second = series(&text);
    // The same kinds of request with new ids, paths and queries add no series.
    assert_eq!(
        after_first,
        after_second,
        "new series appeared: {:?}",
        after_second.difference(&after_first).collect::<Vec<_>>()
    );
    // Label sets only: sample values may hold any digits.
    let labels: String = after_second
        .iter()
        .filter_map(|series| series.split_once('{').map(|(_, labels)| labels))
        .collect();
    for word in warm_up.iter().chain(&first).chain(&second) {
        assert!(
            !labels.contains(word.as_str()),
            "{word} became a label value"
        );
    }
    assert!(!labels.contains("100000"), "an id became a label value");
    let routes: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("junction_http_requests_total{"))
        .filter_map(|l| l.split("route=\"").nth(1)?.split('"').next())
        .collect();
    assert!(routes.contains("unmatched"), "{routes:?}");
    assert!(routes.len() <= 8, "{routes:?}");
    assert!(text.contains(r#"method="other""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = junction(dir.path());
    cmd.env("JUNCTION_DATABASE_URL", "live.db");
    let live = serve(cmd);
    let provider = close_provider().await;
    let (id, token) = live
        .close_instance(&provider, "before the backup", "")
        .await;

    // Writes carry on while the copy is taken.
    let writer = {
        let api = live.api.clone();
        let provider = provider.clone();
        tokio::spawn(async move {
            for i in 0..10 {
                api.close_instance(&provider, &format!("during {i}"), "")
                    .await;
            }
        })
    };
    let backup = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || {
            junction(&dir)
                .env("JUNCTION_DATABASE_URL", "live.db")
                .args(["backup", "copy.db"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let printed: Value = serde_json::from_slice(&backup.stdout).unwrap();
    assert_eq!(printed["database"], "copy.db");
    assert_eq!(printed["keyFile"], "copy.db.key");
    writer.await.unwrap();
    let key = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    assert_eq!(key("copy.db.key"), key("live.db.key"));
    for file in ["copy.db", "copy.db.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let (_, listed_live) = live.user(Method::GET, "/instances", None).await;
    drop(live);

    let mut cmd = junction(dir.path());
    cmd.env("JUNCTION_DATABASE_URL", "copy.db");
    let restored = serve(cmd);
    let (status, instance) = restored
        .user(Method::GET, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(instance["name"], "before the backup");
    assert_eq!(instance["token"], token.as_str());
    // The sealed credential opens with the copied key and reaches the provider.
    let (status, body) = restored.proxied(&token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // One snapshot: a subset of what the live database ended with, every one usable.
    let (_, listed) = restored.user(Method::GET, "/instances", None).await;
    let listed = listed.as_array().unwrap();
    assert!(!listed.is_empty() && listed.len() <= listed_live.as_array().unwrap().len());
    for instance in listed {
        let (status, body) = restored.proxied(instance["token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[test]
fn backup_refuses_postgresql_and_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = junction(dir.path())
        .env("JUNCTION_DATABASE_URL", "postgres://u@127.0.0.1:1/db")
        .env("JUNCTION_ENCRYPTION_KEY", KEY)
        .args(["backup", "copy.db"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pg_dump"), "{stderr}");

    let output = junction(dir.path())
        .env("JUNCTION_DATABASE_URL", "missing.db")
        .args(["backup", "copy.db"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(!dir.path().join("missing.db").exists());

    std::fs::write(dir.path().join("taken.db"), b"x").unwrap();
    drop(serve({
        let mut cmd = junction(dir.path());
        cmd.env("JUNCTION_DATABASE_URL", "live.db");
        cmd
    }));
    let output = junction(dir.path())
        .env("JUNCTION_DATABASE_URL", "live.db")
        .args(["backup", "taken.db"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("exists already"), "{stderr}");
    assert_eq!(std::fs::read(dir.path().join("taken.db")).unwrap(), b"x");
}

/// A PostgreSQL cluster of the test's own (Debian's binaries, through
/// `scripts/pg-test.sh`), on a free port and a data directory that goes away with it.
struct OwnPostgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnPostgres {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test.sh")
    }

    fn run(&self, action: &str) {
        let output = Command::new("bash")
            .arg(Self::script())
            .arg(action)
            .env("JUNCTION_PG_DIR", self.dir.path())
            .env("JUNCTION_PG_PORT", self.port.to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pg-test.sh {action}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Self {
            dir: tempfile::Builder::new()
                .prefix("junction-ops-pg")
                .tempdir_in("/tmp")
                .unwrap(),
            port,
        };
        pg.run("start");
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .env("JUNCTION_PG_DIR", self.dir.path())
            .env("JUNCTION_PG_PORT", self.port.to_string())
            .output();
    }
}

fn assert_unavailable(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &Value) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body["code"], "database_unavailable", "{body}");
    assert!(body["requestId"].is_string());
    let message = body["message"].as_str().unwrap();
    assert!(
        !message.contains("refused") && !message.contains("127.0.0.1"),
        "{message}"
    );
}

/// Polls `/ready` until it answers 200, for at most a minute.
async fn until_ready(server: &Api) -> Value {
    for _ in 0..240 {
        let (status, _, body) = server.root("/ready").await;
        if status == StatusCode::OK {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("never ready again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_stopped_and_started_answers_503_then_recovers_by_itself() {
    let pg = OwnPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = with_metrics(dir.path());
    cmd.env("JUNCTION_DATABASE_URL", pg.url())
        .env("JUNCTION_ENCRYPTION_KEY", KEY);
    let server = serve(cmd);
    let provider = close_provider().await;
    let (id, token) = server.close_instance(&provider, "survivor", "").await;
    let ready = until_ready(&server).await;
    assert_eq!(ready["listener"], "connected", "{ready}");
    // A copy of the instance is now kept in memory.
    assert_eq!(server.proxied(&token).await.0, StatusCode::OK);

    pg.run("stop");
    // Readiness turns first (its check is bounded at 2 s), once the listener noticed.
    let mut unready = None;
    for _ in 0..120 {
        let (status, headers, body) = server.root("/ready").await;
        if status == StatusCode::SERVICE_UNAVAILABLE && body["listener"] == "disconnected" {
            unready = Some((headers, body));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (headers, body) = unready.expect("/ready never reported the database gone");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body["database"], "unreachable", "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert!(server.metrics().await.contains("junction_db_up 0"));
    // Every call that needs the database answers 503 within the pool's timeout (the
    // client's 30 s bound would fail the test otherwise), none hangs or panics.
    let (status, headers, body) = server
        .call(
            Method::GET,
            &format!("/instances/{id}"),
            &platform_auth(),
            None,
        )
        .await;
    assert_unavailable(status, &headers, &body);
    let (status, headers, body) = server
        .call(
            Method::GET,
            "/proxy/leads",
            &format!("Element {token}"),
            None,
        )
        .await;
    assert_unavailable(status, &headers, &body);
    let (status, headers, body) = server
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            &platform_auth(),
            Some(&json!({"name": "lost"})),
        )
        .await;
    assert_unavailable(status, &headers, &body);

    pg.run("start");
    // Another replica writes before this one hears writes again: its notification is
    // lost, so no copy from before may answer afterwards.
    let (status, _) = {
        let mut other_dir = dir.path().to_owned();
        other_dir.push("other");
        std::fs::create_dir(&other_dir).unwrap();
        let mut cmd = junction(&other_dir);
        cmd.env("JUNCTION_DATABASE_URL", pg.url())
            .env("JUNCTION_ENCRYPTION_KEY", KEY);
        let other = serve(cmd);
        other
            .user(
                Method::PATCH,
                &format!("/instances/{id}"),
                Some(&json!({"name": "renamed meanwhile"})),
            )
            .await
    };
    assert_eq!(status, StatusCode::OK);
    let ready = until_ready(&server).await;
    assert_eq!(ready["listener"], "connected", "{ready}");
    assert_eq!(ready["migrations"], "current", "{ready}");
    let (status, instance) = server
        .user(Method::GET, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(instance["name"], "renamed meanwhile");
    assert_eq!(server.proxied(&token).await.0, StatusCode::OK);
    let (status, body) = server
        .user(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"name": "after"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(server.metrics().await.contains("junction_db_up 1"));
}

/// A token endpoint in front of the provider's that can keep a refresh's answer from
/// Junction until the test lets it through.
#[derive(Default)]
struct HeldAnswer {
    provider: String,
    hold: std::sync::atomic::AtomicBool,
    answered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

async fn held_answer_token(
    axum::extract::State(gate): axum::extract::State<std::sync::Arc<HeldAnswer>>,
    body: String,
) -> Response {
    use std::sync::atomic::Ordering;
    let held = body.contains("grant_type=refresh_token") && gate.hold.swap(false, Ordering::SeqCst);
    let answer = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .post(&gate.provider)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = AxumStatus::from_u16(answer.status().as_u16()).unwrap();
    let text = answer.text().await.unwrap();
    if held {
        gate.answered.notify_one();
        gate.release.notified().await;
    }
    (status, [("content-type", "application/json")], text).into_response()
}

async fn start_held_answer(provider: String) -> (std::sync::Arc<HeldAnswer>, String) {
    let gate = std::sync::Arc::new(HeldAnswer {
        provider,
        ..HeldAnswer::default()
    });
    let app = Router::new()
        .route("/token", axum::routing::post(held_answer_token))
        .with_state(std::sync::Arc::clone(&gate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (gate, url)
}

/// A rotating provider answers a refresh, and PostgreSQL goes away before Junction could
/// store the answer: the rotated refresh token exists nowhere else, so Junction keeps it
/// and stores it once the database is back, and the grant lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_answered_while_postgresql_restarts_keeps_its_rotated_token() {
    use junction_testkit::browser::Browser;
    use junction_testkit::peers::{CLIENT_ID, CLIENT_SECRET, Peer, PeerKind, REDIRECT_URI};
    use std::sync::atomic::Ordering;

    let pg = OwnPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = junction(dir.path());
    cmd.env("JUNCTION_DATABASE_URL", pg.url())
        .env("JUNCTION_ENCRYPTION_KEY", KEY)
        .env("JUNCTION_OUTBOUND_TIMEOUT", "20");
    let server = serve(cmd);
    let peer = Peer::start(PeerKind::Oidc, &[("ROTATE", "1"), ("AT_TTL", "2")]).await;
    let (gate, token_url) = start_held_answer(peer.token_url()).await;

    let (status, oauth) = server
        .user(
            Method::GET,
            &format!(
                "/elements/sfdc/oauth/url?apiKey={CLIENT_ID}&apiSecret={CLIENT_SECRET}&callbackUrl={REDIRECT_URI}"
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{oauth}");
    let built = url::Url::parse(oauth["oauthUrl"].as_str().unwrap()).unwrap();
    let mut at_provider = url::Url::parse(&peer.authorize_url()).unwrap();
    at_provider.set_query(built.query());
    let code = Browser::new()
        .authorize(at_provider.as_str(), REDIRECT_URI)
        .await
        .code
        .unwrap();
    let (status, instance) = server
        .user(
            Method::POST,
            "/instances",
            Some(&json!({
                "element": {"key": "sfdc"},
                "providerData": {"code": code},
                "configuration": {
                    "oauth.api.key": CLIENT_ID,
                    "oauth.api.secret": CLIENT_SECRET,
                    "oauth.callback.url": REDIRECT_URI,
                    "oauth.token.url": token_url,
                    "base.url": peer.api_url(),
                },
                "name": "refreshed across a restart",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    let element = format!("Element {}", instance["token"].as_str().unwrap());
    let call_me = {
        let api = server.api.clone();
        let element = element.clone();
        move || {
            let (api, element) = (api.clone(), element.clone());
            async move { api.call(Method::GET, "/proxy/me", &element, None).await }
        }
    };
    assert_eq!(call_me().await.0, StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(2300)).await;
    gate.hold.store(true, Ordering::SeqCst);
    let call = tokio::spawn(call_me());
    tokio::time::timeout(Duration::from_secs(20), gate.answered.notified())
        .await
        .expect("the expired token was not renewed");
    pg.run("stop");
    gate.release.notify_one();
    // Longer than the pool waits for a connection (10 s), so the write of the answer
    // fails at least once instead of waiting for the restart; shorter than the lease
    // (JUNCTION_OUTBOUND_TIMEOUT + 10 s).
    tokio::time::sleep(Duration::from_secs(12)).await;
    pg.run("start");
    let (status, _, body) = call.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let stats = peer.stats().await;
    assert_eq!(stats["refreshFailures"], 0, "{stats}");

    // The next expiry is renewed with the refresh token the restart did not cost.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (status, _, body) = call_me().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stats = peer.stats().await;
    assert_eq!(stats["refreshFailures"], 0, "{stats}");
    assert!(stats["refreshGrants"].as_u64().unwrap() >= 2, "{stats}");
}

/// A small tmpfs, mounted for the test and unmounted after it.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` where mounting is not allowed (not root, or no CAP_SYS_ADMIN).
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .ok()?;
        mounted.status.success().then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the rest of the disk holding `path`.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_sqlite_answers_503_and_writes_resume_once_there_is_room() {
    let Some(disk) = SmallDisk::mount("4m") else {
        eprintln!("notice: cannot mount a tmpfs here (needs root); the full-disk test was skipped");
        return;
    };
    let mut cmd = junction(disk.path());
    cmd.env("JUNCTION_DATABASE_URL", disk.path().join("j.db"));
    let server = serve(cmd);
    let provider = close_provider().await;
    let (id, _) = server.close_instance(&provider, "first", "").await;
    let (status, events) = server
        .user(
            Method::POST,
            "/instances",
            Some(&json!({
                "element": {"key": "sfdc"},
                "externalAuthentication": "initial",
                "configuration": {
                    "oauth.api.key": "k", "oauth.api.secret": "s",
                    "oauth.callback.url": "https://app.example.test/cb",
                    "oauth.user.token": "t", "oauth.user.refresh_token": "r",
                    "event.notification.enabled": true,
                    "event.notification.callback.url": "http://127.0.0.1:9/hook",
                },
                "name": "webhooks",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let events = events["id"].as_i64().unwrap().to_string();
    fill(&disk.path().join("filler"));

    // Large writes until one no longer fits: each answers 200 or 503, never 500.
    let note = "n".repeat(30 * 1024);
    let mut refused = None;
    for i in 0..40 {
        let (status, headers, body) = server
            .call(
                Method::POST,
                "/instances",
                &platform_auth(),
                Some(&json!({
                    "element": {"key": "closeio"},
                    "name": format!("big {i}"),
                    "configuration": {"base.url": provider, "closeio.api.key": CLOSE_KEY, "ops.note": note},
                })),
            )
            .await;
        match status {
            StatusCode::OK => continue,
            StatusCode::SERVICE_UNAVAILABLE => {
                refused = Some((headers, body));
                break;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let (headers, body) = refused.expect("the disk never filled up");
    assert_eq!(body["code"], "database_unwritable", "{body}");
    assert!(headers.contains_key("retry-after"));
    // Webhooks are stored by a writer that commits many at once; each still gets the
    // database's answer, 503 with Retry-After, not an internal error.
    let mut refused = None;
    for i in 0..40 {
        let response = server
            .http
            .post(server.url("/events/sfdc"))
            .header("element-instances", &events)
            .json(&json!({
                "objects": [{"attributes": {"type": "Contact"}, "Id": format!("003{i}")}],
                "action": "update",
                "padding": note,
            }))
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            StatusCode::OK => continue,
            StatusCode::SERVICE_UNAVAILABLE => {
                refused = Some((headers, body));
                break;
            }
            other => panic!("a webhook on a full disk: {other}: {body}"),
        }
    }
    let (headers, body) = refused.expect("webhooks never filled the disk");
    assert_eq!(body["code"], "database_unwritable", "{body}");
    assert!(headers.contains_key("retry-after"));
    // Reads still work.
    let (status, _) = server
        .user(Method::GET, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let (status, body) = server
        .user(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"name": "room again"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(server);
}

/// What an OpenTelemetry collector stand-in received on `POST /v1/traces`.
#[cfg(feature = "otlp")]
#[derive(Default)]
struct Received {
    content_types: Vec<String>,
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
}

/// A collector accepting OTLP/HTTP protobuf on `/v1/traces`, decoding what it gets.
#[cfg(feature = "otlp")]
async fn collector() -> (String, std::sync::Arc<std::sync::Mutex<Received>>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let received = std::sync::Arc::new(std::sync::Mutex::new(Received::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/v1/traces",
        axum::routing::post({
            let received = std::sync::Arc::clone(&received);
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let received = std::sync::Arc::clone(&received);
                async move {
                    let request = ExportTraceServiceRequest::decode(body).unwrap();
                    let mut received = received.lock().unwrap();
                    received
                        .content_types
                        .push(headers["content-type"].to_str().unwrap().to_owned());
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            received.spans.extend(scope.spans);
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, received)
}

#[cfg(feature = "otlp")]
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(feature = "otlp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_go_to_the_otlp_collector_in_the_callers_trace() {
    let (endpoint, received) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = junction(dir.path());
    cmd.env("JUNCTION_OTLP_ENDPOINT", &endpoint);
    let mut server = serve(cmd);
    let provider = close_provider().await;
    let (_, token) = server.close_instance(&provider, "traced", "").await;
    let caller = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = server
        .http
        .get(server.url("/proxy/leads"))
        .header("Authorization", format!("Element {token}"))
        .header("traceparent", format!("00-{caller}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["elements-trace-id"], caller);
    let response = server
        .http
        .get(server.url("/instances"))
        .header("Authorization", platform_auth())
        .send()
        .await
        .unwrap();
    let own = response.headers()["elements-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(own, caller);

    // SIGTERM: the exporter sends what it still holds before the process exits.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(server.child.wait().unwrap().success());

    let received = received.lock().unwrap();
    assert!(!received.spans.is_empty());
    assert!(
        received
            .content_types
            .iter()
            .all(|c| c == "application/x-protobuf"),
        "{:?}",
        received.content_types
    );
    let in_callers: Vec<_> = received
        .spans
        .iter()
        .filter(|s| hex(&s.trace_id) == caller)
        .collect();
    let request = in_callers
        .iter()
        .find(|s| s.name == "request")
        .unwrap_or_else(|| {
            let seen: Vec<_> = received
                .spans
                .iter()
                .map(|s| (s.name.clone(), hex(&s.trace_id), hex(&s.parent_span_id)))
                .collect();
            panic!("the request's span does not continue the caller's trace: {seen:?}")
        });
    assert_eq!(hex(&request.parent_span_id), "00f067aa0ba902b7");
    let call = in_callers
        .iter()
        .find(|s| s.name == "provider_call")
        .expect("the provider call's span is in the same trace");
    assert_eq!(call.parent_span_id, request.span_id);
    assert!(
        received
            .spans
            .iter()
            .any(|s| s.name == "request" && hex(&s.trace_id) == own),
        "Elements-Trace-Id names the exported trace"
    );
}

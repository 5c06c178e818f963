//! `junction-bench replicas`: several `junction serve` replicas on one PostgreSQL behind
//! nginx, under mixed load, while one replica after another is SIGKILLed and restarted
//! and PostgreSQL is restarted once.
//!
//! The driver owns every moving part except PostgreSQL: the replicas (it must restart
//! them with the same settings), nginx in front of them, two real OAuth servers
//! (oidc-provider from `tests/peers`, rotating refresh tokens), and the app's receiver of
//! event notifications. The load:
//! - provider calls through instances whose access tokens live 2 s (`GET /proxy/me` and
//!   `POST /proxy/echo` against the OAuth server's own bearer-protected API), so every
//!   call path crosses refreshes, spread over the replicas;
//! - provisioning: an authorization at the OAuth server, then `POST /instances` with the
//!   code; each instance created joins the calls;
//! - webhooks in (`POST /events/sfdc`) and signed notifications out to the receiver.
//!
//! nginx retries a request on another replica only when it is safe: a connection that
//! could not be opened (nothing was sent), or an idempotent request. A `POST` that
//! reached a replica which then died is not sent again, since it may have taken effect;
//! its caller gets 502, which is the one failure a kill may cause. Every failure is
//! classified afterwards against the kills and the database restart it overlapped.
//!
//! At the end every instance an accepted provisioning created must still exist and work
//! (a call through it succeeds), every accepted webhook must have been delivered, and the
//! OAuth servers must never have seen a rotated refresh token again (`invalid_grant`).

use anyhow::{Context, bail};
use axum::extract::State;
use axum::http::StatusCode;
use junction_testkit::browser::Browser;
use junction_testkit::peers::{CLIENT_ID, CLIENT_SECRET, Peer, PeerKind, REDIRECT_URI};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const USER_SECRET: &str = "replicas-user-secret-0123456789";
const ORG_SECRET: &str = "replicas-organization-secret-0123456789";
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The access-token lifetime of the instances called throughout, seconds.
pub const AT_TTL: u64 = 2;
/// Which replica answered, as nginx saw it (several addresses when it retried).
const UPSTREAM_HEADER: &str = "x-junction-upstream";
/// A request started this long after a kill counts as "around" it.
const AROUND_KILL: Duration = Duration::from_secs(5);
/// A lease still held this long after a kill, unchanged, was the killed replica's.
const LEFT_BEHIND_AFTER: Duration = Duration::from_secs(2);
/// After the database is back, requests may still meet a pool reconnecting.
const DATABASE_GRACE: Duration = Duration::from_secs(15);

/// What to run and for how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `junction` binary.
    pub junction: PathBuf,
    /// The `nginx` binary.
    pub nginx: PathBuf,
    /// An empty PostgreSQL database the replicas share.
    pub database_url: String,
    /// Logs and nginx's files go here.
    pub work_dir: PathBuf,
    pub replicas: usize,
    /// Load time; verification follows.
    pub duration: Duration,
    /// One replica is SIGKILLed and restarted this often (the first kill after one period).
    pub kill_every: Duration,
    /// A shell command that stops and starts PostgreSQL, run once at `restart_database_at`.
    pub restart_database: Option<String>,
    pub restart_database_at: Duration,
    /// Instances with 2-second tokens, created before the load starts.
    pub hot_instances: usize,
    /// Concurrent callers of provider calls.
    pub callers: usize,
    /// One provisioning this often.
    pub provision_every: Duration,
    /// Webhooks a second.
    pub event_rate: f64,
    /// How long deliveries may take to catch up after the load.
    pub drain_timeout: Duration,
    /// Junction's `JUNCTION_OUTBOUND_TIMEOUT`; a dead replica's refresh lease lasts this
    /// plus 10 s.
    pub outbound_timeout: u64,
}

/// One request the driver made through nginx.
#[derive(Debug, Clone)]
struct Sample {
    kind: &'static str,
    /// The instance a provider call went through.
    instance: Option<i64>,
    start: Duration,
    end: Duration,
    outcome: Outcome,
}

#[derive(Debug, Clone)]
enum Outcome {
    Ok,
    Status {
        status: u16,
        code: Option<String>,
        upstream: Option<String>,
    },
    Transport(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Kill {
    pub replica: usize,
    pub port: u16,
    /// Seconds since the load started.
    pub at: f64,
    /// Seconds from SIGKILL until the process was gone: connections it had accepted
    /// until then broke with it.
    pub dead_after: f64,
    /// Seconds from the kill until the restarted replica answered `/health`.
    pub back_after: f64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    from: Duration,
    to: Duration,
}

#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub requests: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct KillRow {
    #[serde(flatten)]
    pub kill: Kill,
    /// Provider calls started within 5 s of the kill (or in flight at it).
    pub calls: Latency,
    /// Requests of any kind that failed in flight on the killed replica.
    pub failed_in_flight: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct Verification {
    pub instances_checked: usize,
    pub instances_lost: Vec<String>,
    /// Instances a call through fails for, with the answer.
    pub credentials_lost: Vec<(i64, String)>,
    /// Of those, the ones whose refresh was in progress on a replica when it was
    /// SIGKILLed (its lease was left behind), so the provider may have rotated the
    /// refresh token in an answer that died with the process.
    pub credentials_lost_to_kills: Vec<i64>,
}

/// Everything the run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub seconds: f64,
    pub replicas: usize,
    /// Successful requests by kind.
    pub served: BTreeMap<String, usize>,
    /// Failures a kill explains: the request was in flight on the replica killed.
    pub failed_in_flight: BTreeMap<String, usize>,
    /// 503 with `Retry-After` while PostgreSQL restarted (and its pools reconnected).
    pub failed_database_restart: BTreeMap<String, usize>,
    /// Calls through an instance whose refresh died with a killed replica, after the
    /// provider refused the refresh token that replica had already spent.
    pub failed_after_lost_rotation: BTreeMap<String, usize>,
    /// Failures nothing in the scenario explains.
    pub failed_unexplained: BTreeMap<String, usize>,
    /// Latency of successful requests by kind, away from kills and the database restart.
    pub steady: BTreeMap<String, Latency>,
    pub kills: Vec<KillRow>,
    /// Seconds since the load started, from the stop to PostgreSQL answering again.
    pub database_restart: Option<(f64, f64)>,
    pub hot_instances: usize,
    /// Times a hot instance's token lapsed during the run (instances × run ÷ lifetime).
    pub token_expiries: u64,
    /// refresh_token grants the OAuth server answered for the hot instances.
    pub refresh_grants: u64,
    /// refresh_token grants it refused, by error, across both OAuth servers.
    pub refresh_errors: BTreeMap<String, u64>,
    pub invalid_grant: u64,
    pub provisioned: usize,
    pub verification: Verification,
    pub events_accepted: usize,
    pub events_delivered: usize,
    pub events_undelivered: usize,
    pub event_duplicates: u64,
    pub drain_seconds: f64,
}

impl Report {
    /// Whatever breaks the goals: unexplained failures, `invalid_grant`, lost instances,
    /// credentials or events. Empty when the run met them all.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (kind, n) in &self.failed_unexplained {
            problems.push(format!("{n} unexplained failures: {kind}"));
        }
        if self.invalid_grant > 0 {
            problems.push(format!("{} invalid_grant", self.invalid_grant));
        }
        for lost in &self.verification.instances_lost {
            problems.push(format!("instance lost: {lost}"));
        }
        for (id, answer) in &self.verification.credentials_lost {
            problems.push(format!("credentials lost: instance {id} ({answer})"));
        }
        if self.events_undelivered > 0 {
            problems.push(format!(
                "{} accepted events never delivered",
                self.events_undelivered
            ));
        }
        problems
    }

    /// [`Report::problems`] but those a kill explains: a refresh in progress on the
    /// killed replica whose rotated refresh token died with it (the provider had
    /// received the request), and the calls through that instance afterwards.
    pub fn unexplained_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (kind, n) in &self.failed_unexplained {
            problems.push(format!("{n} unexplained failures: {kind}"));
        }
        let explained = self.verification.credentials_lost_to_kills.len() as u64;
        if self.invalid_grant > explained {
            problems.push(format!(
                "{} invalid_grant, {explained} of them explained by a kill",
                self.invalid_grant
            ));
        }
        for lost in &self.verification.instances_lost {
            problems.push(format!("instance lost: {lost}"));
        }
        for (id, answer) in &self.verification.credentials_lost {
            if !self.verification.credentials_lost_to_kills.contains(id) {
                problems.push(format!("credentials lost: instance {id} ({answer})"));
            }
        }
        if self.events_undelivered > 0 {
            problems.push(format!(
                "{} accepted events never delivered",
                self.events_undelivered
            ));
        }
        problems
    }

    /// The result tables, in Markdown.
    pub fn markdown(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let total: usize = self.served.values().sum();
        let sum = |m: &BTreeMap<String, usize>| m.values().sum::<usize>();
        let list = |m: &BTreeMap<String, usize>| {
            if m.is_empty() {
                "none".to_owned()
            } else {
                m.iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let goal = |ok: bool| if ok { "PASS" } else { "MISS" };
        let problems = self.problems();
        if problems.is_empty() {
            let _ = writeln!(out, "**All goals met.**\n");
        } else {
            let _ = writeln!(out, "**Goals missed:** {}.", problems.join("; "));
            if self.unexplained_problems().is_empty() {
                let _ = writeln!(
                    out,
                    "Each is an instance whose refresh was in progress on a replica when it was SIGKILLed: the provider had the request, rotated the refresh token, and its answer died with the process."
                );
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "| measure | result | goal | |");
        let _ = writeln!(out, "|---|---|---|---|");
        let _ = writeln!(
            out,
            "| requests served | {total} ({}) | | |",
            list(&self.served)
        );
        let _ = writeln!(
            out,
            "| failed in flight on a killed replica | {} ({}) | only these may fail | |",
            sum(&self.failed_in_flight),
            list(&self.failed_in_flight)
        );
        let _ = writeln!(
            out,
            "| calls through an instance whose refresh died with a killed replica | {} ({}) | | |",
            sum(&self.failed_after_lost_rotation),
            list(&self.failed_after_lost_rotation)
        );
        let _ = writeln!(
            out,
            "| 503 + Retry-After while PostgreSQL restarted | {} ({}) | | |",
            sum(&self.failed_database_restart),
            list(&self.failed_database_restart)
        );
        let _ = writeln!(
            out,
            "| other failures | {} ({}) | 0 | {} |",
            sum(&self.failed_unexplained),
            list(&self.failed_unexplained),
            goal(self.failed_unexplained.is_empty())
        );
        let _ = writeln!(
            out,
            "| refresh grants / token expiries ({} instances, {AT_TTL} s tokens) | {} / {} = {:.2} | one grant per expiry | |",
            self.hot_instances,
            self.refresh_grants,
            self.token_expiries,
            self.refresh_grants as f64 / self.token_expiries.max(1) as f64
        );
        let errors = if self.refresh_errors.is_empty() {
            "none".to_owned()
        } else {
            self.refresh_errors
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "| refresh grants refused | {errors} | | |");
        let lost_to_kills = self.verification.credentials_lost_to_kills.len();
        let _ = writeln!(
            out,
            "| `invalid_grant` | {}{} | 0 | {} |",
            self.invalid_grant,
            if lost_to_kills > 0 {
                format!(
                    " ({lost_to_kills} for an instance whose refresh was in progress on a replica when it was SIGKILLed: instance {})",
                    self.verification
                        .credentials_lost_to_kills
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            },
            goal(self.invalid_grant == 0)
        );
        let _ = writeln!(
            out,
            "| instances lost (of {} checked; {} provisioned under load) | {} | 0 | {} |",
            self.verification.instances_checked,
            self.provisioned,
            self.verification.instances_lost.len(),
            goal(self.verification.instances_lost.is_empty())
        );
        let _ = writeln!(
            out,
            "| credentials lost (a call through the instance fails) | {} | 0 | {} |",
            self.verification.credentials_lost.len(),
            goal(self.verification.credentials_lost.is_empty())
        );
        let _ = writeln!(
            out,
            "| events accepted / delivered (duplicates) | {} / {} ({}), all in {:.1} s after the load | every accepted event delivered | {} |",
            self.events_accepted,
            self.events_accepted - self.events_undelivered,
            self.event_duplicates,
            self.drain_seconds,
            goal(self.events_undelivered == 0)
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Steady state (successful requests away from every kill and the database restart):"
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "| request | count | p50 ms | p99 ms |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for (kind, l) in &self.steady {
            let _ = writeln!(
                out,
                "| {kind} | {} | {:.1} | {:.1} |",
                l.requests, l.p50_ms, l.p99_ms
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Around each kill (provider calls started within {} s after it, or in flight at it):",
            AROUND_KILL.as_secs()
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| kill | at s | replica | back after s | calls | p50 ms | p99 ms | failed in flight |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (i, k) in self.kills.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {} | {:.2} | {} | {:.1} | {:.1} | {} |",
                i + 1,
                k.kill.at,
                k.kill.replica,
                k.kill.back_after,
                k.calls.requests,
                k.calls.p50_ms,
                k.calls.p99_ms,
                k.failed_in_flight
            );
        }
        if let Some((from, to)) = self.database_restart {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "PostgreSQL was stopped at {from:.1} s and answered again at {to:.1} s."
            );
        }
        out
    }
}

/// Requests made, shared by the load tasks.
#[derive(Default)]
struct Recorder {
    samples: Mutex<Vec<Sample>>,
}

impl Recorder {
    fn push(&self, sample: Sample) {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sample);
    }
}

/// One `junction serve` on a fixed port, restartable.
struct Replica {
    index: usize,
    port: u16,
    child: Option<Child>,
}

struct Setup {
    junction: PathBuf,
    database_url: String,
    work_dir: PathBuf,
    outbound_timeout: u64,
}

impl Setup {
    async fn start(&self, replica: &mut Replica) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.work_dir.join(format!("replica-{}.log", replica.index)))?;
        let child = Command::new(&self.junction)
            .arg("serve")
            .current_dir(&self.work_dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("JUNCTION_LISTEN", format!("127.0.0.1:{}", replica.port))
            .env("JUNCTION_DATABASE_URL", &self.database_url)
            .env("JUNCTION_ENCRYPTION_KEY", KEY)
            .env("JUNCTION_BOOTSTRAP_USER_SECRET", USER_SECRET)
            .env("JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET", ORG_SECRET)
            .env("JUNCTION_OUTBOUND_ALLOW_PRIVATE", "true")
            .env(
                "JUNCTION_OUTBOUND_TIMEOUT",
                self.outbound_timeout.to_string(),
            )
            .env("JUNCTION_CALLER_CONCURRENCY", "256")
            .env("JUNCTION_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.junction.display()))?;
        replica.child = Some(child);
        wait_healthy(&format!("http://127.0.0.1:{}/health", replica.port)).await
    }
}

async fn wait_healthy(url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(answer) = http.get(url).send().await
            && answer.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// nginx in front of the replicas, in a directory of its own.
async fn start_nginx(
    nginx: &PathBuf,
    dir: &std::path::Path,
    ports: &[u16],
) -> anyhow::Result<(Child, u16)> {
    let dir = dir.join("nginx");
    std::fs::create_dir_all(dir.join("tmp"))?;
    let port = free_port()?;
    let d = dir.display();
    // As root, workers would otherwise drop to nobody and could not write the temporary
    // directory.
    let user = if std::env::var("USER").as_deref() == Ok("root") || is_root() {
        "user root;"
    } else {
        ""
    };
    let servers: String = ports
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;\n"))
        .collect();
    let conf = format!(
        r#"{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    upstream junction {{
{servers}        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://junction;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            # Another replica gets the request when none of it was sent (the connection
            # was refused), or when it is idempotent. nginx never resends a POST that a
            # replica may have acted on (no `non_idempotent`).
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 1s;
            proxy_read_timeout 120s;
            add_header X-Junction-Upstream $upstream_addr always;
        }}
    }}
}}
"#
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let child = Command::new(nginx)
        .arg("-p")
        .arg(format!("{d}/"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", nginx.display()))?;
    wait_healthy(&format!("http://127.0.0.1:{port}/health")).await?;
    Ok((child, port))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The app's receiver of event notifications.
#[derive(Default)]
struct Receiver {
    seen: Mutex<HashSet<u64>>,
    duplicates: AtomicU64,
}

async fn receive(State(r): State<Arc<Receiver>>, body: axum::body::Bytes) -> StatusCode {
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(seq) = message["message"]["raw"]["seq"].as_u64() else {
        return StatusCode::BAD_REQUEST;
    };
    if !r
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(seq)
    {
        r.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    StatusCode::OK
}

/// An instance calls go through.
#[derive(Debug, Clone)]
struct Made {
    id: i64,
    token: String,
}

struct Driver {
    http: reqwest::Client,
    api: String,
    auth: String,
    base: Instant,
    recorder: Recorder,
}

impl Driver {
    /// Sends a request through nginx and records it; returns the body of a success.
    async fn send(
        &self,
        kind: &'static str,
        request: reqwest::RequestBuilder,
        want: u16,
    ) -> Option<Value> {
        self.send_through(kind, None, request, want).await
    }

    /// [`Driver::send`] for a provider call through `instance`.
    async fn send_through(
        &self,
        kind: &'static str,
        instance: Option<i64>,
        request: reqwest::RequestBuilder,
        want: u16,
    ) -> Option<Value> {
        let start = self.base.elapsed();
        let answer = request.send().await;
        let (outcome, body) = match answer {
            Err(e) => (Outcome::Transport(e.to_string()), None),
            Ok(answer) => {
                let status = answer.status().as_u16();
                let upstream = answer
                    .headers()
                    .get(UPSTREAM_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = answer.bytes().await;
                match body {
                    Err(e) => (Outcome::Transport(e.to_string()), None),
                    Ok(bytes) => {
                        let value = serde_json::from_slice::<Value>(&bytes).ok();
                        if status == want {
                            (Outcome::Ok, value)
                        } else {
                            let code = value
                                .as_ref()
                                .and_then(|v| v["code"].as_str())
                                .map(str::to_owned);
                            (
                                Outcome::Status {
                                    status,
                                    code,
                                    upstream,
                                },
                                None,
                            )
                        }
                    }
                }
            }
        };
        self.recorder.push(Sample {
            kind,
            instance,
            start,
            end: self.base.elapsed(),
            outcome,
        });
        body
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    /// An authorization at `peer` and `POST /instances` with its code.
    async fn provision(&self, peer: &Peer, name: &str) -> Option<Made> {
        let oauth = self
            .send(
                "GET /elements/sfdc/oauth/url",
                self.http
                    .get(self.url(&format!(
                        "/elements/sfdc/oauth/url?apiKey={CLIENT_ID}&apiSecret={CLIENT_SECRET}&callbackUrl={REDIRECT_URI}"
                    )))
                    .header("authorization", &self.auth),
                200,
            )
            .await?;
        let built = url::Url::parse(oauth["oauthUrl"].as_str()?).ok()?;
        let mut at_provider = url::Url::parse(&peer.authorize_url()).ok()?;
        at_provider.set_query(built.query());
        let code = Browser::new()
            .authorize(at_provider.as_str(), REDIRECT_URI)
            .await
            .code?;
        let body = json!({
            "element": {"key": "sfdc"},
            "providerData": {"code": code},
            "configuration": {
                "oauth.api.key": CLIENT_ID,
                "oauth.api.secret": CLIENT_SECRET,
                "oauth.callback.url": REDIRECT_URI,
                "oauth.token.url": peer.token_url(),
                "base.url": peer.api_url(),
            },
            "name": name,
        });
        let created = self
            .send(
                "POST /instances",
                self.http
                    .post(self.url("/instances"))
                    .header("authorization", &self.auth)
                    .json(&body),
                200,
            )
            .await?;
        Some(Made {
            id: created["id"].as_i64()?,
            token: created["token"].as_str()?.to_owned(),
        })
    }

    async fn call_me(&self, made: &Made) -> bool {
        self.send_through(
            "GET /proxy/me",
            Some(made.id),
            self.http
                .get(self.url("/proxy/me"))
                .header("authorization", format!("Element {}", made.token)),
            200,
        )
        .await
        .is_some()
    }

    async fn call_echo(&self, made: &Made, n: u64) -> bool {
        self.send_through(
            "POST /proxy/echo",
            Some(made.id),
            self.http
                .post(self.url("/proxy/echo"))
                .header("authorization", format!("Element {}", made.token))
                .json(&json!({"n": n})),
            201,
        )
        .await
        .is_some()
    }
}

/// Status and error code of a request, tried again while the answer is a 5xx or none
/// (a replica restarting, the database reconnecting), so that only a lasting answer counts.
async fn with_retries<F, Fut>(send: F) -> (u16, String)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let mut last = (0, String::new());
    for _ in 0..5 {
        match send().await {
            Ok(answer) => {
                let status = answer.status().as_u16();
                let body: Value = answer.json().await.unwrap_or(Value::Null);
                last = (status, body["code"].as_str().unwrap_or_default().to_owned());
                if status < 500 {
                    return last;
                }
            }
            Err(e) => last = (0, e.to_string()),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    last
}

/// The refresh leases held now: instance, owner, until.
async fn leases(pool: &sqlx::PgPool) -> Vec<(i64, String, i64)> {
    sqlx::query_as::<_, (i64, String, i64)>(
        "select id, refresh_lease_owner, refresh_lease_until from instances \
         where refresh_lease_owner is not null and refresh_lease_until is not null",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default()
}

/// Leases a killed replica left behind: held right after it died and still held, by the
/// same owner and unchanged, a while later (a live replica's refresh takes milliseconds
/// and releases its lease; a dead one's stays until it expires).
async fn left_behind(pool: sqlx::PgPool, found: Arc<Mutex<HashSet<i64>>>) {
    let first = leases(&pool).await;
    if first.is_empty() {
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(LEFT_BEHIND_AFTER).await;
        let second = leases(&pool).await;
        let mut found = found.lock().unwrap_or_else(PoisonError::into_inner);
        found.extend(
            first
                .iter()
                .filter(|lease| second.contains(lease))
                .map(|(id, _, _)| *id),
        );
    });
}

fn percentiles(mut ms: Vec<f64>) -> Latency {
    if ms.is_empty() {
        return Latency::default();
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[(((ms.len() - 1) as f64) * p).round() as usize];
    Latency {
        requests: ms.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

fn overlaps(s: &Sample, w: Window) -> bool {
    s.start <= w.to && s.end >= w.from
}

/// Runs the scenario and verifies what survived it.
pub async fn run(o: Options) -> anyhow::Result<Report> {
    use std::fmt::Write;
    if o.replicas < 2 {
        bail!("at least two replicas are needed, so one is up while another is killed");
    }
    std::fs::create_dir_all(&o.work_dir)?;
    // The replicas run in the work directory, so a relative path would miss.
    let junction = std::fs::canonicalize(&o.junction)
        .with_context(|| format!("{} does not exist", o.junction.display()))?;
    let setup = Setup {
        junction,
        database_url: o.database_url.clone(),
        work_dir: o.work_dir.clone(),
        outbound_timeout: o.outbound_timeout,
    };
    // Hot instances' tokens live 2 s; instances provisioned under load get hour-long
    // ones from a second server, so the grants counted are the hot instances' alone.
    let hot_peer = Peer::start(
        PeerKind::Oidc,
        &[("ROTATE", "1"), ("AT_TTL", &AT_TTL.to_string())],
    )
    .await;
    let provisioning_peer = Arc::new(Peer::start(PeerKind::Oidc, &[("ROTATE", "1")]).await);

    let mut replicas = Vec::new();
    for index in 0..o.replicas {
        let mut replica = Replica {
            index,
            port: free_port()?,
            child: None,
        };
        // The first creates the schema and the organization; the others find them.
        setup.start(&mut replica).await?;
        replicas.push(replica);
    }
    let ports: Vec<u16> = replicas.iter().map(|r| r.port).collect();
    // Read-only, to tell which refreshes a kill interrupted.
    let leases_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&o.database_url)
        .await?;
    let orphaned_leases: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let (nginx, nginx_port) = start_nginx(&o.nginx, &o.work_dir, &ports).await?;

    let receiver = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let callback = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let driver = Arc::new(Driver {
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(256)
            .build()?,
        api: format!("http://127.0.0.1:{nginx_port}/elements/api-v2"),
        auth: format!("User {USER_SECRET}, Organization {ORG_SECRET}"),
        base: Instant::now(),
        recorder: Recorder::default(),
    });

    let mut hot = Vec::new();
    for i in 0..o.hot_instances {
        let made = driver
            .provision(&hot_peer, &format!("hot {i}"))
            .await
            .context("provisioning a hot instance before the load")?;
        hot.push(made);
    }
    let hot = Arc::new(hot);
    let events_instance = driver
        .send(
            "POST /instances",
            driver
                .http
                .post(driver.url("/instances"))
                .header("authorization", &driver.auth)
                .json(&json!({
                    "element": {"key": "sfdc"},
                    "externalAuthentication": "initial",
                    "configuration": {
                        "oauth.api.key": "bench", "oauth.api.secret": "bench-secret",
                        "oauth.callback.url": REDIRECT_URI,
                        "oauth.user.token": "t", "oauth.user.refresh_token": "r",
                        "event.notification.enabled": true,
                        // Webhooks only: the element polls by default, and this
                        // instance's provider is not reachable from here.
                        "event.vendor.type": "webhook",
                        "event.notification.callback.url": callback,
                        "event.notification.signature.key": "replicas-signature-key",
                    },
                    "name": "events",
                })),
            200,
        )
        .await
        .and_then(|v| v["id"].as_i64())
        .context("creating the events instance")?;
    // The setup's requests are not part of the measurement.
    driver
        .recorder
        .samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();

    let hot_grants_before = hot_peer.stats().await["refreshGrants"]
        .as_u64()
        .unwrap_or(0);
    let load_start = driver.base.elapsed();
    let stop = Arc::new(AtomicBool::new(false));
    let provisioned: Arc<Mutex<Vec<Made>>> = Arc::default();
    let accepted: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();

    for caller in 0..o.callers {
        let (driver, hot, provisioned, stop) = (
            Arc::clone(&driver),
            Arc::clone(&hot),
            Arc::clone(&provisioned),
            Arc::clone(&stop),
        );
        tasks.spawn(async move {
            let mut n = caller as u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // One call in five goes through an instance provisioned under load.
                let made = if n.is_multiple_of(5) {
                    let list = provisioned.lock().unwrap_or_else(PoisonError::into_inner);
                    if list.is_empty() {
                        None
                    } else {
                        Some(list[(n as usize / 5) % list.len()].clone())
                    }
                } else {
                    None
                };
                let made = made.unwrap_or_else(|| hot[(n as usize) % hot.len()].clone());
                if n.is_multiple_of(4) {
                    driver.call_echo(&made, n).await;
                } else {
                    driver.call_me(&made).await;
                }
            }
        });
    }

    {
        let (driver, provisioned, stop) = (
            Arc::clone(&driver),
            Arc::clone(&provisioned),
            Arc::clone(&stop),
        );
        let peer = Arc::clone(&provisioning_peer);
        let every = o.provision_every;
        tasks.spawn(async move {
            let mut ticker = tokio::time::interval(every);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                ticker.tick().await;
                n += 1;
                if let Some(made) = driver.provision(&peer, &format!("provisioned {n}")).await {
                    provisioned
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(made);
                }
            }
        });
    }

    if o.event_rate > 0.0 {
        let (driver, accepted, stop) = (
            Arc::clone(&driver),
            Arc::clone(&accepted),
            Arc::clone(&stop),
        );
        let every = Duration::from_secs_f64(1.0 / o.event_rate);
        tasks.spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seq = 0u64;
            let mut sends = tokio::task::JoinSet::new();
            while !stop.load(Ordering::Relaxed) {
                ticker.tick().await;
                seq += 1;
                let (driver, accepted) = (Arc::clone(&driver), Arc::clone(&accepted));
                sends.spawn(async move {
                    let body = json!({
                        "seq": seq,
                        "objects": [{"attributes": {"type": "Contact"}, "Id": format!("003{seq}")}],
                        "action": "update",
                    });
                    let sent = driver
                        .send(
                            "POST /events/sfdc",
                            driver
                                .http
                                .post(driver.url("/events/sfdc"))
                                .header("element-instances", events_instance.to_string())
                                .json(&body),
                            200,
                        )
                        .await;
                    if sent.is_some() {
                        accepted
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(seq);
                    }
                });
                while sends.try_join_next().is_some() {}
            }
            while sends.join_next().await.is_some() {}
        });
    }

    // The kills, and the one database restart, on this task.
    let mut kills: Vec<Kill> = Vec::new();
    let mut database_window: Option<Window> = None;
    let end = Instant::now() + o.duration;
    let mut next_kill = Instant::now() + o.kill_every;
    let mut restart_at = o
        .restart_database
        .as_ref()
        .map(|_| Instant::now() + o.restart_database_at);
    let mut victim = 0usize;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if let Some(at) = restart_at
            && now >= at
        {
            restart_at = None;
            let command = o.restart_database.clone().unwrap_or_default();
            let from = driver.base.elapsed();
            let status = Command::new("sh")
                .arg("-c")
                .arg(&command)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .await?;
            if !status.success() {
                bail!("restarting PostgreSQL ({command}) failed: {status}");
            }
            database_window = Some(Window {
                from,
                to: driver.base.elapsed(),
            });
            continue;
        }
        if now >= next_kill {
            next_kill += o.kill_every;
            let replica = &mut replicas[victim % o.replicas];
            victim += 1;
            let at = driver.base.elapsed();
            if let Some(mut child) = replica.child.take() {
                // SIGKILL: no shutdown, no lease released, no answer finished.
                child.start_kill()?;
                child.wait().await?;
            }
            let dead = driver.base.elapsed();
            left_behind(leases_pool.clone(), Arc::clone(&orphaned_leases)).await;
            setup.start(replica).await?;
            kills.push(Kill {
                replica: replica.index,
                port: replica.port,
                at: (at - load_start).as_secs_f64(),
                dead_after: (dead - at).as_secs_f64(),
                back_after: (driver.base.elapsed() - at).as_secs_f64(),
            });
            continue;
        }
        let next = [Some(end), Some(next_kill), restart_at]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end);
        tokio::time::sleep_until(next.into()).await;
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(joined) = tasks.join_next().await {
        joined?;
    }
    let load_end = driver.base.elapsed();
    let seconds = (load_end - load_start).as_secs_f64();

    let hot_stats = hot_peer.stats().await;
    let provisioning_stats = provisioning_peer.stats().await;
    let refresh_grants = hot_stats["refreshGrants"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(hot_grants_before);
    let mut refresh_errors = BTreeMap::new();
    for stats in [&hot_stats, &provisioning_stats] {
        if let Some(errors) = stats["refreshErrors"].as_object() {
            for (error, n) in errors {
                *refresh_errors.entry(error.clone()).or_insert(0) += n.as_u64().unwrap_or(0);
            }
        }
    }
    let invalid_grant = refresh_errors.get("invalid_grant").copied().unwrap_or(0);
    let token_expiries = (o.hot_instances as f64 * seconds / AT_TTL as f64).floor() as u64;

    tokio::time::sleep(LEFT_BEHIND_AFTER).await;
    let orphaned: HashSet<i64> = orphaned_leases
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    leases_pool.close().await;

    // Every instance an accepted provisioning made is still there and still works.
    let provisioned = provisioned
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut verification = Verification::default();
    let checker = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()?;
    for made in hot.iter().chain(provisioned.iter()) {
        verification.instances_checked += 1;
        let shown = with_retries(|| {
            checker
                .get(driver.url(&format!("/instances/{}", made.id)))
                .header("authorization", &driver.auth)
                .send()
        })
        .await;
        if shown.0 != 200 {
            verification
                .instances_lost
                .push(format!("{} ({} {})", made.id, shown.0, shown.1));
            continue;
        }
        let call = with_retries(|| {
            checker
                .get(driver.url("/proxy/me"))
                .header("authorization", format!("Element {}", made.token))
                .send()
        })
        .await;
        if call.0 != 200 {
            verification
                .credentials_lost
                .push((made.id, format!("{} {}", call.0, call.1)));
            if orphaned.contains(&made.id) {
                verification.credentials_lost_to_kills.push(made.id);
            }
        }
    }

    // Every accepted event is delivered, at least once.
    let accepted = accepted
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let drained = Instant::now();
    let undelivered = loop {
        let missing = {
            let seen = receiver.seen.lock().unwrap_or_else(PoisonError::into_inner);
            accepted.iter().filter(|s| !seen.contains(s)).count()
        };
        if missing == 0 || drained.elapsed() > o.drain_timeout {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let drain_seconds = drained.elapsed().as_secs_f64();

    // Classify every request against the kills and the database restart.
    let samples = std::mem::take(
        &mut *driver
            .recorder
            .samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    let kill_windows: Vec<(Window, &Kill)> = kills
        .iter()
        .map(|k| {
            let at = load_start + Duration::from_secs_f64(k.at);
            let dead = at + Duration::from_secs_f64(k.dead_after);
            (Window { from: at, to: dead }, k)
        })
        .collect();
    let db = database_window.map(|w| Window {
        from: w.from,
        to: w.to + DATABASE_GRACE,
    });
    let mut served = BTreeMap::new();
    let mut failed_in_flight = BTreeMap::new();
    let mut failed_database_restart = BTreeMap::new();
    let mut failed_unexplained = BTreeMap::new();
    let mut failed_after_lost_rotation = BTreeMap::new();
    let mut steady: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut in_flight_per_kill = vec![0usize; kills.len()];
    // Every failure with its timing and the replica nginx named, for reading afterwards.
    let mut failure_log = String::new();
    let mut around_kill: Vec<Vec<f64>> = vec![Vec::new(); kills.len()];
    for s in &samples {
        let ms = (s.end - s.start).as_secs_f64() * 1000.0;
        for (i, (w, _)) in kill_windows.iter().enumerate() {
            let near = Window {
                from: w.from,
                to: w.from + AROUND_KILL,
            };
            if s.kind.contains("/proxy/") && matches!(s.outcome, Outcome::Ok) && overlaps(s, near) {
                around_kill[i].push(ms);
            }
        }
        match &s.outcome {
            Outcome::Ok => {
                *served.entry(s.kind.to_owned()).or_insert(0) += 1;
                let quiet = kill_windows.iter().all(|(w, _)| {
                    !overlaps(
                        s,
                        Window {
                            from: w.from,
                            to: w.from + AROUND_KILL,
                        },
                    )
                }) && db.is_none_or(|w| !overlaps(s, w));
                if quiet {
                    steady.entry(s.kind.to_owned()).or_default().push(ms);
                }
            }
            failure => {
                let (label, in_flight_candidate, database) = match failure {
                    Outcome::Status {
                        status,
                        code,
                        upstream,
                    } => (
                        format!(
                            "{} → {status}{}",
                            s.kind,
                            code.as_ref().map(|c| format!(" {c}")).unwrap_or_default()
                        ),
                        (*status == 502).then(|| upstream.clone().unwrap_or_default()),
                        *status == 503
                            && code.as_deref().is_some_and(|c| c.starts_with("database_")),
                    ),
                    Outcome::Transport(e) => {
                        (format!("{} → transport error ({e})", s.kind), None, false)
                    }
                    Outcome::Ok => unreachable!("handled above"),
                };
                let killed = in_flight_candidate.and_then(|upstream| {
                    kill_windows.iter().position(|(w, k)| {
                        overlaps(s, *w) && upstream.contains(&format!(":{}", k.port))
                    })
                });
                let upstream = match failure {
                    Outcome::Status { upstream, .. } => upstream.clone().unwrap_or_default(),
                    _ => String::new(),
                };
                let reauthorization = matches!(
                    failure,
                    Outcome::Status { status: 400, code: Some(code), .. }
                        if code == "reauthorization_required"
                );
                let rotation_lost = reauthorization
                    && s.instance
                        .is_some_and(|id| verification.credentials_lost_to_kills.contains(&id));
                let cause = if let Some(i) = killed {
                    in_flight_per_kill[i] += 1;
                    *failed_in_flight.entry(label.clone()).or_insert(0) += 1;
                    "in flight on a killed replica"
                } else if database && db.is_some_and(|w| overlaps(s, w)) {
                    *failed_database_restart.entry(label.clone()).or_insert(0) += 1;
                    "database restart"
                } else if rotation_lost {
                    *failed_after_lost_rotation.entry(label.clone()).or_insert(0) += 1;
                    "through an instance whose refresh died with a killed replica"
                } else {
                    *failed_unexplained.entry(label.clone()).or_insert(0) += 1;
                    "unexplained"
                };
                let _ = writeln!(
                    failure_log,
                    "{:.3}..{:.3} s  {cause}: {label} (upstream {upstream})",
                    s.start.saturating_sub(load_start).as_secs_f64(),
                    s.end.saturating_sub(load_start).as_secs_f64(),
                );
            }
        }
    }
    let _ = writeln!(
        failure_log,
        "kills (s since the load started): {}",
        kills
            .iter()
            .map(|k| {
                format!(
                    "{:.3}..{:.3} replica {} port {}",
                    k.at,
                    k.at + k.dead_after,
                    k.replica,
                    k.port
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::fs::write(o.work_dir.join("failures.txt"), failure_log)?;
    let kills = kills
        .into_iter()
        .zip(around_kill)
        .zip(in_flight_per_kill)
        .map(|((kill, ms), failed_in_flight)| KillRow {
            kill,
            calls: percentiles(ms),
            failed_in_flight,
        })
        .collect();

    drop(nginx);
    for replica in &mut replicas {
        if let Some(mut child) = replica.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    Ok(Report {
        seconds,
        replicas: o.replicas,
        served,
        failed_in_flight,
        failed_database_restart,
        failed_after_lost_rotation,
        failed_unexplained,
        steady: steady
            .into_iter()
            .map(|(k, v)| (k, percentiles(v)))
            .collect(),
        kills,
        database_restart: database_window.map(|w| {
            (
                (w.from.saturating_sub(load_start)).as_secs_f64(),
                (w.to.saturating_sub(load_start)).as_secs_f64(),
            )
        }),
        hot_instances: o.hot_instances,
        token_expiries,
        refresh_grants,
        refresh_errors,
        invalid_grant,
        provisioned: provisioned.len(),
        verification,
        events_accepted: accepted.len(),
        events_delivered: accepted.len() - undelivered,
        events_undelivered: undelivered,
        event_duplicates: receiver.duplicates.load(Ordering::Relaxed),
        drain_seconds,
    })
}

//! `junction-bench provision-real`: provisioning against a real OAuth server (oidc-provider
//! from `tests/peers/oidc`), beside that server's own rate for the same code exchanges.
//!
//! Codes are single-use and the exchange is what is measured, so every run gets fresh
//! codes issued just before it. They come from the server's real authorization flow,
//! driven over plain HTTP: `GET /auth` with the query Junction builds for `sfdc`, then the
//! interaction and resume redirects, with a cookie jar per issuing worker (its login
//! session and grant are reused, so later authorizations skip the interaction), until the
//! redirect to the client's callback carries the code.
//!
//! Per number of connections, in the same run: the server's own rate (a driver posting
//! each code's exchange straight to its token endpoint as the `sfdc` element does:
//! `client_secret_post`, `Accept: application/json`, kept-alive connections like any
//! ordinary client), then Junction's (`POST /instances` with a code, on each Junction
//! given). The driver's exchange on a fresh connection each, for information, tells what
//! a client opening one per token call would cost the server.

use anyhow::{Context, bail};
use junction_testkit::browser::Browser;
use junction_testkit::peers::{CLIENT_ID, CLIENT_SECRET, Peer, PeerKind, REDIRECT_URI};
use reqwest::header::ACCEPT;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use url::Url;

/// Codes live this long at the server during the benchmark: issuing a run's codes and
/// the run itself take well under it even at one connection.
pub const CODE_TTL_SECONDS: u64 = 600;
/// Linux reports process CPU time in these ticks a second (`USER_HZ`, fixed for
/// userspace whatever the kernel's `HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// The authorization URL at `peer` for an `sfdc` instance: the query Junction builds
/// (`GET /elements/sfdc/oauth/url` with the peer's client), on the peer's own endpoint.
pub async fn authorization_url(
    http: &reqwest::Client,
    api: &str,
    authorization: &str,
    peer: &Peer,
) -> anyhow::Result<Url> {
    let answer = http
        .get(format!("{api}/elements/sfdc/oauth/url"))
        .query(&[
            ("apiKey", CLIENT_ID),
            ("apiSecret", CLIENT_SECRET),
            ("callbackUrl", REDIRECT_URI),
        ])
        .header("authorization", authorization)
        .send()
        .await?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("GET /elements/sfdc/oauth/url answered {status}: {body}");
    }
    let built = Url::parse(
        body["oauthUrl"]
            .as_str()
            .context("the OAuth URL answer has no oauthUrl")?,
    )?;
    let mut at_peer = Url::parse(&peer.authorize_url())?;
    at_peer.set_query(built.query());
    Ok(at_peer)
}

/// One user agent at the authorization server, keeping its cookies (so its login
/// session and grant) from one authorization to the next.
pub struct CodeIssuer {
    browser: Browser,
    authorize: Url,
}

impl CodeIssuer {
    pub fn new(authorize: Url) -> anyhow::Result<Self> {
        Ok(Self {
            browser: Browser::new(),
            authorize,
        })
    }

    /// A new authorization code.
    pub async fn code(&self) -> anyhow::Result<String> {
        let callback = self
            .browser
            .try_authorize(self.authorize.as_str(), REDIRECT_URI)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        match callback.code {
            Some(code) => Ok(code),
            None => bail!(
                "the authorization ended without a code: {}",
                callback.error.unwrap_or_default()
            ),
        }
    }
}

/// `count` fresh codes from `workers` user agents at once.
pub async fn issue_codes(
    authorize: &Url,
    count: usize,
    workers: usize,
) -> anyhow::Result<Vec<String>> {
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(count));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.clamp(1, count.max(1)) {
        let issuer = CodeIssuer::new(authorize.clone())?;
        let left = Arc::clone(&left);
        tasks.spawn(async move {
            let mut codes = Vec::new();
            while left
                .fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                codes.push(issuer.code().await?);
            }
            anyhow::Ok(codes)
        });
    }
    let mut codes = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        codes.extend(done??);
    }
    Ok(codes)
}

/// The code exchange the `sfdc` element makes (RFC 6749 §4.1.3, the client's credentials
/// in the body), posted straight to the server's token endpoint.
pub async fn exchange(http: &reqwest::Client, token_url: &str, code: &str) -> anyhow::Result<()> {
    let answer = http
        .post(token_url)
        .header(ACCEPT, "application/json")
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    if !status.is_success() || !body["access_token"].is_string() {
        bail!("the token endpoint answered {status}: {body}");
    }
    Ok(())
}

/// An instance a provisioning made.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub id: i64,
    pub token: String,
}

/// `POST /instances` for `sfdc` with `code`, its token URL and API at `peer`.
pub async fn provision(
    http: &reqwest::Client,
    api: &str,
    authorization: &str,
    peer: &PeerUrls,
    code: &str,
    name: &str,
) -> anyhow::Result<Provisioned> {
    let body = json!({
        "element": {"key": "sfdc"},
        "providerData": {"code": code},
        "configuration": {
            "oauth.api.key": CLIENT_ID,
            "oauth.api.secret": CLIENT_SECRET,
            "oauth.callback.url": REDIRECT_URI,
            "oauth.token.url": peer.token_url,
            "base.url": peer.api_url,
        },
        "name": name,
    });
    let answer = http
        .post(format!("{api}/instances"))
        .header("authorization", authorization)
        .json(&body)
        .send()
        .await?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST /instances answered {status}: {body}");
    }
    Ok(Provisioned {
        id: body["id"].as_i64().context("the instance has no id")?,
        token: body["token"]
            .as_str()
            .context("the instance has no token")?
            .to_owned(),
    })
}

/// Where an instance reaches the server.
#[derive(Debug, Clone)]
pub struct PeerUrls {
    pub token_url: String,
    pub api_url: String,
}

impl PeerUrls {
    pub fn of(peer: &Peer) -> Self {
        Self {
            token_url: peer.token_url(),
            api_url: peer.api_url(),
        }
    }
}

/// A Junction to provision through.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its label in the report, e.g. `sqlite`.
    pub name: String,
    /// The API base, e.g. `http://127.0.0.1:8080/elements/api-v2`.
    pub api: String,
    /// Its process, for its CPU time.
    pub pid: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// At least one; the first also builds the authorization URL.
    pub targets: Vec<Target>,
    pub authorization: String,
    /// Measured exchanges or provisionings per run.
    pub count: usize,
    /// Unmeasured ones at the start of every run.
    pub warmup: usize,
    pub connections: Vec<usize>,
    /// Also the server's rate with a new connection per exchange, at these connections.
    pub fresh_connections: Vec<usize>,
    /// User agents issuing codes at once.
    pub issuers: usize,
}

/// One measured run.
#[derive(Debug, Serialize)]
pub struct Run {
    /// `provider` (the driver straight at the token endpoint) or a target's name.
    pub target: String,
    pub connections: usize,
    /// Whether the driver kept its connections alive (always, but for the variant).
    pub keep_alive: bool,
    pub count: usize,
    pub seconds: f64,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Cores each process used during the run: `provider` (oidc-provider), `driver`
    /// (this process), the Junction measured, and `other`: every other process of the
    /// machine.
    pub cores: BTreeMap<String, f64>,
    /// The Junction measured: CPU microseconds per provisioning by kind of thread, user
    /// and system time apart. Threads that ended during the run are missed.
    pub junction_threads: BTreeMap<String, ThreadCpu>,
}

#[derive(Debug, Serialize)]
pub struct ThreadCpu {
    pub user_us: f64,
    pub system_us: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub count: usize,
    pub warmup: usize,
    pub codes_issued: usize,
    /// Codes a second while issuing (the authorization flow at the server).
    pub issue_rate: f64,
    pub runs: Vec<Run>,
}

/// CPU seconds a process has used so far (user and system), from `/proc/<pid>/stat`.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces; the fields after it are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

/// CPU seconds the whole machine has been busy so far (all CPUs, from `/proc/stat`).
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
    let total: f64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total - idle) / TICKS_PER_SECOND)
}

/// CPU seconds each kind of thread of process `pid` has used so far, user and system
/// apart: threads named alike but for a number (`sqlx-sqlite-worker-3`) count together.
fn cpu_by_thread(pid: u32) -> BTreeMap<String, (f64, f64)> {
    let mut kinds = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return kinds;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close]
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
            .to_owned();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let tick = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
                / TICKS_PER_SECOND
        };
        let entry = kinds.entry(name).or_insert((0.0, 0.0));
        entry.0 += tick(11);
        entry.1 += tick(12);
    }
    kinds
}

/// Runs `one` for every code, `connections` at a time; the latency of each.
async fn drive<F, Fut>(
    codes: Vec<String>,
    connections: usize,
    one: F,
) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let codes = Arc::new(Mutex::new(codes));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let (codes, one) = (Arc::clone(&codes), one.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let code = codes.lock().unwrap_or_else(PoisonError::into_inner).pop();
                let Some(code) = code else { break };
                let t = Instant::now();
                one(code).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = workers.join_next().await {
        latencies.extend(done??);
    }
    Ok(latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// What a run exchanges its codes through.
#[derive(Clone)]
enum Via {
    Provider {
        http: reqwest::Client,
        token_url: Arc<str>,
    },
    Junction {
        http: reqwest::Client,
        api: Arc<str>,
        authorization: Arc<str>,
        peer: Arc<PeerUrls>,
    },
}

impl Via {
    async fn one(self, code: String) -> anyhow::Result<()> {
        match self {
            Via::Provider { http, token_url } => exchange(&http, &token_url, &code).await,
            Via::Junction {
                http,
                api,
                authorization,
                peer,
            } => provision(&http, &api, &authorization, &peer, &code, "provisioned")
                .await
                .map(|_| ()),
        }
    }
}

/// The driver's client: kept-alive connections, or a new one per request.
fn client(connections: usize, keep_alive: bool) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(if keep_alive { connections } else { 0 })
        .build()?)
}

struct Bench<'a> {
    options: &'a Options,
    authorize: Url,
    peer_pid: u32,
    issued: usize,
    issuing: Duration,
}

impl Bench<'_> {
    async fn codes(&mut self, n: usize) -> anyhow::Result<Vec<String>> {
        let started = Instant::now();
        let codes = issue_codes(&self.authorize, n, self.options.issuers).await?;
        self.issuing += started.elapsed();
        self.issued += codes.len();
        Ok(codes)
    }

    async fn run(
        &mut self,
        label: &str,
        via: Via,
        connections: usize,
        keep_alive: bool,
        junction_pid: Option<u32>,
    ) -> anyhow::Result<Run> {
        let warmup = self.codes(self.options.warmup).await?;
        let one = {
            let via = via.clone();
            move |code| via.clone().one(code)
        };
        drive(warmup, connections, one.clone()).await?;
        let codes = self.codes(self.options.count).await?;
        // `None`: this process.
        let mut processes = vec![("provider", Some(self.peer_pid)), ("driver", None)];
        if let Some(pid) = junction_pid {
            processes.push((label, Some(pid)));
        }
        let before: Vec<Option<f64>> = processes.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
        let threads_before = junction_pid.map(cpu_by_thread).unwrap_or_default();
        let machine_before = machine_busy_seconds();
        let started = Instant::now();
        let mut latencies = drive(codes, connections, one).await?;
        let seconds = started.elapsed().as_secs_f64();
        let machine_after = machine_busy_seconds();
        let n = latencies.len().max(1) as f64;
        let mut junction_threads = BTreeMap::new();
        for (kind, (user, system)) in junction_pid.map(cpu_by_thread).unwrap_or_default() {
            let (user0, system0) = threads_before.get(&kind).copied().unwrap_or((0.0, 0.0));
            junction_threads.insert(
                kind,
                ThreadCpu {
                    user_us: (user - user0) * 1e6 / n,
                    system_us: (system - system0) * 1e6 / n,
                },
            );
        }
        let mut cores = BTreeMap::new();
        for ((name, pid), before) in processes.iter().zip(before) {
            if let (Some(before), Some(after)) = (before, cpu_seconds(*pid)) {
                cores.insert((*name).to_owned(), (after - before) / seconds);
            }
        }
        // Whatever else ran on the machine meanwhile: its busy time less this run's
        // processes'.
        if let (Some(before), Some(after)) = (machine_before, machine_after) {
            let ours: f64 = cores.values().sum();
            cores.insert(
                "other".to_owned(),
                ((after - before) / seconds - ours).max(0.0),
            );
        }
        latencies.sort();
        let run = Run {
            target: label.to_owned(),
            connections,
            keep_alive,
            count: latencies.len(),
            seconds,
            rate: latencies.len() as f64 / seconds,
            p50_ms: percentile(&latencies, 50.0),
            p99_ms: percentile(&latencies, 99.0),
            cores,
            junction_threads,
        };
        eprintln!(
            "{label} at {connections} connection(s){}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
            if keep_alive {
                ""
            } else {
                ", a new one per exchange"
            },
            run.rate,
            run.p50_ms,
            run.p99_ms
        );
        Ok(run)
    }
}

/// What `junction-bench provision-steps` does, for `bench/profile.sh provision`.
#[derive(Debug, Clone)]
pub struct Steps {
    pub api: String,
    pub authorization: String,
    pub warmup: usize,
    pub count: usize,
    pub connections: usize,
    pub issuers: usize,
}

/// Starts oidc-provider, issues every code the two steps need, provisions `warmup`
/// instances through Junction, then waits for `between` (a profiler zeroing its
/// counters) before provisioning `count` more. The codes are issued before anything is
/// provisioned, and the authorization URL is asked of Junction only then, so the second
/// step is nothing but provisionings.
pub async fn steps<F, Fut>(steps: Steps, between: F) -> anyhow::Result<usize>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let peer = Peer::start(
        PeerKind::Oidc,
        &[("CODE_TTL", &CODE_TTL_SECONDS.to_string())],
    )
    .await;
    let urls = Arc::new(PeerUrls::of(&peer));
    let http = client(steps.connections, true)?;
    let authorize = authorization_url(&http, &steps.api, &steps.authorization, &peer).await?;
    let mut codes = issue_codes(&authorize, steps.warmup + steps.count, steps.issuers).await?;
    let measured = codes.split_off(steps.warmup);
    let via = Via::Junction {
        http,
        api: steps.api.as_str().into(),
        authorization: steps.authorization.as_str().into(),
        peer: urls,
    };
    let one = move |code| via.clone().one(code);
    drive(codes, steps.connections, one.clone()).await?;
    between().await?;
    Ok(drive(measured, steps.connections, one).await?.len())
}

/// Starts oidc-provider and measures, per number of connections, its own exchange rate
/// and every target's provisioning rate against it.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let first = options.targets.first().context("no Junction to measure")?;
    let peer = Peer::start(
        PeerKind::Oidc,
        &[("CODE_TTL", &CODE_TTL_SECONDS.to_string())],
    )
    .await;
    let urls = Arc::new(PeerUrls::of(&peer));
    let setup = client(1, true)?;
    let authorize = authorization_url(&setup, &first.api, &options.authorization, &peer).await?;
    let mut bench = Bench {
        options: &options,
        authorize,
        peer_pid: peer.pid(),
        issued: 0,
        issuing: Duration::ZERO,
    };
    let mut runs = Vec::new();
    for &connections in &options.connections {
        let via = Via::Provider {
            http: client(connections, true)?,
            token_url: urls.token_url.as_str().into(),
        };
        runs.push(bench.run("provider", via, connections, true, None).await?);
        for target in &options.targets {
            let via = Via::Junction {
                http: client(connections, true)?,
                api: target.api.as_str().into(),
                authorization: options.authorization.as_str().into(),
                peer: Arc::clone(&urls),
            };
            runs.push(
                bench
                    .run(&target.name, via, connections, true, target.pid)
                    .await?,
            );
        }
    }
    for &connections in &options.fresh_connections {
        let via = Via::Provider {
            http: client(connections, false)?,
            token_url: urls.token_url.as_str().into(),
        };
        runs.push(bench.run("provider", via, connections, false, None).await?);
    }
    Ok(Report {
        count: options.count,
        warmup: options.warmup,
        codes_issued: bench.issued,
        issue_rate: bench.issued as f64 / bench.issuing.as_secs_f64().max(1e-9),
        runs,
    })
}

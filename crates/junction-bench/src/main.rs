//! Load drivers for `bench/instances.sh`: seed an account with N instances straight
//! through the store (the same code and encryption Junction uses), then walk
//! `GET /instances?pageSize=…` page by page over HTTP and time every page, and time
//! `GET /instances/{id}` for random ids. For `bench/proxy/run.sh`, `bare-proxy` is the
//! HTTP stack Junction's proxy is built on (axum in, reqwest out, bodies streamed) with
//! none of Junction's own work, to tell the stack's cost from Junction's. `events`
//! drives `bench/events.sh`: webhooks in, notifications out, through one Junction. For
//! `bench/hub.sh`, `salesforce` runs the Salesforce stand-in and `hub-walk` walks a
//! collection straight against it or through Junction (see `hub.rs`). For
//! `bench/replicas.sh`, `replicas` runs replicas behind nginx, kills them under load and
//! checks what survived (see the library's `replicas` module). For `bench/million.sh`,
//! `provision`, `ready-time`, `spread-expiries` and `sweep-count` (see `million.rs`). For
//! `bench/provision.sh`, `provision-real` provisions against the real OAuth server beside
//! that server's own exchange rate (see the library's `provision` module); for
//! `bench/profile.sh provision`, `provision-steps` provisions against it in two steps, so
//! a profiler can count the second alone.

mod events;
mod hub;
mod million;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Parser, Subcommand};
use junction_bench::provision;
use junction_core::{AccountId, ConfigMap, Secret, UserId};
use junction_crypto::Keyring;
use junction_store::{DatabaseUrl, NewInstance, Store};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Load drivers for Junction's instance benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Insert COUNT instances for the first account of a migrated database.
    Seed {
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        encryption_key: String,
        #[arg(long)]
        count: usize,
        /// Give every instance a refresh token renewed at this token endpoint.
        #[arg(long)]
        token_url: Option<String>,
        /// Store every access token as already expired, so all are due at once.
        #[arg(long, requires = "token_url")]
        due: bool,
        /// Spread the seeded instances' token expiries evenly over this many seconds from
        /// the end of seeding, as `spread-expiries` does.
        #[arg(long, requires = "token_url", conflicts_with = "due")]
        spread_seconds: Option<u64>,
        /// Instances written per transaction.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Spread the token expiries of the seeded instances evenly, in id order, over
    /// SECONDS starting OFFSET seconds from now; prints the start and span in ms.
    SpreadExpiries {
        /// With its scheme: sqlite://… or postgres://…
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 3600)]
        seconds: u64,
        #[arg(long, default_value_t = 0)]
        offset_seconds: u64,
    },
    /// After a refresh sweep window over expiries from `spread-expiries`: renewed, fallen
    /// due and expired seeded instances, as JSON.
    SweepCount {
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        start_ms: i64,
        #[arg(long)]
        span_ms: i64,
        /// When the measured window ended (epoch ms).
        #[arg(long)]
        window_end_ms: i64,
    },
    /// COUNT provisionings through POST /instances, CONCURRENCY at a time, each
    /// exchanging a code at TOKEN_URL; prints the rate and latency as JSON.
    Provision {
        #[arg(long)]
        api: String,
        #[arg(long)]
        authorization: String,
        #[arg(long)]
        token_url: String,
        #[arg(long, default_value_t = 2000)]
        count: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Unmeasured provisionings first.
        #[arg(long, default_value_t = 50)]
        warmup: usize,
    },
    /// Start COMMAND RUNS times and time each from exec to the first 200 of URL; prints
    /// every time and the median as JSON.
    ReadyTime {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Wait until none of the database's instances is due for a refresh, and print the
    /// seconds from the first renewal seen to that moment, and how many were renewed.
    WaitRefreshed {
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        encryption_key: String,
        /// The instances due at the start.
        #[arg(long)]
        count: usize,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Walk every page of GET /instances and print latency percentiles as JSON.
    Walk {
        /// The API base, e.g. http://127.0.0.1:8080/elements/api-v2
        #[arg(long)]
        api: String,
        #[arg(long)]
        authorization: String,
        #[arg(long, default_value_t = 100)]
        page_size: usize,
        /// Also time this many GET /instances/{id} for ids spread over the walk.
        #[arg(long, default_value_t = 2000)]
        gets: usize,
        /// Unmeasured pages fetched first, so a freshly started server has opened its
        /// database connections and prepared its statements before timing starts.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Time only this many pages, spread evenly over the id range (the first page,
        /// then pages starting at every Nth id) instead of walking to the end.
        #[arg(long)]
        sample_pages: Option<usize>,
    },
    /// Webhooks in and notifications out through a running Junction: throughput,
    /// latency at light, half and full load, and the backlog after an outage. Prints JSON.
    Events {
        /// The API base, e.g. http://127.0.0.1:8080/elements/api-v2
        #[arg(long)]
        api: String,
        #[arg(long)]
        authorization: String,
        /// Webhooks in the throughput run.
        #[arg(long, default_value_t = 20_000)]
        count: u64,
        /// Concurrent senders in the throughput run.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Seconds of each latency run.
        #[arg(long, default_value_t = 10.0)]
        phase_seconds: f64,
        /// Webhooks a second at light load.
        #[arg(long, default_value_t = 50.0)]
        light_rate: f64,
        /// Seconds the receiver answers 503.
        #[arg(long, default_value_t = 60.0)]
        outage_seconds: f64,
        /// Webhooks a second during the outage.
        #[arg(long, default_value_t = 200.0)]
        outage_rate: f64,
    },
    /// Forward every request to UPSTREAM with a fixed Authorization header, streaming
    /// both ways: axum and reqwest as Junction uses them, and nothing else.
    BareProxy {
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// e.g. http://127.0.0.1:8081
        #[arg(long)]
        upstream: String,
        /// Give the client Junction's read timeout (seconds), to measure what it costs.
        #[arg(long)]
        read_timeout: Option<u64>,
        /// The Authorization header sent upstream in place of the caller's.
        #[arg(long, default_value = "Bearer bench-provider-token")]
        authorization: String,
    },
    /// Serve the Salesforce stand-in with this many Accounts and Contacts, and a token
    /// endpoint naming it as `instance_url`; print their addresses as JSON.
    Salesforce {
        #[arg(long, default_value_t = 100_000)]
        accounts: usize,
        #[arg(long, default_value_t = 10_000)]
        contacts: usize,
    },
    /// Several `junction serve` replicas on one PostgreSQL behind nginx under mixed load,
    /// one SIGKILLed and restarted every KILL_EVERY seconds; prints the report as JSON and
    /// writes its tables to MARKDOWN.
    Replicas {
        #[arg(long)]
        junction: PathBuf,
        #[arg(long, default_value = "/usr/sbin/nginx")]
        nginx: PathBuf,
        /// An empty PostgreSQL database.
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        work_dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        /// Seconds of load.
        #[arg(long, default_value_t = 300)]
        duration: u64,
        #[arg(long, default_value_t = 30)]
        kill_every: u64,
        /// A shell command that stops and starts PostgreSQL, run once.
        #[arg(long)]
        restart_database: Option<String>,
        /// Seconds into the load when PostgreSQL is restarted.
        #[arg(long, default_value_t = 135)]
        restart_database_at: u64,
        #[arg(long, default_value_t = 20)]
        hot_instances: usize,
        #[arg(long, default_value_t = 8)]
        callers: usize,
        /// Milliseconds between provisionings.
        #[arg(long, default_value_t = 1000)]
        provision_every_ms: u64,
        #[arg(long, default_value_t = 20.0)]
        event_rate: f64,
        #[arg(long, default_value_t = 120)]
        drain_timeout: u64,
        #[arg(long, default_value_t = 5)]
        outbound_timeout: u64,
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
    /// Start oidc-provider and, per number of connections, exchange COUNT fresh codes
    /// straight at its token endpoint, then provision COUNT instances with fresh codes
    /// through every Junction given; prints the report as JSON.
    ProvisionReal {
        /// A Junction to provision through, as NAME=API_BASE (repeatable), e.g.
        /// sqlite=http://127.0.0.1:8080/elements/api-v2.
        #[arg(long = "junction", required = true, value_parser = name_value)]
        junctions: Vec<(String, String)>,
        /// The process of the Junction NAME, as NAME=PID, for its CPU time.
        #[arg(long = "pid", value_parser = name_value)]
        pids: Vec<(String, String)>,
        #[arg(long)]
        authorization: String,
        #[arg(long, default_value_t = 2000)]
        count: usize,
        #[arg(long, default_value_t = 100)]
        warmup: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
        connections: Vec<usize>,
        /// Also the provider's rate with a new connection per exchange at these
        /// connections (0: none).
        #[arg(long, value_delimiter = ',', default_value = "1,4")]
        fresh_connections: Vec<usize>,
        /// Authorizations at the provider at once while issuing codes.
        #[arg(long, default_value_t = 4)]
        issuers: usize,
    },
    /// Start oidc-provider, issue WARMUP + COUNT codes, provision WARMUP instances through
    /// the Junction at API, print `warm` and wait for a line on stdin, then provision
    /// COUNT and print `done COUNT` (for `bench/profile.sh provision`).
    ProvisionSteps {
        #[arg(long)]
        api: String,
        #[arg(long)]
        authorization: String,
        #[arg(long, default_value_t = 50)]
        warmup: usize,
        #[arg(long, default_value_t = 300)]
        count: usize,
        #[arg(long, default_value_t = 4)]
        connections: usize,
        #[arg(long, default_value_t = 4)]
        issuers: usize,
    },
    /// Walk a paged collection to the end and print the fastest of REPEAT walks as JSON.
    HubWalk {
        #[arg(long, value_enum)]
        via: hub::Via,
        /// `direct`: the stand-in's address; `junction`: the API base.
        #[arg(long)]
        url: String,
        /// The whole Authorization header value.
        #[arg(long)]
        authorization: String,
        /// `direct`: the SOQL statement; `junction`: the hub path (with its query).
        #[arg(long)]
        target: String,
        #[arg(long)]
        page_size: usize,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Seed {
            database_url,
            encryption_key,
            count,
            token_url,
            due,
            spread_seconds,
            batch,
        } => {
            seed(
                &database_url,
                &encryption_key,
                count,
                token_url.as_deref(),
                due,
                batch,
            )
            .await?;
            if let Some(seconds) = spread_seconds {
                let span = i64::try_from(seconds)?.saturating_mul(1000);
                million::spread_expiries(&database_url, now_ms(), span).await?;
            }
            Ok(())
        }
        Command::SpreadExpiries {
            database_url,
            seconds,
            offset_seconds,
        } => {
            let start = now_ms() + i64::try_from(offset_seconds)? * 1000;
            let span = i64::try_from(seconds)? * 1000;
            let (lo, width) = million::spread_expiries(&database_url, start, span).await?;
            println!(
                "{}",
                serde_json::json!({"start_ms": start, "span_ms": span, "lo": lo, "width": width})
            );
            Ok(())
        }
        Command::SweepCount {
            database_url,
            start_ms,
            span_ms,
            window_end_ms,
        } => million::sweep_count(&database_url, start_ms, span_ms, window_end_ms).await,
        Command::Provision {
            api,
            authorization,
            token_url,
            count,
            concurrency,
            warmup,
        } => million::provision(&api, &authorization, &token_url, count, concurrency, warmup).await,
        Command::ReadyTime {
            url,
            runs,
            timeout,
            command,
        } => million::ready_time(&url, runs, Duration::from_secs(timeout), &command).await,
        Command::WaitRefreshed {
            database_url,
            encryption_key,
            count,
            timeout,
        } => wait_refreshed(&database_url, &encryption_key, count, timeout).await,
        Command::Walk {
            api,
            authorization,
            page_size,
            gets,
            warmup,
            sample_pages,
        } => walk(&api, &authorization, page_size, gets, warmup, sample_pages).await,
        Command::BareProxy {
            listen,
            upstream,
            read_timeout,
            authorization,
        } => bare_proxy(listen, upstream, read_timeout, authorization).await,
        Command::Events {
            api,
            authorization,
            count,
            concurrency,
            phase_seconds,
            light_rate,
            outage_seconds,
            outage_rate,
        } => {
            events::run(events::Options {
                api,
                authorization,
                count,
                concurrency,
                phase_seconds,
                light_rate,
                outage_seconds,
                outage_rate,
            })
            .await
        }
        Command::Replicas {
            junction,
            nginx,
            database_url,
            work_dir,
            replicas,
            duration,
            kill_every,
            restart_database,
            restart_database_at,
            hot_instances,
            callers,
            provision_every_ms,
            event_rate,
            drain_timeout,
            outbound_timeout,
            markdown,
        } => {
            let report = junction_bench::replicas::run(junction_bench::replicas::Options {
                junction,
                nginx,
                database_url,
                work_dir,
                replicas,
                duration: Duration::from_secs(duration),
                kill_every: Duration::from_secs(kill_every),
                restart_database,
                restart_database_at: Duration::from_secs(restart_database_at),
                hot_instances,
                callers,
                provision_every: Duration::from_millis(provision_every_ms),
                event_rate,
                drain_timeout: Duration::from_secs(drain_timeout),
                outbound_timeout,
            })
            .await?;
            if let Some(path) = markdown {
                std::fs::write(&path, report.markdown())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::ProvisionReal {
            junctions,
            pids,
            authorization,
            count,
            warmup,
            connections,
            fresh_connections,
            issuers,
        } => {
            let mut targets = Vec::new();
            for (name, api) in junctions {
                let pid = match pids.iter().find(|(n, _)| *n == name) {
                    Some((_, pid)) => Some(pid.parse().with_context(|| format!("pid {pid}"))?),
                    None => None,
                };
                targets.push(provision::Target { name, api, pid });
            }
            let report = provision::run(provision::Options {
                targets,
                authorization,
                count,
                warmup,
                connections,
                fresh_connections: fresh_connections.into_iter().filter(|&c| c > 0).collect(),
                issuers,
            })
            .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::ProvisionSteps {
            api,
            authorization,
            warmup,
            count,
            connections,
            issuers,
        } => {
            let steps = provision::Steps {
                api,
                authorization,
                warmup,
                count,
                connections,
                issuers,
            };
            let done = provision::steps(steps, || async {
                println!("warm");
                let mut line = String::new();
                tokio::io::AsyncBufReadExt::read_line(
                    &mut tokio::io::BufReader::new(tokio::io::stdin()),
                    &mut line,
                )
                .await?;
                Ok(())
            })
            .await?;
            println!("done {done}");
            Ok(())
        }
        Command::Salesforce { accounts, contacts } => {
            hub::serve_salesforce(accounts, contacts).await
        }
        Command::HubWalk {
            via,
            url,
            authorization,
            target,
            page_size,
            repeat,
        } => hub::walk(via, &url, &authorization, &target, page_size, repeat).await,
    }
}

/// `NAME=VALUE`.
fn name_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{raw:?} is not NAME=VALUE"))
}

async fn bare_proxy(
    listen: std::net::SocketAddr,
    upstream: String,
    read_timeout: Option<u64>,
    authorization: String,
) -> anyhow::Result<()> {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::response::Response;
    #[derive(Clone)]
    struct Upstream {
        client: reqwest::Client,
        base: Arc<str>,
        authorization: Arc<str>,
    }
    async fn forward(State(up): State<Upstream>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        // Held in memory as Junction holds small bodies (so a call can be replayed).
        let Ok(body) = axum::body::to_bytes(body, 1024 * 1024).await else {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = axum::http::StatusCode::PAYLOAD_TOO_LARGE;
            return response;
        };
        let sent = up
            .client
            .request(parts.method, format!("{}{path}", up.base))
            .header("authorization", &*up.authorization)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(answer) => {
                let (head, body) = axum::http::Response::<reqwest::Body>::from(answer).into_parts();
                Response::from_parts(head, Body::new(body))
            }
            Err(_) => {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = axum::http::StatusCode::BAD_GATEWAY;
                response
            }
        }
    }
    let mut client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(seconds) = read_timeout {
        client = client.read_timeout(Duration::from_secs(seconds));
    }
    let state = Upstream {
        client: client.build()?,
        base: upstream.trim_end_matches('/').into(),
        authorization: authorization.into(),
    };
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn open(database_url: &str, key: &str) -> anyhow::Result<Store> {
    let url = DatabaseUrl::parse(database_url).map_err(|e| anyhow::anyhow!("{e}"))?;
    let keyring = Keyring::parse(&Secret::new(key)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = Store::connect(&url, Arc::new(keyring)).await?;
    store.migrate().await?;
    Ok(store)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn wait_refreshed(
    database_url: &str,
    key: &str,
    count: usize,
    timeout: u64,
) -> anyhow::Result<()> {
    let store = open(database_url, key).await?;
    let started = Instant::now();
    let mut first_renewal: Option<Instant> = None;
    loop {
        // Due now or within the sweep's five-minute margin, as Junction counts them.
        let now = now_ms();
        let due = store
            .instances_due_for_refresh(now, now + 5 * 60 * 1000, None, i64::MAX / 2)
            .await?
            .len();
        if due < count && first_renewal.is_none() {
            first_renewal = Some(Instant::now());
        }
        if due == 0 {
            let seconds = first_renewal.map_or(0.0, |t| t.elapsed().as_secs_f64());
            println!("{seconds:.2} {count}");
            store.close().await;
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(timeout) {
            println!("{:.2} {}", timeout, count - due);
            store.close().await;
            bail!("{due} of {count} instances were still due after {timeout} s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn seed(
    database_url: &str,
    key: &str,
    count: usize,
    token_url: Option<&str>,
    due: bool,
    batch: usize,
) -> anyhow::Result<()> {
    let store = open(database_url, key).await?;
    let mut public: ConfigMap = [
        (
            "base.url".to_owned(),
            Some("https://login.salesforce.com".to_owned()),
        ),
        (
            "oauth.callback.url".to_owned(),
            Some("https://app.example.com/cb".to_owned()),
        ),
        (
            "event.notification.enabled".to_owned(),
            Some("false".to_owned()),
        ),
    ]
    .into();
    let mut secrets: ConfigMap = [
        ("oauth.api.key".to_owned(), Some("client".to_owned())),
        (
            "oauth.api.secret".to_owned(),
            Some("client-secret".to_owned()),
        ),
        (
            "oauth.user.token".to_owned(),
            Some("access-token".to_owned()),
        ),
    ]
    .into();
    if let Some(token_url) = token_url {
        public.insert("oauth.token.url".to_owned(), Some(token_url.to_owned()));
        secrets.insert(
            "oauth.user.refresh_token".to_owned(),
            Some("rt-seed".to_owned()),
        );
    }
    let token_expires_at = due.then(now_ms);
    let started = Instant::now();
    // Names unique across several seedings of one database.
    let run = now_ms();
    // A few concurrent writers, each committing BATCH instances at a time: sealing runs
    // beside another writer's transaction.
    let mut tasks = Vec::new();
    let per_task = count.div_ceil(4);
    let batch = batch.max(1);
    for t in 0..4 {
        let (store, public, secrets) = (store.clone(), public.clone(), secrets.clone());
        let n = per_task.min(count.saturating_sub(t * per_task));
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < n {
                let size = batch.min(n - done);
                let mut tokens = Vec::with_capacity(size);
                let mut names = Vec::with_capacity(size);
                let mut tags = Vec::with_capacity(size);
                for i in done..done + size {
                    tokens.push(
                        junction_crypto::generate_secret(30).map_err(|e| anyhow::anyhow!("{e}"))?,
                    );
                    names.push(format!("bench {run}-{t}-{i}"));
                    tags.push(vec![format!("customer-{}", i % 1000)]);
                }
                let news: Vec<NewInstance<'_>> = (0..size)
                    .map(|k| NewInstance {
                        account_id: AccountId(1),
                        user_id: UserId(1),
                        element_id: 23,
                        element_key: "sfdc",
                        name: &names[k],
                        token: &tokens[k],
                        config: &public,
                        secrets: &secrets,
                        tags: &tags[k],
                        external_authentication: "initial",
                        token_expires_at,
                        now: 0,
                    })
                    .collect();
                store.insert_instances(&news).await?;
                done += size;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    eprintln!(
        "seeded {count} instances in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

async fn walk(
    api: &str,
    authorization: &str,
    page_size: usize,
    gets: usize,
    warmup: usize,
    sample_pages: Option<usize>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut cursor: Option<String> = None;
    for _ in 0..warmup {
        let mut url = format!("{api}/instances?pageSize={page_size}");
        if let Some(c) = &cursor {
            url.push_str("&nextPage=");
            url.push_str(c);
        }
        let response = http
            .get(&url)
            .header("Authorization", authorization)
            .send()
            .await?;
        cursor = response
            .headers()
            .get("elements-next-page-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        response.bytes().await?;
        if cursor.is_none() {
            break;
        }
    }
    let mut latencies = Vec::new();
    let mut ids: Vec<i64> = Vec::new();
    let mut cursor: Option<String> = None;
    // Sampling: ids are dense from 1, so page k starts after id k × stride.
    let mut stride: Option<i64> = None;
    let mut first_total: Option<i64> = None;
    let started = Instant::now();
    loop {
        let mut url = format!("{api}/instances?pageSize={page_size}");
        if let Some(c) = &cursor {
            url.push_str("&nextPage=");
            url.push_str(c);
        }
        let t = Instant::now();
        let response = http
            .get(&url)
            .header("Authorization", authorization)
            .send()
            .await?;
        let status = response.status();
        let next = response
            .headers()
            .get("elements-next-page-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let total = response
            .headers()
            .get("elements-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        let body = response.bytes().await?;
        latencies.push(t.elapsed());
        first_total = first_total.or(total);
        if !status.is_success() {
            bail!("page {} answered {status}", latencies.len());
        }
        let page: serde_json::Value = serde_json::from_slice(&body).context("page is not JSON")?;
        ids.extend(
            page.as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["id"].as_i64()),
        );
        if let Some(pages) = sample_pages {
            if latencies.len() >= pages || next.is_none() {
                break;
            }
            let stride = *stride.get_or_insert_with(|| {
                let pages = i64::try_from(pages).unwrap_or(i64::MAX).max(1);
                (total.unwrap_or(0) / pages).max(1)
            });
            let after = i64::try_from(latencies.len()).unwrap_or(i64::MAX) * stride;
            cursor = Some(URL_SAFE_NO_PAD.encode(format!("after:{after}")));
            continue;
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let walk_seconds = started.elapsed().as_secs_f64();
    let mut get_latencies = Vec::new();
    if !ids.is_empty() {
        let step = (ids.len() / gets.max(1)).max(1);
        for id in ids.iter().step_by(step).take(gets) {
            let t = Instant::now();
            let response = http
                .get(format!("{api}/instances/{id}"))
                .header("Authorization", authorization)
                .send()
                .await?;
            let status = response.status();
            response.bytes().await?;
            get_latencies.push(t.elapsed());
            if !status.is_success() {
                bail!("GET /instances/{id} answered {status}");
            }
        }
    }
    latencies.sort();
    get_latencies.sort();
    println!(
        "{}",
        serde_json::json!({
            "instances": ids.len(),
            "total": first_total,
            "pages": latencies.len(),
            "walk_seconds": walk_seconds,
            "page_p50_ms": percentile(&latencies, 50.0),
            "page_p99_ms": percentile(&latencies, 99.0),
            "page_max_ms": percentile(&latencies, 100.0),
            "get_count": get_latencies.len(),
            "get_p50_ms": percentile(&get_latencies, 50.0),
            "get_p99_ms": percentile(&get_latencies, 99.0),
        })
    );
    Ok(())
}

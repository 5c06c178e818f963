//! Drivers for `bench/million.sh`: a fixed number of provisionings at fixed concurrency,
//! the time from `junction serve` exec to the first 200 of `/ready`, and the refresh
//! sweep's bookkeeping (token expiries spread evenly over a span, then counted: renewed,
//! fallen due, expired without renewal).

use anyhow::{Context, bail};
use serde_json::json;
use sqlx::AnyPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Instances written by `seed`; provisioned ones are named otherwise and left alone.
const SEEDED: &str = "name like 'bench %'";

/// Junction renews a token this long before it expires (a one-hour token's margin).
pub const RENEWAL_MARGIN_MS: i64 = 5 * 60 * 1000;

/// `count` provisionings (`POST /instances` with a code exchanged at `token_url`),
/// `concurrency` at a time, after `warmup` unmeasured ones. Prints JSON.
pub async fn provision(
    api: &str,
    authorization: &str,
    token_url: &str,
    count: usize,
    concurrency: usize,
    warmup: usize,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let body = Arc::new(
        json!({
            "element": {"key": "sfdc"},
            "providerData": {"code": "bench"},
            "configuration": {
                "oauth.api.key": "k",
                "oauth.api.secret": "s",
                "oauth.callback.url": "https://app.example.com/cb",
                "oauth.token.url": token_url,
            },
            "name": "provisioned",
        })
        .to_string(),
    );
    let url: Arc<str> = format!("{api}/instances").into();
    let authorization: Arc<str> = authorization.into();
    let one = {
        let (http, body, url, authorization) = (http.clone(), body, url, authorization);
        move || {
            let (http, body, url, authorization) = (
                http.clone(),
                Arc::clone(&body),
                Arc::clone(&url),
                Arc::clone(&authorization),
            );
            async move {
                let t = Instant::now();
                let response = http
                    .post(&*url)
                    .header("Authorization", &*authorization)
                    .header("Content-Type", "application/json")
                    .body((*body).clone())
                    .send()
                    .await?;
                let status = response.status();
                let text = response.text().await?;
                if !status.is_success() {
                    bail!("POST /instances answered {status}: {text}");
                }
                anyhow::Ok(t.elapsed())
            }
        }
    };
    for _ in 0..warmup {
        one().await?;
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (one, next) = (one.clone(), Arc::clone(&next));
        workers.spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                latencies.push(one().await?);
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(count);
    while let Some(done) = workers.join_next().await {
        latencies.extend(done??);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "{}",
        json!({
            "count": latencies.len(),
            "concurrency": concurrency,
            "seconds": seconds,
            "rate": latencies.len() as f64 / seconds,
            "p50_ms": crate::percentile(&latencies, 50.0),
            "p99_ms": crate::percentile(&latencies, 99.0),
        })
    );
    Ok(())
}

/// Starts `command` `runs` times, each time measuring from just before the exec to the
/// first 200 from `url`, then stops it with SIGTERM and waits for it. Prints JSON.
pub async fn ready_time(
    url: &str,
    runs: usize,
    timeout: Duration,
    command: &[String],
) -> anyhow::Result<()> {
    let Some((program, args)) = command.split_first() else {
        bail!("no command to start");
    };
    // A fresh connection for each try: a kept-alive one would outlive the process.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(1))
        .build()?;
    let mut times = Vec::with_capacity(runs);
    // A start that exits before it is ready is counted and reported, not fatal: one
    // failed start must not throw away an hour of measurement.
    let mut failures: Vec<String> = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            // Its warnings and a failed start's reason reach the caller's log.
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        let ready = loop {
            if let Ok(response) = http.get(url).send().await
                && response.status().is_success()
            {
                break Some(started.elapsed());
            }
            if let Some(status) = child.try_wait()? {
                failures.push(format!("exited with {status} before {url} answered 200"));
                break None;
            }
            if started.elapsed() > timeout {
                bail!("{url} did not answer 200 within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let Some(ready) = ready else {
            continue;
        };
        times.push(ready);
        let pid = child.id().context("the server is gone")?;
        tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        child.wait().await?;
    }
    if times.is_empty() {
        bail!("no start became ready: {failures:?}");
    }
    let mut sorted = times.clone();
    sorted.sort();
    println!(
        "{}",
        json!({
            "runs_ms": times.iter().map(|t| t.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
            "median_ms": crate::percentile(&sorted, 50.0),
            "failed": failures,
        })
    );
    Ok(())
}

async fn connect(database_url: &str) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    AnyPool::connect(database_url)
        .await
        .with_context(|| "connecting to the database (give a URL with its scheme)")
}

/// The seeded rows' lowest id and the width of their id range.
async fn seeded_range(pool: &AnyPool) -> anyhow::Result<(i64, i64)> {
    let (lo, hi): (Option<i64>, Option<i64>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select min(id), max(id) from instances where {SEEDED}"
    )))
    .fetch_one(pool)
    .await?;
    match (lo, hi) {
        (Some(lo), Some(hi)) => Ok((lo, hi - lo + 1)),
        _ => bail!("the database holds no seeded instances"),
    }
}

/// Gives the seeded instances token expiries spread evenly, in id order, over
/// `span_ms` from `start_ms`, and no retry or lease in the way. Returns (lo, width).
pub async fn spread_expiries(
    database_url: &str,
    start_ms: i64,
    span_ms: i64,
) -> anyhow::Result<(i64, i64)> {
    let pool = connect(database_url).await?;
    let (lo, width) = seeded_range(&pool).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "update instances set token_expires_at = $1 + ((id - $2) * $3) / $4, \
         refresh_retry_at = null, refresh_lease_until = null, refresh_failures = 0 \
         where {SEEDED}"
    )))
    .bind(start_ms)
    .bind(lo)
    .bind(span_ms)
    .bind(width)
    .execute(&pool)
    .await?;
    pool.close().await;
    Ok((lo, width))
}

/// After a sweep window that ended at `window_end_ms` over expiries spread by
/// [`spread_expiries`]: the seeded instances renewed (their expiry is no longer the one
/// spread), those whose renewal fell due in the window (their spread expiry minus the
/// margin came before its end), and those expired by its end without renewal. Prints JSON.
pub async fn sweep_count(
    database_url: &str,
    start_ms: i64,
    span_ms: i64,
    window_end_ms: i64,
) -> anyhow::Result<()> {
    let pool = connect(database_url).await?;
    let (lo, width) = seeded_range(&pool).await?;
    let renewed: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from instances where {SEEDED} \
         and token_expires_at <> $1 + ((id - $2) * $3) / $4"
    )))
    .bind(start_ms)
    .bind(lo)
    .bind(span_ms)
    .bind(width)
    .fetch_one(&pool)
    .await?;
    let due: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from instances where {SEEDED} and $1 + ((id - $2) * $3) / $4 < $5"
    )))
    .bind(start_ms)
    .bind(lo)
    .bind(span_ms)
    .bind(width)
    .bind(window_end_ms + RENEWAL_MARGIN_MS)
    .fetch_one(&pool)
    .await?;
    let expired: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from instances where {SEEDED} and token_expires_at < $1"
    )))
    .bind(window_end_ms)
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    println!(
        "{}",
        json!({"seeded": width, "renewed": renewed, "due": due, "expired": expired})
    );
    Ok(())
}

//! `junction-bench events`: webhooks in, notifications out, measured end to end against
//! one running Junction. The driver is both sides: it posts Salesforce-style webhooks
//! (`/events/sfdc`, `Element-Instances` header) and runs the app's receiver, a local
//! HTTP server answering 200 (or 503 during a simulated outage). Each webhook carries
//! its send time, so the receiver knows each event's latency from the provider's send to
//! the app's receipt.

use anyhow::{Context, bail};
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver saw.
struct Receiver {
    base: Instant,
    down: AtomicBool,
    /// seq → latency in microseconds, first arrival only.
    arrivals: Mutex<Vec<(u64, u64)>>,
    seen: Mutex<HashSet<u64>>,
    last_arrival_us: AtomicU64,
    refused: AtomicU64,
}

async fn receive(State(r): State<Arc<Receiver>>, body: axum::body::Bytes) -> StatusCode {
    if r.down.load(Ordering::Relaxed) {
        r.refused.fetch_add(1, Ordering::Relaxed);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let now = r.base.elapsed().as_micros() as u64;
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let raw = &message["message"]["raw"];
    let (Some(seq), Some(sent)) = (raw["seq"].as_u64(), raw["sentUs"].as_u64()) else {
        return StatusCode::BAD_REQUEST;
    };
    if r.seen.lock().unwrap_or_else(|e| e.into_inner()).insert(seq) {
        r.arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((seq, now.saturating_sub(sent)));
    }
    r.last_arrival_us.fetch_max(now, Ordering::Relaxed);
    StatusCode::OK
}

struct Sender {
    http: reqwest::Client,
    url: String,
    instance: i64,
    base: Instant,
    next: AtomicU64,
}

impl Sender {
    /// Sends webhook `seq`, its latency counted from `sent_us` (now when `None`).
    async fn send(&self, seq: u64, sent_us: Option<u64>) -> anyhow::Result<()> {
        let body = json!({
            "seq": seq,
            "sentUs": sent_us.unwrap_or_else(|| self.base.elapsed().as_micros() as u64),
            "objects": [{"attributes": {"type": "Contact"}, "Id": format!("003{seq}")}],
            "action": "update",
        });
        let answer = self
            .http
            .post(&self.url)
            .header("element-instances", self.instance.to_string())
            .json(&body)
            .send()
            .await?;
        if answer.status() != reqwest::StatusCode::OK {
            bail!("webhook {seq} answered {}", answer.status());
        }
        Ok(())
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// Waits until every seq in `from..to` arrived, or `limit` passes.
async fn wait_all(r: &Receiver, from: u64, to: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let done = {
            let seen = r.seen.lock().unwrap_or_else(|e| e.into_inner());
            (from..to).all(|s| seen.contains(&s))
        };
        if done {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Latencies (ms: p50, p99) of the seqs in `from..to`.
fn latencies(r: &Receiver, from: u64, to: u64) -> (f64, f64, usize) {
    let mut l: Vec<u64> = r
        .arrivals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(s, _)| (from..to).contains(s))
        .map(|(_, us)| *us)
        .collect();
    l.sort_unstable();
    (percentile(&l, 0.5), percentile(&l, 0.99), l.len())
}

/// Webhooks in flight at once in a paced phase, at most: a Junction that falls behind
/// makes later webhooks wait for a connection (their latency still counts from their
/// scheduled time) instead of the driver opening sockets without bound.
const MAX_IN_FLIGHT: usize = 512;

/// How late tokio's timer may wake a paced send (its resolution is one millisecond).
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Sends `rate` webhooks a second for `seconds`, open loop (each due at its scheduled
/// time, whether or not earlier ones were answered, and timed from it); returns the seq
/// range used.
async fn paced(s: &Arc<Sender>, rate: f64, seconds: f64) -> anyhow::Result<(u64, u64)> {
    let count = (rate * seconds).round() as u64;
    let from = s.next.fetch_add(count, Ordering::Relaxed);
    let start = tokio::time::Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at).await;
        // Tokio's timer wakes up to a millisecond after the deadline: lateness within
        // that is the driver's own and is not counted; beyond it (the driver or the
        // machine falling behind) it is.
        let late = tokio::time::Instant::now().saturating_duration_since(at);
        let sent_at = at + late.min(TIMER_SLACK);
        let scheduled = sent_at
            .into_std()
            .saturating_duration_since(s.base)
            .as_micros() as u64;
        let slot = Arc::clone(&slots).acquire_owned().await?;
        let s = Arc::clone(s);
        tasks.spawn(async move {
            let sent = s.send(from + i, Some(scheduled)).await;
            drop(slot);
            sent
        });
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok((from, from + count))
}

/// Sends `count` webhooks as fast as `concurrency` connections allow.
async fn flood(s: &Arc<Sender>, count: u64, concurrency: usize) -> anyhow::Result<(u64, u64)> {
    let from = s.next.fetch_add(count, Ordering::Relaxed);
    let cursor = Arc::new(AtomicU64::new(from));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (s, cursor) = (Arc::clone(s), Arc::clone(&cursor));
        tasks.spawn(async move {
            loop {
                let seq = cursor.fetch_add(1, Ordering::Relaxed);
                if seq >= from + count {
                    return anyhow::Ok(());
                }
                s.send(seq, None).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok((from, from + count))
}

pub struct Options {
    pub api: String,
    pub authorization: String,
    pub count: u64,
    pub concurrency: usize,
    pub phase_seconds: f64,
    pub light_rate: f64,
    pub outage_seconds: f64,
    pub outage_rate: f64,
}

pub async fn run(o: Options) -> anyhow::Result<()> {
    let base = Instant::now();
    let receiver = Arc::new(Receiver {
        base,
        down: AtomicBool::new(false),
        arrivals: Mutex::new(Vec::new()),
        seen: Mutex::new(HashSet::new()),
        last_arrival_us: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let callback = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency.max(64))
        // Junction closes a kept-alive connection that stays silent for its header-read
        // timeout (10 s by default); a webhook sent on one just as it closes is reset.
        // Dropping idle connections sooner is what a provider's client should do too.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let created: Value = http
        .post(format!("{}/instances", o.api))
        .header("authorization", &o.authorization)
        .json(&json!({
            "element": {"key": "sfdc"},
            "externalAuthentication": "initial",
            "configuration": {
                "oauth.api.key": "bench", "oauth.api.secret": "bench-secret",
                "oauth.callback.url": "https://app.example.test/cb",
                "oauth.user.token": "t", "oauth.user.refresh_token": "r",
                "event.notification.enabled": true,
                "event.notification.callback.url": callback,
                "event.notification.signature.key": "bench-signature-key",
            },
            "name": "events bench",
        }))
        .send()
        .await?
        .json()
        .await?;
    let instance = created["id"]
        .as_i64()
        .with_context(|| format!("creating the instance: {created}"))?;
    let sender = Arc::new(Sender {
        http,
        url: format!("{}/events/sfdc", o.api),
        instance,
        base,
        next: AtomicU64::new(0),
    });

    // Warm-up: connections opened, statements prepared.
    let (from, to) = flood(&sender, 500, o.concurrency).await?;
    wait_all(&receiver, from, to, Duration::from_secs(60)).await;

    // 1. Throughput: as fast as the senders go, until the last event is delivered.
    let started = base.elapsed();
    let (from, to) = flood(&sender, o.count, o.concurrency).await?;
    let ingested = base.elapsed() - started;
    if !wait_all(&receiver, from, to, Duration::from_secs(300)).await {
        bail!("not every event of the throughput run was delivered");
    }
    let last = Duration::from_micros(receiver.last_arrival_us.load(Ordering::Relaxed));
    let end_to_end = last.saturating_sub(started);
    let rate = o.count as f64 / end_to_end.as_secs_f64();
    let ingest_rate = o.count as f64 / ingested.as_secs_f64();
    let (tp50, tp99, _) = latencies(&receiver, from, to);

    // 2. Latency at light load, half and full of the measured rate.
    let mut loads = Vec::new();
    for (name, r) in [("light", o.light_rate), ("50%", rate * 0.5), ("100%", rate)] {
        let (from, to) = paced(&sender, r, o.phase_seconds).await?;
        let all = wait_all(&receiver, from, to, Duration::from_secs(120)).await;
        let (p50, p99, n) = latencies(&receiver, from, to);
        loads.push(json!({"load": name, "rate": r, "p50_ms": p50, "p99_ms": p99, "events": n, "all_delivered": all}));
    }

    // 3. An outage: the receiver answers 503 for `outage_seconds` while webhooks keep
    //    coming at `outage_rate`; then it is back, and the backlog drains.
    receiver.down.store(true, Ordering::Relaxed);
    let (from, to) = paced(&sender, o.outage_rate, o.outage_seconds).await?;
    receiver.down.store(false, Ordering::Relaxed);
    let back = Instant::now();
    let drained = wait_all(&receiver, from, to, Duration::from_secs(600)).await;
    let drain_seconds = back.elapsed().as_secs_f64();
    let refused = receiver.refused.load(Ordering::Relaxed);

    println!(
        "{}",
        json!({
            "throughput": {
                "events": o.count, "concurrency": o.concurrency,
                "ingest_per_s": ingest_rate, "end_to_end_per_s": rate,
                "p50_ms": tp50, "p99_ms": tp99,
            },
            "latency": loads,
            "outage": {
                "seconds": o.outage_seconds, "rate": o.outage_rate, "backlog": to - from,
                "refused_attempts": refused, "drained": drained, "drain_seconds": drain_seconds,
            },
        })
    );
    Ok(())
}

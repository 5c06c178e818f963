//! Background work: the sweep that renews provider tokens before they expire, so a
//! customer's call rarely waits for a refresh and a long-lived Graph token never lapses;
//! event delivery workers; event polling; pruning of delivered events; the expiry of
//! Connect sessions (which tells their apps) and their purge past the retention.

use junction_service::{Services, SweepReport};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Refreshes running at once in one sweep, unless `JUNCTION_REFRESH_CONCURRENCY` says
/// otherwise; bounded so a sweep cannot flood providers or exhaust the database pool.
pub const SWEEP_CONCURRENCY: usize = 16;

/// One sweep: renews every instance whose token expires before the next sweep (plus its
/// margin). Failures are logged per instance and never end the job.
pub async fn run_once(services: &Services, interval: Duration) -> SweepReport {
    sweep(services, interval, SWEEP_CONCURRENCY).await
}

async fn sweep(services: &Services, interval: Duration, concurrency: usize) -> SweepReport {
    match services.refresh_expiring(interval, concurrency).await {
        Ok(report) => {
            if report.due > 0 {
                tracing::info!(
                    due = report.due,
                    refreshed = report.refreshed,
                    failed = report.failed,
                    "token refresh sweep done"
                );
            }
            report
        }
        Err(e) => {
            tracing::error!(error = %e, "token refresh sweep failed");
            SweepReport::default()
        }
    }
}

/// Runs a sweep every `interval` until `stop` turns true. A sweep in progress is finished
/// rather than cut short: cancelling one between the provider's answer and the write
/// that stores it would lose a rotated refresh token.
pub fn spawn_refresh_job(
    services: Services,
    interval: Duration,
    concurrency: usize,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tracing::info!(
            interval_s = interval.as_secs(),
            concurrency,
            "token refresh sweeps started"
        );
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                () = tokio::time::sleep(interval) => {
                    sweep(&services, interval, concurrency).await;
                }
            }
        }
        tracing::info!("token refresh sweeps stopped");
    })
}

/// Notifications one worker claims and sends at once.
pub const DELIVERY_BATCH: i64 = 32;

/// Longest an idle delivery worker sleeps before looking for due notifications again
/// (new ones wake it at once; another replica's, and retries, come due on their own).
const DELIVERY_IDLE: Duration = Duration::from_millis(500);

/// How often delivered events past their retention are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(300);

/// Starts `workers` event delivery loops and the retention job; each stops when `stop`
/// turns true, after finishing the batch in hand (a batch cut short between the
/// receiver's answer and the write recording it would only be sent again).
pub fn spawn_event_jobs(
    services: Services,
    workers: usize,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut jobs: Vec<JoinHandle<()>> = (0..workers)
        .map(|_| {
            let services = services.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    if *stop.borrow() {
                        break;
                    }
                    let stored = services.deliveries_stored();
                    let claimed = match services.deliver_due(DELIVERY_BATCH).await {
                        Ok(report) => report.claimed,
                        Err(e) => {
                            tracing::error!(error = %e, "event delivery round failed");
                            0
                        }
                    };
                    if claimed > 0 {
                        continue;
                    }
                    tokio::select! {
                        changed = stop.changed() => {
                            if changed.is_err() || *stop.borrow() {
                                break;
                            }
                        }
                        () = stored => {}
                        () = services.wait_for_deliveries(DELIVERY_IDLE) => {}
                    }
                }
            })
        })
        .collect();
    let tick = services.events.settings.poll_tick;
    if !tick.is_zero() {
        jobs.push(spawn_reconcile_job(services.clone(), tick, stop.clone()));
        jobs.push(spawn_poll_job(services.clone(), tick, stop.clone()));
    }
    let mut stop = stop;
    jobs.push(tokio::spawn(async move {
        loop {
            match services.prune_events().await {
                Ok(0) => {}
                Ok(pruned) => {
                    tracing::info!(pruned, "delivered events past their retention deleted")
                }
                Err(e) => tracing::error!(error = %e, "pruning events failed"),
            }
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                () = tokio::time::sleep(PRUNE_INTERVAL) => {}
            }
        }
    }));
    if workers > 0 {
        tracing::info!(workers, "event delivery started");
    }
    jobs
}

/// Claims the pollers due every `tick` and polls them (see `junction_service::events`
/// `poller`). A round in progress is finished rather than cut short: what it stored stays,
/// and what it did not is read again by the next poll.
fn spawn_poll_job(
    services: Services,
    tick: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let owner = junction_service::events::poller_owner();
    tokio::spawn(async move {
        tracing::info!(tick_ms = tick.as_millis() as u64, "event polling started");
        loop {
            match services.poll_due(&owner).await {
                Ok(report) if report.polled + report.failed + report.stopped > 0 => {
                    tracing::debug!(
                        polled = report.polled,
                        events = report.events,
                        failed = report.failed,
                        stopped = report.stopped,
                        "poll round done"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "poll round failed"),
            }
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                () = tokio::time::sleep(tick) => {}
            }
        }
    })
}

/// Reconciles the pollers with the instances once, next to the polling rounds rather than
/// before them: the rows the instance writes keep need no repair to be polled, and with
/// many instances the pass takes a while. A failed pass is tried again a `retry` later; a
/// stop cuts it short, which is safe since it changes only what the next start changes
/// again.
fn spawn_reconcile_job(
    services: Services,
    retry: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                done = services.reconcile_pollers() => match done {
                    Ok(_) => break,
                    Err(e) => tracing::error!(error = %e, "reconciling the pollers failed; trying again"),
                },
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                    continue;
                }
            }
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                () = tokio::time::sleep(retry) => {}
            }
        }
    })
}

/// Time between purges of Connect sessions past their retention.
const CONNECT_PURGE_INTERVAL: Duration = Duration::from_secs(600);
/// Time between looks for Connect sessions whose time is up: how late, at most, an app
/// hears that its session expired.
const CONNECT_EXPIRY_INTERVAL: Duration = Duration::from_secs(30);

/// One pass ending the open Connect sessions whose time is up, each with its app's
/// notification, `batch` per transaction; failures are logged and never end the job.
pub async fn expire_connect_sessions_once(services: &Services, batch: i64) -> u64 {
    match services.expire_connect_sessions(batch).await {
        Ok(expired) => {
            if expired > 0 {
                tracing::info!(expired, "Connect sessions expired");
            }
            expired
        }
        Err(e) => {
            tracing::error!(error = %e, "expiring Connect sessions failed");
            0
        }
    }
}

/// One purge of the Connect sessions that expired more than `retention` ago, `batch`
/// per statement (open sessions past their time are ended first, with their
/// notifications); failures are logged and never end the job.
pub async fn purge_connect_sessions_once(
    services: &Services,
    retention: Duration,
    batch: i64,
) -> u64 {
    match services.purge_connect_sessions(retention, batch).await {
        Ok(purged) => {
            if purged > 0 {
                tracing::info!(purged, "expired Connect sessions deleted");
            }
            purged
        }
        Err(e) => {
            tracing::error!(error = %e, "purging Connect sessions failed");
            0
        }
    }
}

/// Ends Connect sessions whose time is up every thirty seconds, and purges those past
/// their retention every ten minutes, until `stop` turns true. The first pass waits its
/// turn too: a start stays quick.
pub fn spawn_connect_purge_job(
    services: Services,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_purge = tokio::time::Instant::now();
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                () = tokio::time::sleep(CONNECT_EXPIRY_INTERVAL) => {
                    if last_purge.elapsed() >= CONNECT_PURGE_INTERVAL {
                        last_purge = tokio::time::Instant::now();
                        purge_connect_sessions_once(
                            &services,
                            retention,
                            junction_service::CONNECT_PURGE_BATCH,
                        )
                        .await;
                    } else {
                        expire_connect_sessions_once(
                            &services,
                            junction_service::CONNECT_PURGE_BATCH,
                        )
                        .await;
                    }
                }
            }
        }
    })
}

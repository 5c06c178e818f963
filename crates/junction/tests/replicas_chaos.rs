//! Three `junction serve` replicas on one PostgreSQL behind nginx, under mixed load
//! (provider calls through instances whose tokens live 2 s, provisioning against the real
//! OAuth server, webhooks in and notifications out) while one replica after another is
//! SIGKILLed and restarted: the short form of `bench/replicas.sh`, run by the same driver.
//!
//! Only requests in flight on a killed replica may fail; no instance, credential or
//! accepted event may be lost, and no rotated refresh token (`invalid_grant`). One loss no
//! client can prevent is told apart: a refresh in progress on the replica killed, whose
//! request the provider had already received and answered with a rotated token that died
//! with the process (the instance's lease was left behind by the killed replica). Such an
//! instance turns `valid: false` and needs re-authorization; it is reported, not failed.
//!
//! Without nginx or PostgreSQL the test is skipped with a notice, unless
//! `JUNCTION_REQUIRE_NGINX=1` (CI) makes that a failure.

#![allow(clippy::unwrap_used)]

use junction_bench::replicas::{Options, run};
use junction_testkit::db::{Backend, DATABASE_URL_ENV, TestDatabase};
use std::path::PathBuf;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_junction");
const REQUIRE_ENV: &str = "JUNCTION_REQUIRE_NGINX";

/// nginx and a PostgreSQL to create the test's database in, or why the test cannot run.
fn prerequisites() -> Result<PathBuf, String> {
    let nginx = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .ok_or("nginx is not installed (apt-get install nginx)")?;
    if std::env::var_os(DATABASE_URL_ENV).is_none() {
        return Err(format!("{DATABASE_URL_ENV} names no PostgreSQL"));
    }
    Ok(nginx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_under_load_lose_no_rotation_instance_or_event() {
    let nginx = match prerequisites() {
        Ok(nginx) => nginx,
        Err(missing) => {
            assert!(
                std::env::var(REQUIRE_ENV).as_deref() != Ok("1"),
                "{missing}, but {REQUIRE_ENV}=1 requires the replicas test to run"
            );
            eprintln!("notice: {missing}; the replicas test was skipped");
            return;
        }
    };
    let db = TestDatabase::create(Backend::Postgres).await;
    let work = tempfile::tempdir().unwrap();
    let report = run(Options {
        junction: BIN.into(),
        nginx,
        database_url: db.url.clone(),
        work_dir: work.path().to_owned(),
        replicas: 3,
        duration: Duration::from_secs(36),
        kill_every: Duration::from_secs(10),
        restart_database: None,
        restart_database_at: Duration::ZERO,
        hot_instances: 4,
        callers: 4,
        provision_every: Duration::from_secs(1),
        event_rate: 10.0,
        drain_timeout: Duration::from_secs(40),
        outbound_timeout: 5,
    })
    .await
    .unwrap();
    let tables = report.markdown();
    eprintln!("{tables}");
    if !report.unexplained_problems().is_empty() {
        explain_failures(work.path());
    }
    assert!(report.unexplained_problems().is_empty(), "{tables}");
    assert_eq!(report.kills.len(), 3, "{tables}");
    // The load did reach every part.
    for kind in [
        "GET /proxy/me",
        "POST /proxy/echo",
        "POST /instances",
        "POST /events/sfdc",
    ] {
        assert!(
            report.served.get(kind).is_some_and(|n| *n > 0),
            "no {kind} served: {tables}"
        );
    }
    assert!(report.provisioned > 0, "{tables}");
    assert!(report.refresh_grants > 0, "{tables}");
    assert!(report.events_accepted > 0, "{tables}");
    assert_eq!(
        report.verification.instances_checked,
        report.hot_instances + report.provisioned,
        "{tables}"
    );
}

/// Prints what a failed run leaves to tell its causes: every failure as classified, and
/// what the replicas logged at warning level or above (each provider call that failed
/// names its host and cause there).
fn explain_failures(work: &std::path::Path) {
    if let Ok(failures) = std::fs::read_to_string(work.join("failures.txt")) {
        eprintln!("failures:\n{failures}");
    }
    for replica in 0..3 {
        let Ok(log) = std::fs::read_to_string(work.join(format!("replica-{replica}.log"))) else {
            continue;
        };
        let warnings: Vec<&str> = log
            .lines()
            .filter(|line| line.contains("WARN") || line.contains("ERROR"))
            .collect();
        eprintln!(
            "replica {replica}: {} warnings or errors\n{}",
            warnings.len(),
            warnings.join("\n")
        );
    }
}

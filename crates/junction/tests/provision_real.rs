//! Codes issued beforehand by the real OAuth server (oidc-provider), as
//! `junction-bench provision-real` issues them, provision working instances through a real
//! `junction serve`.
//!
//! Without the peer installed (`tests/peers/oidc/node_modules`, or node missing) the test is
//! skipped with a notice, unless `JUNCTION_REQUIRE_PEERS=1` (CI) makes that a failure.

#![allow(clippy::unwrap_used)]

use junction_bench::provision::{PeerUrls, authorization_url, issue_codes, provision};
use junction_testkit::db::{Backend, TestDatabase};
use junction_testkit::peers::{Peer, PeerKind, peers_dir};
use std::collections::HashSet;
use std::time::Duration;

// Not every helper of the crash tests is used here.
#[allow(dead_code)]
mod support;

use support::{Junction, ORG_SECRET, USER_SECRET};

const REQUIRE_ENV: &str = "JUNCTION_REQUIRE_PEERS";

/// Why the oidc peer cannot run here, if it cannot.
fn peer_missing() -> Option<String> {
    let modules = peers_dir().join("oidc/node_modules");
    if !modules.is_dir() {
        return Some(format!(
            "{} is missing (bash scripts/setup-test-deps.sh)",
            modules.display()
        ));
    }
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|out| out.status.success()) {
        return Some("node is not installed".to_owned());
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_issued_beforehand_provision_working_instances_through_junction() {
    if let Some(missing) = peer_missing() {
        assert!(
            std::env::var(REQUIRE_ENV).as_deref() != Ok("1"),
            "{missing}, but {REQUIRE_ENV}=1 requires the peer tests to run"
        );
        eprintln!("notice: {missing}; the provisioning test against oidc-provider was skipped");
        return;
    }
    let peer = Peer::start(PeerKind::Oidc, &[]).await;
    let db = TestDatabase::create(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let junction = Junction::start(&db.url, dir.path(), &[]);
    let api = junction.url("");
    let authorization = format!("User {USER_SECRET}, Organization {ORG_SECRET}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let authorize = authorization_url(&http, &api, &authorization, &peer)
        .await
        .unwrap();
    // Two issuers for three codes: one of them authorizes again in its session.
    let codes = issue_codes(&authorize, 3, 2).await.unwrap();
    assert_eq!(codes.len(), 3);
    assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 3, "{codes:?}");

    let urls = PeerUrls::of(&peer);
    for (i, code) in codes.iter().enumerate() {
        let made = provision(
            &http,
            &api,
            &authorization,
            &urls,
            code,
            &format!("real {i}"),
        )
        .await
        .unwrap();
        // The instance holds the server's own access token: its API accepts it.
        let me = http
            .get(junction.url("/proxy/me"))
            .header("Authorization", format!("Element {}", made.token))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200, "{}", me.text().await.unwrap());
        let me: serde_json::Value = me.json().await.unwrap();
        assert_eq!(me["client"], "junction-test", "{me}");
    }

    // Each code works once: the server refuses the first one again.
    let again = provision(&http, &api, &authorization, &urls, &codes[0], "again").await;
    assert!(again.is_err());
}

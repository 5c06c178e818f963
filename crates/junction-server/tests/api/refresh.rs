//! Keeping provider credentials alive: refresh-token rotation under concurrency (in one
//! process and across replicas), failures that need re-authorization, Graph's long-lived
//! tokens, and the background sweep.

use crate::helpers::{Options, TestApp};
use crate::on_both_backends;
use crate::provisioning::{Provider, authorize, provision};
use junction_core::config::keys;
use junction_core::{AccountId, InstanceId, Secret};
use junction_server::http::error::ApiError;
use junction_service::{ServiceError, Services};
use junction_store::InstanceRecord;
use junction_testkit::db::Backend;
use junction_testkit::graph::{GraphConfig, GraphServer, LONG_LIVED_EXPIRES_IN};
use junction_testkit::peers::{CLIENT_ID, CLIENT_SECRET, Peer, PeerKind};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

/// Calls made through one instance in each round, across a token expiry.
const CALLS: usize = 200;

async fn record(services: &Services, id: i64) -> InstanceRecord {
    services
        .store
        .get_instance(AccountId(1), InstanceId(id))
        .await
        .unwrap()
}

fn access_token(record: &InstanceRecord) -> String {
    record.config[keys::USER_TOKEN].clone().unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

async fn peer_accepts(peer: &Peer, token: &str) -> bool {
    http()
        .get(format!("{}/me", peer.api_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .is_success()
}

async fn graph_accepts(graph: &GraphServer, token: &str) -> bool {
    http()
        .get(format!("{}/me", graph.api_url()))
        .query(&[("access_token", token)])
        .send()
        .await
        .unwrap()
        .status()
        .is_success()
}

/// Settings for tests that move a token's expiry with `set_token_expiry`: that write
/// goes around Junction, so no in-process copy would hear of it.
pub(crate) fn time_travel() -> Options {
    Options {
        cache_ttl: 0,
        ..Options::default()
    }
}

/// Moves the stored expiry of an instance's token, as time passing would; `None` is a
/// provider that never said when its tokens expire (Salesforce).
pub(crate) async fn set_token_expiry(app: &TestApp, id: i64, expires_at: impl Into<Option<i64>>) {
    let expires_at: Option<i64> = expires_at.into();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    sqlx::query("update instances set token_expires_at = $1 where id = $2")
        .bind(expires_at)
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

async fn sleep_until_expired(record: &InstanceRecord) {
    let expires_at = record
        .token_expires_at
        .expect("the peer says when tokens expire");
    let wait = expires_at - junction_service::now_ms() + 50;
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

/// Rounds of `CALLS` concurrent calls, each right after the token expired, spread over
/// `replicas`: half ask for the current token with the stale record a request would hold,
/// half report the expired token as refused. Each expiry must cost exactly one
/// refresh_token grant, every call must get the same new token, and the peer must never
/// see a rotated refresh token again.
async fn refresh_once_per_expiry(replicas: &[Services], peer: &Peer, id: i64) {
    for round in 1..=3u64 {
        let stale = record(&replicas[0], id).await;
        let old = access_token(&stale);
        sleep_until_expired(&stale).await;
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..CALLS {
            let services = replicas[i % replicas.len()].clone();
            let stale = stale.clone();
            let old = Secret::new(old.clone());
            calls.spawn(async move {
                if i % 2 == 0 {
                    services.current_access_token(&stale).await
                } else {
                    services.refresh_after_rejection(&stale, &old).await
                }
            });
        }
        let mut tokens = HashSet::new();
        while let Some(joined) = calls.join_next().await {
            let token = joined
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            tokens.insert(token.expose().to_owned());
        }
        assert_eq!(
            tokens.len(),
            1,
            "round {round}: every call gets the same token"
        );
        let token = tokens.into_iter().next().unwrap();
        assert_ne!(token, old, "round {round}");
        let stats = peer.stats().await;
        assert_eq!(stats["refreshGrants"], round, "round {round}: {stats}");
        assert_eq!(stats["refreshFailures"], 0, "round {round}: {stats}");
        let stored = record(&replicas[0], id).await;
        assert_eq!(access_token(&stored), token);
        // The token lives two seconds; on a loaded machine the round may outlast it, and
        // then the peer rightly refuses it. Within its lifetime it must be a working one.
        let expires_at = stored.token_expires_at.unwrap();
        if junction_service::now_ms() < expires_at - 300 {
            let accepted = peer_accepts(peer, &token).await;
            assert!(
                accepted || junction_service::now_ms() >= expires_at,
                "round {round}: the peer refused a token it issued"
            );
        }
    }
}

on_both_backends!(
    concurrent_calls_spend_each_rotated_refresh_token_once,
    two_replicas_on_one_database_spend_each_refresh_token_once,
    a_refused_refresh_needs_reauthorization_until_reprovisioned,
    graph_tokens_become_long_lived_and_are_extended,
    the_sweep_refreshes_a_token_nearing_expiry_without_any_call,
);

async fn concurrent_calls_spend_each_rotated_refresh_token_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::start(PeerKind::Oidc, &[("ROTATE", "1"), ("AT_TTL", "2")]).await;
    let instance = provision(&app, "sfdc", &Provider::peer(&peer), "").await;
    let id = instance["id"].as_i64().unwrap();
    refresh_once_per_expiry(std::slice::from_ref(&app.services), &peer, id).await;
    let (_, shown) = app.get(&format!("/instances/{id}")).await;
    let config = &shown["configuration"];
    assert_eq!(config["oauth.user.refresh_interval"], "2");
    assert_eq!(
        config["base.url"],
        format!("{}/api", peer.base_url),
        "instance_url is captured on refresh too"
    );
    let refreshed_at: i64 = config["oauth.user.refresh_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(refreshed_at > junction_service::now_ms() - 10_000);
}

async fn two_replicas_on_one_database_spend_each_refresh_token_once(backend: Backend) {
    if backend == Backend::Sqlite {
        // Replicas share a database only on PostgreSQL.
        return;
    }
    let app = TestApp::spawn(backend).await;
    let replica = app.replica().await;
    let peer = Peer::start(PeerKind::Oidc, &[("ROTATE", "1"), ("AT_TTL", "2")]).await;
    let instance = provision(&app, "sfdc", &Provider::peer(&peer), "").await;
    let id = instance["id"].as_i64().unwrap();
    refresh_once_per_expiry(&[app.services.clone(), replica.services.clone()], &peer, id).await;
}

async fn a_refused_refresh_needs_reauthorization_until_reprovisioned(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::start(PeerKind::Oidc, &[("ROTATE", "1")]).await;
    let provider = Provider::peer(&peer);
    let instance = provision(&app, "sfdc", &provider, "").await;
    let id = instance["id"].as_i64().unwrap();
    let before = record(&app.services, id).await;

    // The customer removes the app at the provider: its grant is revoked.
    let revoked = http()
        .post(format!("{}/token/revocation", peer.base_url))
        .form(&[
            (
                "token",
                before.config[keys::REFRESH_TOKEN].clone().unwrap().as_str(),
            ),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());

    let rejected = Secret::new(access_token(&before));
    let err = app
        .services
        .refresh_after_rejection(&before, &rejected)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::ReauthorizationRequired { reason: Some(r), .. } if r.contains("invalid_grant")),
        "{err:?}"
    );
    let api = ApiError::from(err);
    assert!(api.status.is_client_error());
    assert_eq!(api.code, "reauthorization_required");
    assert!(api.message.contains("re-authorized"), "{}", api.message);

    let (_, shown) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(shown["valid"], false, "{shown}");
    assert!(
        shown["invalidReason"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{shown}"
    );

    // Later calls fail fast, without asking the provider again.
    let stale = record(&app.services, id).await;
    for _ in 0..3 {
        let err = app.services.current_access_token(&stale).await.unwrap_err();
        assert!(
            matches!(err, ServiceError::ReauthorizationRequired { .. }),
            "{err:?}"
        );
        let err = app
            .services
            .refresh_after_rejection(&before, &rejected)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::ReauthorizationRequired { .. }),
            "{err:?}"
        );
    }
    let stats = peer.stats().await;
    assert_eq!(stats["refreshFailures"], 1, "{stats}");
    assert_eq!(stats["refreshErrors"]["invalid_grant"], 1, "{stats}");

    // Re-provisioning with a fresh code makes it valid again.
    let code = authorize(&app, "sfdc", &provider, "").await;
    let (status, patched) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"providerData": {"code": code}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["valid"], true, "{patched}");
    assert!(patched.get("invalidReason").is_none(), "{patched}");
    let (_, shown) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(shown, patched);
    let fresh = record(&app.services, id).await;
    let token = app.services.current_access_token(&fresh).await.unwrap();
    assert!(peer_accepts(&peer, token.expose()).await);
    let renewed = app
        .services
        .refresh_after_rejection(&fresh, &token)
        .await
        .unwrap();
    assert_ne!(renewed.expose(), token.expose());
    assert!(peer_accepts(&peer, renewed.expose()).await);
}

async fn graph_tokens_become_long_lived_and_are_extended(backend: Backend) {
    let app = TestApp::spawn_with(backend, time_travel()).await;
    let graph = GraphServer::start(GraphConfig::default()).await;
    for element in ["facebookleadads", "facebooksocial"] {
        let before = graph.long_lived_exchanges();
        let instance = provision(&app, element, &Provider::graph(&graph), "").await;
        let id = instance["id"].as_i64().unwrap();
        assert_eq!(
            graph.long_lived_exchanges(),
            before + 1,
            "{element}: the code's token is exchanged at once"
        );
        let provisioned = record(&app.services, id).await;
        let long_lived = access_token(&provisioned);
        assert!(graph_accepts(&graph, &long_lived).await);
        let expected = junction_service::now_ms() + LONG_LIVED_EXPIRES_IN as i64 * 1000;
        assert!(
            (provisioned.token_expires_at.unwrap() - expected).abs() < 60_000,
            "{element}"
        );

        // Well before expiry nothing happens…
        let token = app
            .services
            .current_access_token(&provisioned)
            .await
            .unwrap();
        assert_eq!(token.expose(), long_lived);
        assert_eq!(graph.long_lived_exchanges(), before + 1);

        // …close to it, the token is extended with the same exchange.
        set_token_expiry(&app, id, junction_service::now_ms() + 60_000).await;
        let nearing = record(&app.services, id).await;
        let extended = app.services.current_access_token(&nearing).await.unwrap();
        assert_ne!(extended.expose(), long_lived, "{element}");
        assert_eq!(graph.long_lived_exchanges(), before + 2, "{element}");
        assert!(graph_accepts(&graph, extended.expose()).await);
        let stored = record(&app.services, id).await;
        assert_eq!(access_token(&stored), extended.expose());
        assert!(stored.token_expires_at.unwrap() > expected - 60_000);
    }
    assert_eq!(graph.token_exchanges(), 2, "one code exchange per instance");
}

async fn the_sweep_refreshes_a_token_nearing_expiry_without_any_call(backend: Backend) {
    let app = TestApp::spawn_with(backend, time_travel()).await;
    let peer = Peer::start(PeerKind::Oidc, &[("ROTATE", "1"), ("AT_TTL", "120")]).await;
    let instance = provision(&app, "sfdc", &Provider::peer(&peer), "").await;
    let id = instance["id"].as_i64().unwrap();
    let interval = Duration::from_secs(60);

    let report = junction_server::jobs::run_once(&app.services, interval).await;
    assert_eq!(
        report.refreshed, 0,
        "a token with 120 s left outlives the next sweep"
    );

    set_token_expiry(&app, id, junction_service::now_ms() + 30_000).await;
    let old = access_token(&record(&app.services, id).await);
    let report = junction_server::jobs::run_once(&app.services, interval).await;
    assert_eq!((report.refreshed, report.failed), (1, 0), "{report:?}");
    let refreshed = record(&app.services, id).await;
    let token = access_token(&refreshed);
    assert_ne!(token, old);
    assert!(peer_accepts(&peer, &token).await);
    assert!(refreshed.token_expires_at.unwrap() > junction_service::now_ms() + 100_000);
    assert_eq!(peer.stats().await["refreshGrants"], 1);

    let report = junction_server::jobs::run_once(&app.services, interval).await;
    assert_eq!(report.refreshed, 0, "nothing is due any more");
    assert_eq!(peer.stats().await["refreshGrants"], 1);
}

on_both_backends!(one_sweep_renews_more_instances_than_fit_in_one_batch);

/// More instances due at once than one batch holds (500) are all renewed by one sweep,
/// not one batch per `JUNCTION_REFRESH_INTERVAL`.
async fn one_sweep_renews_more_instances_than_fit_in_one_batch(backend: Backend) {
    const DUE: usize = 501;
    let app = TestApp::spawn(backend).await;
    let upstream = crate::proxy::Upstream::start().await;
    let public: junction_core::ConfigMap = [
        (
            keys::TOKEN_URL.to_owned(),
            Some(format!("{}/token", upstream.base_url)),
        ),
        (keys::BASE_URL.to_owned(), Some(upstream.base_url.clone())),
    ]
    .into();
    let secrets: junction_core::ConfigMap = [
        (keys::API_KEY.to_owned(), Some("client".to_owned())),
        (
            keys::API_SECRET.to_owned(),
            Some("client-secret".to_owned()),
        ),
        (keys::USER_TOKEN.to_owned(), Some("stale-token".to_owned())),
        (
            keys::REFRESH_TOKEN.to_owned(),
            Some("refresh-token".to_owned()),
        ),
    ]
    .into();
    let due_at = junction_service::now_ms();
    for i in 0..DUE {
        app.services
            .store
            .insert_instance(junction_store::NewInstance {
                account_id: AccountId(1),
                user_id: junction_core::UserId(1),
                element_id: 23,
                element_key: "sfdc",
                name: &format!("due {i}"),
                token: &Secret::new(format!("element-token-{i:04}-0123456789abcdef")),
                config: &public,
                secrets: &secrets,
                tags: &[],
                external_authentication: "initial",
                token_expires_at: Some(due_at),
                now: due_at,
            })
            .await
            .unwrap();
    }

    let report = junction_server::jobs::run_once(&app.services, Duration::from_secs(60)).await;
    assert_eq!((report.refreshed, report.failed), (DUE, 0), "{report:?}");
    assert_eq!(upstream.calls("/api/token").len(), DUE);
    let report = junction_server::jobs::run_once(&app.services, Duration::from_secs(60)).await;
    assert_eq!(report.due, 0, "nothing is left for the next sweep");
}

on_both_backends!(a_long_lived_token_is_still_renewed_once_a_day);

/// An access token said to live 60 days, with a refresh token the provider would drop if
/// left unused that long: the credentials are renewed once a day anyway, by the sweep.
async fn a_long_lived_token_is_still_renewed_once_a_day(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = crate::proxy::Upstream::start().await;
    let (id, _) = crate::proxy::upstream_instance_with(
        &app,
        &upstream,
        "stale-token",
        json!({"oauth.user.refresh_interval": (60 * 24 * 3600).to_string()}),
    )
    .await;
    let day_ms = 24 * 3600 * 1000;
    let due = record(&app.services, id).await.token_expires_at.unwrap();
    assert!(
        (due - (junction_service::now_ms() + day_ms)).abs() < 60_000,
        "renewed within a day, not in 60 days"
    );

    let report = junction_server::jobs::run_once(&app.services, Duration::from_secs(60)).await;
    assert_eq!(report.refreshed, 0, "not due for a day");
    let report =
        junction_server::jobs::run_once(&app.services, Duration::from_millis(day_ms as u64)).await;
    assert_eq!((report.refreshed, report.failed), (1, 0), "{report:?}");
    assert_eq!(upstream.calls("/api/token").len(), 1);
    let renewed = record(&app.services, id).await;
    assert_eq!(access_token(&renewed), "fresh-token");
    // This time the provider said: one hour.
    assert!(renewed.token_expires_at.unwrap() <= junction_service::now_ms() + 3_600_000);
}

on_both_backends!(a_failed_refresh_of_a_short_lived_token_is_tried_again_within_its_lifetime);

/// A token endpoint that answers the first refresh_token grant 503 without passing it on
/// (a provider's passing hiccup), and forwards everything else to `provider`.
async fn hiccup_once(provider: String) -> String {
    use axum::http::StatusCode as Status;
    use axum::response::IntoResponse;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let failed = Arc::new(AtomicBool::new(false));
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move |body: String| {
            let (failed, provider) = (Arc::clone(&failed), provider.clone());
            async move {
                if body.contains("grant_type=refresh_token") && !failed.swap(true, Ordering::SeqCst)
                {
                    let busy = r#"{"error":"temporarily_unavailable"}"#;
                    return (Status::SERVICE_UNAVAILABLE, busy.to_owned()).into_response();
                }
                let answer = http()
                    .post(&provider)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = Status::from_u16(answer.status().as_u16()).unwrap();
                let text = answer.text().await.unwrap();
                (status, [("content-type", "application/json")], text).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// One failed renewal of a 2-second token must not leave the instance without a working
/// token for long: the next attempt comes within the token's own renewal margin (at
/// least a second), not after a fixed half minute during which every call would fail.
async fn a_failed_refresh_of_a_short_lived_token_is_tried_again_within_its_lifetime(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::start(PeerKind::Oidc, &[("ROTATE", "1"), ("AT_TTL", "2")]).await;
    let provider = Provider {
        token: hiccup_once(peer.token_url()).await,
        ..Provider::peer(&peer)
    };
    let instance = provision(&app, "sfdc", &provider, "").await;
    let id = instance["id"].as_i64().unwrap();
    let stale = record(&app.services, id).await;
    let old = Secret::new(access_token(&stale));
    sleep_until_expired(&stale).await;

    let first = app.services.refresh_after_rejection(&stale, &old).await;
    assert!(matches!(first, Err(ServiceError::Provider(_))), "{first:?}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let renewed = app
        .services
        .refresh_after_rejection(&stale, &old)
        .await
        .unwrap_or_else(|e| panic!("the second attempt: {e}"));
    assert_ne!(renewed.expose(), old.expose());
    let stats = peer.stats().await;
    assert_eq!(stats["refreshGrants"], 1, "{stats}");
    assert_eq!(stats["refreshFailures"], 0, "{stats}");
}

//! The testkit against the real peers and databases it wraps.

use junction_testkit::browser::Browser;
use junction_testkit::db::{Backend, TestDatabase};
use junction_testkit::peers::{CLIENT_ID, CLIENT_SECRET, Peer, PeerKind, REDIRECT_URI};
use serde_json::Value;
use sqlx::Connection;

fn authorization_url(peer: &Peer, state: &str, login_hint: Option<&str>) -> String {
    let mut url =
        url::Url::parse(&peer.authorize_url()).expect("the authorization endpoint is a URL");
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("scope", "openid")
            .append_pair("state", state);
        if let Some(hint) = login_hint {
            query.append_pair("login_hint", hint);
        }
    }
    url.into()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("building an HTTP client")
}

async fn code_flow(kind: PeerKind) {
    let peer = Peer::start(kind, &[]).await;
    let callback = Browser::new()
        .authorize(&authorization_url(&peer, "s-123", None), REDIRECT_URI)
        .await;
    assert_eq!(callback.error, None, "{kind:?}: {}", callback.url);
    assert_eq!(callback.state.as_deref(), Some("s-123"));
    let code = callback.code.expect("a code on the callback");

    let response = http()
        .post(peer.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("POST to the token endpoint");
    let status = response.status();
    let token: Value = response.json().await.expect("a JSON token response");
    assert!(status.is_success(), "{kind:?}: {status} {token}");
    let access_token = token["access_token"].as_str().expect("an access_token");

    let me = http()
        .get(format!("{}/me", peer.api_url()))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("GET the peer's API");
    assert!(me.status().is_success(), "{kind:?}: {}", me.status());
}

#[tokio::test]
async fn oidc_code_flow() {
    code_flow(PeerKind::Oidc).await;
}

#[tokio::test]
async fn authlib_code_flow() {
    code_flow(PeerKind::Authlib).await;
}

async fn denied_consent(kind: PeerKind) {
    let peer = Peer::shared(kind).await;
    let callback = Browser::new()
        .authorize(
            &authorization_url(peer, "s-deny", Some("deny")),
            REDIRECT_URI,
        )
        .await;
    assert_eq!(callback.error.as_deref(), Some("access_denied"), "{kind:?}");
    assert_eq!(callback.code, None);
    assert_eq!(callback.state.as_deref(), Some("s-deny"));
}

// Shared peers are used from tests on different runtimes, including after the runtime
// that started them has shut down.
#[tokio::test]
async fn oidc_denied_consent_gives_access_denied() {
    denied_consent(PeerKind::Oidc).await;
}

#[tokio::test]
async fn authlib_denied_consent_gives_access_denied() {
    denied_consent(PeerKind::Authlib).await;
}

#[tokio::test]
async fn shared_peers_are_started_once() {
    let first = Peer::shared(PeerKind::Oidc).await;
    let again = Peer::shared(PeerKind::Oidc).await;
    assert!(std::ptr::eq(first, again));
    assert_eq!(first.kind, PeerKind::Oidc);
    let other = Peer::shared(PeerKind::Authlib).await;
    assert_ne!(first.base_url, other.base_url);
}

#[tokio::test]
async fn the_oauth1_peer_refuses_unsigned_requests() {
    let peer = Peer::shared(PeerKind::AuthlibOAuth1).await;
    let response = http().post(peer.request_token_url()).send().await.unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    let me = http()
        .get(format!("{}/api/me", peer.base_url))
        .send()
        .await
        .unwrap();
    assert!(me.status().is_client_error(), "{}", me.status());
}

#[tokio::test]
#[should_panic(expected = "exited before printing its READY line")]
async fn a_peer_that_fails_to_start_is_reported() {
    Peer::start(PeerKind::Authlib, &[("CLIENTS", "not json")]).await;
}

#[tokio::test]
async fn sqlite_database_accepts_connections() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let one: i64 = sqlx::query_scalar("select 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
}

#[tokio::test]
async fn postgres_database_accepts_connections() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let name: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(name.starts_with("jt_"), "{name}");
}

#[tokio::test]
async fn a_postgres_test_database_is_dropped_when_the_test_ends() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let name = url::Url::parse(&db.url).unwrap().path()[1..].to_owned();
    // A connection still open at the end, as a server under test may hold one.
    let held = sqlx::PgConnection::connect(&db.url).await.unwrap();
    drop(db);
    let admin = std::env::var(junction_testkit::db::DATABASE_URL_ENV).unwrap();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    let left: i64 = sqlx::query_scalar("select count(*) from pg_database where datname = $1")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "{name} outlived its test");
    drop(held);
}

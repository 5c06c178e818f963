//! Elements with a host per customer (`https://{zendesk.subdomain}.zendesk.com/api/v2`):
//! step 1 takes the values their authorization URL is built from, provisioning stores the
//! URLs filled in, and the filled-in hosts are held to the element's pins. Zendesk's own
//! hosts cannot be reached from tests, so the authlib peer plays its authorization and
//! token endpoints through configuration overrides, as a local stand-in may.

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use crate::provisioning::{Provider, authorize};
use junction_testkit::db::Backend;
use junction_testkit::peers::{CLIENT_ID, CLIENT_SECRET, Peer, PeerKind, REDIRECT_URI};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;

on_both_backends!(
    step_one_fills_the_authorization_url_from_the_values_it_is_given,
    provisioning_stores_the_templated_urls_filled_in_and_holds_them_to_the_pins,
    template_values_that_would_end_the_host_early_are_refused_and_nothing_is_stored,
);

fn step_one(query: &str) -> String {
    format!("/elements/zendesk/oauth/url?apiKey={CLIENT_ID}&callbackUrl={REDIRECT_URI}{query}")
}

async fn step_one_fills_the_authorization_url_from_the_values_it_is_given(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.get(&step_one("&zendesk.subdomain=acme")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = url::Url::parse(body["oauthUrl"].as_str().unwrap()).unwrap();
    assert_eq!(url.host_str(), Some("acme.zendesk.com"));
    assert_eq!(url.path(), "/oauth/authorizations/new");
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["scope"], "read write");
    assert_eq!(query["client_id"], CLIENT_ID);

    // The same as a JSON body.
    let (status, posted) = app
        .post(
            "/elements/zendesk/oauth/url",
            &json!({"apiKey": CLIENT_ID, "callbackUrl": REDIRECT_URI, "zendesk.subdomain": "acme"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    assert_eq!(posted, body);

    let (status, body) = app.get(&step_one("")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(assert_error(&body, "missing_parameter").contains("zendesk.subdomain"));

    // Only the values the templates name: step 1 moves no URL by other means.
    for other in [
        "oauth.authorization.url=https%3A%2F%2Fevil.example%2Fauth",
        "base.url=https%3A%2F%2Fevil.example",
    ] {
        let (status, body) = app
            .get(&step_one(&format!("&zendesk.subdomain=acme&{other}")))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{other}: {body}");
        let message = assert_error(&body, "invalid_parameter");
        assert!(message.contains("zendesk.subdomain"), "{message}");
    }
}

fn zendesk_body(code: &str, peer: &Peer, subdomain: &str) -> Value {
    json!({
        "element": {"key": "zendesk"},
        "providerData": {"code": code},
        "configuration": {
            "zendesk.subdomain": subdomain,
            "oauth.api.key": CLIENT_ID,
            "oauth.api.secret": CLIENT_SECRET,
            "oauth.callback.url": REDIRECT_URI,
            "oauth.token.url": peer.token_url(),
        },
        "name": "Acme Zendesk",
    })
}

async fn configuration(app: &TestApp, id: i64) -> HashMap<String, Value> {
    let (status, entries) = app.get(&format!("/instances/{id}/configuration")).await;
    assert_eq!(status, StatusCode::OK, "{entries}");
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_owned(),
                e["propertyValue"].clone(),
            )
        })
        .collect()
}

async fn provisioning_stores_the_templated_urls_filled_in_and_holds_them_to_the_pins(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::shared(PeerKind::Authlib).await;
    let provider = Provider::peer(peer);

    let code = authorize(&app, "zendesk", &provider, "&zendesk.subdomain=acme").await;
    let (status, instance) = app
        .post("/instances", &zendesk_body(&code, peer, "acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    let id = instance["id"].as_i64().unwrap();
    let config = configuration(&app, id).await;
    assert_eq!(config["base.url"], "https://acme.zendesk.com/api/v2");
    assert_eq!(
        config["oauth.authorization.url"],
        "https://acme.zendesk.com/oauth/authorizations/new"
    );
    assert_eq!(
        config["oauth.token.url"],
        peer.token_url(),
        "the caller's own value"
    );

    // Another subdomain moves the credentials: only with a new authorization, and then
    // the URLs follow it.
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {"zendesk.subdomain": "globex"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        assert_error(&body, "host_change_requires_authorization").contains("providerData.code")
    );
    let code = authorize(&app, "zendesk", &provider, "&zendesk.subdomain=globex").await;
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({
                "providerData": {"code": code},
                "configuration": {"zendesk.subdomain": "globex"},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let config = configuration(&app, id).await;
    assert_eq!(config["base.url"], "https://globex.zendesk.com/api/v2");
    assert_eq!(config["oauth.token.url"], peer.token_url());
}

/// `evil.com#` fills `https://evil.com#.zendesk.com/...`, whose host is `evil.com`; a
/// private address there would even pass the pins, which leave local hosts to the
/// outbound policy. Such values are refused wherever a template is filled.
async fn template_values_that_would_end_the_host_early_are_refused_and_nothing_is_stored(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::shared(PeerKind::Authlib).await;
    for (raw, encoded) in [
        ("evil.com#", "evil.com%23"),
        ("10.0.0.5#", "10.0.0.5%23"),
        ("evil.com/", "evil.com%2F"),
        ("me@evil.com", "me%40evil.com"),
        ("evil.com?", "evil.com%3F"),
        ("evil.com:1", "evil.com%3A1"),
        ("ac me", "ac%20me"),
        ("acme..x", "acme..x"),
        (".acme", ".acme"),
    ] {
        let (status, body) = app
            .post("/instances", &zendesk_body("unused", peer, raw))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}: {body}");
        let message = assert_error(&body, "invalid_configuration");
        assert!(message.contains("zendesk.subdomain"), "{message}");

        let (status, body) = app
            .get(&step_one(&format!("&zendesk.subdomain={encoded}")))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{encoded}: {body}");
        let message = assert_error(&body, "invalid_parameter");
        assert!(message.contains("zendesk.subdomain"), "{message}");
    }
    assert!(app.instance_ids().await.is_empty());

    // Labels with hyphens and digits, as real subdomains have, are fine.
    let (status, body) = app.get(&step_one("&zendesk.subdomain=acme-2.eu")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

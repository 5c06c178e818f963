//! Calls Junction makes to providers, hardened: time arithmetic that cannot wrap, what a
//! proxied answer may carry back, which paths may be proxied, and the hosts credentials
//! are bound to.

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use crate::proxy::Upstream;
use junction_testkit::db::Backend;
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(an_out_of_range_refresh_interval_is_refused_and_nothing_is_stored,);

fn external_sfdc(upstream: &Upstream, extra: Value) -> Value {
    let mut configuration = json!({
        "oauth.api.key": "client",
        "oauth.api.secret": "client-secret",
        "oauth.callback.url": "https://app.example.test/cb",
        "oauth.token.url": format!("{}/token", upstream.base_url),
        "oauth.user.token": "access-token",
        "oauth.user.refresh_token": "refresh-token",
        "base.url": upstream.base_url,
    });
    if let (Some(entries), Some(more)) = (configuration.as_object_mut(), extra.as_object()) {
        entries.extend(more.clone());
    }
    json!({
        "element": {"key": "sfdc"},
        "externalAuthentication": "initial",
        "configuration": configuration,
        "name": "upstream",
    })
}

async fn an_out_of_range_refresh_interval_is_refused_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    for interval in ["9223372036854775807", "0", "-5"] {
        let body = external_sfdc(&upstream, json!({"oauth.user.refresh_interval": interval}));
        let (status, error) = app.post("/instances", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{interval}: {error}");
        let message = assert_error(&error, "invalid_configuration");
        assert!(message.contains("oauth.user.refresh_interval"), "{message}");
    }
    assert!(app.instance_ids().await.is_empty());
    // Ten years is the longest lifetime taken; it is accepted as it is.
    let body = external_sfdc(
        &upstream,
        json!({"oauth.user.refresh_interval": "315360000"}),
    );
    let (status, instance) = app.post("/instances", &body).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
}

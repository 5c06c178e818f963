//! The instance lifecycle after provisioning: updates, re-provisioning, configuration
//! entries, enablement, trace logging and the Element-token twins.

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use crate::provisioning::{Provider, authorize, instance_body, provision};
use junction_core::config::keys;
use junction_core::{AccountId, InstanceId};
use junction_testkit::db::Backend;
use junction_testkit::peers::{Peer, PeerKind};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// An instance whose tokens the caller brought (`externalAuthentication: "initial"`), so
/// no provider is involved.
pub(crate) async fn external_instance(app: &TestApp, name: &str) -> Value {
    let (status, instance) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": "sfdc"},
                "externalAuthentication": "initial",
                "configuration": {
                    "oauth.api.key": "client",
                    "oauth.api.secret": "client-secret",
                    "oauth.callback.url": "https://app.example.test/cb",
                    "oauth.user.token": "access-token-from-elsewhere",
                    "oauth.user.refresh_token": "refresh-token-from-elsewhere",
                    "custom.setting": "kept by PATCH, dropped by PUT",
                },
                "tags": ["t1"],
                "name": name,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    instance
}

/// The stored (decrypted) access token of an instance.
async fn stored_access_token(app: &TestApp, instance: &Value) -> String {
    let record = app
        .services
        .store
        .get_instance(AccountId(1), InstanceId(instance["id"].as_i64().unwrap()))
        .await
        .unwrap();
    record.config[keys::USER_TOKEN].clone().unwrap()
}

async fn peer_accepts(peer: &Peer, access_token: &str) -> bool {
    let http = reqwest::Client::builder().build().unwrap();
    http.get(format!("{}/me", peer.api_url()))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
        .is_success()
}

on_both_backends!(
    patch_changes_only_what_it_names,
    put_replaces_configuration_and_keeps_credentials,
    a_refused_reprovisioning_keeps_the_old_credentials_working,
    configuration_entries_are_listed_read_and_patched,
    a_disabled_instance_refuses_its_element_token_until_enabled,
    element_token_twins_address_the_token_instance,
    common_event_configuration_is_validated,
    external_authentication_keeps_the_given_tokens,
);

async fn patch_changes_only_what_it_names(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let instance = external_instance(&app, "before").await;
    let id = instance["id"].as_i64().unwrap();
    let (status, patched) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({
                "name": "<i>after</i>",
                "configuration": {
                    "event.notification.enabled": true,
                    "event.notification.callback.url": "https://app.example.test/events",
                },
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "after");
    assert_eq!(patched["tags"], json!(["t1"]), "tags untouched");
    assert_eq!(patched["eventsEnabled"], true);
    assert_eq!(
        patched["configuration"]["event.notification.enabled"],
        "true"
    );
    assert_eq!(
        patched["configuration"]["custom.setting"],
        "kept by PATCH, dropped by PUT"
    );
    assert_eq!(patched["token"], instance["token"]);
    assert_eq!(patched["id"], id);
    assert!(patched.get("providerData").is_none());

    let (_, retagged) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"tags": ["a", "b"]})),
        )
        .await;
    assert_eq!(
        retagged["tags"],
        json!(["a", "b"]),
        "tags are replaced as a whole"
    );
    let (_, read) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(read, retagged);
}

async fn put_replaces_configuration_and_keeps_credentials(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let instance = external_instance(&app, "put me").await;
    let id = instance["id"].as_i64().unwrap();
    let before = stored_access_token(&app, &instance).await;
    let (status, replaced) = app
        .call(
            Method::PUT,
            &format!("/instances/{id}"),
            Some(&json!({
                "element": {"key": "sfdc"},
                "configuration": {
                    "oauth.api.key": "client",
                    "oauth.api.secret": "rotated-client-secret",
                    "oauth.callback.url": "https://app.example.test/cb",
                },
                "name": "replaced",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["name"], "replaced");
    assert!(
        replaced["configuration"].get("custom.setting").is_none(),
        "{replaced}"
    );
    assert_eq!(replaced["configuration"]["oauth.user.token"], "********");
    assert_eq!(
        stored_access_token(&app, &instance).await,
        before,
        "credentials survive a PUT"
    );
    assert_eq!(replaced["token"], instance["token"]);

    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {"oauth.api.secret": ""}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "missing_configuration").contains("oauth.api.key"));
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/instances/{id}"),
            Some(&json!({"element": {"key": "acton"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "element_mismatch");
}

async fn a_refused_reprovisioning_keeps_the_old_credentials_working(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::shared(PeerKind::Oidc).await;
    let provider = Provider::peer(peer);
    let instance = provision(&app, "sfdc", &provider, "").await;
    let id = instance["id"].as_i64().unwrap();
    let original = stored_access_token(&app, &instance).await;
    assert!(peer_accepts(peer, &original).await);

    let mut bad = instance_body("sfdc", "a-code-nobody-issued", &provider);
    bad.as_object_mut().unwrap().remove("tags");
    let (status, body) = app
        .call(Method::PUT, &format!("/instances/{id}"), Some(&bad))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "provider_refused");
    assert_eq!(stored_access_token(&app, &instance).await, original);
    assert!(
        peer_accepts(peer, &original).await,
        "the old grant still works"
    );

    let code = authorize(&app, "sfdc", &provider, "").await;
    let (status, reprovisioned) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"providerData": {"code": code}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reprovisioned}");
    assert_eq!(reprovisioned["id"], id);
    assert_eq!(
        reprovisioned["token"], instance["token"],
        "the Element token is kept"
    );
    assert_eq!(reprovisioned["valid"], true);
    let renewed = stored_access_token(&app, &instance).await;
    assert_ne!(renewed, original);
    assert!(peer_accepts(peer, &renewed).await);
}

async fn configuration_entries_are_listed_read_and_patched(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let instance = external_instance(&app, "config").await;
    let id = instance["id"].as_i64().unwrap();
    let (status, entries) = app.get(&format!("/instances/{id}/configuration")).await;
    assert_eq!(status, StatusCode::OK);
    let entries = entries.as_array().unwrap().clone();
    let find = |key: &str| entries.iter().find(|e| e["key"] == key).cloned().unwrap();
    let secret = find("oauth.api.secret");
    assert_eq!(secret["propertyValue"], "********");
    assert_eq!(secret["required"], true);
    for field in [
        "id",
        "key",
        "name",
        "propertyValue",
        "type",
        "required",
        "hideFromConsole",
        "active",
    ] {
        assert!(secret.get(field).is_some(), "{field} missing from {secret}");
    }
    let enabled = find("event.notification.enabled");
    assert_eq!(enabled["propertyValue"], "false");
    let entry_path = format!("/instances/{id}/configuration/{}", enabled["id"]);

    let (status, one) = app.get(&entry_path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one, enabled);

    let (status, patched) = app
        .call(
            Method::PATCH,
            &entry_path,
            Some(&json!({"propertyValue": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        patched["propertyValue"], "true",
        "booleans come back as strings"
    );
    let (_, read) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(read["eventsEnabled"], true);

    let (status, body) = app
        .call(
            Method::PATCH,
            &entry_path,
            Some(&json!({"propertyValue": "perhaps"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "invalid_configuration").contains("true or false"));

    let token_entry = find("oauth.user.token");
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}/configuration/{}", token_entry["id"]),
            Some(&json!({"propertyValue": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "read_only_configuration");

    let (status, body) = app.get(&format!("/instances/{id}/configuration/1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "configuration_not_found");
}

async fn a_disabled_instance_refuses_its_element_token_until_enabled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let instance = external_instance(&app, "switch").await;
    let id = instance["id"].as_i64().unwrap();
    let element_auth = format!("Element {}", instance["token"].as_str().unwrap());

    let (status, disabled) = app
        .call(Method::DELETE, &format!("/instances/{id}/enabled"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(disabled["disabled"], true);
    let (status, body) = app
        .call_as(
            &element_auth,
            Method::GET,
            &format!("/instances/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "forbidden");

    // Cloud Elements clients send PUT …/enabled with no body at all.
    let response = app
        .http
        .put(app.url(&format!("/instances/{id}/enabled")))
        .header("Authorization", app.platform_auth())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = app
        .call_as(
            &element_auth,
            Method::GET,
            &format!("/instances/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (_, traced) = app
        .call(
            Method::PUT,
            &format!("/instances/{id}/trace-logging"),
            Some(&json!({"duration": 60})),
        )
        .await;
    assert_eq!(traced["traceLoggingEnabled"], true);
    let (_, untraced) = app
        .call(
            Method::DELETE,
            &format!("/instances/{id}/trace-logging"),
            None,
        )
        .await;
    assert_eq!(untraced["traceLoggingEnabled"], false);
}

async fn element_token_twins_address_the_token_instance(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mine = external_instance(&app, "mine").await;
    let other = external_instance(&app, "other").await;
    let element_auth = format!("Element {}", mine["token"].as_str().unwrap());

    let (status, entries) = app
        .call_as(&element_auth, Method::GET, "/instances/configuration", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{entries}");
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "base.url")
    );

    let (status, renamed) = app
        .call_as(
            &element_auth,
            Method::PATCH,
            "/instances",
            Some(&json!({"name": "renamed by token"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["id"], mine["id"]);
    let (_, untouched) = app.get(&format!("/instances/{}", other["id"])).await;
    assert_eq!(untouched["name"], "other");

    let (status, body) = app
        .call(Method::GET, "/instances/configuration", None)
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a twin needs an Element token"
    );
    assert_error(&body, "missing_instance");

    // A stray Element token on a platform call is ignored.
    let stray = format!("{}, {element_auth}", app.platform_auth());
    let (status, listed) = app.call_as(&stray, Method::GET, "/instances", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // DELETE may carry `Content-Type: application/json` and the body `null`.
    let response = app
        .http
        .delete(app.url("/instances"))
        .header("Authorization", &element_auth)
        .header("Content-Type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.instance_ids().await,
        vec![other["id"].as_i64().unwrap()]
    );
}

async fn common_event_configuration_is_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let instance = external_instance(&app, "events").await;
    let path = format!("/instances/{}", instance["id"]);
    let refused = [
        json!({"event.notification.callback.url": "javascript:alert(1)"}),
        json!({"event.vendor.type": "carrier-pigeon"}),
        json!({"event.notification.type": "email"}),
        json!({"event.poller.refresh_interval": "soon"}),
        json!({"event.poller.configuration": "{not json"}),
        json!({"filter.response.nulls": "sometimes"}),
    ];
    for configuration in refused {
        let (status, body) = app
            .call(
                Method::PATCH,
                &path,
                Some(&json!({"configuration": configuration})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{configuration}: {body}");
        assert_error(&body, "invalid_configuration");
    }
    let (status, accepted) = app
        .call(
            Method::PATCH,
            &path,
            Some(&json!({"configuration": {
                "event.notification.enabled": "TRUE",
                "event.vendor.type": "webhooks",
                "event.notification.type": "webhook",
                "event.notification.callback.url": "https://app.example.test/events",
                "event.notification.signature.key": "sign-me",
                "event.poller.refresh_interval": 15,
                "event.poller.configuration": {"contacts": {"url": "/hubs/crm/contacts", "idField": "Id"}},
                "filter.response.nulls": false,
            }})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    let config = &accepted["configuration"];
    assert_eq!(config["event.notification.enabled"], "true");
    assert_eq!(config["event.poller.refresh_interval"], "15");
    assert_eq!(config["filter.response.nulls"], "false");
    assert_eq!(config["event.notification.signature.key"], "********");
    let poller: Value =
        serde_json::from_str(config["event.poller.configuration"].as_str().unwrap()).unwrap();
    assert_eq!(poller["contacts"]["idField"], "Id");
    assert_eq!(accepted["eventsEnabled"], true);
}

async fn external_authentication_keeps_the_given_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let instance = external_instance(&app, "external").await;
    assert_eq!(instance["externalAuthentication"], "initial");
    assert_eq!(
        instance["configuration"]["oauth.user.refresh_token"],
        "********"
    );
    assert_eq!(
        stored_access_token(&app, &instance).await,
        "access-token-from-elsewhere"
    );

    let (status, body) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": "sfdc"},
                "externalAuthentication": "initial",
                "configuration": {"oauth.api.key": "k", "oauth.api.secret": "s", "oauth.callback.url": "https://x/cb"},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "missing_configuration").contains("oauth.user.token"));

    let (status, body) = app
        .post(
            "/instances",
            &json!({"element": {"key": "sfdc"}, "externalAuthentication": "sometimes"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_external_authentication");
    assert_eq!(app.instance_ids().await.len(), 1);
}

on_both_backends!(an_update_read_before_a_refresh_keeps_the_refreshed_tokens);

/// A PATCH reads the instance, a refresh rotates its tokens, then the PATCH writes: the
/// write must not put back the refresh token the provider has rotated away.
async fn an_update_read_before_a_refresh_keeps_the_refreshed_tokens(backend: Backend) {
    use junction_store::{InstanceUpdate, RefreshedCredentials};
    let app = TestApp::spawn(backend).await;
    let instance = external_instance(&app, "racing").await;
    let id = InstanceId(instance["id"].as_i64().unwrap());
    let store = &app.services.store;
    let stale = store.get_instance(AccountId(1), id).await.unwrap();

    let mut rotated = stale.config.clone();
    rotated.insert(keys::USER_TOKEN.into(), Some("rotated-access".into()));
    rotated.insert(keys::REFRESH_TOKEN.into(), Some("rotated-refresh".into()));
    let secret = |k: &String| {
        [
            "oauth.api.key",
            "oauth.api.secret",
            keys::USER_TOKEN,
            keys::REFRESH_TOKEN,
        ]
        .contains(&k.as_str())
    };
    let (secrets, public): (junction_core::ConfigMap, junction_core::ConfigMap) =
        rotated.into_iter().partition(|(k, _)| secret(k));
    assert!(
        store
            .acquire_refresh_lease(id, "replica-a", 1, i64::MAX)
            .await
            .unwrap()
    );
    assert!(
        store
            .save_refreshed_credentials(RefreshedCredentials {
                id,
                owner: "replica-a",
                config: &public,
                secrets: &secrets,
                token_expires_at: Some(i64::MAX),
                now: 2,
            })
            .await
            .unwrap()
    );

    let (stale_secrets, stale_public): (junction_core::ConfigMap, junction_core::ConfigMap) = stale
        .config
        .clone()
        .into_iter()
        .partition(|(k, _)| secret(k));
    store
        .update_instance(InstanceUpdate {
            account_id: AccountId(1),
            id,
            name: "renamed from a stale read",
            config: &stale_public,
            secrets: &stale_secrets,
            tags: &stale.tags,
            valid: stale.valid,
            disabled: stale.disabled,
            trace_logging_until: stale.trace_logging_until,
            external_authentication: &stale.external_authentication,
            token_expires_at: stale.token_expires_at,
            keep_credentials: true,
            now: 3,
        })
        .await
        .unwrap();
    let stored = store.get_instance(AccountId(1), id).await.unwrap();
    assert_eq!(stored.name, "renamed from a stale read");
    assert_eq!(
        stored.config[keys::REFRESH_TOKEN].as_deref(),
        Some("rotated-refresh")
    );
    assert_eq!(
        stored.config[keys::USER_TOKEN].as_deref(),
        Some("rotated-access")
    );
    assert_eq!(stored.token_expires_at, Some(i64::MAX));
}

on_both_backends!(a_refresh_written_after_an_update_keeps_the_update);

/// The reverse race: a refresh reads the instance, a PATCH changes its configuration,
/// then the refresh writes its tokens. Only the entries the refresh set are written, so
/// the PATCH stays.
async fn a_refresh_written_after_an_update_keeps_the_update(backend: Backend) {
    use junction_store::RefreshedCredentials;
    let app = TestApp::spawn(backend).await;
    let instance = external_instance(&app, "racing").await;
    let id = InstanceId(instance["id"].as_i64().unwrap());
    let store = &app.services.store;
    assert!(
        store
            .acquire_refresh_lease(id, "replica-a", 1, i64::MAX)
            .await
            .unwrap()
    );

    let (status, patched) = app
        .call(
            Method::PATCH,
            &format!("/instances/{}", id.0),
            Some(&json!({"configuration": {"custom.setting": "set during the refresh"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");

    let mut public = junction_core::ConfigMap::new();
    public.insert(keys::REFRESH_TIME.into(), Some("2".into()));
    let mut secrets = junction_core::ConfigMap::new();
    secrets.insert(keys::USER_TOKEN.into(), Some("rotated-access".into()));
    secrets.insert(keys::REFRESH_TOKEN.into(), Some("rotated-refresh".into()));
    assert!(
        store
            .save_refreshed_credentials(RefreshedCredentials {
                id,
                owner: "replica-a",
                config: &public,
                secrets: &secrets,
                token_expires_at: Some(i64::MAX),
                now: 2,
            })
            .await
            .unwrap()
    );
    let stored = store.get_instance_fresh(AccountId(1), id).await.unwrap();
    assert_eq!(
        stored.config["custom.setting"].as_deref(),
        Some("set during the refresh")
    );
    assert_eq!(
        stored.config[keys::REFRESH_TOKEN].as_deref(),
        Some("rotated-refresh")
    );
    assert_eq!(stored.config[keys::REFRESH_TIME].as_deref(), Some("2"));
    assert_eq!(
        stored.config["oauth.callback.url"].as_deref(),
        Some("https://app.example.test/cb"),
        "entries neither side touched stay"
    );
}

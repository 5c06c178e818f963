//! Wire details Cloud Elements clients rely on: the combined `Authorization` header on
//! the Element-token twins, the exact CORS exposed headers, and 401 (not 404) for hub
//! calls without an Element token.

use crate::accounts::other_organization;
use crate::helpers::{TestApp, assert_error};
use crate::lifecycle::external_instance;
use crate::on_both_backends;
use junction_testkit::db::Backend;
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_backends!(
    user_organization_and_element_address_the_token_instance_on_every_twin,
    an_element_token_beside_another_accounts_user_is_refused,
    hub_calls_without_an_element_token_are_401_not_404,
);

async fn user_organization_and_element_address_the_token_instance_on_every_twin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mine = external_instance(&app, "mine").await;
    let other = external_instance(&app, "other").await;
    let id = mine["id"].as_i64().unwrap();
    let token = mine["token"].as_str().unwrap();
    // Any order, as Cloud Elements clients write it.
    let headers = [
        format!("{}, Element {token}", app.platform_auth()),
        format!(
            "Element {token}, Organization {}, User {}",
            crate::helpers::ORG_SECRET,
            crate::helpers::USER_SECRET
        ),
    ];
    for auth in &headers {
        let (status, entries) = app
            .call_as(auth, Method::GET, "/instances/configuration", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{auth}: {entries}");
        let entry = entries
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == "event.notification.enabled")
            .unwrap()
            .clone();
        let entry_path = format!("/instances/configuration/{}", entry["id"]);
        let (status, read) = app.call_as(auth, Method::GET, &entry_path, None).await;
        assert_eq!(status, StatusCode::OK, "{read}");
        let (status, patched) = app
            .call_as(
                auth,
                Method::PATCH,
                &entry_path,
                Some(&json!({"propertyValue": "true"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{patched}");
        assert_eq!(patched["propertyValue"], "true");

        let (status, renamed) = app
            .call_as(
                auth,
                Method::PATCH,
                "/instances",
                Some(&json!({"name": "renamed"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{renamed}");
        assert_eq!(renamed["id"], id);
        let (status, replaced) = app
            .call_as(
                auth,
                Method::PUT,
                "/instances",
                Some(&json!({"name": "replaced", "configuration": {
                    "oauth.api.key": "client",
                    "oauth.api.secret": "client-secret",
                    "oauth.callback.url": "https://app.example.test/cb",
                }})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{replaced}");
        assert_eq!(replaced["id"], id);

        let (status, traced) = app
            .call_as(auth, Method::PUT, "/instances/trace-logging", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{traced}");
        assert_eq!(
            (
                traced["id"].as_i64(),
                traced["traceLoggingEnabled"].as_bool()
            ),
            (Some(id), Some(true))
        );
        let (status, logs) = app
            .call_as(auth, Method::GET, "/instances/trace-logs", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{logs}");
        let (status, untraced) = app
            .call_as(auth, Method::DELETE, "/instances/trace-logging", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{untraced}");
        assert_eq!(untraced["traceLoggingEnabled"], false);

        let (status, enabled) = app
            .call_as(auth, Method::PUT, "/instances/enabled", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{enabled}");
        assert_eq!(enabled["id"], id);

        // The answer names the token's instance, as on any call an Element token made.
        let response = app
            .http
            .get(app.url("/instances/configuration"))
            .header("Authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["elements-element-instance-id"],
            id.to_string().as_str()
        );
    }
    let (_, untouched) = app.get(&format!("/instances/{}", other["id"])).await;
    assert_eq!(untouched["name"], "other");

    let (status, disabled) = app
        .call_as(&headers[0], Method::DELETE, "/instances/enabled", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    assert_eq!(
        (disabled["id"].as_i64(), disabled["disabled"].as_bool()),
        (Some(id), Some(true))
    );
    // Disabled, the token is refused with the secrets beside it as it is alone.
    let (status, body) = app
        .call_as(&headers[0], Method::GET, "/instances/configuration", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "forbidden");
    app.call(Method::PUT, &format!("/instances/{id}/enabled"), None)
        .await;

    let (status, _) = app
        .call_as(&headers[1], Method::DELETE, "/instances", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.instance_ids().await,
        vec![other["id"].as_i64().unwrap()]
    );

    // Platform routes that address no instance still ignore the Element part.
    let mine = external_instance(&app, "again").await;
    let stray = format!(
        "{}, Element {}",
        app.platform_auth(),
        mine["token"].as_str().unwrap()
    );
    let (status, listed) = app.call_as(&stray, Method::GET, "/instances", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let (status, created) = app
        .call_as(
            &stray,
            Method::POST,
            "/instances",
            Some(&json!({
                "element": {"key": "sfdc"},
                "externalAuthentication": "initial",
                "configuration": {
                    "oauth.api.key": "client",
                    "oauth.api.secret": "client-secret",
                    "oauth.callback.url": "https://app.example.test/cb",
                    "oauth.user.token": "access",
                },
                "name": "created with a stray token",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
}

async fn an_element_token_beside_another_accounts_user_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mine = external_instance(&app, "mine").await;
    let token = mine["token"].as_str().unwrap();
    let stranger = other_organization(&app).await;
    for (method, path) in [
        (Method::GET, "/instances/configuration"),
        (Method::PATCH, "/instances"),
        (Method::DELETE, "/instances"),
        (Method::GET, "/instances/trace-logs"),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"name": "taken over"}));
        let (status, answer) = app
            .call_as(
                &format!("{stranger}, Element {token}"),
                method,
                path,
                body.as_ref(),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {answer}");
        assert_error(&answer, "unauthorized");
    }
    let (_, still) = app.get(&format!("/instances/{}", mine["id"])).await;
    assert_eq!(still["name"], "mine");
    // Without an Element token, a twin names no instance.
    let (status, body) = app
        .call(Method::GET, "/instances/configuration", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "missing_instance");
}

async fn hub_calls_without_an_element_token_are_401_not_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mine = external_instance(&app, "mine").await;
    let paths = [
        (Method::GET, "/hubs/crm/contacts"),
        (Method::GET, "/hubs/crm/contacts/42/activities"),
        (Method::POST, "/hubs/marketing/lists"),
        (Method::DELETE, "/hubs/anything/x"),
        (Method::GET, "/hubs/crm/ping"),
    ];
    for (method, path) in &paths {
        let response = app
            .http
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let (status, body) = app.call(method.clone(), path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        assert_error(&body, "unauthorized");
    }
    // With the token, an unknown resource of the instance's element is a 404 that says so.
    let auth = format!("Element {}", mine["token"].as_str().unwrap());
    let (status, body) = app
        .call_as(&auth, Method::GET, "/hubs/crm/campaigns", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let message = assert_error(&body, "resource_not_found");
    assert!(
        message.contains("sfdc") && message.contains("GET /campaigns"),
        "{message}"
    );
}

#[tokio::test]
async fn cors_exposes_exactly_the_cloud_elements_headers_in_their_case_and_order() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mine = external_instance(&app, "mine").await;
    let want = "Elements-Returned-Count, Elements-Total-Count, Elements-Request-Id, \
                Elements-Next-Page-Token, Elements-Trace-Id, Elements-Error, Content-Disposition";
    for (path, auth) in [
        ("/elements", app.platform_auth()),
        ("/instances", app.platform_auth()),
        (
            "/instances/configuration",
            format!("Element {}", mine["token"].as_str().unwrap()),
        ),
        ("/no/such/route", app.platform_auth()),
    ] {
        let response = app
            .http
            .get(app.url(path))
            .header("Origin", "https://app.example.test")
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap();
        let exposed: Vec<_> = response
            .headers()
            .get_all("access-control-expose-headers")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(exposed, [want], "{path}");
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://app.example.test"
        );
        if path == "/instances/configuration" {
            // Not exposed, still sent.
            assert_eq!(
                response.headers()["elements-element-instance-id"],
                mine["id"].to_string().as_str()
            );
        }
    }
}

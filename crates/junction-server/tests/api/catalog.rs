//! The catalog routes and step 1 of provisioning (the OAuth URL).

use crate::helpers::{TestApp, assert_error};
use junction_testkit::db::Backend;
use reqwest::StatusCode;
use serde_json::json;
use url::Url;

const SEED_ELEMENTS: &[&str] = &[
    "facebookleadads",
    "facebooksocial",
    "instagram",
    "acton",
    "sfdc",
    "sfdcdocuments",
    "sfdcmarketingcloud",
    "sfdcservicecloud",
];

fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn elements_lists_every_seed_element_with_unique_ids() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, body) = app.get("/elements").await;
    assert_eq!(status, StatusCode::OK);
    let list = body.as_array().unwrap();
    let keys: Vec<&str> = list.iter().map(|e| e["key"].as_str().unwrap()).collect();
    for key in SEED_ELEMENTS {
        assert!(keys.contains(key), "{key} missing from {keys:?}");
    }
    let mut ids: Vec<i64> = list.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), list.len());

    let (status, keys) = app.get("/elements/keys").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys.as_array().unwrap().len(), list.len());
}

#[tokio::test]
async fn an_element_is_found_by_key_or_id_and_unknown_ones_are_404() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, by_key) = app.get("/elements/sfdc").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_key["hub"], "crm");
    assert_eq!(by_key["authentication"]["type"], "oauth2");
    let config = by_key["configuration"].as_array().unwrap();
    let api_key = config.iter().find(|c| c["key"] == "oauth.api.key").unwrap();
    assert_eq!(api_key["required"], true);

    let (status, by_id) = app.get(&format!("/elements/{}", by_key["id"])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id["key"], "sfdc");

    let (status, body) = app.get("/elements/nosuchthing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(assert_error(&body, "element_not_found").contains("nosuchthing"));
}

#[tokio::test]
async fn oauth_url_matches_the_seed_pages_for_every_element() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let expected = [
        (
            "facebookleadads",
            "www.facebook.com",
            "/v2.8/dialog/oauth",
            "manage_pages,ads_management,pages_messaging",
        ),
        (
            "facebooksocial",
            "graph.facebook.com",
            "/oauth/authorize",
            "public_profile",
        ),
        (
            "instagram",
            "api.instagram.com",
            "/oauth/authorize",
            "basic comments relationships likes",
        ),
        (
            "acton",
            "restapi.actonsoftware.com",
            "/authorize",
            "PRODUCTION",
        ),
        (
            "sfdc",
            "login.salesforce.com",
            "/services/oauth2/authorize",
            "full refresh_token",
        ),
        (
            "sfdcdocuments",
            "login.salesforce.com",
            "/services/oauth2/authorize",
            "full refresh_token",
        ),
        (
            "sfdcmarketingcloud",
            "login.salesforce.com",
            "/services/oauth2/authorize",
            "full refresh_token",
        ),
        (
            "sfdcservicecloud",
            "login.salesforce.com",
            "/services/oauth2/authorize",
            "full refresh_token",
        ),
    ];
    for (key, host, path, scope) in expected {
        let scope_param = if key == "facebooksocial" {
            "&scope=public_profile"
        } else {
            ""
        };
        let (status, body) = app
            .get(&format!(
                "/elements/{key}/oauth/url?apiKey=my-client&apiSecret=my-secret&callbackUrl=https://www.mycoolapp.com/auth{scope_param}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{key}: {body}");
        assert_eq!(body["element"], key);
        let url = Url::parse(body["oauthUrl"].as_str().unwrap()).unwrap();
        assert_eq!(url.host_str(), Some(host), "{key}");
        assert_eq!(url.path(), path, "{key}");
        let q = query_of(url.as_str());
        assert_eq!(q["client_id"], "my-client", "{key}");
        assert_eq!(q["response_type"], "code", "{key}");
        assert_eq!(q["state"], key, "state defaults to the element key");
        assert_eq!(q["scope"], scope, "{key}");
        // Every provider, Act-On included, reads `redirect_uri`.
        assert_eq!(q["redirect_uri"], "https://www.mycoolapp.com/auth", "{key}");
        if key == "acton" {
            assert_eq!(q["callbackUrl"], "https://www.mycoolapp.com/auth", "{key}");
        }
        assert!(
            !url.as_str().contains("my-secret"),
            "{key}: the secret must never be in the URL"
        );
    }
}

#[tokio::test]
async fn oauth_url_takes_state_scope_and_salesforce_site_address() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, body) = app
        .get("/elements/sfdc/oauth/url?apiKey=k&apiSecret=s&callbackUrl=https://a.example/cb&state=mine&scope=api,refresh_token&siteAddress=https://test.salesforce.com")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = body["oauthUrl"].as_str().unwrap();
    assert!(
        url.starts_with("https://test.salesforce.com/services/oauth2/authorize?"),
        "{url}"
    );
    let q = query_of(url);
    assert_eq!(q["state"], "mine");
    assert_eq!(q["scope"], "api refresh_token");
}

#[tokio::test]
async fn oauth_url_by_post_answers_like_get() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, get) = app
        .get("/elements/acton/oauth/url?apiKey=k&apiSecret=s&callbackUrl=https://a.example/cb")
        .await;
    let (status, post) = app
        .post(
            "/elements/acton/oauth/url",
            &json!({"apiKey": "k", "apiSecret": "s", "callbackUrl": "https://a.example/cb"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(get, post);
}

#[tokio::test]
async fn oauth_url_needs_no_client_secret_and_ignores_one_given() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, without) = app
        .get("/elements/sfdc/oauth/url?apiKey=k&callbackUrl=https://a.example/cb")
        .await;
    assert_eq!(status, StatusCode::OK, "{without}");
    let (status, with) = app
        .get("/elements/sfdc/oauth/url?apiKey=k&apiSecret=my-secret&callbackUrl=https://a.example/cb")
        .await;
    assert_eq!(status, StatusCode::OK, "{with}");
    assert_eq!(with, without);
    let (status, posted) = app
        .post(
            "/elements/sfdc/oauth/url",
            &json!({"apiKey": "k", "callbackUrl": "https://a.example/cb"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    assert_eq!(posted, without);
}

#[tokio::test]
async fn oauth_url_names_every_missing_parameter() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, body) = app.get("/elements/sfdc/oauth/url?apiKey=k").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = assert_error(&body, "missing_parameter");
    assert!(message.contains("callbackUrl"), "{message}");
    assert!(
        !message.contains("apiKey") && !message.contains("apiSecret"),
        "{message}"
    );

    let (status, body) = app
        .get("/elements/nope/oauth/url?apiKey=k&apiSecret=s&callbackUrl=c")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "element_not_found");
}

#[tokio::test]
async fn the_openapi_document_and_an_offline_swagger_ui_are_served() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/elements/{key_or_id}/oauth/url",
        "/instances",
        "/instances/{id}",
        "/instances/{id}/configuration/{config_id}",
        "/instances/enabled",
        "/accounts/{id}/users",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    let page = app.http.get(app.root_url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // The UI's script is served by Junction itself, not fetched from a CDN.
    assert!(!html.contains("cdn.") && !html.contains("unpkg"), "{html}");
    let script = app
        .http
        .get(app.root_url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
}

#[tokio::test]
async fn swagger_ui_sends_the_document_to_no_outside_validator() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let initializer = app
        .http
        .get(app.root_url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(initializer.status(), StatusCode::OK);
    let script = initializer.text().await.unwrap();
    assert!(script.contains(r#""validatorUrl": "none""#), "{script}");
    assert!(!script.contains("https://"), "{script}");
}

#[tokio::test]
async fn every_operation_that_checks_credentials_documents_429() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, doc) = app.get("/openapi.json").await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation.get("security").is_none() {
                continue;
            }
            let limited = &operation["responses"]["429"];
            assert!(
                limited["headers"]["Retry-After"].is_object(),
                "{method} {path}: {limited}"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked}");
    // The catalog may be read without credentials; given, they are checked (and show
    // the organization's custom elements too).
    let catalog = &doc["paths"]["/elements"]["get"];
    assert!(
        catalog["security"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({})),
        "{catalog}"
    );
}

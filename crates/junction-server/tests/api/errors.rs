//! Bad input, bad credentials and failing providers: each a clear 4xx (or a 502/504 for
//! the provider's own failures), never a 5xx of Junction's, and nothing half-written.

use crate::helpers::{Options, TestApp, assert_error};
use crate::on_both_backends;
use junction_testkit::db::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn body_with_token_url(token_url: &str) -> Value {
    json!({
        "element": {"key": "sfdc"},
        "providerData": {"code": "abc"},
        "configuration": {
            "oauth.api.key": "k",
            "oauth.api.secret": "s",
            "oauth.callback.url": "https://app.example.test/cb",
            "oauth.token.url": token_url,
        },
        "name": "x",
    })
}

on_both_backends!(bad_requests_are_4xx_and_store_nothing);

async fn bad_requests_are_4xx_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let raw = |body: &'static str, content_type: &'static str| {
        let request = app
            .http
            .post(app.url("/instances"))
            .header("Authorization", app.platform_auth())
            .header("Content-Type", content_type)
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    let (status, body) = raw("{\"element\": ", "application/json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_body");

    let (status, body) = raw(
        "{\"element\": {\"key\": \"sfdc\"}, \"name\": 5}",
        "application/json",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = assert_error(&body, "invalid_body");
    assert!(
        message.contains("name"),
        "the message names the field: {message}"
    );

    let (status, body) = raw("{}", "text/plain").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&body, "unsupported_media_type");

    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    // The server answers 413 without reading the rest and closes that connection, so
    // this request gets a client of its own rather than poisoning the shared pool.
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let response = once
        .post(app.url("/instances"))
        .header("Authorization", app.platform_auth())
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&response.json().await.unwrap(), "body_too_large");

    let (status, body) = app
        .post("/instances", &json!({"element": {"key": "nope"}}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "element_not_found");

    let (status, body) = app
        .post(
            "/instances",
            &json!({"element": {"key": "sfdc"}, "providerData": {"code": "c"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = assert_error(&body, "missing_configuration");
    for key in ["oauth.api.key", "oauth.api.secret", "oauth.callback.url"] {
        assert!(message.contains(key), "{message}");
    }

    let mut no_code = body_with_token_url("https://login.salesforce.com/services/oauth2/token");
    no_code.as_object_mut().unwrap().remove("providerData");
    let (status, body) = app.post("/instances", &no_code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "missing_parameter").contains("providerData.code"));

    let mut array_value = body_with_token_url("https://x.example/token");
    array_value["configuration"]["event.objects"] = json!(["Contact"]);
    let (status, body) = app.post("/instances", &array_value).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "invalid_configuration").contains("event.objects"));

    let (status, body) = app
        .post("/instances", &body_with_token_url("not a url"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "invalid_configuration").contains("oauth.token.url"));

    let (status, body) = app.get("/instances/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_instance_id");

    assert!(app.instance_ids().await.is_empty());
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_401() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app.http.get(app.url("/instances")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_error(&response.json().await.unwrap(), "unauthorized");

    for header in [
        "User nope, Organization nope",
        "Bearer something",
        "User only-user-no-org-secret",
        "Element not-a-token",
    ] {
        let (status, body) = app.call_as(header, Method::GET, "/instances", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header}");
        assert_error(&body, "unauthorized");
    }
    let reversed = format!(
        "Organization {}, User {}",
        crate::helpers::ORG_SECRET,
        crate::helpers::USER_SECRET
    );
    let (status, _) = app
        .call_as(&reversed, Method::GET, "/instances", None)
        .await;
    assert_eq!(status, StatusCode::OK, "order does not matter");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_format() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, body) = app.get("/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found");
    let (status, body) = app.call(Method::PUT, "/elements", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, "method_not_allowed");
    let health = app.http.get(app.root_url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_provider_that_never_answers_is_a_504() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            outbound_timeout: 1,
            ..Options::default()
        },
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let (status, body) = app
        .post(
            "/instances",
            &body_with_token_url(&format!("http://{addr}/token")),
        )
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_error(&body, "provider_timeout");
    held.abort();
    assert!(app.instance_ids().await.is_empty());
}

#[tokio::test]
async fn an_unreachable_provider_is_a_502() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (status, body) = app
        .post(
            "/instances",
            &body_with_token_url(&format!("http://127.0.0.1:{port}/token")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_error(&body, "provider_unreachable");
}

#[tokio::test]
async fn a_provider_answering_garbage_is_a_4xx_with_its_words() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let provider = axum::Router::new().route(
        "/token",
        axum::routing::post(|| async { "<html>Service moved</html>" }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, provider).await });
    let (status, body) = app
        .post(
            "/instances",
            &body_with_token_url(&format!("http://{addr}/token")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "provider_bad_response");
    assert_eq!(body["providerMessage"], "<html>Service moved</html>");
    assert!(app.instance_ids().await.is_empty());
}

#[tokio::test]
async fn the_outbound_policy_refuses_loopback_unless_allowed() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            allow_private: false,
            ..Options::default()
        },
    )
    .await;
    for target in [
        "http://127.0.0.1:9/token",
        "http://localhost:9/token",
        "http://169.254.169.254/latest",
    ] {
        let (status, body) = app.post("/instances", &body_with_token_url(target)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{target}: {body}");
        let message = assert_error(&body, "outbound_address_refused");
        assert!(message.contains("outbound address policy"), "{message}");
    }
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_is_explained_in_json_terms() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (body, field, want) in [
        (
            json!({"element": "sfdc"}),
            "`element`",
            "an object, got a string",
        ),
        (
            json!({"element": {"key": "sfdc", "id": "one"}}),
            "`element.id`",
            "a whole number, got a string",
        ),
        (json!({"tags": "a,b"}), "`tags`", "an array, got a string"),
        (json!(["sfdc"]), "`[0]`", "an object, got a string"),
    ] {
        let (status, answer) = app.post("/instances", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let message = assert_error(&answer, "invalid_body");
        assert!(
            message.contains(field) && message.contains(want),
            "{body}: {message}"
        );
        for rust in ["struct", "InstanceBody", "ElementRef", "i64", "sequence"] {
            assert!(!message.contains(rust), "{body}: {message}");
        }
    }
    assert!(app.instance_ids().await.is_empty());
}

#[tokio::test]
async fn a_repeated_scheme_is_refused_even_when_one_copy_is_right() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let user = crate::helpers::USER_SECRET;
    let org = crate::helpers::ORG_SECRET;
    for header in [
        format!("User bad, User {user}, Organization {org}"),
        format!("User {user}, User bad, Organization {org}"),
        format!("User {user}, Organization {org}, organization {org}"),
    ] {
        let (status, body) = app.call_as(&header, Method::GET, "/instances", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header}");
        let message = assert_error(&body, "unauthorized");
        assert!(message.contains("more than once"), "{message}");
    }
}

#[tokio::test]
async fn a_missing_comma_between_the_secrets_gets_a_hint() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let header = format!(
        "User {} Organization {}",
        crate::helpers::USER_SECRET,
        crate::helpers::ORG_SECRET
    );
    let (status, body) = app.call_as(&header, Method::GET, "/instances", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let message = assert_error(&body, "unauthorized");
    assert!(
        message.contains("separate the parts with a comma"),
        "{message}"
    );
}

/// Sends `authorization` (and `X-Forwarded-For`, if given) to `path`; returns the status,
/// the `Retry-After` header and the body.
async fn attempt(
    app: &TestApp,
    path: &str,
    authorization: &str,
    forwarded_for: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = app
        .http
        .get(app.url(path))
        .header("Authorization", authorization);
    if let Some(address) = forwarded_for {
        request = request.header("X-Forwarded-For", address);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap())
}

fn limited(limit: u32, trust_forwarded_for: bool) -> Options {
    Options {
        auth_failure_limit: limit,
        trust_forwarded_for,
        ..Options::default()
    }
}

#[tokio::test]
async fn an_address_that_keeps_failing_is_answered_429_without_a_look_at_its_secrets() {
    let app = TestApp::spawn_with(Backend::Sqlite, limited(3, false)).await;
    let wrong = "User wrong-user-secret, Organization wrong-organization-secret";
    for _ in 0..2 {
        let (status, _, _) = attempt(&app, "/instances", wrong, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Element-token guesses spend the same budget.
    let (status, _, _) = attempt(&app, "/proxy/me", "Element guessed-token", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, retry_after, body) = attempt(&app, "/instances", wrong, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_error(&body, "too_many_requests");
    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=20).contains(&seconds), "{seconds}");
    let (status, _, body) = attempt(&app, "/proxy/me", "Element guessed-token", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Even the right secrets are not looked at until the budget refills.
    let (status, _, body) = attempt(&app, "/instances", &app.platform_auth(), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

#[tokio::test]
async fn successful_authentications_spend_no_budget() {
    let app = TestApp::spawn_with(Backend::Sqlite, limited(1, false)).await;
    for _ in 0..20 {
        let (status, _, body) = attempt(&app, "/instances", &app.platform_auth(), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // No credentials at all guess nothing either.
    for _ in 0..5 {
        let response = app.http.get(app.url("/instances")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = attempt(&app, "/instances", "User a-guess, Organization b", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = attempt(&app, "/instances", "User a-guess, Organization b", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn x_forwarded_for_chooses_the_address_only_when_trusted() {
    let wrong = "User a-guess, Organization b";
    let untrusting = TestApp::spawn_with(Backend::Sqlite, limited(1, false)).await;
    let (status, _, _) = attempt(&untrusting, "/instances", wrong, Some("198.51.100.1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = attempt(&untrusting, "/instances", wrong, Some("198.51.100.2")).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a client must not pick a fresh address per guess"
    );

    let behind_proxy = TestApp::spawn_with(Backend::Sqlite, limited(1, true)).await;
    let via = |client: &str| format!("203.0.113.9, {client}");
    let (status, _, _) = attempt(
        &behind_proxy,
        "/instances",
        wrong,
        Some(&via("198.51.100.1")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = attempt(
        &behind_proxy,
        "/instances",
        wrong,
        Some(&via("198.51.100.1")),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, _) = attempt(
        &behind_proxy,
        "/instances",
        wrong,
        Some(&via("198.51.100.2")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forwarded_addresses_with_ports_count_as_their_address_and_unnamed_ones_apart() {
    let wrong = "User a-guess, Organization b";
    let app = TestApp::spawn_with(Backend::Sqlite, limited(1, true)).await;
    for (first, second) in [
        ("198.51.100.1:567", "198.51.100.1"),
        ("[2001:db8::1]:80", "[2001:db8::1]"),
    ] {
        let (status, _, _) = attempt(&app, "/instances", wrong, Some(first)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{first}");
        let (status, _, _) = attempt(&app, "/instances", wrong, Some(second)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{second}");
    }
    let (status, _, _) = attempt(&app, "/instances", wrong, Some("unknown")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = attempt(&app, "/instances", wrong, Some("garbage")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // The proxy's own address (used when it adds no header) was not spent by them.
    let (status, _, body) = attempt(&app, "/instances", wrong, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

/// What the OpenAPI document promises for every operation that checks credentials, one
/// real answer per way of authenticating.
#[tokio::test]
async fn each_route_family_answers_429_once_its_guesses_are_spent() {
    for (path, guess) in [
        ("/instances", "User a-guess, Organization b"),
        ("/instances/configuration", "Element guessed-token"),
        ("/proxy/me", "Element guessed-token"),
    ] {
        let app = TestApp::spawn_with(Backend::Sqlite, limited(1, false)).await;
        let (status, _, body) = attempt(&app, path, guess, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        let (status, retry_after, body) = attempt(&app, path, guess, None).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{path}: {body}");
        assert_error(&body, "too_many_requests");
        assert!(retry_after.is_some(), "{path}: Retry-After");
    }
}

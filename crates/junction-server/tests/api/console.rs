//! How the console's pages and files are served: security headers on HTML only, the
//! API's CORS unchanged.

use crate::helpers::TestApp;
use junction_testkit::db::Backend;
use reqwest::StatusCode;

const HTML_PAGES: &[&str] = &["/", "/console/callback", "/connect", "/docs/"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_html_page_carries_the_security_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for page in HTML_PAGES {
        let response = app.http.get(app.root_url(page)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        let headers = response.headers();
        let kind = headers["content-type"].to_str().unwrap();
        assert!(kind.starts_with("text/html"), "{page}: {kind}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self';"), "{page}: {policy}");
        assert!(!policy.contains("unsafe-eval"), "{page}: {policy}");
        assert!(
            !policy
                .split(';')
                .any(|d| d.trim().starts_with("script-src") && d.contains("unsafe-inline")),
            "{page}: {policy}"
        );
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{page}: {policy}"
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{page}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{page}");
    }
    let console = app.http.get(app.root_url("/")).send().await.unwrap();
    let policy = console.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("style-src 'self';"),
        "the console uses no inline styles: {policy}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_files_are_served_with_their_type_and_unknown_ones_are_404() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let script = app
        .http
        .get(app.root_url("/console/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(script.headers()["x-content-type-options"], "nosniff");
    assert!(script.headers().get("content-security-policy").is_none());
    let missing = app
        .http
        .get(app.root_url("/console/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let climbing = app
        .http
        .get(app.root_url("/console/..%2FCargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(climbing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_answers_keep_cors_and_get_no_page_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app
        .http
        .get(app.url("/instances"))
        .header("Authorization", app.platform_auth())
        .header("Origin", "https://app.example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.test"
    );
    assert!(headers.get("content-security-policy").is_none());
    assert!(headers.get("x-frame-options").is_none());
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/instances"))
        .header("Origin", "https://app.example.test")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.test"
    );
}

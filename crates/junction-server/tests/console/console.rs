//! The console: sign in, connect elements (OAuth through the real provider, and
//! directly), manage an instance, and what the pages may load and run.

use crate::helpers::TestApp;
use crate::{screenshot_path, signed_in};
use junction_testkit::chromium::Chromium;
use junction_testkit::db::Backend;
use junction_testkit::peers::{CLIENT_ID, CLIENT_SECRET, Peer, PeerKind};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn start() -> Option<(TestApp, Chromium)> {
    let browser = Chromium::start().await?;
    Some((TestApp::spawn(Backend::Sqlite).await, browser))
}

async fn instances(app: &TestApp) -> Vec<Value> {
    let (status, list) = app.get("/instances").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_shows_an_error_and_the_right_ones_sign_in() {
    let Some((app, browser)) = start().await else {
        return;
    };
    browser.goto(&app.root_url("/")).await;
    browser.see("Sign in").await;
    browser.screenshot(&screenshot_path("sign-in")).await;
    browser.fill("User secret", "not-the-secret").await;
    browser.fill("Organization secret", "nor-this-one").await;
    browser.click("Sign in").await;
    browser
        .see("The user or organization secret is wrong")
        .await;
    browser.screenshot(&screenshot_path("sign-in-error")).await;
    let stored = browser
        .execute(
            "return sessionStorage.getItem('junction.credentials')",
            vec![],
        )
        .await;
    assert_eq!(stored, Value::Null, "a refused secret is not kept");

    signed_in(&app, &browser).await;
    let stored = browser
        .execute(
            "return [sessionStorage.length, localStorage.length, document.cookie, location.href]",
            vec![],
        )
        .await;
    assert_eq!(stored[0], 1, "the secrets live in sessionStorage: {stored}");
    assert_eq!(stored[1], 0, "nothing in localStorage: {stored}");
    assert_eq!(stored[2], "", "no cookie: {stored}");
    assert!(!stored[3].as_str().unwrap().contains("secret"), "{stored}");

    browser.click("Sign out").await;
    browser.see("Signed out.").await;
    let left = browser
        .execute("return sessionStorage.length", vec![])
        .await;
    assert_eq!(left, 0, "signing out forgets the secrets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_sfdc_goes_through_the_provider_and_lists_the_instance() {
    let Some((app, browser)) = start().await else {
        return;
    };
    let callback = app.root_url("/console/callback");
    let clients = json!([{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [callback]}]);
    let peer = Peer::start(PeerKind::Oidc, &[("CLIENTS", &clients.to_string())]).await;
    signed_in(&app, &browser).await;
    browser.click("Catalog").await;
    browser.fill("Search elements", "salesforce sales").await;
    browser.see("1 of").await;
    browser.screenshot(&screenshot_path("catalog")).await;
    browser.click("Connect Salesforce Sales Cloud").await;
    browser.fill("Instance name", "Acme Salesforce").await;
    browser.fill("Tags", "customer-42").await;
    browser.fill("OAuth API Key", CLIENT_ID).await;
    browser.fill("OAuth API Secret", CLIENT_SECRET).await;
    browser.click("Advanced settings").await;
    browser.fill("OAuth Token URL", &peer.token_url()).await;
    browser.fill("Base URL", &peer.api_url()).await;
    browser.screenshot(&screenshot_path("connect")).await;
    browser.click("Connect").await;

    // Salesforce's own host cannot be reached from tests: the browser stops there, and
    // goes on to the local provider with exactly the query Junction built.
    let at_salesforce = browser
        .wait_for_url("Salesforce's authorization page", |u| {
            u.host_str() == Some("login.salesforce.com")
        })
        .await;
    let query: std::collections::HashMap<_, _> = at_salesforce.query_pairs().into_owned().collect();
    assert_eq!(query["redirect_uri"], callback);
    assert_eq!(query["client_id"], CLIENT_ID);
    assert!(
        query["state"].len() >= 32,
        "the console binds its own state: {query:?}"
    );
    assert!(!at_salesforce.as_str().contains(CLIENT_SECRET));
    let mut at_peer = url::Url::parse(&peer.authorize_url()).unwrap();
    at_peer.set_query(at_salesforce.query());
    browser.goto(at_peer.as_str()).await;

    browser.see("Acme Salesforce").await;
    browser.control("Instance actions").await;
    let list = instances(&app).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["element"]["key"], "sfdc");
    assert_eq!(list[0]["name"], "Acme Salesforce");
    assert_eq!(list[0]["tags"], json!(["customer-42"]));
    browser.screenshot(&screenshot_path("instance")).await;

    // Re-authorizing keeps the instance and its token.
    let token = list[0]["token"].clone();
    browser.click("Re-authorize").await;
    browser.fill("OAuth API Key", CLIENT_ID).await;
    browser.fill("OAuth API Secret", CLIENT_SECRET).await;
    browser.click("Advanced settings").await;
    browser.fill("OAuth Token URL", &peer.token_url()).await;
    browser.fill("Base URL", &peer.api_url()).await;
    browser.click("Re-authorize").await;
    let at_salesforce = browser
        .wait_for_url("Salesforce's authorization page", |u| {
            u.host_str() == Some("login.salesforce.com")
        })
        .await;
    let mut at_peer = url::Url::parse(&peer.authorize_url()).unwrap();
    at_peer.set_query(at_salesforce.query());
    browser.goto(at_peer.as_str()).await;
    browser.control("Instance actions").await;
    let again = instances(&app).await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["id"], list[0]["id"]);
    assert_eq!(again[0]["token"], token);

    browser.click("Instances").await;
    browser.see("1 shown").await;
    browser.see("Acme Salesforce").await;
    browser.screenshot(&screenshot_path("instances")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_refuses_shows_its_reason_and_creates_nothing() {
    let Some((app, browser)) = start().await else {
        return;
    };
    let callback = app.root_url("/console/callback");
    signed_in(&app, &browser).await;
    browser
        .goto(&format!(
            "{callback}?error=access_denied&error_description=the+user+denied+the+request&state=x"
        ))
        .await;
    browser
        .see("The provider did not authorize: access_denied")
        .await;
    browser.see("the user denied the request").await;
    assert!(instances(&app).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_a_non_oauth_element_provisions_it_directly() {
    let Some((app, browser)) = start().await else {
        return;
    };
    signed_in(&app, &browser).await;
    let airtable = Airtable::start().await;
    browser.goto(&app.root_url("/#/connect/airtable")).await;
    browser.fill("Instance name", "Team base").await;
    browser.click("Advanced settings").await;
    browser.fill("Base URL", &airtable.base_url).await;
    browser.fill("Personal Access Token", "pat-revoked").await;
    browser.click("Connect").await;
    // Airtable's own words, and what to do about them.
    browser.see("Invalid authentication token").await;
    browser.see("check the client id and secret").await;
    browser.screenshot(&screenshot_path("connect-error")).await;
    assert!(instances(&app).await.is_empty());
    browser.fill("Personal Access Token", AIRTABLE_TOKEN).await;
    browser.click("Connect").await;
    browser.control("Instance actions").await;
    browser.see("Team base").await;
    let list = instances(&app).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["element"]["key"], "airtable");
    assert_eq!(list[0]["configuration"]["airtable.token"], "********");
}

async fn airtable_instance(app: &TestApp, airtable: &Airtable) -> i64 {
    let (status, body) = app
        .post(
            "/instances",
            &json!({"element": {"key": "airtable"}, "name": "Switchable",
                    "configuration": {"airtable.token": AIRTABLE_TOKEN, "base.url": airtable.base_url}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_disabled_re_enabled_and_deleted_from_its_page() {
    let Some((app, browser)) = start().await else {
        return;
    };
    let airtable = Airtable::start().await;
    let id = airtable_instance(&app, &airtable).await;
    signed_in(&app, &browser).await;
    browser.click("Switchable").await;
    browser.click("Disable").await;
    browser.see("disabled").await;
    browser.button("Enable").await;
    let (_, body) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(body["disabled"], true);

    browser.click("Enable").await;
    browser.button("Disable").await;
    let (_, body) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(body["disabled"], false);

    browser.click("Test call").await;
    browser.see("The provider answered at").await;
    browser.click("Start trace logging").await;
    browser.button("Stop trace logging").await;
    let (_, body) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(body["traceLoggingEnabled"], true, "{body}");

    browser.click("Delete").await;
    browser.see("Delete Switchable?").await;
    browser
        .screenshot(&screenshot_path("delete-confirmation"))
        .await;
    browser.click("Confirm delete").await;
    browser.see("No instances yet").await;
    let (status, _) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_load_only_from_junction_and_refuse_inline_scripts() {
    let Some((app, browser)) = start().await else {
        return;
    };
    let airtable = Airtable::start().await;
    let id = airtable_instance(&app, &airtable).await;
    signed_in(&app, &browser).await;
    let origin = app.root_url("");
    for page in [
        "/#/instances".to_owned(),
        "/#/catalog".to_owned(),
        "/#/elements/sfdc".to_owned(),
        "/#/connect/sfdc".to_owned(),
        format!("/#/instances/{id}"),
        "/#/accounts".to_owned(),
    ] {
        browser.goto(&app.root_url(&page)).await;
        browser.see("Sign out").await;
        let names = browser
            .execute(
                "return performance.getEntriesByType('resource').map(e => e.name)",
                vec![],
            )
            .await;
        for name in names.as_array().unwrap() {
            assert!(
                name.as_str().unwrap().starts_with(&origin),
                "{page} loaded {name} from another origin"
            );
        }
    }
    // A script injected into the page (as an XSS would) is refused by the policy.
    let outcome = browser
        .execute(
            "const seen = [];
             document.addEventListener('securitypolicyviolation', e => seen.push(e.violatedDirective));
             const s = document.createElement('script');
             s.textContent = 'window.injected = true';
             document.body.append(s);
             await new Promise(r => setTimeout(r, 50));
             return {injected: window.injected === true, seen};",
            vec![],
        )
        .await;
    assert_eq!(outcome["injected"], false, "{outcome}");
    assert!(
        outcome["seen"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("script-src")),
        "{outcome}"
    );
}

const AIRTABLE_TOKEN: &str = "patJunctionTest.0123456789";

/// A stand-in for Airtable's `GET /v0/meta/whoami`, the call Junction makes to check a
/// personal access token: Airtable answers the token's user and scopes, or 401 with its
/// error object.
struct Airtable {
    base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Airtable {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Airtable {
    async fn start() -> Self {
        use axum::http::{HeaderMap, StatusCode as S};
        use axum::response::IntoResponse;
        async fn whoami(headers: HeaderMap) -> axum::response::Response {
            let expected = format!("Bearer {AIRTABLE_TOKEN}");
            if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&expected) {
                axum::Json(json!({"id": "usrJunction0001", "scopes": ["data.records:read"]}))
                    .into_response()
            } else {
                (
                    S::UNAUTHORIZED,
                    axum::Json(json!({"error": {"type": "AUTHENTICATION_REQUIRED",
                        "message": "Invalid authentication token"}})),
                )
                    .into_response()
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/v0/meta/whoami", axum::routing::get(whoami));
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Airtable {
            base_url: format!("http://{addr}/v0"),
            task,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instance_list_pages_searches_and_filters_by_tag() {
    let Some((app, browser)) = start().await else {
        return;
    };
    let airtable = Airtable::start().await;
    for n in 0..55 {
        let tag = if n % 10 == 0 { "vip" } else { "standard" };
        let (status, body) = app
            .post(
                "/instances",
                &json!({"element": {"key": "airtable"}, "name": format!("Base {n:02}"), "tags": [tag],
                        "configuration": {"airtable.token": AIRTABLE_TOKEN, "base.url": airtable.base_url}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    signed_in(&app, &browser).await;
    browser.see("50 shown of 55").await;
    browser.click("Next page").await;
    browser.see("5 shown").await;
    browser.see("Base 54").await;
    browser.click("First page").await;
    browser.see("50 shown of 55").await;

    browser.fill("Tag", "vip").await;
    browser.click("Filter").await;
    browser.see("6 shown of 6").await;
    browser.fill("Tag", "").await;
    browser.fill("Search instances", "Base 4").await;
    browser.click("Filter").await;
    browser.see("10 shown of 10").await;
    browser.see("Base 49").await;
}

/// The keys a keyboard user presses, as WebDriver spells them.
const TAB: &str = "\u{e004}";
const ENTER: &str = "\u{e007}";

async fn focused_label(browser: &Chromium) -> String {
    browser
        .execute(
            "const e = document.activeElement;
             return e.labels && e.labels[0] ? e.labels[0].textContent
                  : (e.getAttribute('aria-label') || e.textContent || '').trim();",
            vec![],
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_and_opening_an_instance_work_from_the_keyboard() {
    let Some((app, browser)) = start().await else {
        return;
    };
    let airtable = Airtable::start().await;
    airtable_instance(&app, &airtable).await;
    browser.goto(&app.root_url("/")).await;
    browser.see("Sign in").await;
    // The page puts the cursor in the first field.
    assert_eq!(focused_label(&browser).await, "User secret");
    let keys = browser.client.active_element().await.unwrap();
    keys.send_keys(&format!("{}{TAB}", crate::helpers::USER_SECRET))
        .await
        .unwrap();
    assert_eq!(focused_label(&browser).await, "Organization secret");
    browser
        .client
        .active_element()
        .await
        .unwrap()
        .send_keys(&format!("{}{ENTER}", crate::helpers::ORG_SECRET))
        .await
        .unwrap();
    browser.see("Search instances").await;
    // Tab from the top reaches the instance's link; Enter opens it.
    let mut reached = false;
    for _ in 0..20 {
        let active = browser.client.active_element().await.unwrap();
        active.send_keys(TAB).await.unwrap();
        if focused_label(&browser).await == "Switchable" {
            reached = true;
            break;
        }
    }
    assert!(reached, "the instance link is reachable with Tab");
    browser
        .client
        .active_element()
        .await
        .unwrap()
        .send_keys(ENTER)
        .await
        .unwrap();
    browser.control("Instance actions").await;
}

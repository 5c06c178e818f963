//! Outbound rate limits: a custom element declares its provider's limit (`rateLimits`),
//! and Junction paces the calls it proxies so the provider never has to refuse one.
//! The provider here enforces the limit itself, over a sliding window on its own clock,
//! and records when each call arrived: every assertion is about what it measured.

use crate::helpers::{Options, TestApp, assert_error};
use crate::on_both_backends;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode as AxumStatus;
use axum::response::{IntoResponse, Response};
use junction_testkit::db::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

on_both_backends!(
    a_burst_through_junction_never_meets_the_providers_limit,
    a_burst_beyond_the_longest_wait_is_refused_before_the_provider_sees_it,
    a_call_under_two_limits_goes_when_both_have_a_slot,
    a_providers_retry_after_holds_back_the_next_call,
    an_app_limit_is_shared_by_the_instances_of_an_element_and_an_instance_limit_is_not,
    an_oauth_app_limit_is_shared_by_instances_with_the_same_client_id_only,
    a_caller_that_goes_away_while_waiting_gives_its_slot_back,
);

/// What the provider allows each credential: so many calls in any window of so long.
const LIMIT: usize = 5;
const WINDOW: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
struct Arrival {
    at: Instant,
    credential: String,
    /// The provider answered 429.
    refused: bool,
}

/// A provider that allows each credential [`LIMIT`] calls in any [`WINDOW`] and answers
/// 429 with `Retry-After` beyond them; `/v1/busy` always answers 429 with
/// `Retry-After: 2`.
struct Vendor {
    base_url: String,
    log: Arc<Mutex<Vec<Arrival>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Vendor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Vendor {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new().fallback(vendor).with_state(Arc::clone(&log));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base_url,
            log,
            task,
        }
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.log.lock().unwrap().clone()
    }

    fn refused(&self) -> usize {
        self.arrivals().iter().filter(|a| a.refused).count()
    }
}

async fn vendor(State(log): State<Arc<Mutex<Vec<Arrival>>>>, request: Request) -> Response {
    let credential = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let now = Instant::now();
    let mut log = log.lock().unwrap();
    let busy = request.uri().path() == "/v1/busy";
    let recent = log
        .iter()
        .filter(|a| !a.refused && a.credential == credential && now - a.at < WINDOW)
        .count();
    let refused = busy || recent >= LIMIT;
    log.push(Arrival {
        at: now,
        credential,
        refused,
    });
    if refused {
        let wait = if busy { "2" } else { "1" };
        return (
            AxumStatus::TOO_MANY_REQUESTS,
            [("retry-after", wait)],
            axum::Json(json!({"error": "rate_limit_exceeded"})),
        )
            .into_response();
    }
    axum::Json(json!({"ok": true})).into_response()
}

/// A server whose provider calls may take 15 s: twelve calls at five per 2 s take about
/// 7 s, and no call waits longer than the call timeout (5 s in the other tests).
async fn patient(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            outbound_timeout: 15,
            ..Options::default()
        },
    )
    .await
}

/// The most arrivals any window of `window` holds, on the provider's clock.
fn most_in_any_window(arrivals: &[Arrival], window: Duration) -> usize {
    let mut times: Vec<Instant> = arrivals.iter().map(|a| a.at).collect();
    times.sort_unstable();
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t - times[i] < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// A custom element whose calls carry `vendor.api.key` by HTTP basic, with `limits`.
async fn element(app: &TestApp, key: &str, limits: Value) {
    let (status, body) = app
        .post(
            "/elements",
            &json!({
                "name": key, "key": key, "description": "d", "hub": "general",
                "authentication": {"type": "basic"},
                "configuration": [
                    {"key": "base.url", "name": "b", "default": "https://vendor.example.com/v1"},
                    {"key": "vendor.api.key", "name": "k", "type": "PASSWORD", "required": true},
                ],
                "credentials": [{"in": "basic", "username": "{vendor.api.key}", "password": ""}],
                "rateLimits": limits,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn instance(app: &TestApp, element: &str, vendor: &Vendor, api_key: &str) -> String {
    let (status, body) = app
        .post(
            "/instances",
            &json!({"element": {"key": element}, "name": api_key, "configuration": {
                "base.url": vendor.base_url, "vendor.api.key": api_key,
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// A proxied call: its status, body and `Retry-After`.
async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
) -> (StatusCode, Value, Option<u64>) {
    let response = app
        .http
        .request(method, app.url(&format!("/proxy{path}")))
        .header("Authorization", format!("Element {token}"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, retry_after)
}

/// `n` proxied calls at once.
async fn burst(app: &TestApp, token: &str, n: usize) -> Vec<(StatusCode, Value, Option<u64>)> {
    futures_util::future::join_all((0..n).map(|_| call(app, token, Method::GET, "/things"))).await
}

async fn a_burst_through_junction_never_meets_the_providers_limit(backend: Backend) {
    let app = patient(backend).await;
    let vendor = Vendor::start().await;
    element(&app, "paced", json!([{"requests": LIMIT, "per": 2}])).await;
    let token = instance(&app, "paced", &vendor, "key-1").await;

    let answers = burst(&app, &token, 12).await;

    for (status, body, _) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let arrivals = vendor.arrivals();
    assert_eq!(arrivals.len(), 12);
    assert_eq!(vendor.refused(), 0, "the provider refused a call");
    let most = most_in_any_window(&arrivals, WINDOW);
    assert!(most <= LIMIT, "{most} calls arrived within one window");
}

/// The second limit binds: each call books the time its slot allows in both budgets.
async fn a_call_under_two_limits_goes_when_both_have_a_slot(backend: Backend) {
    let app = patient(backend).await;
    let vendor = Vendor::start().await;
    element(
        &app,
        "twice",
        json!([
            {"requests": 100, "per": 60, "scope": "instance"},
            {"requests": LIMIT, "per": 2, "scope": "app"},
        ]),
    )
    .await;
    let token = instance(&app, "twice", &vendor, "key-1").await;

    let answers = burst(&app, &token, 12).await;

    for (status, body, _) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let arrivals = vendor.arrivals();
    assert_eq!(arrivals.len(), 12);
    assert_eq!(vendor.refused(), 0, "the provider refused a call");
    let most = most_in_any_window(&arrivals, WINDOW);
    assert!(most <= LIMIT, "{most} calls arrived within one window");
}

async fn a_burst_beyond_the_longest_wait_is_refused_before_the_provider_sees_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vendor = Vendor::start().await;
    element(
        &app,
        "impatient",
        json!([{"requests": LIMIT, "per": "2s", "maxWait": 0}]),
    )
    .await;
    let token = instance(&app, "impatient", &vendor, "key-1").await;

    let answers = burst(&app, &token, 12).await;

    let sent = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::OK)
        .count();
    let mut refused = 0;
    for (status, body, retry_after) in &answers {
        if *status == StatusCode::OK {
            continue;
        }
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        let message = assert_error(body, "rate_limited");
        assert!(message.contains("5 requests per 2s"), "{message}");
        assert!(
            retry_after.is_some_and(|s| (1..=3).contains(&s)),
            "{retry_after:?}"
        );
        refused += 1;
    }
    assert!(refused > 0, "twelve calls at once all fit a limit of five");
    assert!(sent <= LIMIT);
    assert_eq!(
        vendor.arrivals().len(),
        sent,
        "the provider saw a refused call"
    );
    assert_eq!(vendor.refused(), 0);
}

async fn a_providers_retry_after_holds_back_the_next_call(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vendor = Vendor::start().await;
    element(&app, "roomy", json!([{"requests": 100, "per": 1}])).await;
    let token = instance(&app, "roomy", &vendor, "key-1").await;

    // Not idempotent, so Junction does not retry it: the caller gets the 429.
    let (status, _, retry_after) = call(&app, &token, Method::POST, "/busy").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after, Some(2));
    let (status, body, _) = call(&app, &token, Method::GET, "/things").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let arrivals = vendor.arrivals();
    assert_eq!(arrivals.len(), 2);
    let gap = arrivals[1].at - arrivals[0].at;
    assert!(
        gap >= Duration::from_secs(2),
        "the next call came {gap:?} after the provider asked for 2 s"
    );
}

async fn an_app_limit_is_shared_by_the_instances_of_an_element_and_an_instance_limit_is_not(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let vendor = Vendor::start().await;
    // A burst of one and no waiting: a second call within the window is refused.
    let limits = |scope: &str| json!([{"requests": 1, "per": 60, "scope": scope, "maxWait": 0}]);
    element(&app, "perapp", limits("app")).await;
    element(&app, "perinstance", limits("instance")).await;
    let shared = [
        instance(&app, "perapp", &vendor, "app-1").await,
        instance(&app, "perapp", &vendor, "app-2").await,
    ];
    let own = [
        instance(&app, "perinstance", &vendor, "own-1").await,
        instance(&app, "perinstance", &vendor, "own-2").await,
    ];

    let (status, body, _) = call(&app, &shared[0], Method::GET, "/things").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body, _) = call(&app, &shared[1], Method::GET, "/things").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_error(&body, "rate_limited");

    for token in &own {
        let (status, body, _) = call(&app, token, Method::GET, "/things").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body, _) = call(&app, &own[0], Method::GET, "/things").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_error(&body, "rate_limited");
    assert_eq!(vendor.arrivals().len(), 3);
}

/// An OAuth element's app is its client id: instances with the same one share the app's
/// budget, another client's instance has its own.
async fn an_oauth_app_limit_is_shared_by_instances_with_the_same_client_id_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vendor = Vendor::start().await;
    let (status, body) = app
        .post(
            "/elements",
            &json!({
                "name": "Apped", "key": "apped", "description": "d", "hub": "general",
                "authentication": {"type": "oauth2"}, "uses": ["oauth2"], "oauth": {},
                "configuration": [
                    {"key": "oauth.authorization.url", "name": "a", "default": "https://auth.example.com/authorize"},
                    {"key": "oauth.token.url", "name": "t", "default": "https://auth.example.com/token"},
                    {"key": "base.url", "name": "b", "default": "https://api.example.com/v1"},
                ],
                "rateLimits": [{"requests": 1, "per": 60, "scope": "app", "maxWait": 0}],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let oauth_instance = |client: &'static str, n: u32| {
        let app = &app;
        let base = vendor.base_url.clone();
        async move {
            let (status, body) = app
                .post(
                    "/instances",
                    &json!({
                        "element": {"key": "apped"}, "name": format!("{client}-{n}"),
                        "externalAuthentication": "initial",
                        "configuration": {
                            "oauth.api.key": client,
                            "oauth.api.secret": "secret",
                            "oauth.callback.url": "https://app.example.test/cb",
                            "oauth.user.token": format!("token-{client}-{n}"),
                            "base.url": base,
                        },
                    }),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["token"].as_str().unwrap().to_owned()
        }
    };
    let first = oauth_instance("client-one", 1).await;
    let same_client = oauth_instance("client-one", 2).await;
    let other_client = oauth_instance("client-two", 1).await;

    let (status, body, _) = call(&app, &first, Method::GET, "/things").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body, _) = call(&app, &same_client, Method::GET, "/things").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_error(&body, "rate_limited");
    let (status, body, _) = call(&app, &other_client, Method::GET, "/things").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(vendor.arrivals().len(), 2);
    // The budget is named by a keyed hash of the client id, never the id itself.
    if backend == Backend::Postgres {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
        let keys: Vec<String> = sqlx::query_scalar("select key from rate_budgets")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert!(keys.iter().all(|k| !k.contains("client")), "{keys:?}");
    }
}

async fn a_caller_that_goes_away_while_waiting_gives_its_slot_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vendor = Vendor::start().await;
    // One call at a time, one slot every (4 s + jitter) / 2 = 2.125 s, waits of up to 3 s.
    element(
        &app,
        "queued",
        json!([{"requests": 2, "per": 4, "burst": 1, "maxWait": 3}]),
    )
    .await;
    let token = instance(&app, "queued", &vendor, "key-1").await;
    let (status, body, _) = call(&app, &token, Method::GET, "/things").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The second call books the next slot, 2.125 s on, and its caller leaves before then.
    let impatient = app
        .http
        .get(app.url("/proxy/things"))
        .header("Authorization", format!("Element {token}"))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(impatient.is_err_and(|e| e.is_timeout()));
    // The server learns that the caller left when it sees the connection close.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The third gets that slot back; had it stayed booked, the third's would be 4.25 s
    // after the first call, beyond the 3 s it may wait.
    let (status, body, _) = call(&app, &token, Method::GET, "/things").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        vendor.arrivals().len(),
        2,
        "the call whose caller left was sent"
    );
}

/// A budget whose schedule has run out holds nothing, and is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_budgets_are_pruned_from_postgresql() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let vendor = Vendor::start().await;
    // One slot per 0.1 s + jitter: the budget is idle 0.35 s after a call.
    element(&app, "brief", json!([{"requests": 1, "per": 0.1}])).await;
    let token = instance(&app, "brief", &vendor, "key-1").await;
    let (status, body, _) = call(&app, &token, Method::GET, "/things").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    let rows = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from rate_budgets")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(rows().await, 1);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let pruned = app.services.store.prune_rate_budgets().await.unwrap();

    assert_eq!(pruned, 1);
    assert_eq!(rows().await, 0);
}

mod replicas {
    use super::*;

    /// Two Junction servers on one PostgreSQL share the instance's budget: together they
    /// stay under the provider's limit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_on_one_postgresql_stay_under_the_limit_together() {
        let app = patient(Backend::Postgres).await;
        let other = app.replica().await;
        let vendor = Vendor::start().await;
        element(&app, "shared", json!([{"requests": LIMIT, "per": 2}])).await;
        let token = instance(&app, "shared", &vendor, "key-1").await;

        let (here, there) = tokio::join!(burst(&app, &token, 6), burst(&other, &token, 6));

        for (status, body, _) in here.iter().chain(&there) {
            assert_eq!(*status, StatusCode::OK, "{body}");
        }
        let arrivals = vendor.arrivals();
        assert_eq!(arrivals.len(), 12);
        assert_eq!(vendor.refused(), 0, "the provider refused a call");
        let most = most_in_any_window(&arrivals, WINDOW);
        assert!(most <= LIMIT, "{most} calls arrived within one window");
    }
}

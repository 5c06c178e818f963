//! The real `junction` binary's outbound calls, with the environment an operator's shell
//! may carry.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_junction");
const USER_SECRET: &str = "outbound-user-secret-0123456789";
const ORG_SECRET: &str = "outbound-organization-secret-0123456789";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Paths requested of a loopback HTTP server, which answers every one with `answer`.
async fn recording_server(answer: Value) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app =
        Router::new()
            .fallback(
                |State((seen, answer)): State<(Arc<Mutex<Vec<String>>>, Value)>,
                 request: Request| async move {
                    seen.lock().unwrap().push(request.uri().to_string());
                    axum::Json(answer).into_response()
                },
            )
            .with_state((Arc::clone(&seen), answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// Starts `junction serve` with `env` and returns it with its API address.
fn serve(dir: &std::path::Path, env: &[(&str, &str)]) -> (Server, String) {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("JUNCTION_LOG_FORMAT", "json")
        .env("JUNCTION_LISTEN", "127.0.0.1:0")
        .env("JUNCTION_BOOTSTRAP_USER_SECRET", USER_SECRET)
        .env("JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET", ORG_SECRET)
        .envs(env.iter().copied())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("junction exited").unwrap();
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(a) = event["fields"]["addr"].as_str() {
            break a.to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (Server(child), format!("http://{addr}/elements/api-v2"))
}

/// `HTTP_PROXY` and friends would send every provider call through a proxy, and the
/// address policy would then judge only the proxy's address: Junction ignores them.
#[tokio::test]
async fn proxy_variables_in_the_environment_are_ignored_by_every_outbound_call() {
    let (provider, provider_seen) = recording_server(json!({
        "access_token": "from-provider",
        "refresh_token": "refresh",
        "expires_in": 3600,
        "sub": "me",
    }))
    .await;
    let (proxy, proxy_seen) = recording_server(json!({"access_token": "from-proxy"})).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![("JUNCTION_OUTBOUND_ALLOW_PRIVATE", "true")];
    for name in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        env.push((name, proxy.as_str()));
    }
    let (_server, api) = serve(dir.path(), &env);
    #[allow(clippy::disallowed_methods)]
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let authorization = format!("User {USER_SECRET}, Organization {ORG_SECRET}");

    // The code exchange goes out through the OAuth client…
    let created: Value = http
        .post(format!("{api}/instances"))
        .header("Authorization", &authorization)
        .json(&json!({
            "element": {"key": "sfdc"},
            "providerData": {"code": "a-code"},
            "configuration": {
                "oauth.api.key": "client",
                "oauth.api.secret": "client-secret",
                "oauth.callback.url": "https://app.example.test/cb",
                "oauth.token.url": format!("{provider}/token"),
                "base.url": format!("{provider}/api"),
            },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    // …and a proxied call through the streaming client.
    let answer = http
        .get(format!("{api}/proxy/me"))
        .header("Authorization", format!("Element {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK);

    assert_eq!(
        *provider_seen.lock().unwrap(),
        ["/token", "/api/me"],
        "the provider was called directly"
    );
    assert!(
        proxy_seen.lock().unwrap().is_empty(),
        "the proxy saw {:?}",
        proxy_seen.lock().unwrap()
    );
}

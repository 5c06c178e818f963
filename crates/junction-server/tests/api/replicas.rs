//! Calls served from in-process copies of instances and users still see every change at
//! once in the process that made it, and promptly on every other replica sharing the
//! PostgreSQL database.

use crate::helpers::{ORG_SECRET, TestApp, assert_error};
use crate::lifecycle::external_instance;
use crate::on_both_backends;
use junction_testkit::db::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_backends!(
    a_change_is_seen_by_the_next_call_in_the_same_process,
    every_replica_sees_a_change_made_on_another,
);

/// Longest a replica may keep serving what another replica changed. Notifications take
/// milliseconds; the copies' time to live (30 s in these tests) is far beyond this.
const PROPAGATION: Duration = Duration::from_secs(5);

/// Calls `path` on `app` until it answers `want`, for at most [`PROPAGATION`].
async fn eventually(app: &TestApp, auth: &str, path: &str, want: StatusCode) -> Value {
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let (status, body) = app.call_as(auth, Method::GET, path, None).await;
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {status} {body}, not {want}, {PROPAGATION:?} after the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_change_is_seen_by_the_next_call_in_the_same_process(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let instance = external_instance(&app, "cached").await;
    let id = instance["id"].as_i64().unwrap();
    let element = format!("Element {}", instance["token"].as_str().unwrap());
    let get = |auth: &str| {
        let auth = auth.to_owned();
        let app = &app;
        async move { app.call_as(&auth, Method::GET, "/instances", None).await }
    };
    // Twice, so the second answer comes from the copy.
    for _ in 0..2 {
        assert_eq!(get(&element).await.0, StatusCode::OK);
    }

    let (status, _) = app
        .call(Method::DELETE, &format!("/instances/{id}/enabled"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get(&element).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (status, _) = app
        .call(Method::PUT, &format!("/instances/{id}/enabled"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, patched) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let (status, body) = get(&element).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["name"], "renamed", "{body}");

    let (status, _) = app
        .call(Method::DELETE, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get(&element).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_error(&body, "unauthorized");
}

async fn every_replica_sees_a_change_made_on_another(backend: Backend) {
    if backend == Backend::Sqlite {
        // Replicas share a database only on PostgreSQL.
        return;
    }
    let a = TestApp::spawn(backend).await;
    let b = a.replica().await;
    let instance = external_instance(&a, "shared").await;
    let id = instance["id"].as_i64().unwrap();
    let element = format!("Element {}", instance["token"].as_str().unwrap());
    let one = format!("/instances/{id}");

    // B keeps its own copies of the instance and of the user.
    for _ in 0..2 {
        assert_eq!(
            b.call_as(&element, Method::GET, "/instances", None).await.0,
            StatusCode::OK
        );
        assert_eq!(b.get(&one).await.0, StatusCode::OK);
    }

    a.call(Method::DELETE, &format!("{one}/enabled"), None)
        .await;
    eventually(&b, &element, "/instances", StatusCode::FORBIDDEN).await;
    a.call(Method::PUT, &format!("{one}/enabled"), None).await;
    eventually(&b, &element, "/instances", StatusCode::OK).await;

    a.call(Method::PATCH, &one, Some(&json!({"name": "renamed on A"})))
        .await;
    let deadline = Instant::now() + PROPAGATION;
    while b.get(&one).await.1["name"] != "renamed on A" {
        assert!(Instant::now() < deadline, "B still shows the old name");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A user B has authenticated stops working on B once A deletes them.
    let (status, user) = a
        .post(
            "/accounts/1/users",
            &json!({"emailAddress": "temp@acme.test", "firstName": "T", "lastName": "U"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let user_auth = format!(
        "User {}, Organization {ORG_SECRET}",
        user["secret"].as_str().unwrap()
    );
    eventually(&b, &user_auth, "/instances", StatusCode::OK).await;
    let (status, _) = a
        .call(
            Method::DELETE,
            &format!("/users/{}", user["id"].as_i64().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    eventually(&b, &user_auth, "/instances", StatusCode::UNAUTHORIZED).await;

    a.call(Method::DELETE, &one, None).await;
    eventually(&b, &element, "/instances", StatusCode::UNAUTHORIZED).await;
}

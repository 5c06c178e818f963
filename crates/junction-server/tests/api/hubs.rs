//! Element metadata (`/elements/metadata`, `/elements/{keyOrId}/metadata`) and hub
//! management (`/hubs`, `/hubs/{key}`).

use crate::accounts::other_organization;
use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use junction_testkit::db::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    element_metadata_names_events_and_authentication,
    built_in_hubs_are_those_the_elements_name,
    an_organization_creates_reads_and_deletes_its_own_hubs,
    hub_writes_are_validated_and_built_in_hubs_are_read_only,
    another_replica_sees_a_hub_change_on_its_next_call,
);

async fn anonymous(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn element_metadata_names_events_and_authentication(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, all) = anonymous(&app, "/elements/metadata").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let (_, catalog) = app.get("/elements").await;
    assert_eq!(
        all.as_array().unwrap().len(),
        catalog.as_array().unwrap().len()
    );
    let sfdc = all
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "sfdc")
        .unwrap();
    assert_eq!(sfdc["name"], "Salesforce Sales Cloud");
    assert_eq!(sfdc["hub"], "crm");
    assert_eq!(sfdc["authentication"]["type"], "oauth2");
    assert_eq!(sfdc["events"]["supported"], true);
    assert_eq!(sfdc["events"]["methods"], json!(["polling"]));
    assert!(sfdc.get("resources").is_none(), "only when expanded");

    // By key and by id, expanded or not; the same answer for a signed-in caller.
    let (status, by_key) = app.get("/elements/facebookleadads/metadata").await;
    assert_eq!(status, StatusCode::OK, "{by_key}");
    assert_eq!(by_key["events"]["methods"], json!(["webhook"]));
    let (status, by_id) = anonymous(
        &app,
        &format!("/elements/{}/metadata?expand=true", by_key["id"]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{by_id}");
    assert_eq!(by_id["key"], "facebookleadads");
    assert_eq!(by_id["description"], by_key["description"]);
    assert!(by_id["resources"].is_array(), "{by_id}");

    let (status, body) = app.get("/elements/nosuchthing/metadata").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(assert_error(&body, "element_not_found").contains("nosuchthing"));
    let (status, body) = app.get("/elements/999999/metadata").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "element_not_found");
    let (status, body) = app.get("/elements/sfdc/metadata?expand=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "invalid_parameter").contains("expand"));
    // A header that is there must prove someone.
    let (status, _) = app
        .call_as(
            "User nobody, Organization nothing",
            Method::GET,
            "/elements/metadata",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn built_in_hubs_are_those_the_elements_name(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, hubs) = anonymous(&app, "/hubs").await;
    assert_eq!(status, StatusCode::OK, "{hubs}");
    let (_, elements) = app.get("/elements").await;
    let mut named: Vec<&str> = elements
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["hub"].as_str().unwrap())
        .collect();
    named.sort_unstable();
    named.dedup();
    let mut listed: Vec<&str> = hubs
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["key"].as_str().unwrap())
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, named);
    for hub in hubs.as_array().unwrap() {
        assert!(!hub["name"].as_str().unwrap().is_empty(), "{hub}");
        assert!(!hub["description"].as_str().unwrap().is_empty(), "{hub}");
        assert_eq!(hub["private"], false);
        assert!(hub.get("elements").is_none(), "only when hydrated");
    }

    let (status, hydrated) = app.get("/hubs?hydrate=true").await;
    assert_eq!(status, StatusCode::OK);
    let crm = hydrated
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["key"] == "crm")
        .unwrap();
    let members: Vec<&str> = crm["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert!(members.contains(&"sfdc"), "{members:?}");
    assert!(!members.contains(&"instagram"), "{members:?}");
    assert!(crm["resources"].is_array());

    let (status, one) = anonymous(&app, "/hubs/marketing?hydrate=true").await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["name"], "Marketing");
    assert!(
        one["elements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "acton")
    );
    let (status, body) = app.get("/hubs/nosuchhub").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(assert_error(&body, "hub_not_found").contains("nosuchhub"));
}

async fn an_organization_creates_reads_and_deletes_its_own_hubs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, created) = app
        .post(
            "/hubs",
            &json!({"name": "Field <b>Ops</b>", "description": "Our crews", "videoLink": "https://video.example/ops"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["key"], "fieldops", "derived from the name");
    assert_eq!(created["name"], "Field Ops", "markup stripped");
    assert_eq!(created["private"], true);
    assert_eq!(created["active"], true);
    assert!(created["id"].as_i64().unwrap() >= 100_000, "{created}");

    let (status, read) = app.get("/hubs/fieldops").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["id"], created["id"]);
    assert_eq!(read["videoLink"], "https://video.example/ops");
    let (_, listed) = app.get("/hubs").await;
    assert_eq!(
        listed.as_array().unwrap().last().unwrap()["key"],
        "fieldops"
    );

    // Another organization, and an anonymous caller, see only the built-in hubs.
    let stranger = other_organization(&app).await;
    let (status, body) = app
        .call_as(&stranger, Method::GET, "/hubs/fieldops", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, theirs) = app.call_as(&stranger, Method::GET, "/hubs", None).await;
    assert!(
        !theirs
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["key"] == "fieldops")
    );
    let (status, _) = anonymous(&app, "/hubs/fieldops").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call_as(&stranger, Method::DELETE, "/hubs/fieldops", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The same key is theirs to use.
    let (status, _) = app
        .call_as(
            &stranger,
            Method::POST,
            "/hubs",
            Some(&json!({"key": "fieldops", "name": "Theirs"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app
        .post("/hubs", &json!({"key": "fieldops", "name": "Again"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "conflict");

    // An Element token of the organization reads its hubs, but does not manage them.
    let instance = crate::lifecycle::external_instance(&app, "mine").await;
    let element = format!("Element {}", instance["token"].as_str().unwrap());
    let (status, _) = app
        .call_as(&element, Method::GET, "/hubs/fieldops", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call_as(&element, Method::DELETE, "/hubs/fieldops", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _) = app.call(Method::DELETE, "/hubs/fieldops", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get("/hubs/fieldops").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "hub_not_found");
    let (status, _) = app.call(Method::DELETE, "/hubs/fieldops", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = app
        .call_as(&stranger, Method::GET, "/hubs/fieldops", None)
        .await;
    assert_eq!(theirs["name"], "Theirs");
}

async fn hub_writes_are_validated_and_built_in_hubs_are_read_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (body, needle) in [
        (json!({}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(256)}), "name"),
        (json!({"name": "Bad", "key": "Not A Key"}), "key"),
        (
            json!({"name": "Bad", "videoLink": "javascript:alert(1)"}),
            "videoLink",
        ),
        (
            json!({"name": "Bad", "description": "d".repeat(1001)}),
            "description",
        ),
    ] {
        let (status, answer) = app.post("/hubs", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(
            assert_error(&answer, "invalid_hub").contains(needle),
            "{answer}"
        );
    }
    let (status, body) = app.post("/hubs", &json!({"name": "CRM"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a built-in key: {body}");
    assert!(assert_error(&body, "conflict").contains("built-in"));
    let (status, body) = app.call(Method::DELETE, "/hubs/crm", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "forbidden");
    let (_, listed) = app.get("/hubs").await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["private"] == false)
    );
    let response = app
        .http
        .post(app.url("/hubs"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// Hubs are read from the database on every call, so there is no copy for a replica to
/// keep serving after another replica's change.
async fn another_replica_sees_a_hub_change_on_its_next_call(backend: Backend) {
    if backend == Backend::Sqlite {
        // Replicas share a database only on PostgreSQL.
        return;
    }
    let first = TestApp::spawn(backend).await;
    let second = first.replica().await;
    let (status, _) = second.get("/hubs/shared").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, created) = first.post("/hubs", &json!({"name": "Shared"})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (status, seen) = second.get("/hubs/shared").await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["id"], created["id"]);
    let (status, _) = second.call(Method::DELETE, "/hubs/shared", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = first.get("/hubs/shared").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

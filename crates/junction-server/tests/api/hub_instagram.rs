//! The hub resources of `instagram` (the retired v1 API, kept to its documented shapes),
//! end to end: provisioned against a real OAuth server, then pointed at the Instagram
//! stand-in, which accepts the token the instance holds and records what reached it.

use crate::helpers::{TestApp, assert_error};
use crate::hub_client::{
    access_token, assert_no_gap_or_repeat, assert_objects, assert_vendor_error, get, provision_at,
    walk,
};
use crate::on_both_backends;
use junction_testkit::db::Backend;
use junction_testkit::vendors::instagram::{
    Instagram, InstagramConfig, InstagramServer, USER_ID, USERNAME,
};
use junction_testkit::vendors::{Credential, RecordedRequest};
use reqwest::StatusCode;
use serde_json::Value;

on_both_backends!(
    instagram_profile_and_media_reach_v1_as_documented,
    instagram_media_walks_a_thousand_items_to_the_end,
    instagram_errors_keep_their_status_and_message,
    instagram_media_is_filtered_by_junction_over_the_vendors_pages,
);

async fn setup(backend: Backend, media: usize) -> (TestApp, InstagramServer, Value, String) {
    let app = TestApp::spawn(backend).await;
    let instagram = Instagram::start(InstagramConfig {
        media,
        ..InstagramConfig::default()
    })
    .await;
    let instance = provision_at(&app, "instagram", &format!("{}/v1", instagram.url())).await;
    let token = access_token(&app, &instance).await;
    instagram.add_credential(Credential::Bearer(token.clone()));
    (app, instagram, instance, token)
}

fn last(instagram: &InstagramServer, path: &str) -> RecordedRequest {
    instagram
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("nothing reached {path}"))
}

async fn instagram_profile_and_media_reach_v1_as_documented(backend: Backend) {
    let (app, instagram, instance, token) = setup(backend, 120).await;
    let me = get(&app, &instance, "/hubs/social/users/self").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["id"], USER_ID, "the envelope's data: {}", me.body);
    assert_eq!(me.body["username"], USERNAME);
    assert_eq!(me.body["counts"]["media"], 120);
    assert!(me.body.get("meta").is_none(), "{}", me.body);
    assert!(me.body.get("website").is_none(), "nulls are stripped");
    let sent = last(&instagram, "/v1/users/self");
    // v1 reads the token from the query alone.
    assert_eq!(sent.param("access_token"), Some(token.as_str()));
    assert!(sent.header("authorization").is_none());

    let media = get(
        &app,
        &instance,
        "/hubs/social/users/self/media/recent?pageSize=5",
    )
    .await;
    assert_eq!(media.status, StatusCode::OK, "{}", media.body);
    let items = media.list();
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["id"], format!("1000119_{USER_ID}"));
    assert_eq!(items[0]["user"]["username"], USERNAME);
    assert!(media.header("elements-next-page-token").is_some());
    // Some captions and every location are null at Instagram: left out here.
    assert!(items.iter().all(|m| m.get("location").is_none()));
    assert!(items.iter().any(|m| m.get("caption").is_none()));
    assert!(items.iter().any(|m| m["caption"]["text"].is_string()));
    let sent = last(&instagram, "/v1/users/self/media/recent");
    assert_eq!(sent.param("count"), Some("5"));
    assert_eq!(sent.param("access_token"), Some(token.as_str()));

    assert_objects(
        &app,
        &instance,
        "social",
        &[("users", "id"), ("media", "id")],
    )
    .await;
}

async fn instagram_media_walks_a_thousand_items_to_the_end(backend: Backend) {
    let (app, instagram, instance, _) = setup(backend, 1000).await;
    let expected: Vec<String> = instagram
        .store()
        .all("media")
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let (seen, pages) = walk(
        &app,
        &instance,
        "/hubs/social/users/self/media/recent?pageSize=100",
        "id",
    )
    .await;
    assert_no_gap_or_repeat(&seen, &expected, "media");
    // Instagram serves at most 33 a page, so a larger pageSize is lowered to it.
    assert_eq!(pages, 31);
    let calls: Vec<RecordedRequest> = instagram
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/users/self/media/recent")
        .collect();
    assert_eq!(calls.len(), 31);
    assert!(calls[0].param("max_id").is_none());
    assert!(calls[1..].iter().all(|c| c.param("max_id").is_some()));
    assert!(calls.iter().all(|c| c.param("count") == Some("33")));
}

async fn instagram_errors_keep_their_status_and_message(backend: Backend) {
    let (app, instagram, instance, _) = setup(backend, 10).await;
    instagram.set_credential(Credential::Bearer("a-token-instagram-revoked".into()));
    let refused = get(&app, &instance, "/hubs/social/users/self").await;
    assert_vendor_error(
        &refused,
        StatusCode::BAD_REQUEST,
        "The access_token provided is invalid.",
    );
    let unknown = get(&app, &instance, "/hubs/social/users/self/follows").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    assert_error(&unknown.body, "resource_not_found");
}

async fn instagram_media_is_filtered_by_junction_over_the_vendors_pages(backend: Backend) {
    let (app, instagram, instance, _) = setup(backend, 1000).await;
    let videos: Vec<String> = instagram
        .store()
        .all("media")
        .iter()
        .filter(|m| m["type"] == "video")
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(videos.len(), 200);
    let first = "/hubs/social/users/self/media/recent?pageSize=33&where=type%20%3D%20%27video%27";
    let (seen, _) = walk(&app, &instance, first, "id").await;
    assert_no_gap_or_repeat(&seen, &videos, "videos");
    let calls: Vec<RecordedRequest> = instagram
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/users/self/media/recent")
        .collect();
    // A vendor page the caller's page ended inside is read again for the next one.
    assert!(calls.len() >= 31, "every vendor page was read");
    assert!(calls.iter().all(|c| c.param("where").is_none()));

    let liked = get(
        &app,
        &instance,
        "/users/self/media/recent?pageSize=33&where=likes.count%20%3E%3D%20495&fields=id,likes",
    )
    .await;
    assert_eq!(liked.status, StatusCode::OK, "{}", liked.body);
    for item in liked.list() {
        assert!(item["likes"]["count"].as_u64().unwrap() >= 495, "{item}");
        assert_eq!(item.as_object().unwrap().len(), 2, "{item}");
    }

    let sorted = get(
        &app,
        &instance,
        "/users/self/media/recent?orderBy=created_time",
    )
    .await;
    assert_eq!(sorted.status, StatusCode::BAD_REQUEST, "{}", sorted.body);
    assert!(assert_error(&sorted.body, "unsupported_query").contains("instagram"));
    let profile = get(&app, &instance, "/users/self?where=id%3D%271%27").await;
    assert_eq!(profile.status, StatusCode::BAD_REQUEST, "{}", profile.body);
    assert_error(&profile.body, "unsupported_query");
}

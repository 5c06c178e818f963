//! The hub resources of the Facebook elements (`facebookleadads`, `facebooksocial`), end to
//! end: provisioned through the Graph stand-in's own OAuth dialog, then called with the
//! Element token while the stand-in records what reached it.

use crate::helpers::{TestApp, assert_error};
use crate::hub_client::{
    Answer, access_token, assert_no_gap_or_repeat, assert_objects, assert_vendor_error, get, hub,
    walk,
};
use crate::on_both_backends;
use crate::provisioning::{Provider, provision};
use junction_testkit::db::Backend;
use junction_testkit::graph::{GraphConfig, GraphPage, GraphServer, USER_ID};
use junction_testkit::vendors::RecordedRequest;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    lead_ads_pages_and_forms_reach_graph_with_the_page_token,
    lead_ads_leads_walk_a_thousand_records_to_the_end,
    lead_ads_app_subscriptions_are_listed_made_and_removed,
    lead_ads_graph_errors_keep_their_status_and_message,
    lead_ads_and_facebook_pages_walk_a_thousand_pages,
    facebook_user_and_status_reach_graph_as_documented,
    facebook_status_is_created_read_edited_and_deleted,
    facebook_status_walks_a_thousand_posts_to_the_end,
    facebook_graph_errors_keep_their_status_and_message,
    graph_lists_are_filtered_by_junction_over_the_vendors_pages,
);

const FIRST_PAGE: &str = "101000000000001";
/// The first page's first lead form, holding `GraphConfig::leads` leads.
const FIRST_FORM: &str = "200000000000";

async fn setup(
    backend: Backend,
    element: &str,
    config: GraphConfig,
) -> (TestApp, GraphServer, Value) {
    let app = TestApp::spawn(backend).await;
    let graph = GraphServer::start(config).await;
    let instance = provision(&app, element, &Provider::graph(&graph), "").await;
    (app, graph, instance)
}

/// The last request the stand-in received on `path` (without the version segment).
fn last(graph: &GraphServer, method: &str, path: &str) -> RecordedRequest {
    graph
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == method && r.path == format!("/v2.11{path}"))
        .unwrap_or_else(|| panic!("nothing reached {method} {path}"))
}

fn param<'a>(request: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    request.param(name)
}

fn ids(answer: &Answer) -> Vec<String> {
    answer
        .list()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn lead_ads_pages_and_forms_reach_graph_with_the_page_token(backend: Backend) {
    let (app, graph, instance) = setup(backend, "facebookleadads", GraphConfig::default()).await;
    let user_token = access_token(&app, &instance).await;

    let pages = get(&app, &instance, "/hubs/marketing/pages").await;
    assert_eq!(pages.status, StatusCode::OK, "{}", pages.body);
    assert_eq!(
        ids(&pages),
        vec!["101000000000001", "101000000000002", "101000000000003"]
    );
    assert_eq!(pages.body[0]["name"], "Junction Bakery");
    assert_eq!(pages.body[0]["category"], "Software");
    assert!(pages.header("elements-next-page-token").is_none());
    // The listing's page tokens are credentials: they are never asked for.
    assert!(
        !pages.body.to_string().contains("access_token"),
        "{}",
        pages.body
    );
    let sent = last(&graph, "GET", "/me/accounts");
    assert_eq!(param(&sent, "fields"), Some("id,name,category,tasks"));
    assert_eq!(param(&sent, "limit"), Some("25"));
    assert_eq!(param(&sent, "access_token"), Some(user_token.as_str()));

    let page = get(
        &app,
        &instance,
        &format!("/hubs/marketing/pages/{FIRST_PAGE}"),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["id"], FIRST_PAGE);
    assert_eq!(page.body["fan_count"], 1000);
    assert_eq!(page.body["about"], "About Junction Bakery");
    let sent = last(&graph, "GET", &format!("/{FIRST_PAGE}"));
    assert_eq!(
        param(&sent, "fields"),
        Some("id,name,category,fan_count,link,about")
    );

    // Lead forms want the page's own token: Junction reads it from the page node with
    // the user's token, then lists the forms with it.
    let before = graph.requests().len();
    let forms = get(&app, &instance, &format!("/pages/{FIRST_PAGE}/forms")).await;
    assert_eq!(forms.status, StatusCode::OK, "{}", forms.body);
    assert_eq!(ids(&forms), vec![FIRST_FORM, "200000000001"]);
    assert_eq!(forms.body[0]["status"], "ACTIVE");
    assert_eq!(forms.body[0]["page_id"], FIRST_PAGE);
    let calls = &graph.requests()[before..];
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].path, format!("/v2.11/{FIRST_PAGE}"));
    assert_eq!(param(&calls[0], "fields"), Some("access_token"));
    assert_eq!(param(&calls[0], "access_token"), Some(user_token.as_str()));
    assert_eq!(calls[1].path, format!("/v2.11/{FIRST_PAGE}/leadgen_forms"));
    let page_token = param(&calls[1], "access_token").unwrap();
    assert_ne!(page_token, user_token, "the page's token, not the user's");
    assert!(page_token.starts_with("EAAG"));
    assert_eq!(param(&calls[1], "limit"), Some("25"));

    let lead_id = graph
        .store()
        .all("leads")
        .iter()
        .find(|l| l["form_id"] == FIRST_FORM && l.get("ad_id").is_some())
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .unwrap();
    let lead = get(&app, &instance, &format!("/hubs/marketing/leads/{lead_id}")).await;
    assert_eq!(lead.status, StatusCode::OK, "{}", lead.body);
    assert_eq!(lead.body["id"], lead_id.as_str());
    assert_eq!(lead.body["form_id"], FIRST_FORM);
    assert_eq!(lead.body["field_data"][0]["name"], "email");
    assert!(lead.body["ad_id"].is_string());

    assert_objects(
        &app,
        &instance,
        "marketing",
        &[
            ("pages", "id"),
            ("forms", "id"),
            ("leads", "id"),
            ("subscribed-apps", "id"),
        ],
    )
    .await;
}

async fn lead_ads_leads_walk_a_thousand_records_to_the_end(backend: Backend) {
    let (app, graph, instance) = setup(backend, "facebookleadads", GraphConfig::default()).await;
    let expected: Vec<String> = graph
        .store()
        .all("leads")
        .iter()
        .filter(|l| l["form_id"] == FIRST_FORM)
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), 1050);
    let first = format!("/hubs/marketing/forms/{FIRST_FORM}/leads?pageSize=100");
    let (seen, pages) = walk(&app, &instance, &first, "id").await;
    assert_no_gap_or_repeat(&seen, &expected, "leads");
    assert_eq!(pages, 11);
    // Each page after the first followed Graph's own `paging.next` URL.
    let calls: Vec<RecordedRequest> = graph
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/v2.11/{FIRST_FORM}/leads"))
        .collect();
    assert_eq!(calls.len(), 11);
    assert!(calls[0].param("after").is_none());
    assert!(calls[1..].iter().all(|c| c.param("after").is_some()));
    assert!(calls.iter().all(|c| c.param("limit") == Some("100")));

    // Graph serves at most 100 a page, whatever the caller asks.
    let capped = get(
        &app,
        &instance,
        &format!("/forms/{FIRST_FORM}/leads?pageSize=500"),
    )
    .await;
    assert_eq!(capped.list().len(), 100);
}

async fn lead_ads_app_subscriptions_are_listed_made_and_removed(backend: Backend) {
    let (app, graph, instance) = setup(backend, "facebookleadads", GraphConfig::default()).await;
    let path = format!("/hubs/marketing/pages/{FIRST_PAGE}/subscribed-apps");
    let listed = get(&app, &instance, &path).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body[0]["subscribed_fields"], json!(["leadgen"]));

    let made = hub(
        &app,
        &instance,
        Method::POST,
        &path,
        Some(&json!({"subscribed_fields": ["leadgen", "feed"]})),
    )
    .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    assert_eq!(made.body, json!({"success": true}));
    let sent = last(&graph, "POST", &format!("/{FIRST_PAGE}/subscribed_apps"));
    assert_eq!(
        sent.form(),
        vec![(
            "subscribed_fields".to_owned(),
            r#"["leadgen","feed"]"#.to_owned()
        )]
    );
    assert_ne!(
        sent.param("access_token"),
        Some(access_token(&app, &instance).await.as_str())
    );
    let listed = get(&app, &instance, &path).await;
    assert_eq!(
        listed.body[0]["subscribed_fields"],
        json!(["leadgen", "feed"])
    );

    // Nothing is sent without the fields to subscribe.
    let before = graph.requests().len();
    let refused = hub(&app, &instance, Method::POST, &path, Some(&json!({}))).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(assert_error(&refused.body, "missing_parameter").contains("subscribed_fields"));
    assert_eq!(graph.requests().len(), before);

    let removed = hub(&app, &instance, Method::DELETE, &path, None).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    let listed = get(&app, &instance, &path).await;
    assert_eq!(listed.body, json!([]));
}

async fn lead_ads_graph_errors_keep_their_status_and_message(backend: Backend) {
    let (app, _graph, instance) = setup(backend, "facebookleadads", GraphConfig::default()).await;
    let missing = get(&app, &instance, "/hubs/marketing/leads/999").await;
    assert_vendor_error(
        &missing,
        StatusCode::BAD_REQUEST,
        "Unsupported get request. Object with ID '999' does not exist, cannot be loaded due \
         to missing permissions, or does not support this operation.",
    );
    // A bad field list for a subscription is Graph's to refuse.
    let refused = hub(
        &app,
        &instance,
        Method::POST,
        &format!("/pages/{FIRST_PAGE}/subscribed-apps"),
        Some(&json!({"subscribed_fields": ["carrier_pigeon"]})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused.body["providerMessage"]
            .as_str()
            .unwrap()
            .contains("carrier_pigeon"),
        "{}",
        refused.body
    );
    // A page the user does not manage has no token to read.
    let foreign = get(&app, &instance, "/pages/424242/forms").await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST, "{}", foreign.body);
    assert_error(&foreign.body, "provider_error");
}

async fn lead_ads_and_facebook_pages_walk_a_thousand_pages(backend: Backend) {
    let pages: Vec<GraphPage> = (0..1010)
        .map(|i| GraphPage {
            id: format!("1020000{i:08}"),
            name: format!("Page {i}"),
        })
        .collect();
    let expected: Vec<String> = pages.iter().map(|p| p.id.clone()).collect();
    let config = GraphConfig {
        pages,
        leads: 3,
        ..GraphConfig::default()
    };
    let (app, graph, instance) = setup(backend, "facebookleadads", config).await;
    let (seen, calls) = walk(&app, &instance, "/hubs/marketing/pages?pageSize=100", "id").await;
    assert_no_gap_or_repeat(&seen, &expected, "facebookleadads pages");
    assert_eq!(calls, 11);

    let social = provision(&app, "facebooksocial", &Provider::graph(&graph), "").await;
    let (seen, calls) = walk(&app, &social, "/hubs/social/pages?pageSize=100", "id").await;
    assert_no_gap_or_repeat(&seen, &expected, "facebooksocial pages");
    assert_eq!(calls, 11);
}

async fn facebook_user_and_status_reach_graph_as_documented(backend: Backend) {
    let (app, graph, instance) = setup(backend, "facebooksocial", GraphConfig::default()).await;
    let user_token = access_token(&app, &instance).await;
    let me = get(&app, &instance, "/hubs/social/user/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(
        me.body,
        json!({"id": USER_ID, "name": "Junction Test User"})
    );
    let sent = last(&graph, "GET", "/me");
    assert_eq!(sent.param("access_token"), Some(user_token.as_str()));

    let status = get(&app, &instance, "/hubs/social/status?pageSize=4").await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.list().len(), 4);
    assert_eq!(status.body[0]["message"], "Status 1");
    assert_eq!(status.body[0]["from"]["id"], USER_ID);
    assert!(status.header("elements-next-page-token").is_some());
    let sent = last(&graph, "GET", "/me/feed");
    assert_eq!(sent.param("limit"), Some("4"));
    assert_eq!(sent.param("access_token"), Some(user_token.as_str()));

    let post = format!("{FIRST_PAGE}_{:015}", 503);
    let comments = get(
        &app,
        &instance,
        &format!("/hubs/social/status/{post}/comments"),
    )
    .await;
    assert_eq!(comments.status, StatusCode::OK, "{}", comments.body);
    assert_eq!(
        ids(&comments),
        vec![
            format!("{post}_0"),
            format!("{post}_1"),
            format!("{post}_2")
        ]
    );
    assert_eq!(comments.body[0]["message"], "Comment 1");
    let likes = get(
        &app,
        &instance,
        &format!("/hubs/social/status/{post}/likes"),
    )
    .await;
    assert_eq!(likes.status, StatusCode::OK, "{}", likes.body);
    assert_eq!(likes.list().len(), 3);
    assert!(likes.body[0]["name"].is_string());
    let sent = last(&graph, "GET", &format!("/{post}/likes"));
    assert_eq!(sent.param("limit"), Some("25"));

    assert_objects(
        &app,
        &instance,
        "social",
        &[
            ("user", "id"),
            ("pages", "id"),
            ("status", "id"),
            ("comments", "id"),
            ("likes", "id"),
        ],
    )
    .await;
}

async fn facebook_status_is_created_read_edited_and_deleted(backend: Backend) {
    let (app, graph, instance) = setup(backend, "facebooksocial", GraphConfig::default()).await;
    let created = hub(
        &app,
        &instance,
        Method::POST,
        "/hubs/social/status",
        Some(&json!({"message": "Fresh bread at nine", "link": "https://example.test/bread"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with(&format!("{USER_ID}_")), "{id}");
    let sent = last(&graph, "POST", "/me/feed");
    let mut form = sent.form();
    form.sort();
    assert_eq!(
        form,
        vec![
            ("link".to_owned(), "https://example.test/bread".to_owned()),
            ("message".to_owned(), "Fresh bread at nine".to_owned()),
        ]
    );

    let read = get(&app, &instance, &format!("/hubs/social/status/{id}")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["message"], "Fresh bread at nine");

    let edited = hub(
        &app,
        &instance,
        Method::PATCH,
        &format!("/hubs/social/status/{id}"),
        Some(&json!({"message": "Fresh bread at ten"})),
    )
    .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    let sent = last(&graph, "POST", &format!("/{id}"));
    assert_eq!(
        sent.form(),
        vec![("message".to_owned(), "Fresh bread at ten".to_owned())]
    );
    let read = get(&app, &instance, &format!("/status/{id}")).await;
    assert_eq!(read.body["message"], "Fresh bread at ten");

    let deleted = hub(
        &app,
        &instance,
        Method::DELETE,
        &format!("/status/{id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.body, json!({"success": true}));
    last(&graph, "DELETE", &format!("/{id}"));
    let gone = get(&app, &instance, &format!("/status/{id}")).await;
    assert_eq!(gone.status, StatusCode::BAD_REQUEST, "{}", gone.body);
}

async fn facebook_status_walks_a_thousand_posts_to_the_end(backend: Backend) {
    let (app, graph, instance) = setup(backend, "facebooksocial", GraphConfig::default()).await;
    for i in 0..1000 {
        graph.store().insert(
            "posts",
            json!({
                "id": format!("{USER_ID}_{:015}", 10_000 + i),
                "owner": USER_ID,
                "created_time": "2026-01-01T00:00:00+0000",
                "message": format!("Batch {i}"),
            }),
        );
    }
    let expected: Vec<String> = graph
        .store()
        .all("posts")
        .iter()
        .filter(|p| p["owner"] == USER_ID)
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), 1010);
    let (seen, pages) = walk(&app, &instance, "/hubs/social/status?pageSize=100", "id").await;
    assert_no_gap_or_repeat(&seen, &expected, "status");
    assert_eq!(pages, 11);
}

async fn facebook_graph_errors_keep_their_status_and_message(backend: Backend) {
    let (app, graph, instance) = setup(backend, "facebooksocial", GraphConfig::default()).await;
    let empty = hub(
        &app,
        &instance,
        Method::POST,
        "/hubs/social/status",
        Some(&json!({})),
    )
    .await;
    assert_vendor_error(
        &empty,
        StatusCode::BAD_REQUEST,
        "(#100) Missing message or attachment",
    );
    // A token the user withdrew: Graph's 400 with code 190 is the caller's answer too.
    graph.revoke_all();
    let revoked = get(&app, &instance, "/hubs/social/user/me").await;
    assert_eq!(revoked.status, StatusCode::BAD_REQUEST, "{}", revoked.body);
    assert_error(&revoked.body, "provider_error");
    assert!(
        revoked.body["providerMessage"]
            .as_str()
            .unwrap()
            .contains("has not authorized application"),
        "{}",
        revoked.body
    );
}

async fn graph_lists_are_filtered_by_junction_over_the_vendors_pages(backend: Backend) {
    let (app, graph, instance) = setup(backend, "facebookleadads", GraphConfig::default()).await;
    let organic: Vec<String> = graph
        .store()
        .all("leads")
        .iter()
        .filter(|l| l["form_id"] == FIRST_FORM && l["is_organic"] == true)
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        organic.len() > 100 && organic.len() < 1050,
        "{}",
        organic.len()
    );
    let first = format!(
        "/hubs/marketing/forms/{FIRST_FORM}/leads?pageSize=100&where=is_organic%20%3D%20true"
    );
    let (seen, _) = walk(&app, &instance, &first, "id").await;
    assert_no_gap_or_repeat(&seen, &organic, "organic leads");
    // Graph has no filter language: it was asked for its plain pages.
    let calls: Vec<RecordedRequest> = graph
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/v2.11/{FIRST_FORM}/leads"))
        .collect();
    // A vendor page the caller's page ended inside is read again for the next one.
    assert!(calls.len() >= 11, "every vendor page was read");
    assert!(
        calls
            .iter()
            .all(|c| c.param("where").is_none() && c.param("filtering").is_none())
    );

    let one = get(
        &app,
        &instance,
        "/hubs/marketing/pages?where=name%20LIKE%20%27%25Bikes%27&fields=id,name",
    )
    .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(
        one.body,
        json!([{"id": "101000000000002", "name": "Junction Bikes"}])
    );

    // Junction cannot sort a list Graph pages, and a single page takes no where.
    let sorted = get(&app, &instance, "/hubs/marketing/pages?orderBy=name").await;
    assert_eq!(sorted.status, StatusCode::BAD_REQUEST, "{}", sorted.body);
    let message = assert_error(&sorted.body, "unsupported_query");
    assert!(
        message.contains("orderBy") && message.contains("facebookleadads"),
        "{message}"
    );
    let single = get(
        &app,
        &instance,
        &format!("/pages/{FIRST_PAGE}?where=id%3D1"),
    )
    .await;
    assert_eq!(single.status, StatusCode::BAD_REQUEST, "{}", single.body);
    assert_error(&single.body, "unsupported_query");
    let broken = get(&app, &instance, "/pages?where=name%20%3D").await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST, "{}", broken.body);
    assert_error(&broken.body, "invalid_query");

    let social = provision(&app, "facebooksocial", &Provider::graph(&graph), "").await;
    let stories = get(
        &app,
        &social,
        &format!("/hubs/social/status/{FIRST_PAGE}_{:015}/comments?where=message%20%3D%20%27Comment%202%27", 503),
    )
    .await;
    assert_eq!(stories.status, StatusCode::OK, "{}", stories.body);
    assert_eq!(ids(&stories), vec![format!("{FIRST_PAGE}_{:015}_1", 503)]);
}

//! Step 2 end to end: the OAuth URL from Junction, a real authorization server's consent,
//! the code back to `POST /instances`, and the instance that results.

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use junction_testkit::browser::Browser;
use junction_testkit::db::Backend;
use junction_testkit::graph::{GraphConfig, GraphPage, GraphServer};
use junction_testkit::peers::{CLIENT_ID, CLIENT_SECRET, Peer, PeerKind, REDIRECT_URI};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

/// Where a test provider lives.
pub(crate) struct Provider {
    pub authorize: String,
    pub token: String,
    pub api: String,
}

impl Provider {
    pub fn peer(peer: &Peer) -> Self {
        Self {
            authorize: peer.authorize_url(),
            token: peer.token_url(),
            api: peer.api_url(),
        }
    }

    pub fn graph(graph: &GraphServer) -> Self {
        Self {
            authorize: graph.authorize_url(),
            token: graph.token_url(),
            api: graph.api_url(),
        }
    }
}

/// Runs step 1 on Junction, sends the browser to the provider with exactly the query
/// Junction built (the element's real provider host cannot be reached from tests), and
/// returns the code the provider hands to the callback.
pub(crate) async fn authorize(
    app: &TestApp,
    element: &str,
    provider: &Provider,
    extra: &str,
) -> String {
    let (status, body) = app
        .get(&format!(
            "/elements/{element}/oauth/url?apiKey={CLIENT_ID}&apiSecret={CLIENT_SECRET}&callbackUrl={REDIRECT_URI}{extra}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let built = url::Url::parse(body["oauthUrl"].as_str().unwrap()).unwrap();
    let mut at_provider = url::Url::parse(&provider.authorize).unwrap();
    at_provider.set_query(built.query());
    let callback = Browser::new()
        .authorize(at_provider.as_str(), REDIRECT_URI)
        .await;
    assert_eq!(
        callback.state.as_deref(),
        Some(element),
        "state defaults to the element key"
    );
    callback
        .code
        .unwrap_or_else(|| panic!("no code for {element}: {}", callback.url))
}

pub(crate) fn instance_body(element: &str, code: &str, provider: &Provider) -> Value {
    json!({
        "element": {"key": element},
        "providerData": {"code": code},
        "configuration": {
            "oauth.api.key": CLIENT_ID,
            "oauth.api.secret": CLIENT_SECRET,
            "oauth.callback.url": REDIRECT_URI,
            "oauth.token.url": provider.token,
            "base.url": provider.api,
        },
        "tags": ["customer-42"],
        "name": format!("{element} for customer 42"),
    })
}

pub(crate) async fn provision(
    app: &TestApp,
    element: &str,
    provider: &Provider,
    extra: &str,
) -> Value {
    let code = authorize(app, element, provider, extra).await;
    let (status, instance) = app
        .post("/instances", &instance_body(element, &code, provider))
        .await;
    assert_eq!(status, StatusCode::OK, "{element}: {instance}");
    assert_instance_shape(&instance, element);
    instance
}

fn assert_instance_shape(instance: &Value, element: &str) {
    assert!(
        instance["id"].as_i64().is_some_and(|id| id > 0),
        "{instance}"
    );
    assert_eq!(instance["element"]["key"], element);
    assert!(instance["token"].as_str().is_some_and(|t| t.len() >= 40));
    let created = instance["createdDate"].as_str().unwrap();
    assert!(chrono_like(created), "createdDate {created}");
    assert_eq!(instance["valid"], true);
    assert_eq!(instance["disabled"], false);
    assert_eq!(instance["provisionInteractions"], json!([]));
    assert_eq!(instance["maxCacheSize"], 0);
    assert_eq!(instance["externalAuthentication"], "none");
    assert_eq!(instance["eventsEnabled"], false);
    assert_eq!(instance["tags"], json!(["customer-42"]));
    assert!(instance["user"]["id"].as_i64().is_some());
    assert!(instance["user"]["emailAddress"].as_str().is_some());
    assert!(instance.get("providerData").is_none());
    let config = &instance["configuration"];
    for secret in ["oauth.api.key", "oauth.api.secret", "oauth.user.token"] {
        assert_eq!(
            config[secret], "********",
            "{secret} must be masked: {config}"
        );
    }
    assert!(config["oauth.user.refresh_time"].as_str().is_some());
    assert_eq!(config["oauth.callback.url"], REDIRECT_URI);
    assert!(!instance.to_string().contains(CLIENT_SECRET));
}

/// `YYYY-MM-DDTHH:MM:SSZ`
fn chrono_like(s: &str) -> bool {
    s.len() == 20
        && s.ends_with('Z')
        && s.as_bytes()[10] == b'T'
        && s.chars().filter(char::is_ascii_digit).count() == 14
}

on_both_backends!(
    salesforce_clouds_provision_and_take_the_instance_url_as_base_url,
    facebook_lead_ads_records_every_page_id,
    facebook_social_provisions_through_graph,
    instagram_and_acton_provision_against_authlib,
    an_instance_is_read_listed_and_deleted,
    credentials_are_encrypted_at_rest,
    a_refused_code_stores_nothing_and_says_why,
    another_account_never_sees_an_instance,
    names_and_tags_are_stripped_of_html,
);

async fn salesforce_clouds_provision_and_take_the_instance_url_as_base_url(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::shared(PeerKind::Oidc).await;
    let provider = Provider::peer(peer);
    for element in [
        "sfdc",
        "sfdcdocuments",
        "sfdcmarketingcloud",
        "sfdcservicecloud",
    ] {
        let code = authorize(&app, element, &provider, "").await;
        // No base.url override: Salesforce's instance_url must become the API base.
        let mut body = instance_body(element, &code, &provider);
        body["configuration"]
            .as_object_mut()
            .unwrap()
            .remove("base.url");
        let (status, instance) = app.post("/instances", &body).await;
        assert_eq!(status, StatusCode::OK, "{element}: {instance}");
        assert_instance_shape(&instance, element);
        let config = &instance["configuration"];
        assert_eq!(
            config["base.url"],
            format!("{}/api", peer.base_url),
            "{element}"
        );
        assert_eq!(config["oauth.user.refresh_token"], "********", "{element}");
    }
    assert_eq!(app.instance_ids().await.len(), 4);
}

async fn facebook_lead_ads_records_every_page_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // More pages than one Graph listing page holds, so the listing must be followed.
    let pages: Vec<GraphPage> = (0..130)
        .map(|i| GraphPage {
            id: format!("{}", 371_849_943_149_000u64 + i),
            name: format!("Page {i}"),
        })
        .collect();
    let expected = pages
        .iter()
        .map(|p| p.id.as_str())
        .collect::<Vec<_>>()
        .join("|");
    let graph = GraphServer::start(GraphConfig {
        pages,
        ..GraphConfig::default()
    })
    .await;
    let instance = provision(&app, "facebookleadads", &Provider::graph(&graph), "").await;
    let config = &instance["configuration"];
    assert_eq!(config["facebookleadads.pages"], expected);
    assert_eq!(
        config["oauth.user.refresh_token"],
        Value::Null,
        "Graph issues no refresh token"
    );
    assert_eq!(
        config["oauth.user.refresh_interval"], "5183944",
        "the provider's expires_in"
    );
    assert_eq!(config["event.vendor.type"], "webhooks");
    assert_eq!(config["pagination.max"], "200");
    assert_eq!(graph.token_exchanges(), 1);
}

async fn facebook_social_provisions_through_graph(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = GraphServer::start(GraphConfig::default()).await;
    let instance = provision(
        &app,
        "facebooksocial",
        &Provider::graph(&graph),
        "&scope=public_profile",
    )
    .await;
    assert_eq!(instance["configuration"]["base.url"], graph.api_url());
    assert_eq!(instance["element"]["hub"], "social");
}

async fn instagram_and_acton_provision_against_authlib(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::shared(PeerKind::Authlib).await;
    let provider = Provider::peer(peer);
    // Act-On's URL carries `redirect_uri` (and `callbackUrl` beside it), which the
    // server checks against the client's registered redirect URI, as Act-On does.
    for element in ["instagram", "acton"] {
        let instance = provision(&app, element, &provider, "").await;
        assert_eq!(
            instance["configuration"]["oauth.user.refresh_token"], "********",
            "{element}"
        );
    }
}

async fn an_instance_is_read_listed_and_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let provider = Provider::peer(Peer::shared(PeerKind::Oidc).await);
    let first = provision(&app, "sfdc", &provider, "").await;
    let code = authorize(&app, "sfdc", &provider, "").await;
    let mut body = instance_body("sfdc", &code, &provider);
    body["tags"] = json!(["other"]);
    let (status, second) = app.post("/elements/sfdc/instances", &body).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let id = first["id"].as_i64().unwrap();
    assert!(second["id"].as_i64().unwrap() > id, "ids are sequential");

    let (status, read) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, first, "GET returns what POST returned");

    let (_, tagged) = app.get("/instances?tags[]=customer-42").await;
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    assert_eq!(tagged[0]["id"], id);
    assert_eq!(app.instance_ids().await.len(), 2);

    let element_auth = format!("Element {}", first["token"].as_str().unwrap());
    let (status, by_token) = app
        .call_as(
            &element_auth,
            Method::GET,
            &format!("/instances/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{by_token}");
    let (status, _) = app
        .call_as(
            &element_auth,
            Method::GET,
            &format!("/instances/{}", second["id"]),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an Element token reaches only its instance"
    );

    let (status, _) = app
        .call(Method::DELETE, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "instance_not_found");
    let (status, body) = app
        .call_as(
            &element_auth,
            Method::GET,
            &format!("/instances/{id}"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a deleted instance's token is dead"
    );
    assert_error(&body, "unauthorized");
    let (status, _) = app
        .call(Method::DELETE, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn credentials_are_encrypted_at_rest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = GraphServer::start(GraphConfig::default()).await;
    let instance = provision(&app, "facebookleadads", &Provider::graph(&graph), "").await;
    let token = instance["token"].as_str().unwrap().to_owned();

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    let row = sqlx::query("select config, secrets, token_hash, token_sealed from instances")
        .fetch_one(&pool)
        .await
        .unwrap();
    let config: String = row.get("config");
    let raw: Vec<u8> = [
        config.as_bytes().to_vec(),
        row.get::<Vec<u8>, _>("secrets"),
        row.get::<Vec<u8>, _>("token_hash"),
        row.get::<Vec<u8>, _>("token_sealed"),
    ]
    .concat();
    let contains = |needle: &str| raw.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!contains(CLIENT_SECRET), "client secret stored in clear");
    assert!(!contains(&token), "Element token stored in clear");
    assert!(
        !contains(CLIENT_ID),
        "client id is masked, so it is sealed too"
    );
    for key in ["oauth.user.token", "oauth.api.secret", "oauth.api.key"] {
        assert!(
            !config.contains(key),
            "{key} must live in the sealed column: {config}"
        );
    }
    assert!(config.contains("facebookleadads.pages"));
    pool.close().await;
}

async fn a_refused_code_stores_nothing_and_says_why(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let provider = Provider::peer(Peer::shared(PeerKind::Oidc).await);
    let (status, body) = app
        .post(
            "/instances",
            &instance_body("sfdc", "not-a-real-code", &provider),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "provider_refused");
    assert!(
        body["providerMessage"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{body}"
    );
    assert!(app.instance_ids().await.is_empty());

    let graph = GraphServer::start(GraphConfig::default()).await;
    let code = authorize(&app, "facebooksocial", &Provider::graph(&graph), "").await;
    let mut body = instance_body("facebooksocial", &code, &Provider::graph(&graph));
    body["configuration"]["oauth.api.secret"] = json!("wrong-secret");
    let (status, refused) = app.post("/instances", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["providerMessage"]
            .as_str()
            .unwrap()
            .contains("Error validating client secret"),
        "{refused}"
    );
    assert!(app.instance_ids().await.is_empty());
}

async fn another_account_never_sees_an_instance(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let instance = provision(
        &app,
        "sfdc",
        &Provider::peer(Peer::shared(PeerKind::Oidc).await),
        "",
    )
    .await;
    let id = instance["id"].as_i64().unwrap();
    let other_user = junction_core::Secret::new("other-user-secret-0123456789");
    let other_org = junction_core::Secret::new("other-org-secret-0123456789");
    app.services
        .store
        .create_organization(junction_store::NewOrganization {
            name: "Other",
            account_name: "Other account",
            email: "other@example.com",
            first_name: "O",
            last_name: "Ther",
            organization_secret: &other_org,
            user_secret: &other_user,
            now: 0,
        })
        .await
        .unwrap();
    let other = format!(
        "User {}, Organization {}",
        other_user.expose(),
        other_org.expose()
    );
    let (status, body) = app
        .call_as(&other, Method::GET, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, list) = app.call_as(&other, Method::GET, "/instances", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([]));
    let (status, _) = app
        .call_as(&other, Method::DELETE, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Mixing one tenant's user secret with another's organization secret proves nothing.
    let mixed = format!(
        "User {}, Organization {}",
        other_user.expose(),
        crate::helpers::ORG_SECRET
    );
    let (status, _) = app.call_as(&mixed, Method::GET, "/instances", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.instance_ids().await, vec![id]);
}

async fn names_and_tags_are_stripped_of_html(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let provider = Provider::peer(Peer::shared(PeerKind::Authlib).await);
    let code = authorize(&app, "acton", &provider, "").await;
    let mut body = instance_body("acton", &code, &provider);
    body["name"] = json!("<a href=\"http://evil\">churros-xss</a>");
    body["tags"] = json!(["<b>vip</b>", "vip"]);
    let (status, instance) = app.post("/instances", &body).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(instance["name"], "churros-xss");
    assert_eq!(instance["tags"], json!(["vip"]));
}

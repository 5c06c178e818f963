//! The Element Builder: custom elements over the API, their parts, ownership, the
//! read-only built-ins, export and import, instances of custom elements, and every
//! replica seeing another's changes.

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use junction_testkit::db::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_backends!(
    a_custom_element_is_created_read_listed_changed_and_deleted,
    a_bad_definition_is_a_400_naming_the_field_and_nothing_is_stored,
    built_in_elements_are_read_only_and_their_clones_are_private_copies,
    another_organizations_custom_element_is_not_found_anywhere,
    export_delete_import_gives_the_same_element,
    parts_are_added_read_replaced_and_removed_by_their_address,
    a_custom_elements_instance_proxies_and_pings_and_holds_its_element,
    a_jdbc_element_is_stored_and_served_but_never_provisioned,
    every_replica_sees_another_replicas_element_changes,
    custom_elements_are_in_their_organizations_metadata_and_hydrated_hubs,
    a_custom_element_names_a_built_in_hub_or_one_of_its_organizations,
    a_custom_elements_templated_oauth_url_is_filled_from_the_callers_values,
    a_part_after_one_with_the_largest_id_must_name_its_own,
    clones_of_elements_with_long_keys_get_keys_within_the_limit,
    a_custom_element_cannot_unmask_reserved_secrets_or_default_them,
    secret_entries_and_the_authentication_type_stay_while_instances_exist,
    clones_carry_no_secret_defaults,
    a_custom_element_using_a_fragment_gets_its_resources_under_its_own_hub,
);

/// A custom OAuth 2.0 element, as a Cloud Elements client would post it: no key (it is
/// derived from the name), no id, the shared OAuth entries pulled in by `uses`.
fn churros() -> Value {
    json!({
        "name": "Churros DB element",
        "description": "A custom element for the tests",
        "hub": "crm",
        "authentication": {"type": "oauth2"},
        "typeOauth": true,
        "ping": "/ping",
        "uses": ["oauth2"],
        "configuration": [
            {"key": "oauth.authorization.url", "name": "Authorization URL", "default": "https://auth.churros.example/authorize"},
            {"key": "oauth.token.url", "name": "Token URL", "default": "https://auth.churros.example/token"},
            {"key": "base.url", "name": "Base URL", "default": "https://api.churros.example/v1"},
            {"key": "oauth.api.key", "name": "Client id", "required": true}
        ],
        "oauth": {"scopeSeparator": ","},
        "resources": [
            {"path": "/hubs/crm/contacts", "method": "GET", "vendorPath": "/contacts"}
        ],
        "objects": [
            {"name": "contacts", "fields": [{"name": "id", "type": "string"}]}
        ]
    })
}

async fn create(app: &TestApp, body: &Value) -> Value {
    let (status, element) = app.post("/elements", body).await;
    assert_eq!(status, StatusCode::OK, "{element}");
    element
}

/// The second organization's administrator credentials.
async fn other_organization(app: &TestApp) -> String {
    let user = junction_core::Secret::new("builder-other-user-0123456789");
    let org = junction_core::Secret::new("builder-other-org-0123456789");
    app.services
        .store
        .create_organization(junction_store::NewOrganization {
            name: "Other",
            account_name: "Other account",
            email: "other@example.com",
            first_name: "O",
            last_name: "Ther",
            organization_secret: &org,
            user_secret: &user,
            now: 0,
        })
        .await
        .unwrap();
    format!("User {}, Organization {}", user.expose(), org.expose())
}

fn keys_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_custom_element_is_created_read_listed_changed_and_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let element = create(&app, &churros()).await;
    assert_eq!(element["key"], "churrosdbelement", "{element}");
    let id = element["id"].as_i64().unwrap();
    assert!(id >= 100_000, "custom ids never clash with built-ins: {id}");
    assert_eq!(element["hookName"], "Churros DB element");

    for address in ["churrosdbelement".to_owned(), id.to_string()] {
        let (status, shown) = app.get(&format!("/elements/{address}")).await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(shown["key"], "churrosdbelement");
        assert_eq!(shown["private"], true);
        assert!(
            shown["configuration"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["key"] == "oauth.user.refresh_token"),
            "the oauth2 fragment was merged in: {shown}"
        );
    }
    let (_, list) = app.get("/elements").await;
    let keys = keys_of(&list);
    assert!(keys.contains(&"sfdc".to_owned()) && keys.contains(&"churrosdbelement".to_owned()));
    let (status, url) = app
        .get("/elements/churrosdbelement/oauth/url?apiKey=app&callbackUrl=https://app.example.test/cb")
        .await;
    assert_eq!(status, StatusCode::OK, "{url}");
    let url = url["oauthUrl"].as_str().unwrap();
    assert!(
        url.starts_with("https://auth.churros.example/authorize?") && url.contains("client_id=app"),
        "{url}"
    );
    let (_, keys) = app.get("/elements/keys").await;
    assert!(
        keys.as_array()
            .unwrap()
            .contains(&json!("churrosdbelement"))
    );
    // Without credentials, only the built-ins.
    let anonymous: Value = app
        .http
        .get(app.url("/elements"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!keys_of(&anonymous).contains(&"churrosdbelement".to_owned()));

    let mut changed = churros();
    changed["description"] = json!("Changed");
    let (status, replaced) = app
        .call(Method::PUT, "/elements/churrosdbelement", Some(&changed))
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["id"], id);
    let (_, shown) = app.get("/elements/churrosdbelement").await;
    assert_eq!(shown["description"], "Changed");
    let (_, list) = app.get("/elements").await;
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "churrosdbelement")
        .unwrap()
        .clone();
    assert_eq!(
        listed["description"], "Changed",
        "the list copy was dropped"
    );

    let mut renamed = churros();
    renamed["key"] = json!("otherkey");
    let (status, body) = app
        .call(Method::PUT, "/elements/churrosdbelement", Some(&renamed))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "invalid_element").starts_with("key:"));

    let (status, _) = app
        .call(Method::DELETE, "/elements/churrosdbelement/active", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, shown) = app.get("/elements/churrosdbelement").await;
    assert_eq!(shown["active"], false);
    let (status, body) = app
        .call(Method::PUT, "/elements/churrosdbelement/active", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true);

    let (status, body) = app.post("/elements", &churros()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "conflict");

    let (status, _) = app
        .call(Method::DELETE, &format!("/elements/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get("/elements/churrosdbelement").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "element_not_found");
}

async fn a_bad_definition_is_a_400_naming_the_field_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut bad = churros();
    bad["resources"] = json!([
        {"path": "/hubs/crm/a", "method": "GET", "vendorPath": "/a"},
        {"path": "/hubs/crm/b", "method": "FETCH", "vendorPath": "/b"}
    ]);
    let (status, body) = app.post("/elements", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "invalid_element");
    assert!(
        message.starts_with("resources[1].method: must be one of GET, POST"),
        "{message}"
    );
    let (status, _) = app.get("/elements/churrosdbelement").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");

    for (change, want) in [
        (json!({"description": null}), "description: is required"),
        (json!({"colour": "blue"}), "colour: is not a field"),
        (json!({"name": "!!!"}), "key: is required"),
        (
            json!({"authentication": {"type": "kerberos"}}),
            "authentication.type: must be one of",
        ),
    ] {
        let mut body = churros();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let (status, answer) = app.post("/elements", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{change}: {answer}");
        let message = assert_error(&answer, "invalid_element");
        assert!(message.starts_with(want), "{change}: {message}");
    }
    let (status, _) = app.post("/elements", &json!([1])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn built_in_elements_are_read_only_and_their_clones_are_private_copies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (method, path, body) in [
        (Method::PUT, "/elements/sfdc", Some(churros())),
        (Method::DELETE, "/elements/sfdc", None),
        (Method::PUT, "/elements/sfdc/active", None),
        (Method::DELETE, "/elements/23/active", None),
        (
            Method::POST,
            "/elements/sfdc/resources",
            Some(json!({"path": "/hubs/crm/x", "method": "GET", "vendorPath": "/x"})),
        ),
        (
            Method::DELETE,
            "/elements/sfdc/configuration/base.url",
            None,
        ),
    ] {
        let (status, answer) = app.call(method.clone(), path, body.as_ref()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        let message = assert_error(&answer, "read_only_element");
        assert!(message.contains("clone"), "{message}");
    }
    let mut taken = churros();
    taken["key"] = json!("sfdc");
    let (status, body) = app.post("/elements", &taken).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, clone) = app.call(Method::POST, "/elements/sfdc/clone", None).await;
    assert_eq!(status, StatusCode::OK, "{clone}");
    assert_eq!(clone["key"], "sfdcclone");
    assert!(clone["id"].as_i64().unwrap() >= 100_000);
    let api_key = clone["configuration"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "oauth.api.key")
        .unwrap();
    assert!(
        api_key.get("default").is_none_or(Value::is_null),
        "{api_key}"
    );
    let (_, again) = app.call(Method::POST, "/elements/sfdc/clone", None).await;
    assert_eq!(again["key"], "sfdcclone2");
    // The clone is custom: it can be changed.
    let (status, _) = app
        .call(Method::DELETE, "/elements/sfdcclone/active", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, sfdc) = app.get("/elements/sfdc").await;
    assert_eq!(sfdc["active"], true, "the built-in is untouched");
}

async fn another_organizations_custom_element_is_not_found_anywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let element = create(&app, &churros()).await;
    let id = element["id"].as_i64().unwrap();
    let other = other_organization(&app).await;
    for key in ["churrosdbelement".to_owned(), id.to_string()] {
        for (method, path, body) in [
            (Method::GET, format!("/elements/{key}"), None),
            (Method::PUT, format!("/elements/{key}"), Some(churros())),
            (Method::DELETE, format!("/elements/{key}"), None),
            (Method::PUT, format!("/elements/{key}/active"), None),
            (Method::POST, format!("/elements/{key}/clone"), None),
            (Method::GET, format!("/elements/{key}/export"), None),
            (Method::GET, format!("/elements/{key}/configuration"), None),
            (Method::GET, format!("/elements/{key}/resources"), None),
            (
                Method::GET,
                format!("/elements/{key}/objects/contacts/fields"),
                None,
            ),
            (Method::GET, format!("/elements/{key}/instances"), None),
            (
                Method::GET,
                format!("/elements/{key}/oauth/url?apiKey=a&callbackUrl=https://x.example/cb"),
                None,
            ),
            (
                Method::POST,
                "/instances".to_owned(),
                Some(json!({"element": {"key": key}, "providerData": {"code": "c"}})),
            ),
        ] {
            let (status, answer) = app
                .call_as(&other, method.clone(), &path, body.as_ref())
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
            assert_error(&answer, "element_not_found");
        }
    }
    let (_, list) = app.call_as(&other, Method::GET, "/elements", None).await;
    assert!(!keys_of(&list).contains(&"churrosdbelement".to_owned()));
    // The other organization may use the same key for an element of its own.
    let (status, theirs) = app
        .call_as(&other, Method::POST, "/elements", Some(&churros()))
        .await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    assert_ne!(theirs["id"], id);
    let (_, mine) = app.get("/elements/churrosdbelement").await;
    assert_eq!(mine["id"], id);
}

async fn export_delete_import_gives_the_same_element(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create(&app, &churros()).await;
    let (status, exported) = app.get("/elements/churrosdbelement/export").await;
    assert_eq!(status, StatusCode::OK, "{exported}");
    let (status, _) = app
        .call(Method::DELETE, "/elements/churrosdbelement", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let imported = create(&app, &exported).await;
    let (_, again) = app.get("/elements/churrosdbelement/export").await;
    let without_id = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("id");
        v
    };
    assert_eq!(without_id(&again), without_id(&exported));
    assert_eq!(imported["key"], "churrosdbelement");

    // A built-in's export imports as a custom element under a free key.
    let (status, sfdc) = app.get("/elements/sfdc/export").await;
    assert_eq!(status, StatusCode::OK);
    let mut copy = sfdc.clone();
    copy["key"] = json!("mysfdc");
    let imported = create(&app, &copy).await;
    assert_eq!(
        without_id(&imported)["configuration"],
        sfdc["configuration"]
    );
}

async fn parts_are_added_read_replaced_and_removed_by_their_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create(&app, &churros()).await;
    let base = "/elements/churrosdbelement";

    // Configuration: one object holding the entries by key; entries addressed by key.
    let (status, entries) = app.get(&format!("{base}/configuration")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        entries["base.url"]["default"], "https://api.churros.example/v1",
        "{entries}"
    );
    let (status, added) = app
        .post(
            &format!("{base}/configuration"),
            &json!({"key": "site.region", "name": "Region", "default": "eu"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let (status, _) = app
        .post(
            &format!("{base}/configuration"),
            &json!({"key": "site.region", "name": "Again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, replaced) = app
        .call(
            Method::PUT,
            &format!("{base}/configuration/site.region"),
            Some(&json!({"name": "Region", "default": "us"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["key"], "site.region");
    let (_, entry) = app.get(&format!("{base}/configuration/site.region")).await;
    assert_eq!(entry["default"], "us");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{base}/configuration/site.region"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get(&format!("{base}/configuration/site.region")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "element_part_not_found");

    // Resources get ids; their parameters and hooks travel with them.
    let (status, resource) = app
        .post(
            &format!("{base}/resources"),
            &json!({
                "path": "/hubs/crm/contacts/{id}", "method": "GET", "vendorPath": "/contacts/{id}",
                "parameters": [{"name": "id", "vendorName": "id", "type": "path", "vendorType": "path"}]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resource}");
    let rid = resource["id"].as_i64().unwrap();
    let (_, listed) = app.get(&format!("{base}/resources")).await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let (_, one) = app.get(&format!("{base}/resources/{rid}")).await;
    assert_eq!(one["parameters"][0]["name"], "id", "{one}");
    // A change that breaks the definition is refused and changes nothing.
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("{base}/resources/{rid}"),
            Some(
                &json!({"path": "/hubs/crm/contacts/{id}", "method": "FETCH", "vendorPath": "/c"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "invalid_element");
    assert!(
        message.starts_with("resources[1].method: must be one of"),
        "{message}"
    );
    let (_, unchanged) = app.get(&format!("{base}/resources/{rid}")).await;
    assert_eq!(unchanged, one);
    let (status, _) = app
        .call(Method::DELETE, &format!("{base}/resources/{rid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(&format!("{base}/resources/{rid}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Element-wide parameters and hooks.
    let (status, parameter) = app
        .post(
            &format!("{base}/parameters"),
            &json!({"name": "application/json", "vendorName": "Accept", "type": "value", "vendorType": "header"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{parameter}");
    let pid = parameter["id"].as_i64().unwrap();
    let (_, got) = app.get(&format!("{base}/parameters/{pid}")).await;
    assert_eq!(got["vendorName"], "Accept");
    let (status, hook) = app
        .post(
            &format!("{base}/hooks"),
            &json!({"type": "preRequest", "body": "done({});"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hook}");
    let hid = hook["id"].as_i64().unwrap();
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("{base}/hooks/{hid}"),
            Some(&json!({"type": "postRequest", "body": "done({});"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, hooks) = app.get(&format!("{base}/hooks")).await;
    assert_eq!(hooks[0]["type"], "postRequest", "{hooks}");

    // Objects and their fields, by name.
    let (status, _) = app
        .post(&format!("{base}/objects"), &json!({"name": "accounts"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, field) = app
        .post(
            &format!("{base}/objects/accounts/fields"),
            &json!({"name": "industry", "type": "string"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{field}");
    let (_, fields) = app.get(&format!("{base}/objects/accounts/fields")).await;
    assert_eq!(fields[0]["name"], "industry", "{fields}");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{base}/objects/accounts/fields/industry"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(Method::DELETE, &format!("{base}/objects/accounts"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get(&format!("{base}/objects/accounts/fields")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Built-ins' parts are readable.
    let (status, entries) = app.get("/elements/sfdc/configuration").await;
    assert_eq!(status, StatusCode::OK);
    assert!(entries["base.url"].is_object(), "{entries}");
}

/// A provider on a loopback port answering every path with what it received.
async fn echo_provider() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::HeaderMap;
    let router =
        axum::Router::new().fallback(|uri: axum::http::Uri, headers: HeaderMap| async move {
            axum::Json(json!({
                "path": uri.path(),
                "authorization": headers.get("authorization").and_then(|v| v.to_str().ok()),
            }))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}/v1"), task)
}

async fn a_custom_elements_instance_proxies_and_pings_and_holds_its_element(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (base_url, provider) = echo_provider().await;
    create(&app, &churros()).await;
    let (status, instance) = app
        .post(
            "/elements/churrosdbelement/instances",
            &json!({
                "externalAuthentication": "initial",
                "configuration": {
                    "oauth.api.key": "client",
                    "oauth.api.secret": "client-secret",
                    "oauth.callback.url": "https://app.example.test/cb",
                    "oauth.user.token": "churros-access-token",
                    "base.url": base_url,
                },
                "name": "Churros",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(instance["element"]["key"], "churrosdbelement");
    let id = instance["id"].as_i64().unwrap();
    let token = format!("Element {}", instance["token"].as_str().unwrap());

    let (status, answer) = app
        .call_as(&token, Method::GET, "/proxy/contacts", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["path"], "/v1/contacts");
    assert_eq!(answer["authorization"], "Bearer churros-access-token");
    let (status, ping) = app
        .call_as(&token, Method::GET, "/hubs/crm/ping", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{ping}");
    assert_eq!(ping["endpoint"], "churrosdbelement");

    // The element of an instance is resolved from memory on every call: with its row
    // made unreadable behind Junction's back, calls still find it.
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    let stored: String =
        sqlx::query_scalar("select definition from custom_elements where key = 'churrosdbelement'")
            .fetch_one(&db)
            .await
            .unwrap();
    sqlx::query(
        "update custom_elements set definition = 'not json' where key = 'churrosdbelement'",
    )
    .execute(&db)
    .await
    .unwrap();
    for _ in 0..3 {
        let (status, answer) = app
            .call_as(&token, Method::GET, "/proxy/contacts", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    sqlx::query("update custom_elements set definition = $1 where key = 'churrosdbelement'")
        .bind(stored)
        .execute(&db)
        .await
        .unwrap();

    // Scoped to its element: found there, not under another element.
    let (status, shown) = app
        .get(&format!("/elements/churrosdbelement/instances/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    let (status, _) = app.get(&format!("/elements/sfdc/instances/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, patched) = app
        .call(
            Method::PATCH,
            &format!("/elements/churrosdbelement/instances/{id}"),
            Some(&json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Renamed");

    let (status, body) = app
        .call(Method::DELETE, "/elements/churrosdbelement", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = assert_error(&body, "element_in_use");
    assert!(message.contains("1 instance"), "{message}");
    let (status, _) = app.get("/elements/churrosdbelement").await;
    assert_eq!(status, StatusCode::OK, "nothing was deleted");

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/elements/churrosdbelement/instances/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(Method::DELETE, "/elements/churrosdbelement", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    provider.abort();
}

async fn a_jdbc_element_is_stored_and_served_but_never_provisioned(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let element = create(
        &app,
        &json!({
            "name": "Churros DB",
            "description": "A database element",
            "protocolType": "jdbc",
            "authentication": {"type": "basic"},
            "configuration": [
                {"key": "base.url", "name": "JDBC URL", "default": "jdbc:postgresql://{db.host}/{db.name}"},
                {"key": "db.host", "name": "Host", "required": true},
                {"key": "db.name", "name": "Database", "default": "churros"}
            ]
        }),
    )
    .await;
    assert_eq!(element["protocolType"], "jdbc");
    let (status, shown) = app.get("/elements/churrosdb").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["protocolType"], "jdbc");
    let (status, body) = app
        .post(
            "/instances",
            &json!({"element": {"key": "churrosdb"}, "configuration": {"db.host": "db"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "unsupported_protocol");
    let (status, _) = app.call(Method::DELETE, "/elements/churrosdb", None).await;
    assert_eq!(status, StatusCode::OK, "no instance was stored");
}

/// Longest a replica may serve what another replica changed.
const PROPAGATION: Duration = Duration::from_secs(5);

async fn eventually(app: &TestApp, path: &str, check: impl Fn(StatusCode, &Value) -> bool) {
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let (status, body) = app.get(path).await;
        if check(status, &body) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {status} {body} {PROPAGATION:?} after the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn every_replica_sees_another_replicas_element_changes(backend: Backend) {
    if backend == Backend::Sqlite {
        // Replicas share a database only on PostgreSQL.
        return;
    }
    let a = TestApp::spawn(backend).await;
    let b = a.replica().await;
    let path = "/elements/churrosdbelement";
    // B keeps the organization's (empty) set of custom elements before A creates one.
    let (status, _) = b.get(path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = b.get("/elements").await;
    assert!(!keys_of(&list).contains(&"churrosdbelement".to_owned()));

    create(&a, &churros()).await;
    eventually(&b, path, |s, _| s == StatusCode::OK).await;
    eventually(&b, "/elements", |_, list| {
        keys_of(list).contains(&"churrosdbelement".to_owned())
    })
    .await;

    let mut changed = churros();
    changed["description"] = json!("Changed on A");
    let (status, _) = a.call(Method::PUT, path, Some(&changed)).await;
    assert_eq!(status, StatusCode::OK);
    eventually(&b, path, |_, e| e["description"] == "Changed on A").await;

    let (status, _) = a
        .call(Method::DELETE, &format!("{path}/active"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    eventually(&b, path, |_, e| e["active"] == false).await;

    let (status, _) = a.call(Method::DELETE, path, None).await;
    assert_eq!(status, StatusCode::OK);
    eventually(&b, path, |s, _| s == StatusCode::NOT_FOUND).await;
    eventually(&b, "/elements", |_, list| {
        !keys_of(list).contains(&"churrosdbelement".to_owned())
    })
    .await;
}

async fn anonymous_get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn hub<'a>(hubs: &'a Value, key: &str) -> &'a Value {
    hubs.as_array()
        .unwrap()
        .iter()
        .find(|h| h["key"] == key)
        .unwrap_or_else(|| panic!("no hub {key} in {hubs}"))
}

fn lists_element(hub: &Value, key: &str) -> bool {
    hub["elements"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["key"] == key)
}

async fn custom_elements_are_in_their_organizations_metadata_and_hydrated_hubs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create(&app, &churros()).await;

    let (status, metadata) = app
        .get("/elements/churrosdbelement/metadata?expand=true")
        .await;
    assert_eq!(status, StatusCode::OK, "{metadata}");
    assert_eq!(metadata["hub"], "crm");
    assert_eq!(metadata["resources"][0]["name"], "contacts", "{metadata}");
    let (_, all) = app.get("/elements/metadata").await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|m| m["key"] == "churrosdbelement")
    );
    let (_, hubs) = app.get("/hubs?hydrate=true").await;
    assert!(
        lists_element(hub(&hubs, "crm"), "churrosdbelement"),
        "{hubs}"
    );
    let (_, crm) = app.get("/hubs/crm?hydrate=true").await;
    assert!(lists_element(&crm, "churrosdbelement"), "{crm}");

    // Nobody else sees it.
    let (status, body) = anonymous_get(&app, "/elements/churrosdbelement/metadata").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let stranger = other_organization(&app).await;
    let (status, _) = app
        .call_as(
            &stranger,
            Method::GET,
            "/elements/churrosdbelement/metadata",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = app
        .call_as(&stranger, Method::GET, "/hubs?hydrate=true", None)
        .await;
    assert!(!lists_element(hub(&theirs, "crm"), "churrosdbelement"));
}

async fn a_custom_element_names_a_built_in_hub_or_one_of_its_organizations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut element = churros();
    element["hub"] = json!("fieldops");
    let (status, body) = app.post("/elements", &element).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_element");
    assert!(
        body["message"].as_str().unwrap().starts_with("hub: "),
        "{body}"
    );
    let (_, listed) = app.get("/elements").await;
    assert!(!keys_of(&listed).contains(&"churrosdbelement".to_owned()));

    let (status, _) = app
        .post("/hubs", &json!({"key": "fieldops", "name": "Field Ops"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    create(&app, &element).await;
    let (_, fieldops) = app.get("/hubs/fieldops?hydrate=true").await;
    assert!(lists_element(&fieldops, "churrosdbelement"), "{fieldops}");
    // The hub is in use now.
    let (status, body) = app.call(Method::DELETE, "/hubs/fieldops", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Another organization's hub of that name does not count.
    let stranger = other_organization(&app).await;
    let (status, body) = app
        .call_as(&stranger, Method::POST, "/elements", Some(&element))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_element");
}

async fn a_custom_elements_templated_oauth_url_is_filled_from_the_callers_values(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut element = churros();
    element["configuration"][0]["default"] =
        json!("https://{churros.site}.churros.example/authorize");
    element["configuration"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "churros.site", "name": "Site", "required": true}));
    element["oauth"]["allowedHosts"] = json!(["*.churros.example"]);
    create(&app, &element).await;

    let (status, body) = app
        .get("/elements/churrosdbelement/oauth/url?apiKey=app&callbackUrl=https://app.example.test/cb&churros.site=acme")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["oauthUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://acme.churros.example/authorize?"),
        "{body}"
    );
    // A custom OAuth 2.0 element is found by the OAuth 1.0a route, which refuses it.
    let (status, body) = app
        .get("/elements/churrosdbelement/oauth/token?apiKey=a&apiSecret=s&callbackUrl=https://app.example.test/cb")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "not_oauth1_element");
}

async fn a_part_after_one_with_the_largest_id_must_name_its_own(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create(&app, &churros()).await;
    let base = "/elements/churrosdbelement/resources";
    let (status, body) = app
        .post(
            base,
            &json!({"id": i64::MAX, "path": "/hubs/crm/a", "method": "GET", "vendorPath": "/a"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(
            base,
            &json!({"path": "/hubs/crm/b", "method": "GET", "vendorPath": "/b"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "invalid_body");
    assert!(message.contains("id"), "{message}");
    let (_, listed) = app.get(base).await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let (status, body) = app
        .post(
            base,
            &json!({"id": 7, "path": "/hubs/crm/b", "method": "GET", "vendorPath": "/b"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn clones_of_elements_with_long_keys_get_keys_within_the_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let long = "k".repeat(64);
    let mut element = churros();
    element["key"] = json!(long);
    create(&app, &element).await;
    let path = format!("/elements/{long}/clone");
    let (status, first) = app.call(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["key"], format!("{}clone", "k".repeat(59)));
    let (status, second) = app.call(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["key"], format!("{}clone2", "k".repeat(58)));
    for clone in [&first, &second] {
        let key = clone["key"].as_str().unwrap();
        let (status, found) = app.get(&format!("/elements/{key}")).await;
        assert_eq!(status, StatusCode::OK, "{found}");
    }
}

async fn a_custom_element_cannot_unmask_reserved_secrets_or_default_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut plain = churros();
    plain["uses"] = json!([]);
    plain["configuration"] = json!([
        {"key": "oauth.authorization.url", "name": "a", "default": "https://auth.churros.example/authorize"},
        {"key": "oauth.token.url", "name": "t", "default": "https://auth.churros.example/token"},
        {"key": "base.url", "name": "b", "default": "https://api.churros.example/v1"},
        {"key": "oauth.callback.url", "name": "c", "required": true},
        {"key": "oauth.api.key", "name": "k", "type": "PASSWORD", "required": true},
        {"key": "oauth.api.secret", "name": "s", "type": "TEXTFIELD_128", "required": true},
    ]);
    let (status, body) = app.post("/elements", &plain).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "invalid_element");
    assert!(message.contains("oauth.api.secret"), "{message}");

    let mut defaulted = churros();
    defaulted["configuration"][3]["default"] = json!("churros-app");
    let (status, body) = app.post("/elements", &defaulted).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "invalid_element");
    assert!(message.contains("default"), "{message}");
    assert!(!message.contains("churros-app"), "{message}");

    let (_, list) = app.get("/elements?custom=true").await;
    assert!(
        !list.to_string().contains("churros"),
        "nothing was stored: {list}"
    );
}

/// A custom element with a secret of its own read by its credentials.
fn vault() -> Value {
    json!({
        "name": "Vault",
        "key": "vault",
        "description": "d",
        "hub": "general",
        "authentication": {"type": "custom"},
        "configuration": [
            {"key": "base.url", "name": "b", "default": "https://api.vault.example"},
            {"key": "vault.pin", "name": "PIN", "type": "PASSWORD", "required": true},
            {"key": "vault.seal", "name": "Seal", "type": "PASSWORD", "required": true},
        ],
        "credentials": [
            {"in": "header", "name": "X-Pin", "value": "{vault.pin}"},
            {"in": "header", "name": "X-Seal", "value": "{vault.seal}"},
        ],
    })
}

async fn secret_entries_and_the_authentication_type_stay_while_instances_exist(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (base_url, provider) = echo_provider().await;
    create(&app, &vault()).await;
    let mut plain = vault();
    plain["configuration"][1]["type"] = json!("TEXTFIELD_128");
    let mut basic = vault();
    basic["authentication"] = json!({"type": "basic"});
    basic["credentials"] =
        json!([{"in": "basic", "username": "{vault.pin}", "password": "{vault.seal}"}]);

    let (status, instance) = app
        .post(
            "/elements/vault/instances",
            &json!({"name": "v", "configuration": {"base.url": base_url, "vault.pin": "1234-secret", "vault.seal": "s"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    let id = instance["id"].as_i64().unwrap();
    let before = app.get("/elements/vault").await.1;
    for (method, path, body, what) in [
        (Method::PUT, "/elements/vault", plain.clone(), "vault.pin"),
        (
            Method::PUT,
            "/elements/vault",
            basic.clone(),
            "authentication.type",
        ),
        (
            Method::PUT,
            "/elements/vault/configuration/vault.pin",
            plain["configuration"][1].clone(),
            "vault.pin",
        ),
    ] {
        let (status, answer) = app.call(method.clone(), path, Some(&body)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{method} {path}: {answer}");
        let message = assert_error(&answer, "element_in_use");
        assert!(message.contains(what), "{message}");
        assert!(message.contains("1 instance"), "{message}");
    }
    assert_eq!(
        app.get("/elements/vault").await.1,
        before,
        "nothing changed"
    );
    let (_, shown) = app.get(&format!("/instances/{id}")).await;
    assert!(!shown.to_string().contains("1234-secret"), "{shown}");

    // Changes that keep secrets secret go ahead; without instances, anything valid does.
    let mut described = vault();
    described["description"] = json!("still a vault");
    let (status, body) = app
        .call(Method::PUT, "/elements/vault", Some(&described))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .call(Method::DELETE, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.call(Method::PUT, "/elements/vault", Some(&basic)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    provider.abort();
}

async fn clones_carry_no_secret_defaults(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let element = create(&app, &churros()).await;
    // An element stored before secret defaults were refused still has one.
    let mut definition: Value = element.clone();
    for entry in definition["configuration"].as_array_mut().unwrap() {
        if entry["key"] == "oauth.api.secret" {
            entry["default"] = json!("old-client-secret");
        }
    }
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    let stored: String =
        sqlx::query_scalar("select definition from custom_elements where key = 'churrosdbelement'")
            .fetch_one(&db)
            .await
            .unwrap();
    let mut stored: Value = serde_json::from_str(&stored).unwrap();
    for entry in stored["configuration"].as_array_mut().unwrap() {
        if entry["key"] == "oauth.api.secret" {
            entry["default"] = json!("old-client-secret");
        }
    }
    sqlx::query("update custom_elements set definition = $1 where key = 'churrosdbelement'")
        .bind(stored.to_string())
        .execute(&db)
        .await
        .unwrap();
    let (status, clone) = app
        .call(Method::POST, "/elements/churrosdbelement/clone", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{clone}");
    assert!(!clone.to_string().contains("old-client-secret"), "{clone}");
    let key = clone["key"].as_str().unwrap();
    let (_, exported) = app.get(&format!("/elements/{key}/export")).await;
    assert!(!exported.to_string().contains("old-client-secret"));
}

/// `(path, vendorPath)` of each resource of the element's list.
async fn resource_routes(app: &TestApp, key: &str) -> Vec<(String, String)> {
    let (status, listed) = app.get(&format!("/elements/{key}/resources")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |f: &str| r[f].as_str().unwrap_or_default().to_owned();
            (text("path"), text("vendorPath"))
        })
        .collect()
}

async fn a_custom_element_using_a_fragment_gets_its_resources_under_its_own_hub(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut body = churros();
    body["hub"] = json!("helpdesk");
    body["uses"] = json!(["oauth2", "salesforce"]);
    // Its own `query` replaces the fragment's; `queryAll` comes from the fragment.
    body["resources"] = json!([
        {"path": "/hubs/helpdesk/contacts", "method": "GET", "vendorPath": "/contacts"},
        {"path": "/hubs/helpdesk/query", "method": "GET", "vendorPath": "/own/query"}
    ]);
    create(&app, &body).await;
    let expected = vec![
        (
            "/hubs/helpdesk/queryAll".to_owned(),
            "/services/data/v59.0/queryAll".to_owned(),
        ),
        ("/hubs/helpdesk/query".to_owned(), "/own/query".to_owned()),
        ("/hubs/helpdesk/contacts".to_owned(), "/contacts".to_owned()),
    ];
    assert_eq!(resource_routes(&app, "churrosdbelement").await, expected);

    // A later change merges the fragment in again: nothing doubles, the override holds.
    let (status, added) = app
        .post(
            "/elements/churrosdbelement/resources",
            &json!({"path": "/hubs/helpdesk/agents", "method": "GET", "vendorPath": "/agents"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let mut expected = expected;
    expected.push(("/hubs/helpdesk/agents".to_owned(), "/agents".to_owned()));
    assert_eq!(resource_routes(&app, "churrosdbelement").await, expected);
}

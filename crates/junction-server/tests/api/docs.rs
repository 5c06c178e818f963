//! Per-element API documentation: the Swagger 2.0 documents of `/elements/{keyOrId}/docs`,
//! `/instances/{id}/docs` and `/instances/docs`, checked against the official Swagger 2.0
//! JSON Schema and for sound references, path parameters and operation ids; and the
//! Swagger UI page that opens one.

use crate::helpers::{Options, TestApp, assert_error};
use crate::on_both_backends;
use junction_core::{AccountId, ConfigMap, UserId};
use junction_store::NewInstance;
use junction_testkit::db::Backend;
use junction_testkit::swagger::assert_sound;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    every_built_in_element_documents_a_sound_api,
    a_custom_elements_resources_models_and_objects_are_documented_for_its_organization_only,
    an_instance_is_documented_also_while_disabled,
    the_public_url_names_the_host_and_base_path,
    the_requests_host_names_the_host_unless_it_is_no_plain_host,
    swagger_ui_opens_an_elements_document,
);

/// A custom element with what its document is made of: resources with their own and
/// element-wide parameters, a model, objects, and routes kept out of the documentation.
fn documented() -> Value {
    json!({
        "name": "Docs shop",
        "description": "A shop with a documented API",
        "hub": "crm",
        "authentication": {"type": "oauth2"},
        "uses": ["oauth2"],
        "oauth": {},
        "configuration": [
            {"key": "oauth.authorization.url", "name": "Authorization URL", "default": "https://auth.shop.example/authorize"},
            {"key": "oauth.token.url", "name": "Token URL", "default": "https://auth.shop.example/token"},
            {"key": "base.url", "name": "Base URL", "default": "https://api.shop.example/v1"}
        ],
        "parameters": [
            {"name": "X-Shop-Region", "vendorName": "X-Region", "type": "header", "vendorType": "header",
             "description": "The shop's region"}
        ],
        "resources": [
            {"path": "/hubs/crm/customers", "method": "GET", "vendorPath": "/customers",
             "description": "List customers", "rootKey": "|data"},
            {"path": "/hubs/crm/customers", "method": "POST", "vendorPath": "/customers",
             "operationId": "createCustomer",
             "model": {"name": "customer", "swagger": {"customer": {
                 "type": "object",
                 "required": ["email"],
                 "properties": {"email": {"type": "string"}, "since": {"type": "dateTime"},
                                "address": {"$ref": "address"}}
             }, "address": {"properties": {"city": {"type": "string"}}}}}},
            {"path": "/hubs/crm/customers/{customerId}", "method": "GET", "vendorPath": "/customers/{customerId}",
             "parameters": [{"name": "customerId", "vendorName": "customerId", "type": "path",
                             "vendorType": "path", "dataType": "long"}]},
            {"path": "/hubs/crm/customers/{customerId}", "method": "DELETE", "vendorPath": "/customers/{customerId}"},
            {"path": "/hubs/crm/customers/{customerId}/orders", "method": "GET",
             "vendorPath": "/customers/{customerId}/orders",
             "parameters": [{"name": "status", "vendorName": "state", "type": "query", "vendorType": "query",
                             "required": true}]},
            {"path": "/hubs/crm/internal", "method": "GET", "vendorPath": "/internal", "type": "apiNoDocumentation"},
            {"path": "/hubs/crm/provisioned", "method": "POST", "vendorPath": "/hello", "type": "onProvision"}
        ],
        "objects": [
            {"name": "orders", "fields": [
                {"name": "id", "type": "string", "primaryKey": true},
                {"name": "total", "type": "double", "required": true},
                {"name": "placed", "type": "dateTime"}
            ]}
        ]
    })
}

async fn docs(app: &TestApp, authorization: Option<&str>, path: &str) -> (StatusCode, Value) {
    let mut request = app.http.get(app.url(path));
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// An instance of `element` in the bootstrap account, written straight to the store:
/// its documentation needs no provider.
async fn instance(app: &TestApp, element_id: i64, element_key: &str) -> (i64, String) {
    let token = junction_crypto::generate_secret(30).unwrap();
    let config: ConfigMap = [(
        "base.url".to_owned(),
        Some("https://api.shop.example/v1".to_owned()),
    )]
    .into();
    let record = app
        .services
        .store
        .insert_instance(NewInstance {
            account_id: AccountId(1),
            user_id: UserId(1),
            element_id,
            element_key,
            name: "Acme shop",
            token: &token,
            config: &config,
            secrets: &ConfigMap::default(),
            tags: &[],
            external_authentication: "none",
            token_expires_at: None,
            now: 0,
        })
        .await
        .unwrap();
    (record.id.0, token.expose().to_owned())
}

fn paths(doc: &Value) -> Vec<&str> {
    doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

async fn every_built_in_element_documents_a_sound_api(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, elements) = docs(&app, None, "/elements").await;
    assert_eq!(status, StatusCode::OK, "{elements}");
    let elements = elements.as_array().unwrap();
    assert!(elements.len() > 10, "{elements:?}");
    for element in elements {
        let key = element["key"].as_str().unwrap();
        let (status, doc) = docs(&app, None, &format!("/elements/{key}/docs")).await;
        assert_eq!(status, StatusCode::OK, "{key}: {doc}");
        assert_sound(key, &doc);
        assert_eq!(doc["info"]["title"], element["name"], "{key}");
        assert_eq!(doc["host"], app.addr.to_string(), "{key}");
        assert_eq!(
            doc["basePath"],
            format!("/elements/api-v2/hubs/{}", element["hub"].as_str().unwrap()),
            "{key}"
        );
        assert_eq!(doc["schemes"], json!(["http"]));
        for standard in ["/ping", "/objects", "/objects/{objectName}/metadata"] {
            assert!(
                doc["paths"][standard]["get"].is_object(),
                "{key}: {standard}"
            );
        }
    }
    // By id as well as by key, and the same bytes each time.
    let (_, by_key) = docs(&app, None, "/elements/sfdc/docs").await;
    let (_, by_id) = docs(&app, None, "/elements/23/docs").await;
    assert_eq!(by_key, by_id);
    let (status, body) = docs(&app, None, "/elements/nosuchelement/docs").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "element_not_found");

    // The routes are part of Junction's own API document.
    let (_, openapi) = docs(&app, None, "/openapi.json").await;
    for route in [
        "/elements/{key_or_id}/docs",
        "/instances/{id}/docs",
        "/instances/docs",
    ] {
        assert!(openapi["paths"][route]["get"].is_object(), "{route}");
    }
}

async fn a_custom_elements_resources_models_and_objects_are_documented_for_its_organization_only(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (status, element) = app.post("/elements", &documented()).await;
    assert_eq!(status, StatusCode::OK, "{element}");
    let key = element["key"].as_str().unwrap().to_owned();
    let auth = app.platform_auth();
    let (status, doc) = docs(&app, Some(&auth), &format!("/elements/{key}/docs")).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_sound("the custom element", &doc);

    assert_eq!(doc["info"]["title"], "Docs shop");
    assert_eq!(doc["info"]["description"], "A shop with a documented API");
    assert_eq!(
        paths(&doc),
        [
            "/customers",
            "/customers/{customerId}",
            "/customers/{customerId}/orders",
            "/objects",
            "/objects/{objectName}/metadata",
            "/ping",
        ]
    );
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["customers", "objects", "ping"]);

    let list = &doc["paths"]["/customers"]["get"];
    let names: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "X-Shop-Region",
            "where",
            "orderBy",
            "fields",
            "pageSize",
            "nextPage",
            "page"
        ]
    );
    assert!(list["responses"]["200"]["headers"]["Elements-Next-Page-Token"].is_object());
    assert!(list["responses"]["200"]["headers"]["Elements-Returned-Count"].is_object());
    assert_eq!(list["summary"], "List customers");

    let create = &doc["paths"]["/customers"]["post"];
    assert_eq!(create["operationId"], "createCustomer");
    let body = create["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["in"] == "body")
        .unwrap();
    assert_eq!(body["schema"]["$ref"], "#/definitions/customer");
    assert_eq!(
        create["responses"]["200"]["schema"]["$ref"],
        "#/definitions/customer"
    );
    assert_eq!(create["responses"]["400"]["$ref"], "#/responses/BadRequest");

    let one = &doc["paths"]["/customers/{customerId}"]["get"];
    assert_eq!(
        one["parameters"][0],
        json!({"name": "customerId", "in": "path", "required": true, "type": "integer", "format": "int64"})
    );
    let orders = &doc["paths"]["/customers/{customerId}/orders"]["get"];
    let status_param = orders["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "status")
        .unwrap();
    assert_eq!(status_param["in"], "query");
    assert_eq!(status_param["required"], true);
    // The orders object describes the records of the orders list.
    assert_eq!(
        orders["responses"]["200"]["schema"]["items"]["$ref"],
        "#/definitions/orders"
    );

    let definitions = &doc["definitions"];
    assert_eq!(
        definitions["customer"]["properties"]["since"],
        json!({"type": "string", "format": "date-time"})
    );
    assert_eq!(
        definitions["customer"]["properties"]["address"]["$ref"],
        "#/definitions/address"
    );
    assert_eq!(definitions["orders"]["required"], json!(["total"]));
    assert_eq!(
        definitions["orders"]["properties"]["total"],
        json!({"type": "number", "format": "double"})
    );
    assert_eq!(
        definitions["ElementsError"]["required"],
        json!(["requestId", "message", "code"])
    );
    assert_eq!(doc["securityDefinitions"]["Authorization"]["in"], "header");

    // Like the element itself: nobody else sees it.
    let (status, body) = docs(&app, None, &format!("/elements/{key}/docs")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "element_not_found");
    let stranger = other_organization(&app).await;
    let (status, body) = docs(&app, Some(&stranger), &format!("/elements/{key}/docs")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "element_not_found");
    let (status, body) = docs(
        &app,
        Some("User nobody, Organization nothing"),
        "/elements/sfdc/docs",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

async fn other_organization(app: &TestApp) -> String {
    let user = junction_core::Secret::new("docs-other-user-0123456789");
    let org = junction_core::Secret::new("docs-other-org-0123456789");
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

async fn an_instance_is_documented_also_while_disabled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, element) = app.post("/elements", &documented()).await;
    assert_eq!(status, StatusCode::OK, "{element}");
    let (id, token) = instance(
        &app,
        element["id"].as_i64().unwrap(),
        element["key"].as_str().unwrap(),
    )
    .await;
    let auth = app.platform_auth();
    let element_token = format!("Element {token}");

    let (status, doc) = docs(&app, Some(&auth), &format!("/instances/{id}/docs")).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_sound("the instance", &doc);
    assert_eq!(
        doc["info"]["x-instance"],
        json!({"id": id, "name": "Acme shop"})
    );
    assert!(doc["paths"]["/customers"]["post"].is_object());
    let (status, own) = docs(&app, Some(&element_token), "/instances/docs").await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own, doc);
    let (status, by_token) =
        docs(&app, Some(&element_token), &format!("/instances/{id}/docs")).await;
    assert_eq!(status, StatusCode::OK, "{by_token}");
    assert_eq!(by_token, doc);

    let (status, body) = app
        .call(Method::DELETE, &format!("/instances/{id}/enabled"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Disabled: the token is refused for calls, but the documentation still answers.
    let (status, body) = app
        .call_as(&element_token, Method::GET, "/instances", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for (authorization, path) in [
        (auth.as_str(), format!("/instances/{id}/docs")),
        (element_token.as_str(), "/instances/docs".to_owned()),
        (element_token.as_str(), format!("/instances/{id}/docs")),
    ] {
        let (status, again) = docs(&app, Some(authorization), &path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {again}");
        assert_eq!(again, doc, "{path}");
    }

    // A built-in element's instance has its element's document.
    let (sfdc, _) = instance(&app, 23, "sfdc").await;
    let (status, doc) = docs(&app, Some(&auth), &format!("/instances/{sfdc}/docs")).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_sound("the sfdc instance", &doc);
    assert_eq!(doc["basePath"], "/elements/api-v2/hubs/crm");

    // Another instance's token, an unknown id, no token for the twin.
    let (status, body) = docs(
        &app,
        Some(&element_token),
        &format!("/instances/{sfdc}/docs"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = docs(&app, Some(&auth), "/instances/999999/docs").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = docs(&app, Some(&auth), "/instances/abc/docs").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_instance_id");
    let (status, body) = docs(&app, Some(&auth), "/instances/docs").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "missing_instance");
    let (status, _) = docs(&app, None, &format!("/instances/{id}/docs")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let stranger = other_organization(&app).await;
    let (status, _) = docs(&app, Some(&stranger), &format!("/instances/{id}/docs")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn the_public_url_names_the_host_and_base_path(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            public_url: Some("https://hub.example.com/junction/".into()),
            ..Options::default()
        },
    )
    .await;
    let (status, doc) = docs(&app, None, "/elements/acton/docs").await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["host"], "hub.example.com");
    assert_eq!(doc["basePath"], "/junction/elements/api-v2/hubs/marketing");
    assert_eq!(doc["schemes"], json!(["https"]));
    assert_sound("acton behind a public URL", &doc);
}

async fn the_requests_host_names_the_host_unless_it_is_no_plain_host(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (host, expected) in [
        ("docs.example.com:9000", "docs.example.com:9000"),
        ("docs.example.com", "docs.example.com"),
        ("evil.example/x?y#", "localhost"),
        ("a\"b", "localhost"),
    ] {
        let response = app
            .http
            .get(app.url("/elements/sfdc/docs"))
            .header("Host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
        let doc: Value = response.json().await.unwrap();
        assert_eq!(doc["host"], expected, "{host}");
        assert_eq!(doc["basePath"], "/elements/api-v2/hubs/crm", "{host}");
    }
}

async fn swagger_ui_opens_an_elements_document(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .http
        .get(app.root_url("/docs/elements/sfdc"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(response.headers()["location"], "/docs/elements/sfdc/");

    let page = app
        .http
        .get(app.root_url("/docs/elements/sfdc/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-initializer.js"), "{html}");
    // Assets come from Junction itself, never from a CDN.
    assert!(!html.contains("https://"), "{html}");

    let script = app
        .http
        .get(app.root_url("/docs/elements/sfdc/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    let script = script.text().await.unwrap();
    assert!(
        script.contains("\"/elements/api-v2/elements/sfdc/docs\""),
        "{script}"
    );
    assert!(script.contains("\"validatorUrl\": \"none\""), "{script}");
    let css = app
        .http
        .get(app.root_url("/docs/elements/sfdc/swagger-ui.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);

    // The document the page loads.
    let (status, doc) = docs(&app, None, "/elements/sfdc/docs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["swagger"], "2.0");

    for bad in [
        "/docs/elements/Not%20a%20key/",
        "/docs/elements/%22x/swagger-initializer.js",
    ] {
        let response = app.http.get(app.root_url(bad)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{bad}");
    }
    // Junction's own API document is still at /docs.
    let own = app.http.get(app.root_url("/docs/")).send().await.unwrap();
    assert_eq!(own.status(), StatusCode::OK);
}

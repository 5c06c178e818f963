//! Calling a built-in element's hub resources as a customer would: with the instance's
//! Element token, walking lists with `nextPage`, and pointing an instance provisioned
//! against a real OAuth server at a vendor stand-in.

use crate::helpers::TestApp;
use crate::provisioning::{Provider, provision};
use junction_core::config::keys;
use junction_core::{AccountId, InstanceId};
use junction_testkit::peers::{Peer, PeerKind};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashSet;

/// A hub answer: status, headers and the JSON body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as a list, failing the test otherwise.
    pub fn list(&self) -> &Vec<Value> {
        self.body
            .as_array()
            .unwrap_or_else(|| panic!("not a list ({}): {}", self.status, self.body))
    }
}

pub(crate) async fn hub(
    app: &TestApp,
    instance: &Value,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let mut request = app.http.request(method, app.url(path)).header(
        "Authorization",
        format!("Element {}", instance["token"].as_str().unwrap()),
    );
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

pub(crate) async fn get(app: &TestApp, instance: &Value, path: &str) -> Answer {
    hub(app, instance, Method::GET, path, None).await
}

/// Walks a list from `first` to its last page with `nextPage`, checking each page's
/// count header, and returns the records' `key` values in order and the pages read.
pub(crate) async fn walk(
    app: &TestApp,
    instance: &Value,
    first: &str,
    key: &str,
) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut path = first.to_owned();
    loop {
        let page = get(app, instance, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        let got: Vec<String> = page
            .list()
            .iter()
            .map(|r| match &r[key] {
                Value::String(s) => s.clone(),
                other => panic!("{first}: record without a string '{key}': {other} in {r}"),
            })
            .collect();
        assert_eq!(
            page.header("elements-returned-count"),
            Some(got.len().to_string().as_str()),
            "{path}"
        );
        seen.extend(got);
        pages += 1;
        assert!(pages <= 100, "{first} does not end");
        match page.header("elements-next-page-token") {
            Some(token) => {
                let sep = if first.contains('?') { '&' } else { '?' };
                path = format!("{first}{sep}nextPage={token}");
            }
            None => return (seen, pages),
        }
    }
}

/// Asserts that `seen` holds each of `expected` once, in that order.
pub(crate) fn assert_no_gap_or_repeat(seen: &[String], expected: &[String], what: &str) {
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "{what}: a record came twice");
    assert_eq!(seen.len(), expected.len(), "{what}: records are missing");
    assert!(
        seen == expected,
        "{what}: not the vendor's records in order"
    );
}

/// The instance's stored access token, as the vendor must accept it.
pub(crate) async fn access_token(app: &TestApp, instance: &Value) -> String {
    let record = app
        .services
        .store
        .get_instance(AccountId(1), InstanceId(instance["id"].as_i64().unwrap()))
        .await
        .unwrap();
    record.config[keys::USER_TOKEN].clone().unwrap()
}

/// Provisions `element` through the real OAuth server its provisioning tests use, with
/// `base.url` on a vendor stand-in (the stand-in must then accept the instance's token).
pub(crate) async fn provision_at(app: &TestApp, element: &str, base_url: &str) -> Value {
    let peer = Peer::shared(PeerKind::Authlib).await;
    let provider = Provider {
        api: base_url.to_owned(),
        ..Provider::peer(peer)
    };
    provision(app, element, &provider, "").await
}

/// Checks a mapped vendor error: the vendor's status, `provider_error`, the vendor's
/// words in `providerMessage`, `Elements-Error`.
pub(crate) fn assert_vendor_error(answer: &Answer, status: StatusCode, message: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    crate::helpers::assert_error(&answer.body, "provider_error");
    assert_eq!(answer.body["providerMessage"], message, "{}", answer.body);
    assert_eq!(answer.header("elements-error"), Some("true"));
    assert!(answer.header("elements-element-instance-id").is_some());
}

/// `GET /objects` lists `names`, and each one's metadata names its fields with the
/// primary key marked.
pub(crate) async fn assert_objects(
    app: &TestApp,
    instance: &Value,
    hub_name: &str,
    names: &[(&str, &str)],
) {
    let objects = get(app, instance, &format!("/hubs/{hub_name}/objects")).await;
    assert_eq!(objects.status, StatusCode::OK, "{}", objects.body);
    let listed: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
    assert_eq!(objects.body, json!(listed));
    for (name, key) in names {
        let metadata = get(app, instance, &format!("/objects/{name}/metadata")).await;
        assert_eq!(metadata.status, StatusCode::OK, "{name}: {}", metadata.body);
        let fields = metadata.body["fields"].as_array().unwrap();
        let primary: Vec<&Value> = fields
            .iter()
            .filter(|f| f["primaryKey"] == true)
            .map(|f| &f["vendorPath"])
            .collect();
        assert_eq!(primary, vec![&json!(key)], "{name}: {}", metadata.body);
        assert!(
            fields.iter().all(|f| f["type"].is_string()),
            "{name}: {}",
            metadata.body
        );
    }
    let missing = get(app, instance, "/objects/nothing-like-it/metadata").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
}

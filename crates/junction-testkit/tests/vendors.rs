//! The vendor stand-ins, called directly: each refuses a wrong credential with the
//! vendor's error, walks its main collection without gap or repeat, answers a filter
//! correctly, refuses a malformed query the way the vendor does, and goes through
//! create → get → update → delete.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use junction_testkit::vendors::acton::{ActOn, ActOnConfig, ID_HEADER};
use junction_testkit::vendors::closeio::{Close, CloseConfig};
use junction_testkit::vendors::hubspot::{HubSpot, HubSpotConfig};
use junction_testkit::vendors::instagram::{Instagram, InstagramConfig};
use junction_testkit::vendors::jira::{Jira, JiraConfig};
use junction_testkit::vendors::salesforce::{Salesforce, SalesforceConfig};
use junction_testkit::vendors::zendesk::{Zendesk, ZendeskConfig};
use junction_testkit::vendors::{Credential, Store};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, body)
}

fn count(store: &Store, collection: &str, keep: impl Fn(&Value) -> bool) -> usize {
    store.all(collection).iter().filter(|r| keep(r)).count()
}

// ---- Salesforce -------------------------------------------------------------------

const SF: &str = "/services/data/v59.0";

#[tokio::test]
async fn salesforce_refuses_a_wrong_token_with_invalid_session_id() {
    let sf = Salesforce::start(SalesforceConfig::default()).await;
    let (status, body) = send(
        client()
            .get(format!("{}{SF}/sobjects", sf.url()))
            .bearer_auth("not-the-token"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!([{ "message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID" }])
    );

    let (status, versions) = send(client().get(format!("{}/services/data", sf.url()))).await;
    assert_eq!(status, StatusCode::OK, "the version list needs no session");
    assert_eq!(versions[0]["url"], SF);

    sf.set_credential(Credential::Bearer("rotated".into()));
    let token = SalesforceConfig::default().token;
    let (status, _) = send(
        client()
            .get(format!("{}{SF}/sobjects", sf.url()))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old token no longer works"
    );
}

#[tokio::test]
async fn salesforce_query_walk_follows_next_records_url_without_gap_or_repeat() {
    let config = SalesforceConfig::default();
    let sf = Salesforce::start(config.clone()).await;
    let http = client();
    let mut url = format!("{}{SF}/query", sf.url());
    let mut query = Some("SELECT Id, Name, Industry FROM Account");
    let mut ids = HashSet::new();
    let mut pages = 0;
    loop {
        let mut request = http
            .get(&url)
            .bearer_auth(&config.token)
            .header("Sforce-Query-Options", "batchSize=500");
        if let Some(q) = query.take() {
            request = request.query(&[("q", q)]);
        }
        let (status, body) = send(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["totalSize"], 1200);
        pages += 1;
        for record in body["records"].as_array().unwrap() {
            assert_eq!(record["attributes"]["type"], "Account");
            assert!(record.as_object().unwrap().contains_key("Industry"));
            assert!(
                ids.insert(record["Id"].as_str().unwrap().to_owned()),
                "repeated {record}"
            );
        }
        if body["done"] == true {
            assert!(body.get("nextRecordsUrl").is_none());
            break;
        }
        let next = body["nextRecordsUrl"].as_str().unwrap();
        assert!(next.starts_with(&format!("{SF}/query/01g")), "{next}");
        url = format!("{}{next}", sf.url());
    }
    assert_eq!(ids.len(), 1200);
    assert_eq!(pages, 3, "1200 records in batches of 500");
    assert_eq!(
        sf.vendor().open_cursors(),
        0,
        "a finished walk closes its cursor"
    );

    let usage = http
        .get(format!("{}{SF}/sobjects", sf.url()))
        .bearer_auth(&config.token)
        .send()
        .await
        .unwrap();
    assert_eq!(usage.headers()["sforce-limit-info"], "api-usage=4/15000");
    let first = &sf.requests()[0];
    assert_eq!(first.header("sforce-query-options"), Some("batchSize=500"));
    assert_eq!(
        first.param("q"),
        Some("SELECT Id, Name, Industry FROM Account")
    );
    assert!(ids.len() > 1000);
}

#[tokio::test]
async fn salesforce_soql_filters_nulls_numbers_booleans_dates_and_order() {
    let config = SalesforceConfig::default();
    let sf = Salesforce::start(config.clone()).await;
    let http = client();
    let query = |q: &str| {
        http.get(format!("{}{SF}/query", sf.url()))
            .bearer_auth(&config.token)
            .query(&[("q", q)])
    };

    let (status, body) = send(query("SELECT Id FROM Account WHERE Industry = null")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let nulls = count(sf.store(), "Account", |r| r["Industry"].is_null());
    assert!(nulls > 0, "the seed has null industries");
    assert_eq!(body["totalSize"], nulls);

    let (_, body) = send(query(
        "SELECT Id, NumberOfEmployees FROM Account WHERE NumberOfEmployees > 2500 AND IsPartner = true",
    ))
    .await;
    let expected = count(sf.store(), "Account", |r| {
        r["NumberOfEmployees"].as_u64().is_some_and(|n| n > 2500) && r["IsPartner"] == true
    });
    assert!(expected > 0);
    assert_eq!(body["totalSize"], expected);

    let (_, body) = send(query(
        "SELECT Id, Birthdate FROM Contact WHERE Birthdate >= 2025-01-01 AND (Email LIKE 'ada%' OR Email = null) ORDER BY Birthdate DESC LIMIT 50",
    ))
    .await;
    let expected = count(sf.store(), "Contact", |r| {
        r["Birthdate"].as_str().is_some_and(|d| d >= "2025-01-01")
            && (r["Email"].as_str().is_some_and(|e| e.starts_with("ada")) || r["Email"].is_null())
    });
    assert_eq!(body["totalSize"], expected.min(50));
    let dates: Vec<&str> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Birthdate"].as_str().unwrap())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "{dates:?}");

    let (_, body) = send(query(
        "SELECT Id FROM Account WHERE Name IN ('Acme 1 Inc', 'nope') OR Name = 'x\\'y'",
    ))
    .await;
    assert!(body["totalSize"].as_u64().unwrap() <= 1);
}

#[tokio::test]
async fn salesforce_refuses_malformed_soql_with_its_error_array() {
    let config = SalesforceConfig::default();
    let sf = Salesforce::start(config.clone()).await;
    let http = client();
    let query = |q: &str| {
        http.get(format!("{}{SF}/query", sf.url()))
            .bearer_auth(&config.token)
            .query(&[("q", q)])
    };
    for (q, code) in [
        (
            "SELECT Id FROM Contact WHERE Birthdate > '2024-01-01'",
            "MALFORMED_QUERY",
        ),
        (
            "SELECT Id FROM Account WHERE Name = 'a' AND Phone = 'b' OR IsPartner = true",
            "MALFORMED_QUERY",
        ),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
        ("SELECT Nope FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Nothing", "INVALID_TYPE"),
    ] {
        let (status, body) = send(query(q)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(body[0]["errorCode"], code, "{q}: {body}");
        assert!(body[0]["message"].is_string());
    }
}

#[tokio::test]
async fn salesforce_sobject_create_get_update_delete() {
    let config = SalesforceConfig::default();
    let sf = Salesforce::start(config.clone()).await;
    let http = client();
    let base = format!("{}{SF}/sobjects", sf.url());

    let (status, body) = send(
        http.post(format!("{base}/Account"))
            .bearer_auth(&config.token)
            .json(&json!({ "Name": "Junction Labs", "NumberOfEmployees": 12 })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["errors"], json!([]));
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 18);

    let (status, body) = send(
        http.get(format!("{base}/Account/{id}"))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["Name"], "Junction Labs");
    assert_eq!(body["Industry"], Value::Null);
    assert_eq!(body["attributes"]["type"], "Account");

    let (status, body) = send(
        http.patch(format!("{base}/Account/{id}"))
            .bearer_auth(&config.token)
            .json(&json!({ "Industry": "Technology" })),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, body) = send(
        http.get(format!("{base}/Account/{id}"))
            .query(&[("fields", "Name,Industry")])
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(body["Industry"], "Technology");
    assert!(body.get("Phone").is_none());

    for (patch, code) in [
        (json!({ "Nope": 1 }), "INVALID_FIELD"),
        (json!({ "NumberOfEmployees": "many" }), "JSON_PARSER_ERROR"),
        (
            json!({ "CreatedDate": "2024-01-01T00:00:00Z" }),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
    ] {
        let (status, body) = send(
            http.patch(format!("{base}/Account/{id}"))
                .bearer_auth(&config.token)
                .json(&patch),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body[0]["errorCode"], code, "{body}");
    }
    let (status, body) = send(
        http.post(format!("{base}/Contact"))
            .bearer_auth(&config.token)
            .json(&json!({ "FirstName": "No" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "REQUIRED_FIELD_MISSING");

    let (status, _) = send(
        http.delete(format!("{base}/Account/{id}"))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send(
        http.get(format!("{base}/Account/{id}"))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body[0]["errorCode"], "NOT_FOUND");
}

#[tokio::test]
async fn salesforce_describes_objects_and_the_user() {
    let config = SalesforceConfig::default();
    let sf = Salesforce::start(config.clone()).await;
    let http = client();
    let (_, body) = send(
        http.get(format!("{}{SF}/sobjects", sf.url()))
            .bearer_auth(&config.token),
    )
    .await;
    let names: Vec<&str> = body["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for object in [
        "Account",
        "Contact",
        "Lead",
        "Opportunity",
        "Case",
        "User",
        "Task",
        "Note",
        "Event",
        "Campaign",
        "ContentVersion",
    ] {
        assert!(names.contains(&object), "{object}");
    }
    let (_, body) = send(
        http.get(format!("{}{SF}/sobjects/Contact/describe", sf.url()))
            .bearer_auth(&config.token),
    )
    .await;
    let birthdate = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Birthdate")
        .unwrap();
    assert_eq!(birthdate["type"], "date");
    let account_id = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "AccountId")
        .unwrap();
    assert_eq!(account_id["referenceTo"], json!(["Account"]));
    let (_, lead) = send(
        http.get(format!("{}{SF}/sobjects/Lead/describe", sf.url()))
            .bearer_auth(&config.token),
    )
    .await;
    let status = lead["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Status")
        .unwrap();
    let values: Vec<&str> = status["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_str().unwrap())
        .collect();
    for lead in sf.store().all("Lead") {
        assert!(values.contains(&lead["Status"].as_str().unwrap()), "{lead}");
    }
    assert_eq!(birthdate["nillable"], true);
    assert!(birthdate["label"].is_string());

    let (status, body) = send(
        http.get(format!("{}/services/oauth2/userinfo", sf.url()))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["user_id"],
        junction_testkit::vendors::salesforce::USER_ID
    );
    let (_, body) = send(
        http.get(format!("{}{SF}/chatter/users/me", sf.url()))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(
        body["username"],
        junction_testkit::vendors::salesforce::USERNAME
    );
}

#[tokio::test]
async fn salesforce_stores_a_multipart_file_and_streams_it_back() {
    let config = SalesforceConfig::default();
    let sf = Salesforce::start(config.clone()).await;
    let http = client();
    let boundary = "junction-boundary-7";
    let content: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"entity_content\"\r\nContent-Type: application/json\r\n\r\n{}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"VersionData\"; filename=\"report.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            json!({ "Title": "Report", "PathOnClient": "report.bin" })
        )
        .as_bytes(),
    );
    body.extend_from_slice(&content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (status, created) = send(
        http.post(format!("{}{SF}/sobjects/ContentVersion", sf.url()))
            .bearer_auth(&config.token)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let recorded = sf.requests().pop().unwrap();
    assert_eq!(recorded.parts.len(), 2);
    assert_eq!(recorded.parts[1].filename.as_deref(), Some("report.bin"));

    let download = http
        .get(format!(
            "{}{SF}/sobjects/ContentVersion/{id}/VersionData",
            sf.url()
        ))
        .bearer_auth(&config.token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.bytes().await.unwrap().to_vec(), content);

    let (_, meta) = send(
        http.get(format!("{}{SF}/query", sf.url()))
            .bearer_auth(&config.token)
            .query(&[(
                "q",
                "SELECT Id, Title, ContentSize, FileExtension FROM ContentDocument",
            )]),
    )
    .await;
    assert_eq!(meta["records"][0]["ContentSize"], 70_000);
    assert_eq!(meta["records"][0]["FileExtension"], "bin");

    let document = meta["records"][0]["Id"].as_str().unwrap();
    let (status, _) = send(
        http.delete(format!(
            "{}{SF}/sobjects/ContentDocument/{document}",
            sf.url()
        ))
        .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = http
        .get(format!(
            "{}{SF}/sobjects/ContentVersion/{id}/VersionData",
            sf.url()
        ))
        .bearer_auth(&config.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        gone.status(),
        StatusCode::NOT_FOUND,
        "versions go with their document"
    );
}

#[tokio::test]
async fn salesforce_seed_size_is_configurable_for_large_walks() {
    let config = SalesforceConfig {
        accounts: 12_000,
        contacts: 1,
        others: 1,
        small: 1,
        ..SalesforceConfig::default()
    };
    let sf = Salesforce::start(config.clone()).await;
    let http = client();
    let (_, mut body) = send(
        http.get(format!("{}{SF}/query", sf.url()))
            .bearer_auth(&config.token)
            .query(&[("q", "SELECT Id FROM Account")]),
    )
    .await;
    let mut seen = body["records"].as_array().unwrap().len();
    assert_eq!(seen, 2000, "the default batch size");
    while let Some(next) = body["nextRecordsUrl"].as_str().map(str::to_owned) {
        body = send(
            http.get(format!("{}{next}", sf.url()))
                .bearer_auth(&config.token),
        )
        .await
        .1;
        seen += body["records"].as_array().unwrap().len();
    }
    assert_eq!(seen, 12_000);
}

// ---- HubSpot ----------------------------------------------------------------------

#[tokio::test]
async fn hubspot_refuses_a_wrong_token_and_walks_contacts_by_after() {
    let config = HubSpotConfig {
        limit: 10_000,
        ..HubSpotConfig::default()
    };
    let hs = HubSpot::start(config.clone()).await;
    let http = client();
    let (status, body) = send(
        http.get(format!("{}/crm/v3/objects/contacts", hs.url()))
            .bearer_auth("wrong"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert!(body["correlationId"].is_string());

    let mut ids = HashSet::new();
    let mut next = Some(format!(
        "{}/crm/v3/objects/contacts?limit=100&properties=email,firstname",
        hs.url()
    ));
    let mut nulls = 0;
    while let Some(url) = next.take() {
        let (status, body) = send(http.get(&url).bearer_auth(&config.token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for r in body["results"].as_array().unwrap() {
            assert!(ids.insert(r["id"].as_str().unwrap().to_owned()));
            assert_eq!(r["properties"].as_object().unwrap().len(), 2, "{r}");
            nulls += usize::from(r["properties"]["email"].is_null());
        }
        next = body["paging"]["next"]["link"].as_str().map(str::to_owned);
    }
    assert_eq!(ids.len(), 1050);
    assert!(nulls > 0);

    let (status, body) = send(
        http.get(format!("{}/crm/v3/objects/contacts", hs.url()))
            .query(&[("limit", "101")])
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["category"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn hubspot_search_applies_filter_groups_and_refuses_bad_shapes() {
    let config = HubSpotConfig {
        limit: 10_000,
        ..HubSpotConfig::default()
    };
    let hs = HubSpot::start(config.clone()).await;
    let http = client();
    let search = |body: Value| {
        http.post(format!("{}/crm/v3/objects/contacts/search", hs.url()))
            .bearer_auth(&config.token)
            .json(&body)
    };
    let (status, body) = send(search(json!({
        "filterGroups": [
            { "filters": [
                { "propertyName": "lifecyclestage", "operator": "EQ", "value": "customer" },
                { "propertyName": "email", "operator": "NOT_HAS_PROPERTY" }
            ]},
            { "filters": [{ "propertyName": "lastname", "operator": "IN", "values": ["Hopper", "Knuth"] }] }
        ],
        "properties": ["lastname"],
        "limit": 200
    })))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = count(hs.store(), "contacts", |r| {
        let p = &r["properties"];
        (p["lifecyclestage"] == "customer" && p["email"].is_null())
            || p["lastname"] == "Hopper"
            || p["lastname"] == "Knuth"
    });
    assert!(expected > 0);
    assert_eq!(body["total"], expected);

    for bad in [
        json!({ "filterGroups": [{ "filters": [{ "propertyName": "email", "operator": "LIKE", "value": "a" }] }] }),
        json!({ "filterGroups": [{ "filters": [{ "propertyName": "email", "operator": "IN", "value": "a" }] }] }),
        json!({ "filterGroups": [{ "filters": [{ "operator": "EQ", "value": "a" }] }] }),
        json!({ "filters": [] }),
        json!({ "limit": 500 }),
    ] {
        let (status, body) = send(search(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["category"], "VALIDATION_ERROR", "{body}");
    }
}

#[tokio::test]
async fn hubspot_object_create_get_update_delete() {
    let config = HubSpotConfig::default();
    let hs = HubSpot::start(config.clone()).await;
    let http = client();
    let base = format!("{}/crm/v3/objects/companies", hs.url());
    let (status, created) = send(
        http.post(&base)
            .bearer_auth(&config.token)
            .json(&json!({ "properties": { "name": "Junction", "numberofemployees": 12 } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        created["properties"]["numberofemployees"], "12",
        "HubSpot keeps strings"
    );
    let (status, body) = send(
        http.patch(format!("{base}/{id}"))
            .bearer_auth(&config.token)
            .json(&json!({ "properties": { "city": "Oslo" } })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["properties"]["city"], "Oslo");
    let (_, body) = send(
        http.get(format!("{base}/{id}?properties=name,city"))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(
        body["properties"],
        json!({ "name": "Junction", "city": "Oslo" })
    );
    let (status, body) = send(
        http.patch(format!("{base}/{id}"))
            .bearer_auth(&config.token)
            .json(&json!({ "city": "x" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = send(
        http.delete(format!("{base}/{id}"))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send(http.get(format!("{base}/{id}")).bearer_auth(&config.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");
}

#[tokio::test]
async fn hubspot_answers_429_beyond_its_rolling_limit_and_counts_them() {
    let config = HubSpotConfig {
        limit: 5,
        window: Duration::from_secs(3600),
        records: 10,
        ..HubSpotConfig::default()
    };
    let hs = HubSpot::start(config.clone()).await;
    let http = client();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let (status, body) = send(
            http.get(format!("{}/crm/v3/objects/deals", hs.url()))
                .bearer_auth(&config.token),
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["category"], "RATE_LIMITS");
            assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    assert_eq!(hs.vendor().rate_limited(), 3);
}

// ---- Zendesk ----------------------------------------------------------------------

#[tokio::test]
async fn zendesk_refuses_wrong_credentials_and_walks_tickets_by_cursor_and_offset() {
    let config = ZendeskConfig::default();
    let zd = Zendesk::start(config.clone()).await;
    let http = client();
    let (status, body) = send(
        http.get(format!("{}/api/v2/tickets.json", zd.url()))
            .basic_auth(format!("{}/token", config.email), Some("wrong")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({ "error": "Couldn't authenticate you" }));

    let user = format!("{}/token", config.email);
    let mut ids = HashSet::new();
    let mut next = Some(format!("{}/api/v2/tickets.json?page[size]=100", zd.url()));
    while let Some(url) = next.take() {
        let (status, body) = send(http.get(&url).basic_auth(&user, Some(&config.api_token))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for t in body["tickets"].as_array().unwrap() {
            assert!(ids.insert(t["id"].as_u64().unwrap()));
        }
        if body["meta"]["has_more"] == true {
            next = body["links"]["next"].as_str().map(str::to_owned);
            assert!(next.is_some());
        }
    }
    assert_eq!(ids.len(), 1050);

    zd.add_credential(Credential::Bearer("oauth-token".into()));
    let mut users = 0;
    let mut next = Some(format!("{}/api/v2/users.json?per_page=100", zd.url()));
    while let Some(url) = next.take() {
        let (_, body) = send(http.get(&url).bearer_auth("oauth-token")).await;
        users += body["users"].as_array().unwrap().len();
        assert_eq!(body["count"], 1050);
        next = body["next_page"].as_str().map(str::to_owned);
    }
    assert_eq!(users, 1050);

    let (status, body) = send(
        http.get(format!(
            "{}/api/v2/tickets.json?page[size]=10&per_page=10",
            zd.url()
        ))
        .bearer_auth("oauth-token"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string() && body["description"].is_string());
}

#[tokio::test]
async fn zendesk_search_finds_matching_tickets_and_refuses_a_broken_query() {
    let config = ZendeskConfig::default();
    let zd = Zendesk::start(config.clone()).await;
    zd.add_credential(Credential::Bearer("t".into()));
    let http = client();
    let (status, body) = send(
        http.get(format!("{}/api/v2/search.json", zd.url()))
            .query(&[("query", "type:ticket status:open priority:high")])
            .bearer_auth("t"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = count(zd.store(), "tickets", |t| {
        t["status"] == "open" && t["priority"] == "high"
    });
    assert!(expected > 0);
    assert_eq!(body["count"], expected);
    assert_eq!(body["results"][0]["result_type"], "ticket");

    let (status, body) = send(
        http.get(format!("{}/api/v2/search.json", zd.url()))
            .query(&[("query", "type:ticket subject:\"printer")])
            .bearer_auth("t"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn zendesk_ticket_create_get_update_delete_with_envelopes() {
    let config = ZendeskConfig::default();
    let zd = Zendesk::start(config.clone()).await;
    zd.add_credential(Credential::Bearer("t".into()));
    let http = client();
    let base = format!("{}/api/v2/tickets", zd.url());
    let (status, body) = send(
        http.post(format!("{base}.json"))
            .bearer_auth("t")
            .json(&json!({ "subject": "no envelope" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = send(
        http.post(format!("{base}.json"))
            .bearer_auth("t")
            .json(&json!({ "ticket": { "priority": "low" } })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "RecordInvalid");

    let (status, body) = send(http.post(format!("{base}.json")).bearer_auth("t").json(
        &json!({ "ticket": { "subject": "Printer on fire", "comment": { "body": "help" } } }),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["ticket"]["id"].as_u64().unwrap();
    assert_eq!(body["ticket"]["status"], "new");
    let (status, body) = send(
        http.put(format!("{base}/{id}.json"))
            .bearer_auth("t")
            .json(&json!({ "ticket": { "status": "solved" } })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["ticket"]["status"], "solved");
    let (_, body) = send(http.get(format!("{base}/{id}.json")).bearer_auth("t")).await;
    assert_eq!(body["ticket"]["subject"], "Printer on fire");
    let (status, _) = send(http.delete(format!("{base}/{id}.json")).bearer_auth("t")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send(http.get(format!("{base}/{id}.json")).bearer_auth("t")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "RecordNotFound");
}

// ---- Close ------------------------------------------------------------------------

#[tokio::test]
async fn close_refuses_a_wrong_key_walks_leads_and_filters_by_query() {
    let config = CloseConfig::default();
    let close = Close::start(config.clone()).await;
    let http = client();
    let (status, body) = send(
        http.get(format!("{}/api/v1/lead/", close.url()))
            .basic_auth("wrong", Some("")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].is_string());

    let mut ids = HashSet::new();
    let mut skip = 0;
    loop {
        let (status, body) = send(
            http.get(format!("{}/api/v1/lead/", close.url()))
                .query(&[("_skip", skip.to_string()), ("_limit", "100".into())])
                .basic_auth(&config.api_key, Some("")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let data = body["data"].as_array().unwrap();
        for lead in data {
            assert!(ids.insert(lead["id"].as_str().unwrap().to_owned()));
        }
        skip += data.len();
        if body["has_more"] == false {
            break;
        }
    }
    assert_eq!(ids.len(), 1050);
    let recorded = close.requests();
    assert_eq!(recorded[1].param("_skip"), Some("0"));
    assert!(
        recorded[1]
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );

    let (_, body) = send(
        http.get(format!("{}/api/v1/lead/", close.url()))
            .query(&[("query", "status_label:Qualified"), ("_limit", "100")])
            .basic_auth(&config.api_key, Some("")),
    )
    .await;
    let expected = count(close.store(), "lead", |l| l["status_label"] == "Qualified");
    assert_eq!(body["data"].as_array().unwrap().len(), expected.min(100));

    for bad in [vec![("_limit", "500")], vec![("query", "name:\"open")]] {
        let (status, body) = send(
            http.get(format!("{}/api/v1/lead/", close.url()))
                .query(&bad)
                .basic_auth(&config.api_key, Some("")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(body["error"].is_string());
    }
}

#[tokio::test]
async fn close_contact_create_get_update_delete() {
    let config = CloseConfig::default();
    let close = Close::start(config.clone()).await;
    let http = client();
    let base = format!("{}/api/v1/contact/", close.url());
    let (status, body) = send(
        http.post(&base)
            .basic_auth(&config.api_key, Some(""))
            .json(&json!({ "name": "Nobody" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["field-errors"]["lead_id"].is_string(), "{body}");

    let lead = close.store().all("lead")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, created) = send(
        http.post(&base)
            .basic_auth(&config.api_key, Some(""))
            .json(&json!({ "lead_id": lead, "name": "Ada Lovelace" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("cont_"));
    let (_, body) = send(
        http.put(format!("{base}{id}/"))
            .basic_auth(&config.api_key, Some(""))
            .json(&json!({ "title": "Countess" })),
    )
    .await;
    assert_eq!(body["title"], "Countess");
    assert_eq!(body["name"], "Ada Lovelace", "PUT patches");
    let (_, body) = send(
        http.get(format!("{base}{id}/?_fields=id,title"))
            .basic_auth(&config.api_key, Some("")),
    )
    .await;
    assert_eq!(body, json!({ "id": id, "title": "Countess" }));
    let (status, body) = send(
        http.delete(format!("{base}{id}/"))
            .basic_auth(&config.api_key, Some("")),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (status, _) = send(
        http.get(format!("{base}{id}/"))
            .basic_auth(&config.api_key, Some("")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// ---- Jira -------------------------------------------------------------------------

#[tokio::test]
async fn jira_refuses_a_wrong_token_and_walks_issues_by_next_page_token() {
    let config = JiraConfig::default();
    let jira = Jira::start(config.clone()).await;
    let http = client();
    let (status, body) = send(
        http.get(format!("{}/rest/api/3/search/jql", jira.url()))
            .basic_auth(&config.email, Some("wrong")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["errorMessages"].is_array());

    let mut keys = HashSet::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = vec![
            (
                "jql",
                "project IN (OPS, WEB, APP) ORDER BY key ASC".to_owned(),
            ),
            ("maxResults", "100".to_owned()),
            ("fields", "summary,assignee".to_owned()),
        ];
        if let Some(t) = &token {
            query.push(("nextPageToken", t.clone()));
        }
        let (status, body) = send(
            http.get(format!("{}/rest/api/3/search/jql", jira.url()))
                .query(&query)
                .basic_auth(&config.email, Some(&config.api_token)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for issue in body["issues"].as_array().unwrap() {
            assert!(keys.insert(issue["key"].as_str().unwrap().to_owned()));
            assert_eq!(issue["fields"].as_object().unwrap().len(), 2, "{issue}");
        }
        if body["isLast"] == true {
            break;
        }
        token = Some(body["nextPageToken"].as_str().unwrap().to_owned());
    }
    assert_eq!(keys.len(), 1050);

    let (_, body) = send(
        http.get(format!("{}/rest/api/3/search", jira.url()))
            .query(&[
                ("jql", "project = OPS"),
                ("startAt", "100"),
                ("maxResults", "50"),
            ])
            .basic_auth(&config.email, Some(&config.api_token)),
    )
    .await;
    assert_eq!(body["total"], 350);
    assert_eq!(body["startAt"], 100);
}

#[tokio::test]
async fn jira_jql_filters_and_malformed_jql_gets_error_messages() {
    let config = JiraConfig::default();
    let jira = Jira::start(config.clone()).await;
    jira.add_credential(Credential::Bearer("oauth".into()));
    let http = client();
    let search = |jql: &str| {
        http.post(format!("{}/rest/api/3/search/jql", jira.url()))
            .bearer_auth("oauth")
            .json(&json!({ "jql": jql, "maxResults": 100, "fields": ["summary"] }))
    };
    let (status, body) = send(search(
        "project = OPS AND assignee IS EMPTY AND status != Done",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = count(jira.store(), "issues", |i| {
        i["fields"]["project"]["key"] == "OPS"
            && i["fields"]["assignee"].is_null()
            && i["fields"]["status"]["name"] != "Done"
    });
    assert!(expected > 0 && expected <= 100);
    assert_eq!(body["issues"].as_array().unwrap().len(), expected);

    let (_, body) = send(search(
        "summary ~ \"checkout\" AND created >= \"2024-01-20\"",
    ))
    .await;
    let found = body["issues"].as_array().unwrap();
    assert!(!found.is_empty());
    assert!(found.iter().all(|i| {
        i["fields"]["summary"]
            .as_str()
            .unwrap()
            .contains("Checkout")
    }));

    for bad in [
        "project = ",
        "nosuch = 1",
        "status ~ Done",
        "project = OPS ORDER created",
    ] {
        let (status, body) = send(search(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            !body["errorMessages"].as_array().unwrap().is_empty(),
            "{body}"
        );
        assert_eq!(body["errors"], json!({}));
    }
}

#[tokio::test]
async fn jira_issue_create_get_update_delete_and_directories() {
    let config = JiraConfig::default();
    let jira = Jira::start(config.clone()).await;
    let http = client();
    let auth = |r: reqwest::RequestBuilder| r.basic_auth(&config.email, Some(&config.api_token));
    let base = format!("{}/rest/api/3/issue", jira.url());
    let (status, body) =
        send(auth(http.post(&base)).json(&json!({ "fields": { "project": { "key": "OPS" } } })))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["summary"].is_string(), "{body}");

    let (status, created) = send(auth(http.post(&base)).json(&json!({
        "fields": { "project": { "key": "OPS" }, "summary": "Pager is silent", "issuetype": { "name": "Bug" } }
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("OPS-"));
    let (status, _) = send(
        auth(http.put(format!("{base}/{key}")))
            .json(&json!({ "fields": { "summary": "Pager is loud" } })),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, issue) = send(auth(http.get(format!("{base}/{key}")))).await;
    assert_eq!(issue["fields"]["summary"], "Pager is loud");
    assert_eq!(issue["fields"]["status"]["name"], "To Do");
    let (status, _) = send(auth(http.delete(format!("{base}/{key}")))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send(auth(http.get(format!("{base}/{key}")))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["errorMessages"][0].is_string());

    let (_, projects) = send(auth(http.get(format!(
        "{}/rest/api/3/project/search?maxResults=2",
        jira.url()
    ))))
    .await;
    assert_eq!(projects["total"], 3);
    assert_eq!(projects["isLast"], false);
    assert!(projects["nextPage"].is_string());
    let (_, users) = send(auth(http.get(format!(
        "{}/rest/api/3/users/search?startAt=100&maxResults=50",
        jira.url()
    ))))
    .await;
    assert_eq!(users.as_array().unwrap().len(), 20);
}

// ---- Act-On -----------------------------------------------------------------------

#[tokio::test]
async fn acton_refuses_a_wrong_token_and_downloads_a_list_by_offset() {
    let config = ActOnConfig::default();
    let acton = ActOn::start(config.clone()).await;
    let http = client();
    let (status, body) = send(
        http.get(format!("{}/api/1/list", acton.url()))
            .bearer_auth("wrong"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");

    let (_, listing) = send(
        http.get(format!(
            "{}/api/1/list?listingtype=CONTACT_LIST",
            acton.url()
        ))
        .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(listing["result"][0]["size"], 1050);
    assert_eq!(listing["totalCount"], 3);

    let mut ids = HashSet::new();
    let mut offset = 0;
    loop {
        let (status, body) = send(
            http.get(format!("{}/api/1/list/l-0001", acton.url()))
                .query(&[
                    ("offset", offset.to_string()),
                    ("count", "400".into()),
                    ("fields", "E-mail Address;Company".into()),
                ])
                .bearer_auth(&config.token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["headers"],
            json!([ID_HEADER, "E-mail Address", "Company"])
        );
        assert_eq!(body["totalCount"], 1050);
        let rows = body["data"].as_array().unwrap();
        for row in rows {
            assert!(ids.insert(row[0].as_str().unwrap().to_owned()));
        }
        offset += rows.len();
        if rows.len() < 400 {
            break;
        }
    }
    assert_eq!(ids.len(), 1050);

    for bad in ["count=5000", "fields=Nope"] {
        let (status, body) = send(
            http.get(format!("{}/api/1/list/l-0001?{bad}", acton.url()))
                .bearer_auth(&config.token),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["status"], "failure");
    }
    let (_, optouts) = send(
        http.get(format!("{}/api/1/list/optout?count=10", acton.url()))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(optouts["totalCount"], 40);
}

#[tokio::test]
async fn acton_contact_record_add_get_update_delete() {
    let config = ActOnConfig::default();
    let acton = ActOn::start(config.clone()).await;
    let http = client();
    let base = format!("{}/api/1/list/l-0002/record", acton.url());
    let (status, body) = send(
        http.post(&base)
            .bearer_auth(&config.token)
            .json(&json!({ "Email": "x@example.test" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "failure");

    let (status, added) = send(
        http.post(&base)
            .bearer_auth(&config.token)
            .json(&json!({ "E-mail Address": "new@example.test", "First Name": "New" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(added["message"], "Record added");
    let id = added["id"].as_str().unwrap();
    let (_, updated) = send(
        http.put(format!("{base}/{id}"))
            .bearer_auth(&config.token)
            .json(&json!({ "City": "Lyon" })),
    )
    .await;
    assert_eq!(updated["message"], "Record updated");
    let (_, record) = send(http.get(format!("{base}/{id}")).bearer_auth(&config.token)).await;
    assert_eq!(record["City"], "Lyon");
    assert_eq!(record["First Name"], "New");
    let (_, deleted) = send(
        http.delete(format!("{base}/{id}"))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(deleted["status"], "success");
    let (status, _) = send(http.get(format!("{base}/{id}")).bearer_auth(&config.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// ---- Instagram --------------------------------------------------------------------

#[tokio::test]
async fn instagram_reads_the_token_from_the_query_and_pages_by_next_url() {
    let config = InstagramConfig::default();
    let ig = Instagram::start(config.clone()).await;
    let http = client();
    let (status, body) = send(
        http.get(format!("{}/v1/users/self", ig.url()))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "v1 reads only access_token"
    );
    assert_eq!(body["meta"]["error_type"], "OAuthAccessTokenException");

    let (_, me) = send(
        http.get(format!("{}/v1/users/self", ig.url()))
            .query(&[("access_token", &config.token)]),
    )
    .await;
    assert_eq!(me["meta"]["code"], 200);
    assert_eq!(me["data"]["counts"]["media"], 120);

    let mut ids = HashSet::new();
    let mut next = Some(format!(
        "{}/v1/users/self/media/recent?count=33&access_token={}",
        ig.url(),
        config.token
    ));
    while let Some(url) = next.take() {
        let (status, body) = send(http.get(&url)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for m in body["data"].as_array().unwrap() {
            assert!(ids.insert(m["id"].as_str().unwrap().to_owned()));
        }
        next = body["pagination"]["next_url"].as_str().map(str::to_owned);
    }
    assert_eq!(ids.len(), 120);
    let (status, body) = send(
        http.get(format!("{}/v1/users/self/media/recent", ig.url()))
            .query(&[
                ("access_token", config.token.as_str()),
                ("max_id", "garbage"),
            ]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["meta"]["code"], 400);
}

// ---- Facebook Graph ---------------------------------------------------------------

#[tokio::test]
async fn graph_lead_ads_need_a_page_token_and_page_through_every_lead() {
    use junction_testkit::graph::{GraphConfig, GraphServer};
    let graph = GraphServer::start(GraphConfig::default()).await;
    let http = client();
    let page = graph.config().pages[0].id.clone();
    let user_token = graph.issue_user_token();
    let (status, body) = send(
        http.get(format!("{}/{page}/leadgen_forms", graph.api_url()))
            .query(&[("access_token", &user_token)]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], 210, "{body}");

    let page_token = graph.issue_page_token(0);
    let (status, forms) = send(
        http.get(format!("{}/{page}/leadgen_forms", graph.api_url()))
            .query(&[("access_token", &page_token)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{forms}");
    assert_eq!(forms["data"].as_array().unwrap().len(), 2);
    let form = forms["data"][0]["id"].as_str().unwrap().to_owned();

    let mut ids = HashSet::new();
    let mut organic = 0;
    let mut next = Some(format!(
        "{}/{form}/leads?limit=100&access_token={page_token}",
        graph.api_url()
    ));
    while let Some(url) = next.take() {
        let (status, body) = send(http.get(&url)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for lead in body["data"].as_array().unwrap() {
            assert!(ids.insert(lead["id"].as_str().unwrap().to_owned()));
            assert_eq!(lead["field_data"][0]["name"], "email");
            organic += usize::from(lead.get("ad_id").is_none());
        }
        next = body["paging"]["next"].as_str().map(str::to_owned);
    }
    assert_eq!(ids.len(), 1050);
    assert!(organic > 0, "organic leads carry no ad fields");
    let lead = ids.iter().next().unwrap();
    let (status, body) = send(
        http.get(format!("{}/{lead}", graph.api_url()))
            .bearer_auth(&page_token)
            .query(&[("fields", "created_time,field_data")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");

    let other_page = graph.issue_page_token(1);
    let (status, body) = send(
        http.get(format!("{}/{form}/leads", graph.api_url()))
            .bearer_auth(&other_page),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], 200);
    assert!(
        graph
            .requests()
            .iter()
            .any(|r| r.param("access_token") == Some(page_token.as_str())),
        "requests are recorded"
    );
}

#[tokio::test]
async fn graph_page_subscribed_apps_can_be_set_read_and_removed() {
    use junction_testkit::graph::{GraphConfig, GraphServer};
    let graph = GraphServer::start(GraphConfig::default()).await;
    let http = client();
    let page = graph.config().pages[2].id.clone();
    let token = graph.issue_page_token(2);
    let url = format!("{}/{page}/subscribed_apps", graph.api_url());
    let (status, body) = send(
        http.post(&url)
            .bearer_auth(&token)
            .form(&[("subscribed_fields", "leadgen,bogus")]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], 100);
    let (status, body) = send(
        http.post(&url)
            .bearer_auth(&token)
            .form(&[("subscribed_fields", "leadgen,feed")]),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "success": true })));
    let (_, body) = send(http.get(&url).bearer_auth(&token)).await;
    assert_eq!(
        body["data"][0]["subscribed_fields"],
        json!(["leadgen", "feed"])
    );
    let (_, body) = send(http.delete(&url).bearer_auth(&token)).await;
    assert_eq!(body["success"], true);
    let (_, body) = send(http.get(&url).bearer_auth(&token)).await;
    assert_eq!(body["data"], json!([]));
    let (status, body) = send(http.get(&url).bearer_auth(graph.issue_user_token())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], 210);
}

#[tokio::test]
async fn graph_feed_posts_are_created_listed_and_deleted_with_comments_and_likes() {
    use junction_testkit::graph::{GraphConfig, GraphServer};
    let graph = GraphServer::start(GraphConfig::default()).await;
    let http = client();
    let page = graph.config().pages[0].id.clone();
    let token = graph.issue_page_token(0);
    let feed = format!("{}/{page}/feed", graph.api_url());
    let (status, body) = send(http.post(&feed).bearer_auth(&token).json(&json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], 100);
    let (status, body) = send(
        http.post(&feed)
            .bearer_auth(graph.issue_user_token())
            .json(&json!({ "message": "hi" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], 210);

    let (status, created) = send(
        http.post(&feed)
            .bearer_auth(&token)
            .json(&json!({ "message": "Fresh bread" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let post = created["id"].as_str().unwrap().to_owned();
    let mut seen = 0;
    let mut found = false;
    let mut next = Some(format!("{feed}?limit=10&access_token={token}"));
    while let Some(url) = next.take() {
        let (_, body) = send(http.get(&url)).await;
        for item in body["data"].as_array().unwrap() {
            seen += 1;
            found |= item["id"] == post.as_str();
        }
        next = body["paging"]["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 31);
    assert!(found);

    let seeded = format!("{page}_{:015}", 503);
    let (_, comments) = send(
        http.get(format!("{}/{seeded}/comments", graph.api_url()))
            .query(&[("summary", "true")])
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(comments["summary"]["total_count"], 3, "{comments}");
    let (_, likes) = send(
        http.get(format!("{}/{seeded}/likes", graph.api_url()))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(likes["data"].as_array().unwrap().len(), 3);

    let (_, body) = send(
        http.post(format!("{}/{post}", graph.api_url()))
            .bearer_auth(&token)
            .form(&[("message", "Fresh rye bread")]),
    )
    .await;
    assert_eq!(body["success"], true);
    let (_, body) = send(
        http.get(format!("{}/{post}", graph.api_url()))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(body["message"], "Fresh rye bread");
    let (_, body) = send(
        http.delete(format!("{}/{post}", graph.api_url()))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(body["success"], true);
    let (status, body) = send(
        http.get(format!("{}/{post}", graph.api_url()))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["error_subcode"], 33);

    let user_token = graph.issue_user_token();
    let (_, mine) = send(
        http.get(format!("{}/me/feed", graph.api_url()))
            .bearer_auth(&user_token),
    )
    .await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn acton_subscriptions_opt_out_and_back_in_by_form_body() {
    let config = ActOnConfig::default();
    let acton = ActOn::start(config.clone()).await;
    let http = client();
    let (_, categories) = send(
        http.get(format!("{}/api/1/subscription/category", acton.url()))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(categories["result"][0]["name"], "Newsletter");
    let url = format!("{}/api/1/subscription/optout", acton.url());
    let (_, before) = send(
        http.get(&url)
            .query(&[("category", "Newsletter"), ("count", "5")])
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(before["totalCount"], 30);
    assert_eq!(before["result"].as_array().unwrap().len(), 5);
    assert!(before["result"][0]["timestamp"].is_i64());

    let (status, body) = send(
        http.put(&url)
            .bearer_auth(&config.token)
            .json(&json!({ "email": "a@b.test", "category": "Newsletter" })),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "Act-On takes a form body: {body}"
    );
    let (status, body) = send(
        http.put(&url)
            .bearer_auth(&config.token)
            .form(&[("email", "a@b.test"), ("category", "Newsletter")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["message"],
        "OptOut entry added for subscription category : Newsletter"
    );
    let (_, after) = send(
        http.get(&url)
            .query(&[("category", "Newsletter")])
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(after["totalCount"], 31);
    let (_, body) = send(http.put(&url).bearer_auth(&config.token).form(&[
        ("email", "a@b.test"),
        ("category", "Newsletter"),
        ("action", "optin"),
    ]))
    .await;
    assert_eq!(body["status"], "success");
    let (_, after) = send(
        http.get(&url)
            .query(&[("category", "Newsletter")])
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(after["totalCount"], 30);
    let (status, _) = send(
        http.get(&url)
            .query(&[("category", "Nope")])
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn multipart(boundary: &str, parts: &[(&str, &str)]) -> Vec<u8> {
    let mut body = String::new();
    for (name, value) in parts {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body.into_bytes()
}

#[tokio::test]
async fn acton_lists_are_created_merged_and_deleted_from_multipart_csv() {
    let config = ActOnConfig::default();
    let acton = ActOn::start(config.clone()).await;
    let http = client();
    let boundary = "acton-b";
    let post = |parts: &[(&str, &str)]| {
        http.post(format!("{}/api/1/list", acton.url()))
            .bearer_auth(&config.token)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(multipart(boundary, parts))
    };
    let specs = r#"[{"columnHeading":"E-mail Address","ignoreColumn":"N","columnType":"EMAIL","columnIndex":0},{"columnHeading":"First Name","ignoreColumn":"N","columnIndex":"1"}]"#;
    let (status, body) = send(post(&[("listname", "Webinar")])).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "uploadspecs is required: {body}"
    );
    let (status, body) = send(post(&[
        ("listname", "Webinar"),
        ("uploadspecs", specs),
        ("quotecharacter", "NONE"),
        ("file", "E-mail Address,First Name\na@x.test,Ann,extra\n"),
    ]))
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "column count is checked: {body}"
    );
    let (status, body) = send(post(&[("listname", "Webinar"), ("uploadspecs", specs)])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["message"], "quotecharacter is required");
    let no_email = specs.replace(r#""columnType":"EMAIL","#, "");
    let (status, body) = send(post(&[
        ("listname", "Webinar"),
        ("uploadspecs", &no_email),
        ("quotecharacter", "NONE"),
    ]))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = send(
        http.post(format!("{}/api/1/list", acton.url()))
            .bearer_auth(&config.token)
            .form(&[
                ("listname", "Webinar"),
                ("uploadspecs", specs),
                ("quotecharacter", "NONE"),
            ]),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    // Without a file: an empty list in the folder named, and its id.
    let (status, empty) = send(post(&[
        ("listname", "Webinar leads"),
        ("foldername", "Events"),
        ("uploadspecs", specs),
        ("quotecharacter", "NONE"),
    ]))
    .await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty["message"], "List created");
    let entry = acton
        .store()
        .get("lists", empty["listId"].as_str().unwrap())
        .unwrap();
    assert_eq!(entry["folderName"], "Events");
    assert_eq!(entry["headers"], json!(["E-mail Address", "First Name"]));

    let (status, created) = send(post(&[
        ("listname", "Webinar"),
        ("uploadspecs", specs),
        ("quotecharacter", "DOUBLE_QUOTE"),
        (
            "file",
            "E-mail Address,First Name\na@x.test,\"Ann, Jr\"\nb@x.test,Bob\n",
        ),
    ]))
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let list = created["listId"].as_str().unwrap().to_owned();
    let (_, rows) = send(
        http.get(format!("{}/api/1/list/{list}", acton.url()))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(rows["totalCount"], 2);
    assert_eq!(
        rows["headers"],
        json!([ID_HEADER, "E-mail Address", "First Name"])
    );
    assert_eq!(rows["data"][0][2], "Ann, Jr");

    let (status, body) = send(
        http.put(format!("{}/api/1/list/{list}", acton.url()))
            .bearer_auth(&config.token)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(multipart(
                boundary,
                &[
                    ("mergemode", "UPSERT"),
                    ("quotecharacter", "NONE"),
                    ("uploadspecs", specs),
                    (
                        "file",
                        "E-mail Address,First Name\nb@x.test,Robert\nc@x.test,Cy\n",
                    ),
                ],
            )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, rows) = send(
        http.get(format!("{}/api/1/list/{list}", acton.url()))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(rows["totalCount"], 3);
    assert_eq!(rows["data"][1][2], "Robert");

    let (_, body) = send(
        http.delete(format!("{}/api/1/list/{list}", acton.url()))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(body["status"], "success");
    let (status, _) = send(
        http.get(format!("{}/api/1/list/{list}", acton.url()))
            .bearer_auth(&config.token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn salesforce_serves_child_relationships_and_attachment_bodies() {
    use junction_testkit::vendors::salesforce::{attachment_body, record_id};
    let config = SalesforceConfig::default();
    let sf = Salesforce::start(config.clone()).await;
    let http = client();
    let account = record_id("001", 1);
    let get = |path: String| {
        http.get(format!("{}{SF}/sobjects/{path}", sf.url()))
            .bearer_auth(&config.token)
    };

    let (status, tasks) = send(get(format!("Account/{account}/Tasks"))).await;
    assert_eq!(status, StatusCode::OK, "{tasks}");
    let expected = count(sf.store(), "Task", |t| t["WhatId"] == account.as_str());
    assert!(expected > 0);
    assert_eq!(tasks["totalSize"], expected);
    assert_eq!(tasks["done"], true);
    assert_eq!(tasks["records"][0]["attributes"]["type"], "Task");

    let contact = record_id("003", 1);
    let (_, tasks) = send(get(format!("Contact/{contact}/Tasks"))).await;
    assert_eq!(
        tasks["totalSize"],
        count(sf.store(), "Task", |t| t["WhoId"] == contact.as_str())
    );

    let (_, attachments) = send(get(format!("Account/{account}/Attachments"))).await;
    let first = &attachments["records"][0];
    assert_eq!(first["ParentId"], account.as_str());
    let id = first["Id"].as_str().unwrap();
    let n: usize = id[5..15].parse().unwrap();
    let body = get(format!("Attachment/{id}/Body")).send().await.unwrap();
    assert_eq!(body.status(), StatusCode::OK);
    assert_eq!(body.bytes().await.unwrap().to_vec(), attachment_body(n - 1));

    let (status, body) = send(get(format!("Account/{account}/Nonsense"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body[0]["errorCode"], "NOT_FOUND");
}

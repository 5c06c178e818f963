//! The helpdesk hub's resources of built-in elements, end to end: Junction's hub routes
//! against the Jira and Zendesk stand-ins (`junction_testkit::vendors`), with instances
//! holding OAuth tokens the caller brought. Each test reads what the stand-in received,
//! so a wrong mapping in `elements/jira.yaml` or `elements/zendesk.yaml` fails here.

use crate::helpers::{TestApp, assert_error};
use crate::hub_crm::{
    assert_objects, assert_provider_error, enc, get, has_null, hub, last_to, text, walk,
    without_nulls,
};
use crate::on_both_backends;
use junction_testkit::db::Backend;
use junction_testkit::vendors::Credential;
use junction_testkit::vendors::jira::{Jira, JiraConfig, JiraServer};
use junction_testkit::vendors::zendesk::{Zendesk, ZendeskConfig, ZendeskServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    jira_lists_search_issues_with_jql_and_answer_plain_arrays,
    jira_walks_a_thousand_issues_by_next_page_token_and_users_by_offset,
    jira_issues_are_created_read_updated_and_deleted,
    jira_errors_keep_their_status_and_objects_describe_the_fields,
    jira_where_becomes_jql_and_what_jql_cannot_say_is_refused,
    zendesk_lists_send_cursor_paging_and_answer_plain_arrays,
    zendesk_walks_a_thousand_tickets_and_users_and_every_organization,
    zendesk_records_are_created_read_updated_and_deleted_without_envelopes,
    zendesk_errors_keep_their_status_and_objects_describe_the_fields,
    zendesk_where_is_filtered_by_junction,
);

/// An OAuth 2.0 instance of `element` holding tokens the caller brought.
async fn oauth_instance(app: &TestApp, element: &str, token: &str, extra: Value) -> Value {
    let mut configuration = json!({
        "oauth.api.key": "client-id",
        "oauth.api.secret": "client-secret",
        "oauth.callback.url": "https://app.example.test/cb",
        "oauth.user.token": token,
    });
    for (k, v) in extra.as_object().unwrap() {
        configuration[k] = v.clone();
    }
    let (status, instance) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": element},
                "name": element,
                "externalAuthentication": "initial",
                "configuration": configuration,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    instance
}

// ---- Jira ---------------------------------------------------------------------------

const JIRA_TOKEN: &str = "jira-access-token-1";
const JIRA_API: &str = "/rest/api/3";
/// What Junction searches for when the caller gives no `where`: Jira refuses a search
/// without a restriction.
const EVERY_ISSUE: &str = "project IS NOT EMPTY";

async fn jira(app: &TestApp) -> (JiraServer, Value) {
    let jira = Jira::start(JiraConfig {
        users: 1050,
        ..JiraConfig::default()
    })
    .await;
    jira.add_credential(Credential::Bearer(JIRA_TOKEN.into()));
    let instance = oauth_instance(
        app,
        "jira",
        JIRA_TOKEN,
        json!({
            "jira.cloud.id": "11223344-a1b2-c3d4-e5f6-112233445566",
            "base.url": format!("{}{JIRA_API}", jira.url()),
        }),
    )
    .await;
    (jira, instance)
}

/// Issue keys in the order Jira keeps them, which a search without ORDER BY answers.
fn keys_in_order(jira: &JiraServer) -> Vec<String> {
    jira.store()
        .all("issues")
        .iter()
        .map(|i| text(&i["key"]))
        .collect()
}

async fn jira_lists_search_issues_with_jql_and_answer_plain_arrays(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (jira, instance) = jira(&app).await;
    let page = get(&app, &instance, "/hubs/helpdesk/incidents?pageSize=6").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let sent = last_to(&jira, "GET", &format!("{JIRA_API}/search/jql"));
    assert_eq!(sent.param("jql"), Some(EVERY_ISSUE));
    assert_eq!(sent.param("maxResults"), Some("6"));
    assert_eq!(sent.param("fields"), Some("*navigable"));
    assert_eq!(sent.param("nextPageToken"), None);
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {JIRA_TOKEN}").as_str())
    );
    // Jira's issues with their fields as a plain array, nulls stripped.
    let issues = page.list();
    let keys: Vec<String> = issues.iter().map(|i| text(&i["key"])).collect();
    assert_eq!(keys, keys_in_order(&jira)[..6]);
    let mut nulls = 0;
    for issue in issues {
        let stored = jira
            .store()
            .get("issues", issue["key"].as_str().unwrap())
            .unwrap();
        nulls += usize::from(has_null(&stored["fields"]));
        assert_eq!(issue["fields"], without_nulls(&stored["fields"]), "{issue}");
        assert!(
            issue["self"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/issue/{}", issue["id"].as_str().unwrap()))
        );
    }
    assert!(nulls > 0, "the page holds nulls");
    assert!(page.header("elements-next-page-token").is_some());

    let projects = get(&app, &instance, "/hubs/helpdesk/projects").await;
    assert_eq!(projects.status, StatusCode::OK, "{}", projects.body);
    let sent = last_to(&jira, "GET", &format!("{JIRA_API}/project/search"));
    assert_eq!(
        (sent.param("startAt"), sent.param("maxResults")),
        (Some("0"), Some("50"))
    );
    let keys: Vec<&str> = projects
        .list()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["OPS", "WEB", "APP"]);
    assert!(projects.header("elements-next-page-token").is_none());

    let users = get(&app, &instance, "/hubs/helpdesk/users?pageSize=8").await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.body);
    let sent = last_to(&jira, "GET", &format!("{JIRA_API}/users/search"));
    assert_eq!(
        (sent.param("startAt"), sent.param("maxResults")),
        (Some("0"), Some("8"))
    );
    let stored: Vec<Value> = jira.store().all("users")[..8]
        .iter()
        .map(|u| without_nulls(u))
        .collect();
    assert_eq!(users.list(), &stored);
    assert!(jira.store().all("users")[..8].iter().any(|u| has_null(u)));
}

async fn jira_walks_a_thousand_issues_by_next_page_token_and_users_by_offset(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (jira, instance) = jira(&app).await;
    jira.clear_requests();
    let (seen, pages) = walk(
        &app,
        &instance,
        "/hubs/helpdesk/incidents?pageSize=100",
        |i| text(&i["key"]),
    )
    .await;
    assert_eq!(seen, keys_in_order(&jira), "a gap or a repeat");
    assert_eq!(pages, 11);
    // Every step sends Jira's own token from the page before, and the same JQL.
    let requests = jira.requests();
    assert_eq!(requests.len(), 11);
    assert_eq!(requests[0].param("nextPageToken"), None);
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.param("nextPageToken").is_some())
    );
    assert!(requests.iter().all(|r| r.param("jql") == Some(EVERY_ISSUE)));

    let expected: Vec<String> = jira
        .store()
        .all("users")
        .iter()
        .map(|u| text(&u["accountId"]))
        .collect();
    assert_eq!(expected.len(), 1050);
    let (seen, pages) = walk(&app, &instance, "/hubs/helpdesk/users?pageSize=400", |u| {
        text(&u["accountId"])
    })
    .await;
    assert_eq!(seen, expected, "users: a gap or a repeat");
    assert_eq!(pages, 3);

    // Projects end where Jira says `isLast`, without asking for an empty page.
    jira.clear_requests();
    let (seen, pages) = walk(&app, &instance, "/hubs/helpdesk/projects?pageSize=1", |p| {
        text(&p["key"])
    })
    .await;
    assert_eq!(seen, vec!["OPS", "WEB", "APP"]);
    assert_eq!(pages, 3);
    assert_eq!(jira.requests().len(), 3);
    // Jira's search pages by token: `page` is refused.
    let numbered = get(&app, &instance, "/hubs/helpdesk/incidents?page=2").await;
    assert_eq!(numbered.status, StatusCode::BAD_REQUEST);
    assert_error(&numbered.body, "invalid_parameter");
}

async fn jira_issues_are_created_read_updated_and_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (jira, instance) = jira(&app).await;
    let create = json!({"fields": {
        "summary": "Printer on fire",
        "project": {"key": "OPS"},
        "issuetype": {"name": "Bug"},
        "labels": ["customer"],
    }});
    let created = hub(
        &app,
        &instance,
        Method::POST,
        "/hubs/helpdesk/incidents",
        Some(&create),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let sent = last_to(&jira, "POST", &format!("{JIRA_API}/issue"));
    assert_eq!(sent.json().unwrap(), create);
    let key = text(&created.body["key"]);
    assert!(key.starts_with("OPS-"), "{}", created.body);
    assert!(created.body["id"].is_string());

    let one = get(&app, &instance, &format!("/hubs/helpdesk/incidents/{key}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["fields"]["summary"], "Printer on fire");
    // Fields Jira leaves empty are stripped.
    assert!(one.body["fields"].get("assignee").is_none(), "{}", one.body);
    last_to(&jira, "GET", &format!("{JIRA_API}/issue/{key}"));

    let change = json!({"fields": {"summary": "Printer fixed"}});
    let updated = hub(
        &app,
        &instance,
        Method::PATCH,
        &format!("/hubs/helpdesk/incidents/{key}"),
        Some(&change),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let sent = last_to(&jira, "PUT", &format!("{JIRA_API}/issue/{key}"));
    assert_eq!(sent.json().unwrap(), change);
    let reread = get(&app, &instance, &format!("/hubs/helpdesk/incidents/{key}")).await;
    assert_eq!(reread.body["fields"]["summary"], "Printer fixed");

    let deleted = hub(
        &app,
        &instance,
        Method::DELETE,
        &format!("/hubs/helpdesk/incidents/{key}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    last_to(&jira, "DELETE", &format!("{JIRA_API}/issue/{key}"));
    assert!(jira.store().get("issues", &key).is_none());
}

async fn jira_errors_keep_their_status_and_objects_describe_the_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_jira, instance) = jira(&app).await;
    let missing = get(&app, &instance, "/hubs/helpdesk/incidents/NOPE-1").await;
    assert_provider_error(
        &missing,
        StatusCode::NOT_FOUND,
        "Issue does not exist or you do not have permission to see it.",
    );
    assert_objects(
        &app,
        &instance,
        "helpdesk",
        &[
            ("incidents", "id", Some("fields.summary")),
            ("projects", "id", None),
            ("users", "accountId", None),
        ],
    )
    .await;
}

// ---- Zendesk ------------------------------------------------------------------------

const ZENDESK_TOKEN: &str = "zendesk-access-token-1";
const ZENDESK_KINDS: [(&str, &str); 3] = [
    ("incidents", "tickets"),
    ("users", "users"),
    ("organizations", "organizations"),
];

async fn zendesk(app: &TestApp) -> (ZendeskServer, Value) {
    let zendesk = Zendesk::start(ZendeskConfig::default()).await;
    zendesk.add_credential(Credential::Bearer(ZENDESK_TOKEN.into()));
    let instance = oauth_instance(
        app,
        "zendesk",
        ZENDESK_TOKEN,
        json!({
            "zendesk.subdomain": "acme",
            "base.url": format!("{}/api/v2", zendesk.url()),
        }),
    )
    .await;
    (zendesk, instance)
}

async fn zendesk_lists_send_cursor_paging_and_answer_plain_arrays(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (zendesk, instance) = zendesk(&app).await;
    for (resource, plural) in ZENDESK_KINDS {
        let page = get(
            &app,
            &instance,
            &format!("/hubs/helpdesk/{resource}?pageSize=10"),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{resource}: {}", page.body);
        let sent = last_to(&zendesk, "GET", &format!("/api/v2/{plural}.json"));
        assert_eq!(sent.param("page[size]"), Some("10"), "{resource}");
        assert_eq!(sent.param("page[after]"), None, "{resource}");
        assert_eq!(
            sent.header("authorization"),
            Some(format!("Bearer {ZENDESK_TOKEN}").as_str())
        );
        let stored = zendesk.store().all(plural);
        assert!(stored[..10].iter().any(|r| has_null(r)), "{resource}");
        for (got, want) in page.list().iter().zip(stored.iter()) {
            let mut want = without_nulls(want);
            want["url"] = json!(format!(
                "{}/api/v2/{plural}/{}.json",
                zendesk.url(),
                want["id"]
            ));
            assert_eq!(got, &want, "{resource}");
        }
        assert_eq!(page.list().len(), 10);
        assert!(page.header("elements-next-page-token").is_some());
    }
}

async fn zendesk_walks_a_thousand_tickets_and_users_and_every_organization(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (zendesk, instance) = zendesk(&app).await;
    for ((resource, plural), want_pages) in ZENDESK_KINDS.into_iter().zip([11, 11, 3]) {
        let expected: Vec<String> = zendesk
            .store()
            .all(plural)
            .iter()
            .map(|r| text(&r["id"]))
            .collect();
        zendesk.clear_requests();
        let (seen, pages) = walk(
            &app,
            &instance,
            &format!("/hubs/helpdesk/{resource}?pageSize=100"),
            |r| text(&r["id"]),
        )
        .await;
        assert_eq!(seen, expected, "{resource}: a gap or a repeat");
        assert_eq!(pages, want_pages, "{resource}");
        // Each step sends the cursor Zendesk gave, and none after `has_more: false`.
        let requests = zendesk.requests();
        assert_eq!(requests.len(), want_pages);
        assert_eq!(requests[0].param("page[after]"), None);
        assert!(
            requests[1..]
                .iter()
                .all(|r| r.param("page[after]").is_some() && r.param("page[size]") == Some("100"))
        );
    }
    assert_eq!(
        zendesk.store().len("tickets"),
        1050,
        "the walk covered a thousand and more"
    );
}

async fn zendesk_records_are_created_read_updated_and_deleted_without_envelopes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (zendesk, instance) = zendesk(&app).await;
    for (resource, plural, singular, create, change) in [
        (
            "incidents",
            "tickets",
            "ticket",
            json!({"subject": "Printer on fire", "comment": {"body": "Smoke everywhere"}, "priority": "urgent"}),
            json!({"status": "solved"}),
        ),
        (
            "users",
            "users",
            "user",
            json!({"name": "Ada Churro", "email": "ada@churros.example.test"}),
            json!({"phone": "+1-555-0100"}),
        ),
        (
            "organizations",
            "organizations",
            "organization",
            json!({"name": "Churros Inc", "domain_names": ["churros.example.test"]}),
            json!({"details": "Sells churros"}),
        ),
    ] {
        let created = hub(
            &app,
            &instance,
            Method::POST,
            &format!("/hubs/helpdesk/{resource}"),
            Some(&create),
        )
        .await;
        assert_eq!(
            created.status,
            StatusCode::OK,
            "{resource}: {}",
            created.body
        );
        // Zendesk's envelope goes out, and comes off the answer.
        let sent = last_to(&zendesk, "POST", &format!("/api/v2/{plural}.json"));
        assert_eq!(sent.json().unwrap(), json!({ singular: create }));
        let id = created.body["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}", created.body));
        assert!(created.body.get(singular).is_none(), "{}", created.body);
        let path = format!("/hubs/helpdesk/{resource}/{id}");

        let one = get(&app, &instance, &path).await;
        assert_eq!(one.status, StatusCode::OK, "{}", one.body);
        assert_eq!(one.body["id"], id);
        last_to(&zendesk, "GET", &format!("/api/v2/{plural}/{id}.json"));

        let updated = hub(&app, &instance, Method::PATCH, &path, Some(&change)).await;
        assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
        let sent = last_to(&zendesk, "PUT", &format!("/api/v2/{plural}/{id}.json"));
        assert_eq!(sent.json().unwrap(), json!({ singular: change }));
        let (field, value) = change.as_object().unwrap().iter().next().unwrap();
        assert_eq!(&updated.body[field], value, "{}", updated.body);
        assert_eq!(updated.body["id"], id);

        let deleted = hub(&app, &instance, Method::DELETE, &path, None).await;
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
        last_to(&zendesk, "DELETE", &format!("/api/v2/{plural}/{id}.json"));
        let gone = get(&app, &instance, &path).await;
        assert_provider_error(&gone, StatusCode::NOT_FOUND, "Not found");
    }
}

async fn zendesk_errors_keep_their_status_and_objects_describe_the_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_zendesk, instance) = zendesk(&app).await;
    // Zendesk's validation error: 422, with its `description`.
    let invalid = hub(
        &app,
        &instance,
        Method::POST,
        "/hubs/helpdesk/incidents",
        Some(&json!({"priority": "high"})),
    )
    .await;
    assert_provider_error(
        &invalid,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Record validation errors",
    );
    assert_objects(
        &app,
        &instance,
        "helpdesk",
        &[
            ("incidents", "id", Some("subject")),
            ("users", "id", Some("name")),
            ("organizations", "id", Some("name")),
        ],
    )
    .await;
}

async fn jira_where_becomes_jql_and_what_jql_cannot_say_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (jira, instance) = jira(&app).await;
    let field = |i: &Value, path: &str| i["fields"][path]["name"].clone();
    let expected: Vec<String> = jira
        .store()
        .all("issues")
        .iter()
        .filter(|i| {
            field(i, "status") == "Done"
                && ["High", "Low"].iter().any(|p| field(i, "priority") == *p)
        })
        .map(|i| text(&i["key"]))
        .collect();
    assert!(expected.len() > 100, "{}", expected.len());
    jira.clear_requests();
    let (seen, _) = walk(
        &app,
        &instance,
        &format!(
            "/hubs/helpdesk/incidents?pageSize=100&where={}",
            enc("status = 'Done' AND priority IN ('High', 'Low')")
        ),
        |i| text(&i["key"]),
    )
    .await;
    assert_eq!(seen, expected, "a gap or a repeat among the matches");
    for sent in jira.requests() {
        assert_eq!(
            sent.param("jql"),
            Some(r#"(status = "Done" AND priority IN ("High", "Low"))"#)
        );
    }
    // orderBy joins the statement; LIKE '%…%' is JQL's contains.
    let newest = get(
        &app,
        &instance,
        &format!(
            "/hubs/helpdesk/incidents?pageSize=3&where={}&orderBy={}",
            enc("project = 'WEB' AND summary LIKE '%Login%'"),
            enc("created desc")
        ),
    )
    .await;
    assert_eq!(newest.status, StatusCode::OK, "{}", newest.body);
    assert_eq!(
        last_to(&jira, "GET", &format!("{JIRA_API}/search/jql")).param("jql"),
        Some(r#"(project = "WEB" AND summary ~ "Login") ORDER BY created DESC"#)
    );
    let web: Vec<String> = jira
        .store()
        .all("issues")
        .iter()
        .rev()
        .filter(|i| i["fields"]["project"]["key"] == "WEB")
        .filter(|i| i["fields"]["summary"].as_str().unwrap().contains("Login"))
        .take(3)
        .map(|i| text(&i["key"]))
        .collect();
    let keys: Vec<String> = newest.list().iter().map(|i| text(&i["key"])).collect();
    assert_eq!(keys, web);
    // What JQL cannot say faithfully is refused, naming it, and nothing is sent.
    let before = jira.requests().len();
    for (condition, named) in [
        ("summary LIKE 'Login%'", "LIKE"),
        ("created > '2024-01-02T10:00:00Z'", "date-time"),
    ] {
        let refused = get(
            &app,
            &instance,
            &format!("/hubs/helpdesk/incidents?where={}", enc(condition)),
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
        let message = assert_error(&refused.body, "unsupported_query");
        assert!(
            message.contains(named) && message.contains("jira"),
            "{message}"
        );
    }
    assert_eq!(jira.requests().len(), before);
    // A field Jira does not know: Jira's own 400, passed on.
    let unknown = get(
        &app,
        &instance,
        &format!("/hubs/helpdesk/incidents?where={}", enc("nosuchfield = 1")),
    )
    .await;
    assert_provider_error(
        &unknown,
        StatusCode::BAD_REQUEST,
        "Field 'nosuchfield' does not exist or you do not have permission to view it.",
    );
    // Users are filtered by Junction.
    let inactive: Vec<String> = jira
        .store()
        .all("users")
        .iter()
        .filter(|u| u["active"] == false)
        .map(|u| text(&u["accountId"]))
        .collect();
    let (seen, _) = walk(
        &app,
        &instance,
        &format!(
            "/hubs/helpdesk/users?pageSize=100&where={}",
            enc("active = false")
        ),
        |u| text(&u["accountId"]),
    )
    .await;
    assert_eq!(seen, inactive);
}

async fn zendesk_where_is_filtered_by_junction(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (zendesk, instance) = zendesk(&app).await;
    for (resource, plural, condition, keep) in [
        (
            "incidents",
            "tickets",
            "status = 'open' AND priority IN ('high', 'urgent')",
            (|t: &Value| {
                t["status"] == "open" && (t["priority"] == "high" || t["priority"] == "urgent")
            }) as fn(&Value) -> bool,
        ),
        (
            "users",
            "users",
            "role = 'admin' AND email IS NULL",
            (|u: &Value| u["role"] == "admin" && u["email"].is_null()) as fn(&Value) -> bool,
        ),
        (
            "organizations",
            "organizations",
            "name LIKE 'acme%'",
            (|o: &Value| {
                o["name"]
                    .as_str()
                    .unwrap()
                    .to_lowercase()
                    .starts_with("acme")
            }) as fn(&Value) -> bool,
        ),
    ] {
        let expected: Vec<String> = zendesk
            .store()
            .all(plural)
            .iter()
            .filter(|r| keep(r))
            .map(|r| text(&r["id"]))
            .collect();
        assert!(!expected.is_empty(), "{resource}");
        zendesk.clear_requests();
        let (seen, _) = walk(
            &app,
            &instance,
            &format!(
                "/hubs/helpdesk/{resource}?pageSize=100&where={}",
                enc(condition)
            ),
            |r| text(&r["id"]),
        )
        .await;
        assert_eq!(
            seen, expected,
            "{resource}: a gap or a repeat among the matches"
        );
        assert!(
            zendesk
                .requests()
                .iter()
                .all(|r| r.param("query").is_none())
        );
    }
    let sorted = get(
        &app,
        &instance,
        "/hubs/helpdesk/incidents?orderBy=created_at",
    )
    .await;
    assert_eq!(sorted.status, StatusCode::BAD_REQUEST, "{}", sorted.body);
    assert!(assert_error(&sorted.body, "unsupported_query").contains("orderBy"));
}

//! The hub resources of `acton`, end to end: provisioned against a real OAuth server, then
//! pointed at the Act-On stand-in, which accepts the token the instance holds and records
//! what reached it.

use crate::helpers::{TestApp, assert_error};
use crate::hub_client::{
    access_token, assert_no_gap_or_repeat, assert_objects, assert_vendor_error, get, hub,
    provision_at, walk,
};
use crate::on_both_backends;
use junction_testkit::db::Backend;
use junction_testkit::vendors::acton::{ActOn, ActOnConfig, ActOnServer, ID_HEADER};
use junction_testkit::vendors::{Credential, RecordedRequest};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    acton_lists_reach_act_on_as_documented,
    acton_contacts_walk_a_thousand_records_to_the_end,
    acton_contacts_are_added_read_changed_and_removed,
    acton_optouts_and_subscription_types_are_listed,
    acton_errors_keep_their_status_and_message,
    acton_lists_are_filtered_and_sorted_by_junction,
    acton_a_list_created_through_junction_is_read_back_by_its_id,
);

const LIST: &str = "l-0001";

async fn setup(backend: Backend) -> (TestApp, ActOnServer, Value, String) {
    let app = TestApp::spawn(backend).await;
    let acton = ActOn::start(ActOnConfig::default()).await;
    let instance = provision_at(&app, "acton", &format!("{}/api/1", acton.url())).await;
    let token = access_token(&app, &instance).await;
    acton.add_credential(Credential::Bearer(token.clone()));
    (app, acton, instance, token)
}

fn last(acton: &ActOnServer, method: &str, path: &str) -> RecordedRequest {
    acton
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == method && r.path == format!("/api/1{path}"))
        .unwrap_or_else(|| panic!("nothing reached {method} {path}"))
}

async fn acton_lists_reach_act_on_as_documented(backend: Backend) {
    let (app, acton, instance, token) = setup(backend).await;
    let lists = get(&app, &instance, "/hubs/marketing/lists").await;
    assert_eq!(lists.status, StatusCode::OK, "{}", lists.body);
    let names: Vec<&str> = lists
        .list()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Customers", "Prospects", "Partners"]);
    assert_eq!(lists.body[0]["id"], LIST);
    assert_eq!(lists.body[0]["size"], 1050);
    assert!(lists.header("elements-next-page-token").is_none());
    let sent = last(&acton, "GET", "/list");
    assert_eq!(sent.param("listingtype"), Some("CONTACT_LIST"));
    assert_eq!(sent.param("offset"), Some("0"));
    assert_eq!(sent.param("count"), Some("100"));
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );

    let one = get(&app, &instance, &format!("/hubs/marketing/lists/{LIST}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["listId"], LIST);
    assert_eq!(one.body["totalCount"], 1050);
    assert_eq!(one.body["headers"][0], ID_HEADER);
    assert!(one.body.get("data").is_none(), "{}", one.body);
    let sent = last(&acton, "GET", &format!("/list/{LIST}"));
    assert_eq!(sent.param("count"), Some("1"));

    let removed = hub(
        &app,
        &instance,
        Method::DELETE,
        "/hubs/marketing/lists/l-0003",
        None,
    )
    .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    assert_eq!(removed.body["status"], "success");
    let lists = get(&app, &instance, "/lists").await;
    assert_eq!(lists.list().len(), 2);

    assert_objects(
        &app,
        &instance,
        "marketing",
        &[
            ("lists", "id"),
            ("contacts", ID_HEADER),
            ("optouts", ID_HEADER),
            ("subscription-types", "name"),
        ],
    )
    .await;
}

async fn acton_contacts_walk_a_thousand_records_to_the_end(backend: Backend) {
    let (app, acton, instance, _) = setup(backend).await;
    let expected: Vec<String> = acton
        .store()
        .all(LIST)
        .iter()
        .map(|c| c[ID_HEADER].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), 1050);
    let first = format!("/hubs/marketing/lists/{LIST}/contacts?pageSize=250");
    let (seen, pages) = walk(&app, &instance, &first, ID_HEADER).await;
    assert_no_gap_or_repeat(&seen, &expected, "contacts");
    assert_eq!(pages, 5);
    let offsets: Vec<String> = acton
        .requests()
        .iter()
        .filter(|r| r.path == format!("/api/1/list/{LIST}"))
        .map(|r| r.param("offset").unwrap().to_owned())
        .collect();
    assert_eq!(offsets, vec!["0", "250", "500", "750", "1000"]);

    // Each row is keyed by the list's headers, nulls left out.
    let page = get(
        &app,
        &instance,
        &format!("/lists/{LIST}/contacts?pageSize=10"),
    )
    .await;
    let rows = page.list();
    assert_eq!(rows[0][ID_HEADER], expected[0].as_str());
    assert!(rows[0]["E-mail Address"].as_str().unwrap().contains('@'));
    assert!(
        rows.iter()
            .all(|r| r.as_object().unwrap().values().all(|v| !v.is_null()))
    );
    assert!(rows.iter().any(|r| r.get("Company").is_none()));
    // Act-On serves at most 1000 a call.
    let capped = get(
        &app,
        &instance,
        &format!("/lists/{LIST}/contacts?pageSize=5000"),
    )
    .await;
    assert_eq!(capped.list().len(), 1000);
    assert_eq!(
        last(&acton, "GET", &format!("/list/{LIST}")).param("count"),
        Some("1000")
    );
    // Act-On addresses records by offset, so a caller may jump to a page.
    let third = get(
        &app,
        &instance,
        &format!("/lists/{LIST}/contacts?page=3&pageSize=100"),
    )
    .await;
    assert_eq!(third.body[0][ID_HEADER], expected[200].as_str());
}

async fn acton_contacts_are_added_read_changed_and_removed(backend: Backend) {
    let (app, acton, instance, _) = setup(backend).await;
    let contacts = "/hubs/marketing/lists/l-0002/contacts";
    let added = hub(
        &app,
        &instance,
        Method::POST,
        contacts,
        Some(&json!({"E-mail Address": "new@example.test", "First Name": "Nia"})),
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(added.body["status"], "success");
    let id = added.body["id"].as_str().unwrap().to_owned();
    let sent = last(&acton, "POST", "/list/l-0002/record");
    assert_eq!(
        sent.json(),
        Some(json!({"E-mail Address": "new@example.test", "First Name": "Nia"}))
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));

    // Record ids hold a ':', which travels percent-encoded in the path.
    let encoded = id.replace(':', "%3A");
    let one = format!("{contacts}/{encoded}");
    let read = get(&app, &instance, &one).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["E-mail Address"], "new@example.test");
    assert_eq!(read.body[ID_HEADER], id.as_str());
    assert!(read.body.get("Company").is_none(), "nulls are stripped");

    let changed = hub(
        &app,
        &instance,
        Method::PATCH,
        &one,
        Some(&json!({"Company": "Nia's Bakery"})),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let sent = last(&acton, "PUT", &format!("/list/l-0002/record/{id}"));
    assert_eq!(sent.json(), Some(json!({"Company": "Nia's Bakery"})));
    let read = get(&app, &instance, &one).await;
    assert_eq!(read.body["Company"], "Nia's Bakery");
    assert_eq!(read.body["First Name"], "Nia");

    let removed = hub(&app, &instance, Method::DELETE, &one, None).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    last(&acton, "DELETE", &format!("/list/l-0002/record/{id}"));
    let gone = get(&app, &instance, &one).await;
    assert_vendor_error(
        &gone,
        StatusCode::NOT_FOUND,
        &format!("Record {id} not found"),
    );

    // Without a body nothing is sent.
    let before = acton.requests().len();
    let refused = hub(&app, &instance, Method::POST, contacts, None).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_error(&refused.body, "missing_parameter");
    assert_eq!(acton.requests().len(), before);
}

async fn acton_optouts_and_subscription_types_are_listed(backend: Backend) {
    let (app, acton, instance, _) = setup(backend).await;
    let expected: Vec<String> = acton
        .store()
        .all("optout")
        .iter()
        .map(|c| c[ID_HEADER].as_str().unwrap().to_owned())
        .collect();
    let (seen, pages) = walk(
        &app,
        &instance,
        "/hubs/marketing/optouts?pageSize=15",
        ID_HEADER,
    )
    .await;
    assert_no_gap_or_repeat(&seen, &expected, "optouts");
    assert_eq!(pages, 3);
    let sent = last(&acton, "GET", "/list/optout");
    assert_eq!(sent.param("count"), Some("15"));

    let types = get(&app, &instance, "/hubs/marketing/subscription-types").await;
    assert_eq!(types.status, StatusCode::OK, "{}", types.body);
    assert_eq!(
        types.body,
        json!([{"name": "Newsletter"}, {"name": "Events"}, {"name": "Product updates"}])
    );
    last(&acton, "GET", "/subscription/category");
}

async fn acton_errors_keep_their_status_and_message(backend: Backend) {
    let (app, acton, instance, _) = setup(backend).await;
    let missing = get(&app, &instance, "/hubs/marketing/lists/l-9999/contacts").await;
    assert_vendor_error(&missing, StatusCode::NOT_FOUND, "List l-9999 not found");
    let unknown_column = hub(
        &app,
        &instance,
        Method::POST,
        &format!("/lists/{LIST}/contacts"),
        Some(&json!({"E-mail Address": "x@example.test", "Shoe Size": "9"})),
    )
    .await;
    assert_vendor_error(
        &unknown_column,
        StatusCode::BAD_REQUEST,
        "Unknown column heading: Shoe Size",
    );
    assert!(acton.store().all(LIST).len() == 1050, "nothing was added");
}

async fn acton_lists_are_filtered_and_sorted_by_junction(backend: Backend) {
    let (app, acton, instance, _) = setup(backend).await;
    let city = acton.store().all(LIST)[0]["City"]
        .as_str()
        .unwrap()
        .to_owned();
    let expected: Vec<String> = acton
        .store()
        .all(LIST)
        .iter()
        .filter(|c| c["City"] == city.as_str())
        .map(|c| c[ID_HEADER].as_str().unwrap().to_owned())
        .collect();
    assert!(
        expected.len() > 10 && expected.len() < 1050,
        "{}",
        expected.len()
    );
    let first = format!(
        "/hubs/marketing/lists/{LIST}/contacts?pageSize=40&where=City%20%3D%20%27{}%27",
        city.replace(' ', "%20")
    );
    let (seen, _) = walk(&app, &instance, &first, ID_HEADER).await;
    assert_no_gap_or_repeat(&seen, &expected, "contacts in one city");
    let calls: Vec<RecordedRequest> = acton
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/api/1/list/{LIST}"))
        .collect();
    assert!(
        calls
            .iter()
            .all(|c| c.param("where").is_none() && c.param("count") == Some("40"))
    );

    // Column names with spaces are quoted with backticks.
    let email = acton.store().all(LIST)[7]["E-mail Address"]
        .as_str()
        .unwrap()
        .to_owned();
    let found = get(
        &app,
        &instance,
        &format!(
            "/lists/{LIST}/contacts?pageSize=1000&where=%60E-mail%20Address%60%20%3D%20%27{email}%27"
        ),
    )
    .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(found.list().len(), 1, "{}", found.body);
    assert_eq!(found.body[0]["E-mail Address"], email.as_str());

    // The subscription categories come whole, so Junction sorts them.
    let sorted = get(
        &app,
        &instance,
        "/hubs/marketing/subscription-types?orderBy=name%20DESC",
    )
    .await;
    assert_eq!(sorted.status, StatusCode::OK, "{}", sorted.body);
    assert_eq!(
        sorted.body,
        json!([{"name": "Product updates"}, {"name": "Newsletter"}, {"name": "Events"}])
    );
    let paged = get(&app, &instance, "/hubs/marketing/lists?orderBy=name").await;
    assert_eq!(paged.status, StatusCode::BAD_REQUEST, "{}", paged.body);
    assert!(assert_error(&paged.body, "unsupported_query").contains("acton"));
    let single = get(&app, &instance, &format!("/lists/{LIST}?where=id%3D1")).await;
    assert_eq!(single.status, StatusCode::BAD_REQUEST, "{}", single.body);
    assert_error(&single.body, "unsupported_query");
}

async fn acton_a_list_created_through_junction_is_read_back_by_its_id(backend: Backend) {
    let (app, acton, instance, token) = setup(backend).await;
    let specs = json!([
        {"columnHeading": "E-mail Address", "columnType": "EMAIL", "columnIndex": 0, "ignoreColumn": "N"},
        {"columnHeading": "First Name", "columnType": "FIRSTNAME", "columnIndex": 1, "ignoreColumn": "N"}
    ]);
    let created = hub(
        &app,
        &instance,
        Method::POST,
        "/hubs/marketing/lists",
        Some(&json!({"listname": "Webinar leads", "foldername": "Events", "uploadspecs": specs})),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["status"], "success");
    let id = created.body["listId"].as_str().unwrap().to_owned();

    // Act-On's form, as *Create a New List* documents it.
    let sent = last(&acton, "POST", "/list");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert!(
        sent.header("content-type")
            .is_some_and(|t| t.starts_with("multipart/form-data; boundary=")),
        "{:?}",
        sent.header("content-type")
    );
    let fields: Vec<&str> = sent.parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        fields,
        ["listname", "uploadspecs", "foldername", "quotecharacter"]
    );
    assert_eq!(sent.part_text("listname").as_deref(), Some("Webinar leads"));
    assert_eq!(sent.part_text("foldername").as_deref(), Some("Events"));
    assert_eq!(sent.part_text("quotecharacter").as_deref(), Some("NONE"));
    let sent_specs: Value = serde_json::from_str(&sent.part_text("uploadspecs").unwrap()).unwrap();
    assert_eq!(sent_specs, specs);

    let one = get(&app, &instance, &format!("/hubs/marketing/lists/{id}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["listId"], id.as_str());
    assert_eq!(one.body["totalCount"], 0);
    assert_eq!(
        one.body["headers"],
        json!([ID_HEADER, "E-mail Address", "First Name"])
    );
    let lists = get(&app, &instance, "/hubs/marketing/lists").await;
    let entry = lists
        .list()
        .iter()
        .find(|l| l["id"] == id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not listed: {}", lists.body));
    assert_eq!(entry["name"], "Webinar leads");
    assert_eq!(entry["folderName"], "Events");

    // The caller's quote character replaces the default; it is sent once.
    let quoted = hub(
        &app,
        &instance,
        Method::POST,
        "/lists",
        Some(&json!({"listname": "Quoted", "uploadspecs": specs, "quotecharacter": "DOUBLE_QUOTE", "headings": "N"})),
    )
    .await;
    assert_eq!(quoted.status, StatusCode::OK, "{}", quoted.body);
    let sent = last(&acton, "POST", "/list");
    let quotes: Vec<String> = sent
        .parts
        .iter()
        .filter(|p| p.name == "quotecharacter")
        .map(|p| String::from_utf8_lossy(&p.data).into_owned())
        .collect();
    assert_eq!(quotes, ["DOUBLE_QUOTE"]);
    assert_eq!(sent.part_text("headings").as_deref(), Some("N"));

    // Act-On's refusal keeps its status and words.
    let no_email = hub(
        &app,
        &instance,
        Method::POST,
        "/lists",
        Some(&json!({"listname": "No email", "uploadspecs": [{"columnHeading": "Name", "columnIndex": 0}]})),
    )
    .await;
    assert_vendor_error(
        &no_email,
        StatusCode::BAD_REQUEST,
        "Upload specs must name the EMAIL column (columnType EMAIL)",
    );

    // Without a name nothing is sent.
    let before = acton.requests().len();
    let refused = hub(
        &app,
        &instance,
        Method::POST,
        "/lists",
        Some(&json!({"uploadspecs": specs})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_error(&refused.body, "missing_parameter");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("listname"),
        "{}",
        refused.body
    );
    assert_eq!(acton.requests().len(), before);
}

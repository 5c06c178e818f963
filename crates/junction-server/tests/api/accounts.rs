//! `/accounts` and `/users`: an organization administrator manages the organization's
//! accounts and users; nobody else gets in, and no organization reaches another's.

use crate::helpers::{ORG_SECRET, TestApp, assert_error};
use crate::on_both_backends;
use junction_testkit::db::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

on_both_backends!(
    an_admin_creates_reads_lists_and_changes_accounts,
    an_external_id_is_unique_in_the_organization,
    a_new_users_secret_is_shown_once_and_works,
    another_organizations_accounts_and_users_are_not_found,
    only_an_organization_administrator_gets_in,
    bad_bodies_and_ids_are_refused_naming_the_field,
    deleting_an_account_deletes_its_instances_and_users,
    admins_cannot_delete_their_own_account_or_themselves,
    a_user_who_owns_instances_is_not_deleted,
    the_migration_makes_each_organizations_first_user_an_admin,
);

/// `User <secret>, Organization <the test organization's secret>`.
fn auth_of(user_secret: &str) -> String {
    format!("User {user_secret}, Organization {ORG_SECRET}")
}

async fn create_account(app: &TestApp, body: Value) -> Value {
    let (status, account) = app.post("/accounts", &body).await;
    assert_eq!(status, StatusCode::OK, "{account}");
    account
}

async fn create_user(app: &TestApp, account_id: i64, body: Value) -> Value {
    let (status, user) = app
        .post(&format!("/accounts/{account_id}/users"), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    user
}

/// A second organization with its own administrator; answers that admin's credentials.
pub(crate) async fn other_organization(app: &TestApp) -> String {
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
    format!(
        "User {}, Organization {}",
        other_user.expose(),
        other_org.expose()
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ`
fn iso8601_like(s: &str) -> bool {
    s.len() == 20
        && s.ends_with('Z')
        && s.as_bytes()[10] == b'T'
        && s.chars().filter(char::is_ascii_digit).count() == 14
}

async fn pool(app: &TestApp) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&app.db.url).await.unwrap()
}

async fn an_admin_creates_reads_lists_and_changes_accounts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, before) = app.get("/accounts").await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(
        before.as_array().unwrap().len(),
        1,
        "the bootstrap account: {before}"
    );
    let organization_id = before[0]["organizationId"].as_i64().unwrap();

    let account = create_account(
        &app,
        json!({"name": "<b>Acme</b> Corp", "description": "Customer 42", "externalId": "cust-42"}),
    )
    .await;
    let id = account["id"].as_i64().unwrap();
    assert_eq!(account["name"], "Acme Corp");
    assert_eq!(account["description"], "Customer 42");
    assert_eq!(account["externalId"], "cust-42");
    assert_eq!(account["active"], true);
    assert_eq!(account["organizationId"], organization_id);
    assert!(iso8601_like(account["createdDate"].as_str().unwrap()));

    let (status, shown) = app.get(&format!("/accounts/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown, account);

    let (status, list) = app.get("/accounts").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![before[0]["id"].as_i64().unwrap(), id]);

    // PATCH changes only what it names.
    let (status, patched) = app
        .call(
            Method::PATCH,
            &format!("/accounts/{id}"),
            Some(&json!({"name": "Acme Inc."})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Acme Inc.");
    assert_eq!(patched["description"], "Customer 42");
    assert_eq!(patched["externalId"], "cust-42");
    assert_eq!(patched["createdDate"], account["createdDate"]);
    let (status, patched) = app
        .call(
            Method::PATCH,
            &format!("/accounts/{id}"),
            Some(&json!({"description": "", "externalId": "cust-43"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Acme Inc.");
    assert_eq!(patched["description"], Value::Null, "blank clears it");
    assert_eq!(patched["externalId"], "cust-43");
    assert_eq!(app.get(&format!("/accounts/{id}")).await.1, patched);

    let (status, body) = app.get("/accounts/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "account_not_found");
}

async fn an_external_id_is_unique_in_the_organization(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = create_account(&app, json!({"name": "A", "externalId": "cust-1"})).await;
    let second = create_account(&app, json!({"name": "B"})).await;
    // Accounts without an external id do not collide with each other.
    create_account(&app, json!({"name": "C"})).await;

    let (status, body) = app
        .post("/accounts", &json!({"name": "D", "externalId": "cust-1"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(assert_error(&body, "conflict").contains("cust-1"));

    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/accounts/{}", second["id"]),
            Some(&json!({"externalId": "cust-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "conflict");
    let (_, unchanged) = app.get(&format!("/accounts/{}", second["id"])).await;
    assert_eq!(unchanged["externalId"], Value::Null);

    // Re-sending an account's own external id is no conflict.
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/accounts/{}", first["id"]),
            Some(&json!({"externalId": "cust-1", "name": "A2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Another organization may use the same external id.
    let other = other_organization(&app).await;
    let (status, body) = app
        .call_as(
            &other,
            Method::POST,
            "/accounts",
            Some(&json!({"name": "Theirs", "externalId": "cust-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn a_new_users_secret_is_shown_once_and_works(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = create_account(&app, json!({"name": "Acme"})).await;
    let account_id = account["id"].as_i64().unwrap();
    let user = create_user(
        &app,
        account_id,
        json!({"emailAddress": "jane@acme.test", "firstName": "<i>Jane</i>", "lastName": "Doe"}),
    )
    .await;
    let user_id = user["id"].as_i64().unwrap();
    let secret = user["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 40, "32 random bytes: {secret}");
    assert_eq!(user["emailAddress"], "jane@acme.test");
    assert_eq!(user["firstName"], "Jane");
    assert_eq!(user["lastName"], "Doe");
    assert_eq!(user["accountId"], account_id);
    assert_eq!(user["role"], "user", "the default role");
    assert!(iso8601_like(user["createdDate"].as_str().unwrap()));

    let (status, shown) = app.get(&format!("/users/{user_id}")).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert!(shown.get("secret").is_none(), "{shown}");
    assert!(!shown.to_string().contains(&secret));
    let mut expected = user.clone();
    expected.as_object_mut().unwrap().remove("secret");
    assert_eq!(shown, expected);

    let (status, users) = app.get(&format!("/accounts/{account_id}/users")).await;
    assert_eq!(status, StatusCode::OK, "{users}");
    assert_eq!(users, json!([expected]));
    assert!(!users.to_string().contains(&secret));

    // The secret is stored only as its lookup hash.
    let pool = pool(&app).await;
    let stored: Vec<u8> = sqlx::query("select secret_hash from users where id = $1")
        .bind(user_id)
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_ne!(stored, secret.as_bytes());
    assert!(!String::from_utf8_lossy(&stored).contains(&secret));

    let (status, instances) = app
        .call_as(&auth_of(&secret), Method::GET, "/instances", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{instances}");
    assert_eq!(instances, json!([]));

    // An administrator created through the API is one.
    let admin = create_user(
        &app,
        account_id,
        json!({"emailAddress": "boss@acme.test", "role": "admin"}),
    )
    .await;
    assert_eq!(admin["role"], "admin");
    assert_eq!(admin["firstName"], "");
    let (status, list) = app
        .call_as(
            &auth_of(admin["secret"].as_str().unwrap()),
            Method::GET,
            "/accounts",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 2);
}

async fn another_organizations_accounts_and_users_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = create_account(&app, json!({"name": "Ours"})).await;
    let id = account["id"].as_i64().unwrap();
    let user = create_user(&app, id, json!({"emailAddress": "u@ours.test"})).await;
    let user_id = user["id"].as_i64().unwrap();
    let other = other_organization(&app).await;

    let (status, list) = app.call_as(&other, Method::GET, "/accounts", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Other account"]);

    let patch = json!({"name": "Stolen"});
    let new_user = json!({"emailAddress": "intruder@other.test", "role": "admin"});
    for (method, path, body, code) in [
        (
            Method::GET,
            format!("/accounts/{id}"),
            None,
            "account_not_found",
        ),
        (
            Method::PATCH,
            format!("/accounts/{id}"),
            Some(&patch),
            "account_not_found",
        ),
        (
            Method::DELETE,
            format!("/accounts/{id}"),
            None,
            "account_not_found",
        ),
        (
            Method::GET,
            format!("/accounts/{id}/users"),
            None,
            "account_not_found",
        ),
        (
            Method::POST,
            format!("/accounts/{id}/users"),
            Some(&new_user),
            "account_not_found",
        ),
        (
            Method::GET,
            format!("/users/{user_id}"),
            None,
            "user_not_found",
        ),
        (
            Method::DELETE,
            format!("/users/{user_id}"),
            None,
            "user_not_found",
        ),
    ] {
        let (status, body) = app.call_as(&other, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_error(&body, code);
    }

    // Everything is still there, unchanged.
    let (status, shown) = app.get(&format!("/accounts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["name"], "Ours");
    let (_, users) = app.get(&format!("/accounts/{id}/users")).await;
    assert_eq!(users.as_array().unwrap().len(), 1);
    let (status, _) = app.get(&format!("/users/{user_id}")).await;
    assert_eq!(status, StatusCode::OK);

    // And the other way round: their first user is not ours to see.
    let (_, theirs) = app.call_as(&other, Method::GET, "/accounts", None).await;
    let their_account = theirs[0]["id"].as_i64().unwrap();
    let (status, body) = app.get(&format!("/accounts/{their_account}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "account_not_found");
}

async fn only_an_organization_administrator_gets_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = create_account(&app, json!({"name": "Acme"})).await;
    let id = account["id"].as_i64().unwrap();
    let user = create_user(&app, id, json!({"emailAddress": "plain@acme.test"})).await;
    let plain = auth_of(user["secret"].as_str().unwrap());
    let user_id = user["id"].as_i64().unwrap();

    let rename = json!({"name": "Mine now"});
    let promote = json!({"emailAddress": "me@acme.test", "role": "admin"});
    let not_json = json!("not an account");
    let routes = [
        (Method::GET, "/accounts".to_owned(), None),
        (Method::POST, "/accounts".to_owned(), Some(&rename)),
        // A body that would be refused is still refused for who sends it first.
        (Method::POST, "/accounts".to_owned(), Some(&not_json)),
        (Method::GET, format!("/accounts/{id}"), None),
        (Method::PATCH, format!("/accounts/{id}"), Some(&rename)),
        (Method::DELETE, format!("/accounts/{id}"), None),
        (Method::GET, format!("/accounts/{id}/users"), None),
        (
            Method::POST,
            format!("/accounts/{id}/users"),
            Some(&promote),
        ),
        (Method::GET, format!("/users/{user_id}"), None),
        (Method::DELETE, format!("/users/{user_id}"), None),
    ];
    for (method, path, body) in &routes {
        let (status, answer) = app.call_as(&plain, method.clone(), path, *body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        let message = assert_error(&answer, "forbidden");
        assert!(message.contains("organization administrator"), "{message}");
    }
    let (_, account_now) = app.get(&format!("/accounts/{id}")).await;
    assert_eq!(account_now["name"], "Acme");
    let (_, users) = app.get(&format!("/accounts/{id}/users")).await;
    assert_eq!(users.as_array().unwrap().len(), 1);

    // No credentials, wrong credentials, or an Element token: 401.
    let response = app.http.get(app.url("/accounts")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_error(&response.json().await.unwrap(), "unauthorized");
    let wrong = auth_of("not-a-user-secret-0123456789");
    // A valid Element token proves an instance, not an administrator.
    let instance = create_instance(&app, &app.platform_auth()).await;
    let element = format!("Element {}", instance["token"].as_str().unwrap());
    let user_only = format!("User {}", user["secret"].as_str().unwrap());
    for authorization in [wrong.as_str(), user_only.as_str()] {
        for (method, path, body) in &routes {
            let (status, answer) = app
                .call_as(authorization, method.clone(), path, *body)
                .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{authorization}: {method} {path}: {answer}"
            );
            assert_error(&answer, "unauthorized");
        }
    }
    // With an Element token a bare path is a hub call to the token's instance (spec
    // §5.1), so it never reaches the accounts API: it is the element's own resource (its
    // provider cannot be reached from tests) or none.
    for (method, path, body) in &routes {
        let (status, answer) = app.call_as(&element, method.clone(), path, *body).await;
        let code = answer["code"].as_str().unwrap_or_default().to_owned();
        assert!(
            matches!(
                (status, code.as_str()),
                (StatusCode::NOT_FOUND, "resource_not_found")
                    | (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
                    | (StatusCode::BAD_GATEWAY, "provider_unreachable")
                    | (StatusCode::BAD_REQUEST, "invalid_body")
            ),
            "{method} {path}: {status} {answer}"
        );
    }
}

async fn bad_bodies_and_ids_are_refused_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = create_account(&app, json!({"name": "Acme"})).await;
    let id = account["id"].as_i64().unwrap();
    let long = "x".repeat(256);

    for (body, code, field) in [
        (json!({}), "missing_parameter", "name"),
        (
            json!({"description": "no name"}),
            "missing_parameter",
            "name",
        ),
        (json!({"name": "  <b></b> "}), "invalid_name", "name"),
        (json!({"name": long}), "invalid_name", "name"),
        (json!({"name": 5}), "invalid_body", "name"),
        (
            json!({"name": "A", "externalId": long}),
            "invalid_external_id",
            "externalId",
        ),
        (
            json!({"name": "A", "description": "d".repeat(5000)}),
            "invalid_description",
            "description",
        ),
    ] {
        let (status, answer) = app.post("/accounts", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = assert_error(&answer, code);
        assert!(message.contains(field), "{body}: {message}");
    }
    let (status, answer) = app
        .call(
            Method::PATCH,
            &format!("/accounts/{id}"),
            Some(&json!({"name": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(assert_error(&answer, "invalid_name").contains("name"));

    let users = format!("/accounts/{id}/users");
    for (body, code, field) in [
        (json!({}), "missing_parameter", "emailAddress"),
        (
            json!({"emailAddress": "jane.acme.test"}),
            "invalid_email_address",
            "emailAddress",
        ),
        (
            json!({"emailAddress": "jane@acme.test", "role": "owner"}),
            "invalid_role",
            "role",
        ),
        (
            json!({"emailAddress": "jane@acme.test", "firstName": long}),
            "invalid_first_name",
            "firstName",
        ),
        (
            json!({"emailAddress": ["jane@acme.test"]}),
            "invalid_body",
            "emailAddress",
        ),
    ] {
        let (status, answer) = app.post(&users, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = assert_error(&answer, code);
        assert!(message.contains(field), "{body}: {message}");
    }
    let (_, listed) = app.get(&users).await;
    assert_eq!(listed, json!([]), "nothing was stored");
    let (_, accounts) = app.get("/accounts").await;
    assert_eq!(accounts.as_array().unwrap().len(), 2, "nothing was stored");

    let (status, answer) = app.get("/accounts/acme").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&answer, "invalid_account_id").contains("account id"));
    let (status, answer) = app.call(Method::DELETE, "/users/me", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&answer, "invalid_user_id").contains("user id"));
    let (status, answer) = app.get("/users/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&answer, "user_not_found");
    let (status, answer) = app
        .post(
            "/accounts/999999/users",
            &json!({"emailAddress": "x@y.test"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&answer, "account_not_found");
}

/// Creates an instance as `authorization` without calling any provider.
async fn create_instance(app: &TestApp, authorization: &str) -> Value {
    let body = json!({
        "element": {"key": "sfdc"},
        "externalAuthentication": "initial",
        "configuration": {
            "oauth.api.key": "k",
            "oauth.api.secret": "s",
            "oauth.callback.url": "https://app.example.test/cb",
            "oauth.user.token": "t",
            "oauth.user.refresh_token": "r",
        },
        "name": "x",
    });
    let (status, instance) = app
        .call_as(authorization, Method::POST, "/instances", Some(&body))
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    instance
}

async fn deleting_an_account_deletes_its_instances_and_users(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = create_account(&app, json!({"name": "Leaving"})).await;
    let id = account["id"].as_i64().unwrap();
    let user = create_user(&app, id, json!({"emailAddress": "bye@leaving.test"})).await;
    let user_id = user["id"].as_i64().unwrap();
    let user_auth = auth_of(user["secret"].as_str().unwrap());
    let instance = create_instance(&app, &user_auth).await;
    let instance_id = instance["id"].as_i64().unwrap();
    let element_auth = format!("Element {}", instance["token"].as_str().unwrap());
    let (status, _) = app
        .call_as(&element_auth, Method::GET, "/instances", None)
        .await;
    assert_eq!(status, StatusCode::OK, "the token works before");
    // An instance of the admin's own account stays.
    let kept = create_instance(&app, &app.platform_auth()).await;

    let (status, body) = app
        .call(Method::DELETE, &format!("/accounts/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({}));

    let (status, body) = app
        .call_as(&element_auth, Method::GET, "/instances", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = app
        .call_as(&user_auth, Method::GET, "/instances", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the user went too");
    let (status, body) = app.get(&format!("/accounts/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "account_not_found");
    let (status, _) = app.get(&format!("/users/{user_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(Method::DELETE, &format!("/accounts/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "gone is gone");

    let pool = pool(&app).await;
    let count = |sql: &'static str, bind: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query(sql)
                .bind(bind)
                .fetch_one(&pool)
                .await
                .unwrap()
                .try_get::<i64, _>(0)
                .unwrap()
        }
    };
    assert_eq!(
        count("select count(*) from instances where id = $1", instance_id).await,
        0
    );
    assert_eq!(
        count(
            "select count(*) from instance_tags where instance_id = $1",
            instance_id
        )
        .await,
        0
    );
    assert_eq!(
        count("select count(*) from users where account_id = $1", id).await,
        0
    );
    assert_eq!(app.instance_ids().await, vec![kept["id"].as_i64().unwrap()]);
}

async fn admins_cannot_delete_their_own_account_or_themselves(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, accounts) = app.get("/accounts").await;
    let own = accounts[0]["id"].as_i64().unwrap();
    let (_, own_users) = app.get(&format!("/accounts/{own}/users")).await;
    let me = own_users[0]["id"].as_i64().unwrap();
    assert_eq!(own_users[0]["role"], "admin", "the first user is an admin");

    let (status, body) = app
        .call(Method::DELETE, &format!("/accounts/{own}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(assert_error(&body, "conflict").contains("your own account"));
    let (status, body) = app
        .call(Method::DELETE, &format!("/users/{me}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(assert_error(&body, "conflict").contains("yourself"));
    let (status, _) = app.get("/accounts").await;
    assert_eq!(status, StatusCode::OK, "still an admin");

    // A plain user without instances goes.
    let plain = create_user(&app, own, json!({"emailAddress": "temp@acme.test"})).await;
    let plain_id = plain["id"].as_i64().unwrap();
    let (status, body) = app
        .call(Method::DELETE, &format!("/users/{plain_id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({}));
    let (status, body) = app.get(&format!("/users/{plain_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "user_not_found");
    let (status, _) = app
        .call_as(
            &auth_of(plain["secret"].as_str().unwrap()),
            Method::GET,
            "/instances",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Another administrator may delete the first one.
    let second = create_account(&app, json!({"name": "Ops"})).await;
    let second_admin = create_user(
        &app,
        second["id"].as_i64().unwrap(),
        json!({"emailAddress": "ops@acme.test", "role": "admin"}),
    )
    .await;
    let second_auth = auth_of(second_admin["secret"].as_str().unwrap());
    let (status, body) = app
        .call_as(&second_auth, Method::DELETE, &format!("/users/{me}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.get("/accounts").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn a_user_who_owns_instances_is_not_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = create_account(&app, json!({"name": "Acme"})).await;
    let user = create_user(
        &app,
        account["id"].as_i64().unwrap(),
        json!({"emailAddress": "owner@acme.test"}),
    )
    .await;
    let user_id = user["id"].as_i64().unwrap();
    let user_auth = auth_of(user["secret"].as_str().unwrap());
    create_instance(&app, &user_auth).await;
    create_instance(&app, &user_auth).await;

    let (status, body) = app
        .call(Method::DELETE, &format!("/users/{user_id}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = assert_error(&body, "conflict");
    assert!(message.contains("2 instances"), "{message}");
    let (status, instances) = app
        .call_as(&user_auth, Method::GET, "/instances", None)
        .await;
    assert_eq!(status, StatusCode::OK, "the user still works");
    assert_eq!(instances.as_array().unwrap().len(), 2);
}

/// 0002 applied to a database already holding organizations: each one's first user, and
/// only that one, becomes its administrator.
async fn the_migration_makes_each_organizations_first_user_an_admin(backend: Backend) {
    let db = junction_testkit::db::TestDatabase::create(backend).await;
    let dialect = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let migrations = format!(
        "{}/../junction-store/migrations/{dialect}",
        env!("CARGO_MANIFEST_DIR")
    );
    let read = |name: &str| std::fs::read_to_string(format!("{migrations}/{name}")).unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(read("0001_initial.sql")))
        .execute(&pool)
        .await
        .unwrap();
    for (org, users) in [(1i64, 3i64), (2, 2)] {
        sqlx::query(
            "insert into organizations (id, name, secret_hash, created_at) values ($1, 'o', $2, 0)",
        )
        .bind(org)
        .bind(vec![org as u8])
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "insert into accounts (id, organization_id, name, created_at) values ($1, $1, 'a', 0)",
        )
        .bind(org)
        .execute(&pool)
        .await
        .unwrap();
        for n in 0..users {
            sqlx::query(
                "insert into users (id, account_id, email, first_name, last_name, secret_hash, created_at) \
                 values ($1, $2, 'u@x.test', '', '', $3, 0)",
            )
            .bind(org * 10 + n)
            .bind(org)
            .bind(vec![org as u8, n as u8, 1])
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(read("0002_roles.sql")))
        .execute(&pool)
        .await
        .unwrap();
    let rows = sqlx::query("select id, role from users order by id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let roles: Vec<(i64, String)> = rows
        .iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
        .collect();
    assert_eq!(
        roles,
        vec![
            (10, "admin".to_owned()),
            (11, "user".to_owned()),
            (12, "user".to_owned()),
            (20, "admin".to_owned()),
            (21, "user".to_owned()),
        ]
    );
    let refused = sqlx::query("update users set role = 'owner' where id = 11")
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "the role is checked");
    pool.close().await;
}

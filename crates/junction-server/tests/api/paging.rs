//! Paged instance lists: headers, filters, and a walk that neither repeats nor skips
//! while instances come and go.

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use junction_core::{AccountId, ConfigMap, InstanceId, UserId};
use junction_store::NewInstance;
use junction_testkit::db::Backend;
use std::collections::{BTreeSet, HashSet};

/// Inserts an instance straight into the store (no provider involved), as a concurrent
/// writer would.
async fn insert(app: &TestApp, name: &str, tags: &[&str]) -> i64 {
    let token = junction_crypto::generate_secret(30).unwrap();
    let config: ConfigMap = [(
        "base.url".to_owned(),
        Some("https://example.test".to_owned()),
    )]
    .into();
    let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
    app.services
        .store
        .insert_instance(NewInstance {
            account_id: AccountId(1),
            user_id: UserId(1),
            element_id: 23,
            element_key: "sfdc",
            name,
            token: &token,
            config: &config,
            secrets: &ConfigMap::new(),
            tags: &tags,
            external_authentication: "none",
            token_expires_at: None,
            now: 0,
        })
        .await
        .unwrap()
        .id
        .0
}

struct Page {
    ids: Vec<i64>,
    returned: usize,
    total: Option<i64>,
    next: Option<String>,
}

async fn page(app: &TestApp, query: &str) -> Page {
    let response = app
        .http
        .get(app.url(&format!("/instances?{query}")))
        .header("Authorization", app.platform_auth())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{query}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let returned = header("elements-returned-count").unwrap().parse().unwrap();
    let total = header("elements-total-count").map(|t| t.parse().unwrap());
    let next = header("elements-next-page-token");
    let body: serde_json::Value = response.json().await.unwrap();
    let ids = body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    Page {
        ids,
        returned,
        total,
        next,
    }
}

on_both_backends!(
    pages_carry_counts_and_a_cursor,
    a_walk_survives_concurrent_inserts_and_deletes
);

async fn pages_carry_counts_and_a_cursor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut all = Vec::new();
    for i in 0..7 {
        let tags: &[&str] = if i % 2 == 0 { &["even"] } else { &["odd"] };
        all.push(insert(&app, &format!("Customer {i} Account"), tags).await);
    }
    let first = page(&app, "pageSize=3").await;
    assert_eq!((first.returned, first.total), (3, Some(7)));
    assert_eq!(first.ids, all[..3]);
    let second = page(
        &app,
        &format!("pageSize=3&nextPage={}", first.next.unwrap()),
    )
    .await;
    assert_eq!(second.ids, all[3..6]);
    assert_eq!(second.total, None, "only a walk's first page is counted");
    let last = page(
        &app,
        &format!("pageSize=3&nextPage={}", second.next.unwrap()),
    )
    .await;
    assert_eq!(last.ids, all[6..]);
    assert!(last.next.is_none(), "the last page has no cursor");

    let even = page(&app, "tags%5B%5D=even&pageSize=2").await;
    assert_eq!(even.total, Some(4));
    assert_eq!(even.ids, vec![all[0], all[2]]);
    let search = page(&app, "searchText=customer%205").await;
    assert_eq!(search.ids, vec![all[5]]);
    let literal = page(&app, "searchText=%25").await;
    assert_eq!(
        literal.total,
        Some(0),
        "% is matched literally, not as a wildcard"
    );

    for bad in [
        "pageSize=0",
        "pageSize=lots",
        "pageSize=501",
        "nextPage=forged",
    ] {
        let (status, body) = app.get(&format!("/instances?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["code"].as_str().unwrap().starts_with("invalid_page"),
            "{body}"
        );
        assert_error(&body, body["code"].as_str().unwrap());
    }
}

/// xorshift: reproducible pseudo-random choices without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn a_walk_survives_concurrent_inserts_and_deletes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for seed in [1u64, 7, 42, 1234, 987_654_321] {
        let mut rng = Rng(seed);
        let mut alive: BTreeSet<i64> = BTreeSet::new();
        for i in 0..40 {
            alive.insert(insert(&app, &format!("seed {seed} #{i}"), &["walk"]).await);
        }
        let initial = alive.clone();
        let mut deleted: HashSet<i64> = HashSet::new();
        let mut seen: Vec<i64> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let size = 1 + rng.next() % 9;
            let query = match &cursor {
                Some(c) => format!("tags%5B%5D=walk&pageSize={size}&nextPage={c}"),
                None => format!("tags%5B%5D=walk&pageSize={size}"),
            };
            let page = page(&app, &query).await;
            seen.extend(&page.ids);
            // Between pages, others insert and delete.
            for _ in 0..(rng.next() % 4) {
                alive.insert(insert(&app, "concurrent", &["walk"]).await);
            }
            for _ in 0..(rng.next() % 3) {
                let candidates: Vec<i64> = alive.iter().copied().collect();
                let victim = candidates[(rng.next() as usize) % candidates.len()];
                app.services
                    .store
                    .delete_instance(AccountId(1), InstanceId(victim))
                    .await
                    .unwrap();
                alive.remove(&victim);
                deleted.insert(victim);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let unique: HashSet<i64> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "seed {seed}: an instance was returned twice"
        );
        for id in initial.iter().filter(|id| !deleted.contains(id)) {
            assert!(
                unique.contains(id),
                "seed {seed}: instance {id} existed throughout but was skipped"
            );
        }
        for id in &alive {
            app.services
                .store
                .delete_instance(AccountId(1), InstanceId(*id))
                .await
                .unwrap();
        }
    }
}

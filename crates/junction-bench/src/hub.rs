//! Drivers for `bench/hub.sh`: the Salesforce stand-in as a process of its own (with the
//! token endpoint an `sfdc` instance is provisioned through), and a paged walk either
//! straight against it (following `nextRecordsUrl`) or through Junction (following
//! `Elements-Next-Page-Token`), both reading every page the same way.

use anyhow::{Context, bail};
use junction_testkit::vendors::salesforce::{Salesforce, SalesforceConfig};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Serves the stand-in with `accounts` Accounts and `contacts` Contacts, plus a token
/// endpoint that answers any code exchange with the stand-in as `instance_url`. Prints
/// one JSON line with both addresses and the accepted token, then runs until stopped.
pub async fn serve_salesforce(accounts: usize, contacts: usize) -> anyhow::Result<()> {
    let config = SalesforceConfig {
        accounts,
        contacts,
        ..SalesforceConfig::default()
    };
    let token = config.token.clone();
    let started = Instant::now();
    let sf = Salesforce::start(config).await;
    let seeded = started.elapsed().as_secs_f64();
    let instance_url = sf.url();
    let answer = json!({
        "access_token": token,
        "refresh_token": "bench-refresh-token",
        "instance_url": instance_url,
        "token_type": "Bearer",
        "issued_at": "1764180000000",
    });
    let app = axum::Router::new().route(
        "/services/oauth2/token",
        axum::routing::post(move || {
            let answer = answer.clone();
            async move { axum::Json(answer) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let token_url = format!("http://{}/services/oauth2/token", listener.local_addr()?);
    println!(
        "{}",
        json!({"url": instance_url, "tokenUrl": token_url, "token": token, "seedSeconds": seeded})
    );
    tokio::select! {
        served = axum::serve(listener, app) => served?,
        _ = tokio::signal::ctrl_c() => {}
    }
    // Dropping the stand-in stops it.
    drop(sf);
    Ok(())
}

/// How a walk reaches its pages.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Via {
    /// `GET <url>/services/data/v59.0/query?q=…` with `Sforce-Query-Options`, then each
    /// `nextRecordsUrl`.
    Direct,
    /// `GET <url><path>?pageSize=…` with an Element token, then each next-page token.
    Junction,
}

/// One walk to the end: records and pages seen, and how long it took.
struct Walked {
    records: usize,
    pages: usize,
    seconds: f64,
}

async fn read_page(response: reqwest::Response) -> anyhow::Result<(Value, Option<String>)> {
    let status = response.status();
    let token = response
        .headers()
        .get("elements-next-page-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!(
            "a page answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let page = serde_json::from_slice(&body).context("a page is not JSON")?;
    Ok((page, token))
}

fn count_ids(records: &[Value], seen: &mut HashSet<String>) -> anyhow::Result<()> {
    for record in records {
        let id = record["Id"].as_str().context("a record without Id")?;
        if !seen.insert(id.to_owned()) {
            bail!("record {id} came twice");
        }
    }
    Ok(())
}

async fn walk_once(
    http: &reqwest::Client,
    via: Via,
    url: &str,
    authorization: &str,
    target: &str,
    page_size: usize,
) -> anyhow::Result<Walked> {
    let mut seen = HashSet::new();
    let mut pages = 0;
    let started = Instant::now();
    match via {
        Via::Direct => {
            let origin = url.trim_end_matches('/');
            let first = format!("{origin}/services/data/v59.0/query");
            let mut next: Option<String> = None;
            loop {
                let request = match &next {
                    None => http.get(&first).query(&[("q", target)]),
                    Some(path) => http.get(format!("{origin}{path}")),
                };
                let response = request
                    .header("Authorization", authorization)
                    .header("Sforce-Query-Options", format!("batchSize={page_size}"))
                    .send()
                    .await?;
                let (page, _) = read_page(response).await?;
                let records = page["records"].as_array().context("no records")?;
                count_ids(records, &mut seen)?;
                pages += 1;
                next = page["nextRecordsUrl"].as_str().map(str::to_owned);
                if next.is_none() {
                    break;
                }
            }
        }
        Via::Junction => {
            let base = format!("{}{target}", url.trim_end_matches('/'));
            let sep = if target.contains('?') { '&' } else { '?' };
            let first = format!("{base}{sep}pageSize={page_size}");
            let mut token: Option<String> = None;
            loop {
                let page_url = match &token {
                    None => first.clone(),
                    Some(t) => format!("{first}&nextPage={t}"),
                };
                let response = http
                    .get(page_url)
                    .header("Authorization", authorization)
                    .send()
                    .await?;
                let (page, next) = read_page(response).await?;
                let records = page.as_array().context("a hub page is not a list")?;
                count_ids(records, &mut seen)?;
                pages += 1;
                token = next;
                if token.is_none() {
                    break;
                }
            }
        }
    }
    Ok(Walked {
        records: seen.len(),
        pages,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Walks `repeat` times and prints the fastest walk as JSON: records, pages, seconds,
/// records/s and ms per page.
pub async fn walk(
    via: Via,
    url: &str,
    authorization: &str,
    target: &str,
    page_size: usize,
    repeat: usize,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut best: Option<Walked> = None;
    let mut records = None;
    for _ in 0..repeat.max(1) {
        let walked = walk_once(&http, via, url, authorization, target, page_size).await?;
        if records.is_some_and(|r| r != walked.records) {
            bail!("two walks of the same collection saw different record counts");
        }
        records = Some(walked.records);
        if best.as_ref().is_none_or(|b| walked.seconds < b.seconds) {
            best = Some(walked);
        }
    }
    let best = best.context("no walk")?;
    println!(
        "{}",
        json!({
            "records": best.records,
            "pages": best.pages,
            "seconds": best.seconds,
            "records_per_s": best.records as f64 / best.seconds,
            "ms_per_page": best.seconds * 1000.0 / best.pages as f64,
        })
    );
    Ok(())
}

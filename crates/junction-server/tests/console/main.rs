//! Browser tests: the console and the hosted Connect page in a real headless Chromium,
//! against a real Junction server and the suite's real OAuth server. Controls are found
//! by their accessible labels. Each test writes screenshots of the pages it visits to
//! `docs/screenshots/`.

#![allow(clippy::unwrap_used)]

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

mod connect;
mod console;

use helpers::{ORG_SECRET, TestApp, USER_SECRET};
use junction_testkit::chromium::Chromium;
use std::path::PathBuf;

pub fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/screenshots")
        .join(format!("{name}.png"))
}

/// Opens the console and signs in with the bootstrap user's secrets.
pub async fn signed_in(app: &TestApp, browser: &Chromium) {
    browser.goto(&app.root_url("/")).await;
    browser.fill("User secret", USER_SECRET).await;
    browser.fill("Organization secret", ORG_SECRET).await;
    browser.click("Sign in").await;
    browser.see("Search instances").await;
}

//! Browser tests: the console and the hosted Connect page in a real headless Chromium,
//! against a real Junction server and the suite's real OAuth server. Controls are found
//! by their accessible labels. Each test takes screenshots of the pages it visits: into
//! the build's scratch directory, or with `JUNCTION_UPDATE_SCREENSHOTS=1` over the
//! committed ones in `docs/screenshots/`, so an ordinary run leaves the tree clean.

#![allow(clippy::unwrap_used)]

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

mod connect;
mod console;
mod events;

use helpers::{ORG_SECRET, TestApp, USER_SECRET};
use junction_testkit::chromium::Chromium;
use std::path::PathBuf;

/// Where the screenshot `name` is written: see [`screenshot_dir`].
pub fn screenshot_path(name: &str) -> PathBuf {
    screenshot_dir(std::env::var("JUNCTION_UPDATE_SCREENSHOTS").ok().as_deref())
        .join(format!("{name}.png"))
}

/// The README's screenshots are replaced only when asked (`JUNCTION_UPDATE_SCREENSHOTS`
/// set to `1` or `true`); otherwise they go to the scratch directory Cargo gives
/// integration tests under `target/`.
fn screenshot_dir(update: Option<&str>) -> PathBuf {
    let asked = update.is_some_and(|v| {
        let v = v.trim();
        v == "1" || v.eq_ignore_ascii_case("true")
    });
    if asked {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    }
}

#[test]
fn screenshots_replace_the_committed_ones_only_when_asked() {
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    for unasked in [None, Some(""), Some("0"), Some("false")] {
        let dir = screenshot_dir(unasked);
        assert_ne!(dir, committed, "{unasked:?}");
        assert!(
            dir.starts_with(env!("CARGO_TARGET_TMPDIR")),
            "{unasked:?}: {}",
            dir.display()
        );
    }
    for asked in ["1", "true", "TRUE"] {
        assert_eq!(screenshot_dir(Some(asked)), committed, "{asked}");
    }
}

/// Opens the console and signs in with the bootstrap user's secrets.
pub async fn signed_in(app: &TestApp, browser: &Chromium) {
    browser.goto(&app.root_url("/")).await;
    browser.fill("User secret", USER_SECRET).await;
    browser.fill("Organization secret", ORG_SECRET).await;
    browser.click("Sign in").await;
    browser.see("Search instances").await;
}

//! A real headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`), for the console's browser tests.
//!
//! Without the browser a test is skipped with a notice, unless `JUNCTION_REQUIRE_BROWSER=1`
//! (set in CI), where a missing browser fails it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

pub const REQUIRE_ENV: &str = "JUNCTION_REQUIRE_BROWSER";
const WAIT: Duration = Duration::from_secs(20);

/// A running chromedriver with one browser session; both end when it is dropped.
pub struct Chromium {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // chromedriver takes its browser down with it.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find(candidates: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in candidates {
        for dir in std::env::split_paths(&path) {
            let full = dir.join(name);
            if full.is_file() {
                return Some(full);
            }
        }
        let direct = Path::new(name);
        if direct.is_absolute() && direct.is_file() {
            return Some(direct.to_path_buf());
        }
    }
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Chromium {
    /// Starts the browser, or returns `None` (after saying so) when it is not installed
    /// and the environment does not require it.
    pub async fn start() -> Option<Chromium> {
        let driver = find(&["chromedriver", "/usr/lib/chromium/chromedriver"]);
        let browser = find(&["chromium", "chromium-browser", "/usr/lib/chromium/chromium"]);
        let (Some(driver), Some(browser)) = (driver, browser) else {
            if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
                panic!(
                    "{REQUIRE_ENV}=1 but chromium or chromedriver is missing: \
                     apt-get install chromium chromium-driver"
                );
            }
            eprintln!(
                "NOTICE: skipping a browser test: chromium or chromedriver is not installed \
                 (set {REQUIRE_ENV}=1 to make this a failure)"
            );
            return None;
        };
        let port = free_port();
        let mut child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
        let profile = tempfile::tempdir().expect("a browser profile directory");
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1100,760".to_owned(),
            // Every name but loopback fails at once: a page that reached for another host
            // would show it, and a provider's real host (which tests cannot reach) fails
            // fast instead of timing out.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"
                .to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": browser.display().to_string(), "args": args}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::rustls()
                .expect("TLS roots for the WebDriver client")
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Some(Chromium {
                        client,
                        driver: child,
                        _profile: profile,
                    });
                }
                Err(e) => {
                    last = Some(e.to_string());
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("chromedriver exited with {status}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let _ = child.kill();
        panic!("chromedriver did not start a session: {last:?}");
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    pub async fn url(&self) -> url::Url {
        self.client.current_url().await.expect("the current URL")
    }

    /// Waits until the address satisfies `check`, for pages that move by themselves.
    pub async fn wait_for_url(&self, what: &str, check: impl Fn(&url::Url) -> bool) -> url::Url {
        for _ in 0..200 {
            let url = self.url().await;
            if check(&url) {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the browser never reached {what}; it is at {}",
            self.url().await
        );
    }

    async fn wait_xpath(&self, xpath: &str, what: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(xpath))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                let text = self.text().await;
                panic!("no {what} on the page ({e}); the page says:\n{text}")
            }
        }
    }

    /// The control whose accessible label is `label`: a `<label for>`, a wrapping
    /// `<label>`, or `aria-label`.
    pub async fn control(&self, label: &str) -> Element {
        let l = xpath_literal(label);
        let xpath = format!(
            "//*[@id=//label[normalize-space(.)={l}]/@for] \
             | //label[normalize-space(.)={l}]//input \
             | //*[@aria-label={l}]"
        );
        self.wait_xpath(&xpath, &format!("control labelled {label:?}"))
            .await
    }

    /// Types into the control labelled `label`, replacing what it held.
    pub async fn fill(&self, label: &str, text: &str) {
        let control = self.control(label).await;
        control.clear().await.expect("clearing a field");
        control
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {label:?}: {e}"));
    }

    /// Picks the option whose text is `option` in the select labelled `label`.
    pub async fn select(&self, label: &str, option: &str) {
        self.control(label)
            .await
            .select_by_label(option)
            .await
            .unwrap_or_else(|e| panic!("choosing {option:?} in {label:?}: {e}"));
    }

    /// Waits for the button or link whose text or `aria-label` is `name`.
    pub async fn button(&self, name: &str) -> Element {
        let l = xpath_literal(name);
        let xpath = format!(
            "//button[normalize-space(.)={l} or @aria-label={l}] \
             | //a[normalize-space(.)={l} or @aria-label={l}] \
             | //summary[normalize-space(.)={l}]"
        );
        self.wait_xpath(&xpath, &format!("button or link {name:?}"))
            .await
    }

    /// Clicks the button or link whose text or `aria-label` is `name`.
    pub async fn click(&self, name: &str) {
        self.button(name)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {name:?}: {e}"));
    }

    /// Waits until the page shows `text` somewhere.
    pub async fn see(&self, text: &str) -> Element {
        let l = xpath_literal(text);
        self.wait_xpath(
            &format!("//*[contains(normalize-space(.), {l}) and not(self::script)][last()]"),
            &format!("text {text:?}"),
        )
        .await
    }

    /// The text of the page's main area (or its body).
    pub async fn text(&self) -> String {
        self.execute(
            "return (document.getElementById('main') || document.body)?.innerText || ''",
            vec![],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("running a script in the page: {e}"))
    }

    /// Writes a PNG of the viewport to `path`, creating its directory.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot directory");
        }
        std::fs::write(path, png).expect("writing the screenshot");
    }
}

/// `text` as an XPath string literal, whatever quotes it holds.
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        return format!("'{text}'");
    }
    let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
    format!("concat({})", parts.join(", \"'\", "))
}

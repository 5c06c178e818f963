//! A real `junction serve` process for the tests that kill one with SIGKILL.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_junction");
pub const USER_SECRET: &str = "crash-user-secret-0123456789";
pub const ORG_SECRET: &str = "crash-organization-secret-0123456789";
pub const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A running `junction serve`; dropping it kills it.
pub struct Junction {
    child: Child,
    addr: String,
}

impl Drop for Junction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Junction {
    /// Starts `junction serve` in `dir` on `database_url`, with the bootstrap secrets,
    /// private outbound addresses allowed and the refresh sweep off, plus `settings`;
    /// returns once it listens.
    pub fn start(database_url: &str, dir: &Path, settings: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BIN)
            .arg("serve")
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("JUNCTION_LOG_FORMAT", "json")
            .env("JUNCTION_LISTEN", "127.0.0.1:0")
            .env("JUNCTION_DATABASE_URL", database_url)
            .env("JUNCTION_ENCRYPTION_KEY", KEY)
            .env("JUNCTION_BOOTSTRAP_USER_SECRET", USER_SECRET)
            .env("JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET", ORG_SECRET)
            .env("JUNCTION_OUTBOUND_ALLOW_PRIVATE", "true")
            .env("JUNCTION_REFRESH_INTERVAL", "0")
            .envs(settings.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("junction did not start");
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && let Some(addr) = event["fields"]["addr"].as_str()
            {
                break addr.to_owned();
            }
        };
        Self { child, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/elements/api-v2{path}", self.addr)
    }

    /// SIGKILL: no shutdown, no flush, no lease released.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

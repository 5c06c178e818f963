//! The `junction` binary as an operator meets it: first start, restart, SIGTERM, settings
//! errors, account creation.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_junction");

struct Server {
    child: Child,
    addr: String,
    stdout: Vec<String>,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn junction(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("JUNCTION_LOG_FORMAT", "json")
        .env("JUNCTION_LISTEN", "127.0.0.1:0");
    cmd
}

/// Starts `junction serve` and waits for its "listening" log line.
fn serve(mut cmd: Command) -> Server {
    let mut child = cmd
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    let addr = loop {
        let line = stderr
            .recv_timeout(Duration::from_secs(20))
            .expect("junction did not start");
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(a) = event["fields"]["addr"].as_str() {
            break a.to_owned();
        }
    };
    // Whatever is printed on stdout around startup (the first-start secrets).
    let stdout_rx = lines_of(child.stdout.take().unwrap());
    let stdout =
        std::iter::from_fn(|| stdout_rx.recv_timeout(Duration::from_millis(300)).ok()).collect();
    Server {
        child,
        addr,
        stdout,
        stderr,
    }
}

fn lines_of(reader: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn get_instances(addr: &str, authorization: &str) -> u16 {
    let output = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: {authorization}"))
        .arg(format!("http://{addr}/elements/api-v2/instances"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).parse().unwrap_or(0)
}

fn sigterm_and_wait(server: &mut Server) -> (bool, Vec<String>) {
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = server.child.wait().unwrap();
    let logs: Vec<String> = server.stderr.try_iter().collect();
    (status.success(), logs)
}

#[test]
fn first_start_prints_secrets_once_and_a_restart_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = serve(junction(dir.path()));
    assert_eq!(
        first.stdout.len(),
        1,
        "exactly one line of secrets: {:?}",
        first.stdout
    );
    let secrets: Value = serde_json::from_str(&first.stdout[0]).unwrap();
    let authorization = secrets["authorization"].as_str().unwrap().to_owned();
    assert_eq!(get_instances(&first.addr, &authorization), 200);
    assert_eq!(get_instances(&first.addr, "User x, Organization y"), 401);

    let (clean, logs) = sigterm_and_wait(&mut first);
    assert!(clean, "SIGTERM is a clean stop");
    assert!(
        logs.iter().any(|l| l.contains("stopped cleanly")),
        "{logs:?}"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.contains(secrets["userSecret"].as_str().unwrap())),
        "secrets never reach the log"
    );

    let key_file = dir.path().join("junction.db.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the generated key file is private");

    let second = serve(junction(dir.path()));
    assert!(
        second.stdout.is_empty(),
        "secrets are printed only once: {:?}",
        second.stdout
    );
    assert_eq!(get_instances(&second.addr, &authorization), 200);
}

#[test]
fn bootstrap_secrets_come_from_the_environment_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = junction(dir.path());
    cmd.env(
        "JUNCTION_BOOTSTRAP_USER_SECRET",
        "operator-chosen-user-secret",
    )
    .env(
        "JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET",
        "operator-chosen-org-secret",
    );
    let server = serve(cmd);
    assert!(
        server.stdout.is_empty(),
        "nothing generated, nothing printed"
    );
    assert_eq!(
        get_instances(
            &server.addr,
            "User operator-chosen-user-secret, Organization operator-chosen-org-secret"
        ),
        200
    );
}

#[test]
fn accounts_create_prints_secrets_that_work() {
    let dir = tempfile::tempdir().unwrap();
    let output = junction(dir.path())
        .args([
            "accounts",
            "create",
            "--email",
            "ops@example.com",
            "--organization-name",
            "Acme",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    let server = serve(junction(dir.path()));
    assert!(
        server.stdout.is_empty(),
        "an organization exists, so no bootstrap"
    );
    assert_eq!(
        get_instances(&server.addr, created["authorization"].as_str().unwrap()),
        200
    );
}

#[test]
fn a_bad_setting_fails_fast_and_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value, named_as) in [
        ("JUNCTION_LISTEN", "not-an-address", "JUNCTION_LISTEN"),
        (
            "JUNCTION_ENCRYPTION_KEY",
            "c2hvcnQ=",
            "JUNCTION_ENCRYPTION_KEY",
        ),
        (
            "JUNCTION_OUTBOUND_ALLOW_PRIVATE",
            "maybe",
            "--outbound-allow-private",
        ),
        (
            "JUNCTION_DATABASE_URL",
            "mysql://db/x",
            "JUNCTION_DATABASE_URL",
        ),
    ] {
        let output = junction(dir.path())
            .env(name, value)
            .arg("serve")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{name}={value} must be refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named_as), "{name}: {stderr}");
        assert!(
            !stderr.contains("c2hvcnQ="),
            "the key value is never echoed"
        );
    }
    assert!(
        !dir.path().join("junction.db").exists(),
        "nothing is created on a bad setting"
    );
}

#[test]
fn config_example_and_elements_list_explain_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let output = junction(dir.path())
        .args(["config", "example"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    for name in [
        "JUNCTION_LISTEN=127.0.0.1:8080",
        "JUNCTION_DATABASE_URL=./junction.db",
        "JUNCTION_ENCRYPTION_KEY",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let output = junction(dir.path())
        .args(["elements", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    for key in ["facebookleadads", "sfdcservicecloud", "acton", "instagram"] {
        assert!(text.contains(key), "{key} missing from:\n{text}");
    }
    let output = junction(dir.path())
        .args(["config", "generate-key"])
        .output()
        .unwrap();
    let key = String::from_utf8(output.stdout).unwrap();
    assert_eq!(key.trim().len(), 44, "base64 of 32 bytes");
}

#[test]
fn a_second_server_on_the_same_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = serve(junction(dir.path()));
    let refused = junction(dir.path()).arg("serve").output().unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("another Junction server is using") && stderr.contains("PostgreSQL"),
        "{stderr}"
    );
    assert_eq!(
        get_instances(&first.addr, "User x, Organization y"),
        401,
        "the first server is unaffected"
    );
}

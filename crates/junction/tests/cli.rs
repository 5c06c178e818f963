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
    cmd.arg("serve");
    start(cmd)
}

/// Starts the command, which must serve, and waits for its "listening" log line.
fn start(mut cmd: Command) -> Server {
    let mut child = cmd
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
fn element_files_are_validated_and_built_ins_exported_for_import() {
    let dir = tempfile::tempdir().unwrap();
    let output = junction(dir.path())
        .args(["elements", "export", "acton"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let exported: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(exported["key"], "acton");
    let good = dir.path().join("acton.json");
    std::fs::write(&good, &output.stdout).unwrap();
    let mut broken = exported.clone();
    broken["configuration"][0]["type"] = serde_json::json!("TEXTFIELD_9");
    let bad = dir.path().join("broken.yaml");
    std::fs::write(&bad, serde_json::to_string(&broken).unwrap()).unwrap();

    let output = junction(dir.path())
        .args(["elements", "validate"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok (acton, id 39)"));
    let output = junction(dir.path())
        .args(["elements", "validate"])
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("broken.yaml: configuration[0].type: must be one of TEXTFIELD_128"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("1 of 2"));

    let output = junction(dir.path())
        .args(["elements", "export", "mycustom"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/export"));
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

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// A fresh database for one test: SQLite in the test's directory (Junction's default
/// file) or a new PostgreSQL database, which needs a configured key.
struct Database {
    postgres: Option<junction_testkit::db::TestDatabase>,
}

impl Database {
    fn new(backend: Backend) -> Self {
        let postgres = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(tokio::runtime::Runtime::new().unwrap().block_on(
                junction_testkit::db::TestDatabase::create(Backend::Postgres),
            )),
        };
        Self { postgres }
    }

    /// `junction` in `dir`, pointed at this database.
    fn junction(&self, dir: &std::path::Path) -> Command {
        let mut cmd = junction(dir);
        if let Some(pg) = &self.postgres {
            cmd.env("JUNCTION_DATABASE_URL", &pg.url)
                .env("JUNCTION_ENCRYPTION_KEY", KEY);
        }
        cmd
    }
}

use junction_testkit::db::Backend;

/// Runs a command that must finish, killing it if it is still running after a generous
/// bound (a server that should have refused to start but did not).
fn finish(mut cmd: Command) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    let output = child.wait_with_output().unwrap();
    let _ = tx.send(());
    output
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn a_start_that_cannot_listen_leaves_the_first_start_to_the_next(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::new(backend);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let failed = {
        let mut cmd = db.junction(dir.path());
        cmd.env("JUNCTION_LISTEN", busy.local_addr().unwrap().to_string())
            .arg("serve");
        finish(cmd)
    };
    assert!(!failed.status.success());
    assert!(
        stderr_of(&failed).contains("binding"),
        "{}",
        stderr_of(&failed)
    );
    assert!(
        failed.stdout.is_empty(),
        "nothing to print: nothing was created"
    );

    let server = serve(db.junction(dir.path()));
    assert_eq!(server.stdout.len(), 1, "{:?}", server.stdout);
    let secrets: Value = serde_json::from_str(&server.stdout[0]).unwrap();
    assert_eq!(
        get_instances(&server.addr, secrets["authorization"].as_str().unwrap()),
        200
    );
}

#[test]
fn a_start_that_cannot_listen_leaves_the_first_start_to_the_next_sqlite() {
    a_start_that_cannot_listen_leaves_the_first_start_to_the_next(Backend::Sqlite);
}

#[test]
fn a_start_that_cannot_listen_leaves_the_first_start_to_the_next_postgres() {
    a_start_that_cannot_listen_leaves_the_first_start_to_the_next(Backend::Postgres);
}

fn secrets_that_could_not_be_printed_are_replaced_at_the_next_start(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::new(backend);
    let mut child = db
        .junction(dir.path())
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads standard output: printing the secrets fails.
    drop(child.stdout.take());
    let failed = child.wait_with_output().unwrap();
    assert!(!failed.status.success());
    let stderr = stderr_of(&failed);
    assert!(
        stderr.contains("printing the first organization's secrets"),
        "{stderr}"
    );

    let server = serve(db.junction(dir.path()));
    assert_eq!(server.stdout.len(), 1, "{:?}", server.stdout);
    let secrets: Value = serde_json::from_str(&server.stdout[0]).unwrap();
    let authorization = secrets["authorization"].as_str().unwrap().to_owned();
    assert_eq!(get_instances(&server.addr, &authorization), 200);
    drop(server);

    let again = serve(db.junction(dir.path()));
    assert!(again.stdout.is_empty(), "shown once: {:?}", again.stdout);
    assert_eq!(get_instances(&again.addr, &authorization), 200);
}

#[test]
fn secrets_that_could_not_be_printed_are_replaced_at_the_next_start_sqlite() {
    secrets_that_could_not_be_printed_are_replaced_at_the_next_start(Backend::Sqlite);
}

#[test]
fn secrets_that_could_not_be_printed_are_replaced_at_the_next_start_postgres() {
    secrets_that_could_not_be_printed_are_replaced_at_the_next_start(Backend::Postgres);
}

fn a_wrong_encryption_key_is_refused_at_start(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::new(backend);
    let created = db
        .junction(dir.path())
        .env("JUNCTION_ENCRYPTION_KEY", KEY)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", stderr_of(&created));
    for key in [OTHER_KEY.to_owned(), format!("2:{OTHER_KEY}")] {
        let refused = {
            let mut cmd = db.junction(dir.path());
            cmd.env("JUNCTION_ENCRYPTION_KEY", &key).arg("serve");
            finish(cmd)
        };
        assert!(!refused.status.success(), "{key} must be refused");
        let stderr = stderr_of(&refused);
        assert!(
            stderr.contains("JUNCTION_ENCRYPTION_KEY does not fit this database")
                && stderr.contains("Set the key this database was created with"),
            "{stderr}"
        );
        assert!(!stderr.contains(OTHER_KEY), "the key is never echoed");
    }
    let rotated = db
        .junction(dir.path())
        .env("JUNCTION_ENCRYPTION_KEY", format!("2:{OTHER_KEY},1:{KEY}"))
        .arg("migrate")
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{}", stderr_of(&rotated));
}

#[test]
fn a_wrong_encryption_key_is_refused_at_start_sqlite() {
    a_wrong_encryption_key_is_refused_at_start(Backend::Sqlite);
}

#[test]
fn a_wrong_encryption_key_is_refused_at_start_postgres() {
    a_wrong_encryption_key_is_refused_at_start(Backend::Postgres);
}

#[test]
fn a_lost_key_file_is_reported_and_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let first = junction(dir.path()).arg("migrate").output().unwrap();
    assert!(first.status.success(), "{}", stderr_of(&first));
    let key_file = dir.path().join("junction.db.key");
    std::fs::remove_file(&key_file).unwrap();

    let refused = {
        let mut cmd = junction(dir.path());
        cmd.arg("serve");
        finish(cmd)
    };
    assert!(!refused.status.success());
    let stderr = stderr_of(&refused);
    assert!(
        stderr.contains("its key file") && stderr.contains("is missing"),
        "{stderr}"
    );
    assert!(!key_file.exists(), "no new key beside an existing database");
}

#[test]
fn every_sqlite_url_form_creates_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let absolute = dir.path().join("c.db");
    for (url, file) in [
        ("sqlite://./a.db".to_owned(), dir.path().join("a.db")),
        ("sqlite:./b.db".to_owned(), dir.path().join("b.db")),
        (format!("sqlite://{}", absolute.display()), absolute.clone()),
    ] {
        let output = junction(dir.path())
            .env("JUNCTION_DATABASE_URL", &url)
            .arg("migrate")
            .output()
            .unwrap();
        assert!(output.status.success(), "{url}: {}", stderr_of(&output));
        assert!(file.exists(), "{url}");
    }
}

#[test]
fn a_database_path_that_cannot_be_a_file_is_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let a_directory = dir.path().join("data");
    std::fs::create_dir(&a_directory).unwrap();
    let output = {
        let mut cmd = junction(dir.path());
        cmd.env("JUNCTION_DATABASE_URL", &a_directory).arg("serve");
        finish(cmd)
    };
    assert!(!output.status.success());
    assert!(
        stderr_of(&output).contains("is a directory"),
        "{}",
        stderr_of(&output)
    );

    let missing = dir.path().join("nowhere/j.db");
    let output = {
        let mut cmd = junction(dir.path());
        cmd.env("JUNCTION_DATABASE_URL", &missing).arg("serve");
        finish(cmd)
    };
    assert!(!output.status.success());
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("nowhere does not exist") && !stderr.contains("lock file"),
        "{stderr}"
    );
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["data"], "no key or lock file was created");
}

#[test]
fn an_unreachable_postgresql_is_reported_with_its_address_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let output = junction(dir.path())
        .env(
            "JUNCTION_DATABASE_URL",
            format!("postgres://junction:pg-password-123@{closed}/junction"),
        )
        .env("JUNCTION_ENCRYPTION_KEY", KEY)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(&format!("cannot connect to PostgreSQL at {closed}"))
            && stderr.contains("refused")
            && !stderr.contains("timed out"),
        "{stderr}"
    );
    assert!(!stderr.contains("pg-password-123"), "{stderr}");
}

#[test]
fn log_settings_have_flags_and_refuse_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let output = junction(dir.path())
        .env_remove("JUNCTION_LOG_FORMAT")
        .args(["--log-format", "json", "--log", "debug", "migrate"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let first_line = stderr_of(&output)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        serde_json::from_str::<Value>(&first_line).is_ok(),
        "--log-format json logs JSON: {first_line}"
    );

    for (name, value, flag) in [
        ("JUNCTION_LOG_FORMAT", "xml", "--log-format"),
        ("JUNCTION_LOG", "info,junction=loud", "--log"),
        ("JUNCTION_REFRESH_INTERVAL", "soon", "--refresh-interval"),
        ("JUNCTION_MAX_CONNECTIONS", "-1", "--max-connections"),
    ] {
        let output = {
            let mut cmd = junction(dir.path());
            cmd.env(name, value).arg("serve");
            finish(cmd)
        };
        assert!(!output.status.success(), "{name}={value} must be refused");
        let stderr = stderr_of(&output);
        assert!(
            stderr.contains(name) && stderr.contains(flag),
            "{name}: both names in {stderr}"
        );
    }
    let output = {
        let mut cmd = junction(dir.path());
        cmd.env("JUNCTION_OUTBOUND_TIMEOUT", "0").arg("serve");
        finish(cmd)
    };
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("JUNCTION_OUTBOUND_TIMEOUT (--outbound-timeout)"),
        "{stderr}"
    );
}

#[test]
fn the_database_and_its_files_are_private_and_a_shared_key_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(junction(dir.path()));
    let mode = |name: &str| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions(),
        ) & 0o777
    };
    for name in [
        "junction.db",
        "junction.db-wal",
        "junction.db-shm",
        "junction.db.lock",
        "junction.db.key",
    ] {
        assert_eq!(mode(name), 0o600, "{name}");
    }
    drop(server);

    let key_file = dir.path().join("junction.db.key");
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let output = junction(dir.path()).arg("migrate").output().unwrap();
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("readable by other users") && stderr.contains("chmod 600"),
        "{stderr}"
    );
}

#[test]
fn secrets_come_from_files_and_a_secret_flag_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let key = write("key", &format!("{KEY}\n"));
    let user = write("user", "user-secret-from-a-file\n");
    let mut cmd = junction(dir.path());
    cmd.env("JUNCTION_ENCRYPTION_KEY_FILE", &key)
        .env("JUNCTION_BOOTSTRAP_USER_SECRET_FILE", &user)
        .args([
            "serve",
            "--bootstrap-organization-secret",
            "org-secret-on-the-command-line",
        ]);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    let mut warned = false;
    let addr = loop {
        let line = stderr.recv_timeout(Duration::from_secs(20)).unwrap();
        warned |= line
            .contains("JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET was given as a command-line flag");
        let event: Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(a) = event["fields"]["addr"].as_str() {
            break a.to_owned();
        }
    };
    let status = get_instances(
        &addr,
        "User user-secret-from-a-file, Organization org-secret-on-the-command-line",
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned, "a secret flag is warned about");
    assert_eq!(status, 200);
    assert!(
        !dir.path().join("junction.db.key").exists(),
        "the key came from JUNCTION_ENCRYPTION_KEY_FILE"
    );
}

#[test]
fn subcommands_show_their_own_flags_and_settings_take_common_forms() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["migrate", "--help"][..],
        &["accounts", "create", "--help"],
    ] {
        let help = junction(dir.path()).args(args).output().unwrap();
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        assert!(help.contains("--database-url"), "{args:?}: {help}");
        for serve_only in ["--listen", "--refresh-interval", "--bootstrap-user-secret"] {
            assert!(!help.contains(serve_only), "{args:?} lists {serve_only}");
        }
    }
    let help = junction(dir.path())
        .args(["accounts", "create", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(
        help.contains("first name") && help.contains("last name"),
        "{help}"
    );

    let mut cmd = junction(dir.path());
    cmd.env("JUNCTION_LISTEN", "localhost:0")
        .args(["serve", "--outbound-allow-private"]);
    let server = start(cmd);
    assert_eq!(get_instances(&server.addr, "User x, Organization y"), 401);
}

/// A connection that sent the start of a request and never its end.
fn half_sent(addr: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: junction\r\n")
        .unwrap();
    // Only a bound for a failing test: a closed connection answers at once.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Waits for a log line containing `needle`.
fn wait_for_log(server: &Server, needle: &str) -> bool {
    loop {
        match server.stderr.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains(needle) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

#[test]
fn a_connection_whose_request_never_arrives_is_closed_after_the_header_read_timeout() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = junction(dir.path());
    cmd.env("JUNCTION_HEADER_READ_TIMEOUT", "1");
    let server = serve(cmd);
    let silent = std::net::TcpStream::connect(&server.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    for (what, mut stream) in [
        ("half a request", half_sent(&server.addr)),
        ("nothing", silent),
    ] {
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer) {
            Ok(_) => {}
            Err(e) => assert_eq!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset,
                "a connection that sent {what} must be closed, not left open: {e}"
            ),
        }
    }
    assert_eq!(get_instances(&server.addr, "User x, Organization y"), 401);
}

#[test]
fn connections_beyond_the_limit_wait_for_a_free_slot() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = junction(dir.path());
    cmd.env("JUNCTION_MAX_CONNECTIONS", "2")
        .env("JUNCTION_HEADER_READ_TIMEOUT", "600");
    let server = serve(cmd);
    let first = half_sent(&server.addr);
    let _second = half_sent(&server.addr);
    let mut third = std::net::TcpStream::connect(&server.addr).unwrap();
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: junction\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert!(
        wait_for_log(&server, "JUNCTION_MAX_CONNECTIONS reached"),
        "two connections fill the table"
    );
    drop(first);
    let mut answer = String::new();
    third.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn sigterm_stops_within_the_shutdown_timeout_despite_a_half_sent_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = junction(dir.path());
    cmd.env("JUNCTION_SHUTDOWN_TIMEOUT", "1")
        .env("JUNCTION_HEADER_READ_TIMEOUT", "600");
    let mut server = serve(cmd);
    let _held = half_sent(&server.addr);
    // The connection is accepted before the signal arrives.
    assert_eq!(get_instances(&server.addr, "User x, Organization y"), 401);
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        wait_for_log(&server, "JUNCTION_SHUTDOWN_TIMEOUT passed"),
        "the open connection is given up at the deadline"
    );
    assert!(wait_for_log(&server, "stopped cleanly"));
    assert!(server.child.wait().unwrap().success());
}

#[test]
fn a_request_body_that_stops_arriving_fails_after_the_idle_timeout() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = junction(dir.path());
    cmd.env("JUNCTION_IDLE_TIMEOUT", "1");
    let server = serve(cmd);
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .write_all(
            b"POST /elements/api-v2/elements/sfdc/oauth/url HTTP/1.1\r\nHost: junction\r\n\
              Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"apiKey\":",
        )
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid_body"), "{answer}");
}

#[test]
fn an_http2_client_cannot_hold_the_only_connection_slot() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = junction(dir.path());
    cmd.env("JUNCTION_MAX_CONNECTIONS", "1")
        .env("JUNCTION_HEADER_READ_TIMEOUT", "1");
    let server = serve(cmd);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // An HTTP/2 client keeps its connection open and answers the server's pings for as
    // long as it runs, whatever the header-read timeout.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .pool_idle_timeout(None)
        .build()
        .unwrap();
    let url = format!("http://{}/health", server.addr);
    let spoken = runtime.block_on(h2.get(&url).send());
    assert!(spoken.is_err(), "HTTP/2 is not served: {spoken:?}");

    let output = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "60",
        ])
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "200");
    drop(h2);
}

#[test]
fn a_request_body_sent_too_slowly_fails_after_the_body_timeout() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = junction(dir.path());
    cmd.env("JUNCTION_BODY_TIMEOUT", "1")
        .env("JUNCTION_IDLE_TIMEOUT", "600");
    let server = serve(cmd);
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .write_all(
            b"POST /elements/api-v2/elements/sfdc/oauth/url HTTP/1.1\r\nHost: junction\r\n\
              Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"apiKey\":\"",
        )
        .unwrap();
    // Never pausing for as long as the idle timeout: only the body deadline can end it.
    let mut dribble = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for _ in 0..300 {
            if dribble.write_all(b"a").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = [0u8; 4096];
    let n = stream.read(&mut answer).unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid_body"), "{answer}");
    drop(stream);
    writer.join().unwrap();
}

#[test]
fn a_sqlite_url_that_only_opens_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for mode in ["ro", "rw"] {
        let output = junction(dir.path())
            .env(
                "JUNCTION_DATABASE_URL",
                format!("sqlite:./{mode}.db?mode={mode}"),
            )
            .arg("migrate")
            .output()
            .unwrap();
        assert!(!output.status.success(), "mode={mode}");
        let stderr = stderr_of(&output);
        assert!(stderr.contains("does not exist"), "{stderr}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "mode={mode} created {left:?}");
    }
    // With a key given, the store itself must not create the file either.
    let output = junction(dir.path())
        .env("JUNCTION_DATABASE_URL", "sqlite:./k.db?mode=rw")
        .env("JUNCTION_ENCRYPTION_KEY", KEY)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(!dir.path().join("k.db").exists());
}

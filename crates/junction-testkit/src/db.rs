//! A fresh, empty database per test, on SQLite or PostgreSQL.

use sqlx::{AssertSqlSafe, Connection, Executor, postgres::PgConnection};
use tempfile::TempDir;

/// The environment variable naming the PostgreSQL cluster tests may create databases in.
pub const DATABASE_URL_ENV: &str = "JUNCTION_TEST_DATABASE_URL";

/// Which database engine a [`TestDatabase`] lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a fresh temporary directory.
    Sqlite,
    /// A fresh database in the cluster named by `JUNCTION_TEST_DATABASE_URL`.
    Postgres,
}

/// An empty database that belongs to one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// Connection URL of the database, ready for `sqlx` (and so for Junction's store).
    pub url: String,
    /// Engine the database lives on.
    pub backend: Backend,
    // Owns the SQLite file's directory: it is deleted when the database is dropped.
    _dir: Option<TempDir>,
    // The PostgreSQL database's name and the cluster URL it was created through: it is
    // dropped with this value, so a suite leaves no databases behind.
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// Creates a new empty database on `backend`.
    pub async fn create(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => create_sqlite(),
            Backend::Postgres => create_postgres().await,
        }
    }
}

fn create_sqlite() -> TestDatabase {
    let dir = tempfile::Builder::new()
        .prefix("junction-test-")
        .tempdir()
        .expect("creating a temporary directory for the SQLite test database");
    let path = dir.path().join("junction.db");
    let path = path
        .to_str()
        .expect("the temporary directory's path is not valid UTF-8");
    TestDatabase {
        url: format!("sqlite://{path}?mode=rwc"),
        backend: Backend::Sqlite,
        _dir: Some(dir),
        postgres: None,
    }
}

async fn create_postgres() -> TestDatabase {
    let admin_url = std::env::var(DATABASE_URL_ENV).unwrap_or_else(|_| {
        panic!(
            "{DATABASE_URL_ENV} is not set: run the tests with `bash scripts/test.sh` \
             (it starts a throwaway PostgreSQL) or set {DATABASE_URL_ENV} to a PostgreSQL \
             URL whose user may create databases"
        )
    });
    let mut url = url::Url::parse(&admin_url)
        .unwrap_or_else(|e| panic!("{DATABASE_URL_ENV}={admin_url:?} is not a URL: {e}"));
    let name = format!("jt_{}", uuid::Uuid::new_v4().simple());

    let mut conn = PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {DATABASE_URL_ENV}={admin_url:?}: {e}"));
    // The name is generated here from a UUID, so it cannot carry an injection.
    conn.execute(AssertSqlSafe(format!("create database \"{name}\"")))
        .await
        .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
    // Closing politely avoids "connection reset" noise in the server log; a failure
    // here does not affect the database just created.
    let _ = conn.close().await;

    url.set_path(&format!("/{name}"));
    TestDatabase {
        url: url.into(),
        backend: Backend::Postgres,
        _dir: None,
        postgres: Some((admin_url, name)),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // `Drop` cannot await, and the test's own runtime may be the one dropping: a
        // thread with a runtime of its own does the work, and is waited for so the
        // database is gone when the test ends. `force` ends the connections a server
        // under test may still hold.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                let result = conn
                    .execute(AssertSqlSafe(format!(
                        "drop database if exists \"{name}\" with (force)"
                    )))
                    .await
                    .map_err(|e| format!("dropping test database {name}: {e}"));
                let _ = conn.close().await;
                result.map(|_| ())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("junction-testkit: {e}"),
            Err(_) => eprintln!("junction-testkit: dropping a test database panicked"),
        }
    }
}

//! `junction backup`: a consistent copy of a SQLite database taken while it serves, with
//! its key file beside it. PostgreSQL is backed up with its own tools (`pg_dump`).

use crate::config::{DatabaseConfig, beside, create_private};
use anyhow::{Context, bail};
use junction_service::now_ms;
use junction_store::{Dialect, Store};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a backup wrote.
#[derive(Debug)]
pub struct Backup {
    pub database: PathBuf,
    /// The key file copied beside the backup; `None` when the key is given in the
    /// settings, which then must be kept with the backup by whoever set it.
    pub key_file: Option<PathBuf>,
}

/// Copies the database to `target` (which must not exist) and its key file to
/// `<target>.key`. The copy is one snapshot, so it is consistent even while a server
/// writes; the database is neither migrated nor otherwise changed.
pub async fn backup(database: &DatabaseConfig, target: &Path) -> anyhow::Result<Backup> {
    if database.url.dialect() == Dialect::Postgres {
        bail!(
            "junction backup copies a SQLite database; back up PostgreSQL with pg_dump \
             (`pg_dump --format=custom --file=junction.dump <database URL>`, see the README's \
             \"Backup and restore\") and keep JUNCTION_ENCRYPTION_KEY with the dump"
        );
    }
    let Some(source) = database.sqlite_path() else {
        bail!("an in-memory database cannot be backed up");
    };
    if !std::fs::metadata(&source).is_ok_and(|m| m.is_file() && m.len() > 0) {
        bail!("there is no database at {} to back up", source.display());
    }
    let key_target = database
        .encryption_key
        .is_none()
        .then(|| beside(target, ".key"));
    for path in std::iter::once(target).chain(key_target.as_deref()) {
        if path.exists() {
            bail!("{} exists already; name a new file", path.display());
        }
    }
    let keyring = Arc::new(database.keyring()?);
    let store = Store::connect(&database.url, keyring)
        .await
        .with_context(|| format!("opening {}", database.url))?;
    // A backup its key cannot open would only be found out at the restore.
    let copied = async {
        store
            .check_keys(now_ms())
            .await
            .context("checking the encryption key against the database")?;
        store
            .backup_sqlite(target)
            .await
            .with_context(|| format!("copying the database to {}", target.display()))
    }
    .await;
    store.close().await;
    copied?;
    if let Some(key_target) = &key_target {
        let key = std::fs::read(beside(&source, ".key")).context("reading the key file")?;
        let written = create_private(key_target).and_then(|mut f| {
            f.write_all(&key)?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(target);
            return Err(e).with_context(|| format!("writing {}", key_target.display()));
        }
    }
    Ok(Backup {
        database: target.to_owned(),
        key_file: key_target,
    })
}

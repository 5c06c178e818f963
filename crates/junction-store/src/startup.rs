//! What a start checks and records before serving: that the configured encryption keys
//! are the ones this database's data was sealed with, and whether the first
//! organization's generated secrets were ever shown.

use crate::{NewOrganization, OrganizationCreated, Store, StoreError};
use junction_core::{OrganizationId, Secret, UserId};
use junction_crypto::CryptoError;
use sqlx::Row;

/// Authenticated with the sealed text, so a row moved or edited fails to open too.
const KEY_CHECK_CONTEXT: &[u8] = b"junction key check v1";
const KEY_CHECK_TEXT: &[u8] = b"junction";

/// The first organization, created with generated secrets not yet shown to anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnrevealedFirstStart {
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    /// When the secrets not yet shown were made: a replacement claims the row by
    /// changing it, so that of two replicas that read the same row only one replaces.
    pub created_at: i64,
}

impl Store {
    /// Proves the configured keys are this database's: every configured key that sealed
    /// a check here must open it, and a database with checks must know at least one of
    /// the configured keys. A new primary key records its own check.
    pub async fn check_keys(&self, now: i64) -> Result<(), StoreError> {
        let keyring = self.keyring();
        let primary = keyring.primary_key_id();
        let rows = sqlx::query("select key_id, sealed from key_checks")
            .fetch_all(self.writer())
            .await?;
        let mut stored = Vec::with_capacity(rows.len());
        let mut known = false;
        for row in &rows {
            let key_id: i64 = row.try_get("key_id")?;
            let sealed: Vec<u8> = row.try_get("sealed")?;
            let key_id = u32::try_from(key_id)
                .map_err(|_| StoreError::Corrupt(format!("key check for key id {key_id}")))?;
            stored.push(key_id);
            match keyring.open(KEY_CHECK_CONTEXT, &sealed) {
                Ok(text) if text.as_slice() == KEY_CHECK_TEXT => known = true,
                Err(CryptoError::UnknownKeyId(_)) => {}
                Ok(_) | Err(_) => return Err(StoreError::WrongKey { key_id }),
            }
        }
        if !stored.is_empty() && !known {
            stored.sort_unstable();
            return Err(StoreError::NoKnownKey { stored });
        }
        if stored.is_empty() {
            self.open_one_sealed_value().await?;
        }
        if !stored.contains(&primary) {
            let sealed = keyring.seal(KEY_CHECK_CONTEXT, KEY_CHECK_TEXT)?;
            // Another replica starting at the same moment may record its check first;
            // the next start verifies whichever won.
            sqlx::query(
                "insert into key_checks (key_id, sealed, created_at) values ($1, $2, $3) \
                 on conflict (key_id) do nothing",
            )
            .bind(i64::from(primary))
            .bind(sealed)
            .bind(now)
            .execute(self.writer())
            .await?;
        }
        Ok(())
    }

    /// A database sealed before key checks were recorded (or whose checks are gone) would
    /// otherwise trust whatever key it first starts with and record that key's check:
    /// one sealed value, an instance's secrets, must open with the configured keys first.
    async fn open_one_sealed_value(&self) -> Result<(), StoreError> {
        let row = sqlx::query("select token_hash, secrets from instances order by id limit 1")
            .fetch_optional(self.writer())
            .await?;
        let Some(row) = row else {
            return Ok(());
        };
        let token_hash: Vec<u8> = row.try_get("token_hash")?;
        let sealed: Vec<u8> = row.try_get("secrets")?;
        match self
            .keyring()
            .open(&crate::instances::secrets_context(&token_hash), &sealed)
        {
            Ok(_) => Ok(()),
            Err(CryptoError::UnknownKeyId(key_id)) => Err(StoreError::NoKnownKey {
                stored: vec![key_id],
            }),
            Err(_) => Err(StoreError::WrongKey {
                key_id: sealed_key_id(&sealed),
            }),
        }
    }

    /// Creates the first organization; with `unrevealed`, also records that its secrets
    /// still have to be shown, in the same transaction, so no start can leave an
    /// organization whose secrets were never printed and are not marked so.
    pub async fn create_first_organization(
        &self,
        new: NewOrganization<'_>,
        unrevealed: bool,
    ) -> Result<OrganizationCreated, StoreError> {
        let now = new.now;
        let mut tx = self.writer().begin().await?;
        let created = self.insert_organization(&mut tx, new).await?;
        if unrevealed {
            sqlx::query(
                "insert into first_start (organization_id, user_id, created_at) values ($1, $2, $3)",
            )
            .bind(created.organization_id.0)
            .bind(created.user_id.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    /// The first organization whose generated secrets were never shown, if any.
    pub async fn unrevealed_first_start(&self) -> Result<Option<UnrevealedFirstStart>, StoreError> {
        let row = sqlx::query(
            "select organization_id, user_id, created_at from first_start \
             where revealed_at is null order by organization_id limit 1",
        )
        .fetch_optional(self.writer())
        .await?;
        row.map(|r| {
            Ok(UnrevealedFirstStart {
                organization_id: OrganizationId(r.try_get("organization_id")?),
                user_id: UserId(r.try_get("user_id")?),
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// Gives the first organization and its first user new secrets. Only for secrets
    /// nobody was ever shown: no one can hold the ones replaced. `NotFound` when the row
    /// `first` was read from has changed since: another replica starting at the same time
    /// replaced them first, and shows its own.
    pub async fn replace_unrevealed_secrets(
        &self,
        first: UnrevealedFirstStart,
        organization_secret: &Secret,
        user_secret: &Secret,
        now: i64,
    ) -> Result<(), StoreError> {
        let keyring = self.keyring();
        let mut tx = self.writer().begin().await?;
        // Compare and set: PostgreSQL makes a concurrent claim wait for this one's commit
        // and then finds `created_at` changed.
        let claimed = sqlx::query(
            "update first_start set created_at = $1 \
             where organization_id = $2 and revealed_at is null and created_at = $3",
        )
        .bind(now.max(first.created_at + 1))
        .bind(first.organization_id.0)
        .bind(first.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("update organizations set secret_hash = $1 where id = $2")
            .bind(keyring.lookup_hash(organization_secret.expose()))
            .bind(first.organization_id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("update users set secret_hash = $1 where id = $2")
            .bind(keyring.lookup_hash(user_secret.expose()))
            .bind(first.user_id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that the first organization's secrets have been shown.
    pub async fn mark_first_start_revealed(
        &self,
        organization_id: OrganizationId,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("update first_start set revealed_at = $1 where organization_id = $2")
            .bind(now)
            .bind(organization_id.0)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}

/// The id of the key a sealed value names (see `junction_crypto::Keyring::seal`): a
/// format byte, then the id, big-endian.
fn sealed_key_id(sealed: &[u8]) -> u32 {
    sealed
        .get(1..5)
        .and_then(|id| <[u8; 4]>::try_from(id).ok())
        .map_or(0, u32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DatabaseUrl, NewInstance};
    use junction_core::config::ConfigMap;
    use junction_crypto::Keyring;
    use std::sync::Arc;

    async fn open(path: &std::path::Path, key: &Secret) -> Store {
        let url = DatabaseUrl::parse(path.to_str().unwrap()).unwrap();
        let store = Store::connect(&url, Arc::new(Keyring::parse(key).unwrap()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// A database whose data was sealed before key checks existed.
    async fn upgraded_database(path: &std::path::Path, key: &Secret) {
        let store = open(path, key).await;
        let created = store
            .create_first_organization(
                NewOrganization {
                    name: "o",
                    account_name: "a",
                    email: "e@example.com",
                    first_name: "f",
                    last_name: "l",
                    organization_secret: &Secret::new("organization-secret"),
                    user_secret: &Secret::new("user-secret"),
                    now: 1,
                },
                false,
            )
            .await
            .unwrap();
        let mut secrets = ConfigMap::new();
        secrets.insert("oauth.api.secret".into(), Some("client-secret".into()));
        store
            .insert_instance(NewInstance {
                account_id: created.account_id,
                user_id: created.user_id,
                element_id: 1,
                element_key: "sfdc",
                name: "i",
                token: &Secret::new("element-token"),
                config: &ConfigMap::new(),
                secrets: &secrets,
                tags: &[],
                external_authentication: "none",
                token_expires_at: None,
                now: 1,
            })
            .await
            .unwrap();
        sqlx::query("delete from key_checks")
            .execute(store.writer())
            .await
            .unwrap();
        store.close().await;
    }

    #[tokio::test]
    async fn only_one_of_two_starts_replaces_the_unshown_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let key = junction_crypto::generate_key().unwrap();
        let store = open(&dir.path().join("j.db"), &key).await;
        store
            .create_first_organization(
                NewOrganization {
                    name: "o",
                    account_name: "a",
                    email: "e@example.com",
                    first_name: "f",
                    last_name: "l",
                    organization_secret: &Secret::new("organization-secret"),
                    user_secret: &Secret::new("user-secret"),
                    now: 5,
                },
                true,
            )
            .await
            .unwrap();
        // Both starts read the row before either replaces.
        let seen_by_one = store.unrevealed_first_start().await.unwrap().unwrap();
        let seen_by_other = store.unrevealed_first_start().await.unwrap().unwrap();
        let one = Secret::new("first-replacement");
        store
            .replace_unrevealed_secrets(seen_by_one, &one, &one, 5)
            .await
            .unwrap();
        let other = Secret::new("second-replacement");
        let lost = store
            .replace_unrevealed_secrets(seen_by_other, &other, &other, 5)
            .await
            .unwrap_err();
        assert!(matches!(lost, StoreError::NotFound), "{lost:?}");
        let hash: Vec<u8> = sqlx::query_scalar("select secret_hash from users")
            .fetch_one(store.writer())
            .await
            .unwrap();
        assert_eq!(hash, store.keyring().lookup_hash(one.expose()));
    }

    #[tokio::test]
    async fn an_upgraded_database_refuses_a_key_that_cannot_open_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let key = junction_crypto::generate_key().unwrap();
        upgraded_database(&path, &key).await;

        let other = junction_crypto::generate_key().unwrap();
        let wrong = open(&path, &other).await;
        let refused = wrong.check_keys(2).await.unwrap_err();
        assert!(
            matches!(refused, StoreError::WrongKey { key_id: 1 }),
            "{refused:?}"
        );
        let other_id = Secret::new(format!("7:{}", other.expose()));
        let refused = open(&path, &other_id)
            .await
            .check_keys(2)
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, StoreError::NoKnownKey { stored } if stored == &[1]),
            "{refused:?}"
        );
        // Nothing was recorded for the wrong keys: the right one still starts.
        let right = open(&path, &key).await;
        right.check_keys(3).await.unwrap();
        let checks: i64 = sqlx::query_scalar("select count(*) from key_checks")
            .fetch_one(right.writer())
            .await
            .unwrap();
        assert_eq!(checks, 1);
        assert!(open(&path, &other).await.check_keys(4).await.is_err());
    }
}

//! Hubs an organization created (`POST /hubs`). Every query is scoped by organization:
//! another organization's hub is `NotFound`, exactly like a missing one. They are read
//! from the database on every call, so every replica sees a change at once.

use crate::{Store, StoreError};
use junction_core::{AccountId, OrganizationId};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRecord {
    pub id: i64,
    pub organization_id: OrganizationId,
    pub key: String,
    pub name: String,
    pub description: String,
    pub video_link: Option<String>,
    pub active: bool,
    pub created_at: i64,
}

pub struct NewHub<'a> {
    pub organization_id: OrganizationId,
    pub key: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub video_link: Option<&'a str>,
    pub active: bool,
    pub now: i64,
}

fn hub(row: &AnyRow) -> Result<HubRecord, StoreError> {
    let active: i64 = row.try_get("active")?;
    Ok(HubRecord {
        id: row.try_get("id")?,
        organization_id: OrganizationId(row.try_get("organization_id")?),
        key: row.try_get("key")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        video_link: row.try_get("video_link")?,
        active: active != 0,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// The organization's own hubs, oldest first.
    pub async fn list_hubs(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<HubRecord>, StoreError> {
        sqlx::query(
            "select id, organization_id, key, name, description, video_link, active, created_at \
             from hubs where organization_id = $1 order by id",
        )
        .bind(organization.0)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(hub)
        .collect()
    }

    pub async fn get_hub(
        &self,
        organization: OrganizationId,
        key: &str,
    ) -> Result<HubRecord, StoreError> {
        let row = sqlx::query(
            "select id, organization_id, key, name, description, video_link, active, created_at \
             from hubs where organization_id = $1 and key = $2",
        )
        .bind(organization.0)
        .bind(key)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        hub(&row)
    }

    /// Creates a hub; a key the organization already uses is `Conflict`.
    pub async fn insert_hub(&self, new: NewHub<'_>) -> Result<HubRecord, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "insert into hubs (organization_id, key, name, description, video_link, active, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7) returning id",
        )
        .bind(new.organization_id.0)
        .bind(new.key)
        .bind(new.name)
        .bind(new.description)
        .bind(new.video_link)
        .bind(i64::from(new.active))
        .bind(new.now)
        .fetch_one(self.writer())
        .await
        .map_err(|e| match e.as_database_error() {
            Some(db) if db.is_unique_violation() => StoreError::Conflict("key".into()),
            _ => StoreError::from(e),
        })?;
        Ok(HubRecord {
            id,
            organization_id: new.organization_id,
            key: new.key.to_owned(),
            name: new.name.to_owned(),
            description: new.description.to_owned(),
            video_link: new.video_link.map(str::to_owned),
            active: new.active,
            created_at: new.now,
        })
    }

    pub async fn delete_hub(
        &self,
        organization: OrganizationId,
        key: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("delete from hubs where organization_id = $1 and key = $2")
            .bind(organization.0)
            .bind(key)
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The organization an account belongs to.
    pub async fn account_organization(
        &self,
        account: AccountId,
    ) -> Result<OrganizationId, StoreError> {
        let id: Option<i64> =
            sqlx::query_scalar("select organization_id from accounts where id = $1")
                .bind(account.0)
                .fetch_optional(self.pool())
                .await?;
        id.map(OrganizationId).ok_or(StoreError::NotFound)
    }
}

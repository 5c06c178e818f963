//! Custom elements (the Element Builder): one row per element, its definition as JSON.
//!
//! Every read is served from the in-process copies in `cache.rs` when they can be
//! trusted, so resolving an instance's element on a proxied call costs no round trip;
//! every write drops the copies after it commits and announces itself to other replicas.

use crate::cache::Change;
use crate::{Store, StoreError};
use bytes::Bytes;
use junction_core::{ElementDefinition, OrganizationId};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::sync::{Arc, OnceLock};

/// One stored custom element.
#[derive(Debug)]
pub struct CustomElement {
    pub organization_id: OrganizationId,
    pub definition: Arc<ElementDefinition>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Size of the stored JSON: what this copy weighs in memory, roughly.
    pub(crate) stored_bytes: usize,
    /// The element's detail as served by `GET /elements/{key}`, serialized on first use.
    /// It lives and dies with this copy, so a change drops it too.
    pub detail_json: OnceLock<Bytes>,
}

/// An organization's custom elements, in id order.
#[derive(Debug, Default)]
pub struct OrganizationElements {
    pub elements: Vec<Arc<CustomElement>>,
    /// Positions in `elements` by key: an organization may hold thousands, and every
    /// `GET /elements/{key}` looks one up.
    by_key: std::collections::HashMap<String, usize>,
    /// `GET /elements` for this organization (built-ins and these), serialized on first
    /// use and dropped with this copy when any of them changes.
    pub list_json: OnceLock<Bytes>,
}

impl OrganizationElements {
    fn new(elements: Vec<Arc<CustomElement>>) -> Self {
        let by_key = elements
            .iter()
            .enumerate()
            .map(|(i, e)| (e.definition.key.clone(), i))
            .collect();
        Self {
            elements,
            by_key,
            list_json: OnceLock::new(),
        }
    }

    /// The element with this key, or this numeric id.
    pub fn get(&self, key_or_id: &str) -> Option<&Arc<CustomElement>> {
        if let Some(&i) = self.by_key.get(key_or_id) {
            return self.elements.get(i);
        }
        let id = key_or_id.parse::<i64>().ok()?;
        // Ids ascend with the order of `elements`.
        let i = self
            .elements
            .binary_search_by_key(&id, |e| e.definition.id)
            .ok()?;
        self.elements.get(i)
    }

    pub(crate) fn weight(&self) -> u32 {
        let bytes: usize = self.elements.iter().map(|e| e.stored_bytes + 256).sum();
        u32::try_from(bytes + 256).unwrap_or(u32::MAX)
    }
}

const COLUMNS: &str = "id, organization_id, key, definition, created_at, updated_at";

impl Store {
    /// The organization's custom elements.
    pub async fn organization_elements(
        &self,
        organization: OrganizationId,
    ) -> Result<Arc<OrganizationElements>, StoreError> {
        if let Some(kept) = self.cache().organization_elements(organization.0) {
            return Ok(kept);
        }
        let ticket = self.cache().ticket();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "select {COLUMNS} from custom_elements where organization_id = $1 order by id"
        )))
        .bind(organization.0)
        .fetch_all(self.pool())
        .await?;
        let elements = rows
            .iter()
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(Arc::new)
            .collect();
        let found = Arc::new(OrganizationElements::new(elements));
        if let Some(ticket) = ticket {
            self.cache()
                .keep_organization_elements(ticket, organization.0, Arc::clone(&found));
        }
        Ok(found)
    }

    /// A custom element by id, whichever organization owns it: what an instance of it
    /// resolves through (the instance's own account was checked when it was made).
    pub async fn custom_element(&self, id: i64) -> Result<Option<Arc<CustomElement>>, StoreError> {
        if let Some(kept) = self.cache().custom_element(id) {
            return Ok(Some(kept));
        }
        let ticket = self.cache().ticket();
        let row = sqlx::query(AssertSqlSafe(format!(
            "select {COLUMNS} from custom_elements where id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let element = Arc::new(decode(&row)?);
        if let Some(ticket) = ticket {
            self.cache()
                .keep_custom_element(ticket, Arc::clone(&element));
        }
        Ok(Some(element))
    }

    /// Stores a new custom element and returns its id; the definition's own `id` is
    /// ignored. A key the organization already uses is a `Conflict`.
    pub async fn insert_element(
        &self,
        organization: OrganizationId,
        definition: &ElementDefinition,
        now: i64,
    ) -> Result<i64, StoreError> {
        let json = to_json(definition)?;
        let mut tx = self.writer().begin().await?;
        let id: i64 = sqlx::query_scalar(
            "insert into custom_elements (organization_id, key, definition, created_at, updated_at) \
             values ($1, $2, $3, $4, $4) returning id",
        )
        .bind(organization.0)
        .bind(&definition.key)
        .bind(json)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(key_conflict)?;
        let change = Change::Element {
            organization: organization.0,
            id,
        };
        self.commit_announced(tx, change).await?;
        Ok(id)
    }

    /// Replaces a custom element's definition (and key). `NotFound` when the organization
    /// has no element with this id.
    pub async fn update_element(
        &self,
        organization: OrganizationId,
        definition: &ElementDefinition,
        now: i64,
    ) -> Result<(), StoreError> {
        self.update_unused_element(organization, definition, now, false)
            .await
    }

    /// [`Self::update_element`], refused with `ElementInUse` when `unused` is set and an
    /// instance uses the element: a change that would misread their stored
    /// configuration.
    pub async fn update_unused_element(
        &self,
        organization: OrganizationId,
        definition: &ElementDefinition,
        now: i64,
        unused: bool,
    ) -> Result<(), StoreError> {
        let json = to_json(definition)?;
        let mut tx = self.writer().begin().await?;
        if unused {
            // Taken first, as for a delete: an instance created meanwhile on another
            // replica either counts here or is made after the change.
            let owned = sqlx::query(AssertSqlSafe(format!(
                "select id from custom_elements where organization_id = $1 and id = $2{}",
                self.row_lock()
            )))
            .bind(organization.0)
            .bind(definition.id)
            .fetch_optional(&mut *tx)
            .await?;
            if owned.is_none() {
                return Err(StoreError::NotFound);
            }
            let instances: i64 =
                sqlx::query_scalar("select count(*) from instances where element_id = $1")
                    .bind(definition.id)
                    .fetch_one(&mut *tx)
                    .await?;
            if instances > 0 {
                return Err(StoreError::ElementInUse { instances });
            }
        }
        let done = sqlx::query(
            "update custom_elements set key = $1, definition = $2, updated_at = $3 \
             where organization_id = $4 and id = $5",
        )
        .bind(&definition.key)
        .bind(json)
        .bind(now)
        .bind(organization.0)
        .bind(definition.id)
        .execute(&mut *tx)
        .await
        .map_err(key_conflict)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let change = Change::Element {
            organization: organization.0,
            id: definition.id,
        };
        self.commit_announced(tx, change).await?;
        Ok(())
    }

    /// Deletes a custom element that no instance uses. With instances left, nothing is
    /// deleted and the answer is `ElementInUse` with their number.
    pub async fn delete_element(
        &self,
        organization: OrganizationId,
        id: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await?;
        // Taken first, so an instance created meanwhile on another replica either counts
        // here or finds the element gone.
        let owned = sqlx::query(AssertSqlSafe(format!(
            "select id from custom_elements where organization_id = $1 and id = $2{}",
            self.row_lock()
        )))
        .bind(organization.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if owned.is_none() {
            return Err(StoreError::NotFound);
        }
        let instances: i64 =
            sqlx::query_scalar("select count(*) from instances where element_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if instances > 0 {
            return Err(StoreError::ElementInUse { instances });
        }
        sqlx::query("delete from custom_elements where organization_id = $1 and id = $2")
            .bind(organization.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let change = Change::Element {
            organization: organization.0,
            id,
        };
        self.commit_announced(tx, change).await?;
        Ok(())
    }
}

fn key_conflict(e: sqlx::Error) -> StoreError {
    match e.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict("key".into()),
        _ => e.into(),
    }
}

fn to_json(definition: &ElementDefinition) -> Result<String, StoreError> {
    serde_json::to_string(definition).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode(row: &AnyRow) -> Result<CustomElement, StoreError> {
    let id: i64 = row.try_get("id")?;
    let text: String = row.try_get("definition")?;
    let mut definition: ElementDefinition = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("custom element {id}: {e}")))?;
    // The row is what the element is: its id, its key, and that it is private.
    definition.id = id;
    definition.key = row.try_get("key")?;
    definition.private = true;
    Ok(CustomElement {
        organization_id: OrganizationId(row.try_get("organization_id")?),
        definition: Arc::new(definition),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        stored_bytes: text.len(),
        detail_json: OnceLock::new(),
    })
}

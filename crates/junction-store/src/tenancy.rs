//! Organizations, accounts and users, and turning presented secrets into a principal.

use crate::{Store, StoreError, placeholders};
use junction_core::{AccountId, InstanceId, OrganizationId, Secret, UserId};
use sqlx::{AssertSqlSafe, Row};

pub struct NewOrganization<'a> {
    pub name: &'a str,
    pub account_name: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub organization_secret: &'a Secret,
    pub user_secret: &'a Secret,
    pub now: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrganizationCreated {
    pub organization_id: OrganizationId,
    pub account_id: AccountId,
    pub user_id: UserId,
}

/// Who a `User …, Organization …` header proved to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub organization_id: OrganizationId,
    pub account_id: AccountId,
    pub user_id: UserId,
    /// An organization administrator: may manage the organization's accounts and users.
    pub is_admin: bool,
}

/// What an `Element …` token proved: one instance of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPrincipal {
    pub instance_id: InstanceId,
    pub account_id: AccountId,
    pub user_id: UserId,
    pub disabled: bool,
}

impl TokenPrincipal {
    fn of(record: &crate::InstanceRecord) -> Self {
        Self {
            instance_id: record.id,
            account_id: record.account_id,
            user_id: record.user_id,
            disabled: record.disabled,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub account_id: AccountId,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl Store {
    pub async fn organization_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("select count(*) from organizations")
            .fetch_one(self.pool())
            .await?)
    }

    /// Creates an organization, its first account and that account's first user (the
    /// organization's administrator), all or nothing.
    pub async fn create_organization(
        &self,
        new: NewOrganization<'_>,
    ) -> Result<OrganizationCreated, StoreError> {
        let mut tx = self.writer().begin().await?;
        let created = self.insert_organization(&mut tx, new).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub(crate) async fn insert_organization(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        new: NewOrganization<'_>,
    ) -> Result<OrganizationCreated, StoreError> {
        let keyring = self.keyring();
        let organization_id: i64 = sqlx::query_scalar(
            "insert into organizations (name, secret_hash, created_at) values ($1, $2, $3) returning id",
        )
        .bind(new.name)
        .bind(keyring.lookup_hash(new.organization_secret.expose()))
        .bind(new.now)
        .fetch_one(&mut **tx)
        .await?;
        let account_id: i64 = sqlx::query_scalar(
            "insert into accounts (organization_id, name, created_at) values ($1, $2, $3) returning id",
        )
        .bind(organization_id)
        .bind(new.account_name)
        .bind(new.now)
        .fetch_one(&mut **tx)
        .await?;
        let user_id: i64 = sqlx::query_scalar(
            "insert into users (account_id, email, first_name, last_name, secret_hash, created_at, role) \
             values ($1, $2, $3, $4, $5, $6, 'admin') returning id",
        )
        .bind(account_id)
        .bind(new.email)
        .bind(new.first_name)
        .bind(new.last_name)
        .bind(keyring.lookup_hash(new.user_secret.expose()))
        .bind(new.now)
        .fetch_one(&mut **tx)
        .await?;
        Ok(OrganizationCreated {
            organization_id: OrganizationId(organization_id),
            account_id: AccountId(account_id),
            user_id: UserId(user_id),
        })
    }

    /// The user whose secret and whose organization's secret both match, if any.
    pub async fn authenticate_user(
        &self,
        user_secret: &Secret,
        organization_secret: &Secret,
    ) -> Result<Option<Principal>, StoreError> {
        // The primary key's hashes find a kept principal; only a miss needs every key's.
        let key = (
            self.keyring().lookup_hash(user_secret.expose()),
            self.keyring().lookup_hash(organization_secret.expose()),
        );
        if let Some(principal) = self.cache().user(&key) {
            return Ok(Some(principal));
        }
        let ticket = self.cache().ticket();
        let users = self.keyring().lookup_hashes(user_secret.expose());
        let orgs = self.keyring().lookup_hashes(organization_secret.expose());
        let sql = format!(
            "select o.id as organization_id, a.id as account_id, u.id as user_id, u.role \
             from users u join accounts a on a.id = u.account_id \
             join organizations o on o.id = a.organization_id \
             where u.secret_hash in ({}) and o.secret_hash in ({})",
            placeholders(1, users.len()),
            placeholders(1 + users.len(), orgs.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for hash in users.into_iter().chain(orgs) {
            query = query.bind(hash);
        }
        let row = query.fetch_optional(self.pool()).await?;
        let principal = row
            .map(|r| {
                Ok::<_, StoreError>(Principal {
                    organization_id: OrganizationId(r.try_get("organization_id")?),
                    account_id: AccountId(r.try_get("account_id")?),
                    user_id: UserId(r.try_get("user_id")?),
                    is_admin: r.try_get::<String, _>("role")? == "admin",
                })
            })
            .transpose()?;
        if let (Some(ticket), Some(principal)) = (ticket, principal) {
            self.cache().keep_user(ticket, key, principal);
        }
        Ok(principal)
    }

    /// The instance an Element token belongs to, if it still exists.
    pub async fn authenticate_element_token(
        &self,
        token: &Secret,
    ) -> Result<Option<TokenPrincipal>, StoreError> {
        if let Some(record) = self.cache().instance_by_token(token.expose()) {
            return Ok(Some(TokenPrincipal::of(&record)));
        }
        let hashes = self.keyring().lookup_hashes(token.expose());
        if let Some(ticket) = self.cache().ticket() {
            // The whole record, not just the principal: the call being authenticated
            // reads it next, and then finds it kept.
            let Some(record) = self.instance_by_token_hashes(&hashes).await? else {
                return Ok(None);
            };
            let principal = TokenPrincipal::of(&record);
            self.cache()
                .keep_instance(ticket, std::sync::Arc::new(record));
            return Ok(Some(principal));
        }
        let sql = format!(
            "select id, account_id, user_id, disabled from instances where token_hash in ({})",
            placeholders(1, hashes.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for hash in hashes {
            query = query.bind(hash);
        }
        let row = query.fetch_optional(self.pool()).await?;
        row.map(|r| {
            Ok(TokenPrincipal {
                instance_id: InstanceId(r.try_get("id")?),
                account_id: AccountId(r.try_get("account_id")?),
                user_id: UserId(r.try_get("user_id")?),
                disabled: crate::instances::flag(&r, "disabled")?,
            })
        })
        .transpose()
    }

    pub async fn get_user(&self, id: UserId) -> Result<UserRecord, StoreError> {
        let row = sqlx::query(
            "select id, account_id, email, first_name, last_name from users where id = $1",
        )
        .bind(id.0)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(UserRecord {
            id: UserId(row.try_get("id")?),
            account_id: AccountId(row.try_get("account_id")?),
            email: row.try_get("email")?,
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
        })
    }
}

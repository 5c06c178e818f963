//! An organization's accounts and their users, as its administrators manage them. Every
//! query is scoped by organization: another organization's account or user is `NotFound`,
//! exactly like a missing one.

use crate::cache::Change;
use crate::{Store, StoreError};
use junction_core::{AccountId, OrganizationId, Secret, UserId};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

/// What a user may do: administrators manage the organization's accounts and users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    User,
}

impl Role {
    /// The stored (and wire) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admin" => Some(Self::Admin),
            "user" => Some(Self::User),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: AccountId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub description: Option<String>,
    /// The application's own id for this customer; unique in the organization when set.
    pub external_id: Option<String>,
    pub created_at: i64,
}

pub struct NewAccount<'a> {
    pub organization_id: OrganizationId,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub external_id: Option<&'a str>,
    pub now: i64,
}

/// Every field an account update writes.
pub struct AccountUpdate<'a> {
    pub organization_id: OrganizationId,
    pub id: AccountId,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub external_id: Option<&'a str>,
}

/// A user as the accounts API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDetails {
    pub id: UserId,
    pub account_id: AccountId,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub created_at: i64,
}

pub struct NewUser<'a> {
    pub organization_id: OrganizationId,
    pub account_id: AccountId,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub role: Role,
    /// Stored only as its keyed lookup hash.
    pub secret: &'a Secret,
    pub now: i64,
}

/// What deleting an account did, or why it was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountRemoval {
    Removed {
        instances: u64,
        users: u64,
    },
    /// The account holds every administrator of the organization.
    HoldsLastAdmin,
}

/// What deleting a user did, or why it was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRemoval {
    Removed,
    /// Instances reference their owner; the user owns this many.
    OwnsInstances(i64),
    /// The organization would be left without an administrator.
    LastAdmin,
}

const ACCOUNT_COLUMNS: &str = "id, organization_id, name, description, external_id, created_at";

const USER_COLUMNS: &str =
    "u.id, u.account_id, u.email, u.first_name, u.last_name, u.role, u.created_at";

fn account(row: &AnyRow) -> Result<AccountRecord, StoreError> {
    Ok(AccountRecord {
        id: AccountId(row.try_get("id")?),
        organization_id: OrganizationId(row.try_get("organization_id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        external_id: row.try_get("external_id")?,
        created_at: row.try_get("created_at")?,
    })
}

fn user(row: &AnyRow) -> Result<UserDetails, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(UserDetails {
        id: UserId(row.try_get("id")?),
        account_id: AccountId(row.try_get("account_id")?),
        email: row.try_get("email")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown user role '{role}'")))?,
        created_at: row.try_get("created_at")?,
    })
}

/// Serializes, per organization, the transactions that could remove its last
/// administrator: a no-op write takes the organization's row lock on PostgreSQL (SQLite
/// already admits one writer at a time). Without it, two administrators deleting each
/// other at once could both succeed.
async fn lock_organization(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    organization: OrganizationId,
) -> Result<(), StoreError> {
    sqlx::query("update organizations set name = name where id = $1")
        .bind(organization.0)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A duplicate `external_id` becomes `Conflict`; anything else stays a database error.
fn external_id_conflict(e: sqlx::Error) -> StoreError {
    match e.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict("external_id".into()),
        _ => StoreError::from(e),
    }
}

impl Store {
    /// The organization's accounts, oldest first.
    pub async fn list_accounts(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<AccountRecord>, StoreError> {
        let sql = format!(
            "select {ACCOUNT_COLUMNS} from accounts where organization_id = $1 order by id"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(organization.0)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(account)
            .collect()
    }

    pub async fn get_account(
        &self,
        organization: OrganizationId,
        id: AccountId,
    ) -> Result<AccountRecord, StoreError> {
        let sql = format!(
            "select {ACCOUNT_COLUMNS} from accounts where organization_id = $1 and id = $2"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(organization.0)
            .bind(id.0)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound)?;
        account(&row)
    }

    /// Creates an account; an `external_id` already used in the organization is `Conflict`.
    pub async fn insert_account(&self, new: NewAccount<'_>) -> Result<AccountRecord, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "insert into accounts (organization_id, name, description, external_id, created_at) \
             values ($1, $2, $3, $4, $5) returning id",
        )
        .bind(new.organization_id.0)
        .bind(new.name)
        .bind(new.description)
        .bind(new.external_id)
        .bind(new.now)
        .fetch_one(self.writer())
        .await
        .map_err(external_id_conflict)?;
        Ok(AccountRecord {
            id: AccountId(id),
            organization_id: new.organization_id,
            name: new.name.to_owned(),
            description: new.description.map(str::to_owned),
            external_id: new.external_id.map(str::to_owned),
            created_at: new.now,
        })
    }

    /// Writes an account's name, description and external id.
    pub async fn update_account(
        &self,
        update: AccountUpdate<'_>,
    ) -> Result<AccountRecord, StoreError> {
        let done = sqlx::query(
            "update accounts set name = $1, description = $2, external_id = $3 \
             where organization_id = $4 and id = $5",
        )
        .bind(update.name)
        .bind(update.description)
        .bind(update.external_id)
        .bind(update.organization_id.0)
        .bind(update.id.0)
        .execute(self.writer())
        .await
        .map_err(external_id_conflict)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_account(update.organization_id, update.id).await
    }

    /// Deletes the account with its instances (and their tags) and its users, in one
    /// transaction. Children go first, so both dialects behave alike whatever their
    /// foreign-key cascade settings.
    pub async fn delete_account(
        &self,
        organization: OrganizationId,
        id: AccountId,
    ) -> Result<AccountRemoval, StoreError> {
        let mut tx = self.writer().begin().await?;
        lock_organization(&mut tx, organization).await?;
        let exists: Option<i64> =
            sqlx::query_scalar("select id from accounts where organization_id = $1 and id = $2")
                .bind(organization.0)
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let admins_elsewhere: i64 = sqlx::query_scalar(
            "select count(*) from users u join accounts a on a.id = u.account_id \
             where a.organization_id = $1 and u.account_id <> $2 and u.role = 'admin'",
        )
        .bind(organization.0)
        .bind(id.0)
        .fetch_one(&mut *tx)
        .await?;
        if admins_elsewhere == 0 {
            return Ok(AccountRemoval::HoldsLastAdmin);
        }
        // The pollers before their instances, in the order a poll storing its events
        // takes the rows, so the two never wait on each other.
        for table in [
            "event_poller_seen",
            "event_pollers",
            "instance_tags",
            "instance_trace_logs",
        ] {
            sqlx::query(AssertSqlSafe(format!(
                "delete from {table} where instance_id in \
                 (select id from instances where account_id = $1)"
            )))
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        }
        let instances = sqlx::query("delete from instances where account_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let users = sqlx::query("delete from users where account_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("delete from accounts where organization_id = $1 and id = $2")
            .bind(organization.0)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        self.commit_announced(tx, Change::Account(id.0)).await?;
        Ok(AccountRemoval::Removed { instances, users })
    }

    /// The account's users, oldest first; the account must be the organization's.
    pub async fn list_account_users(
        &self,
        organization: OrganizationId,
        account: AccountId,
    ) -> Result<Vec<UserDetails>, StoreError> {
        self.get_account(organization, account).await?;
        let sql =
            format!("select {USER_COLUMNS} from users u where u.account_id = $1 order by u.id");
        sqlx::query(AssertSqlSafe(sql))
            .bind(account.0)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(user)
            .collect()
    }

    /// One user of the organization, by id.
    pub async fn get_user_details(
        &self,
        organization: OrganizationId,
        id: UserId,
    ) -> Result<UserDetails, StoreError> {
        let sql = format!(
            "select {USER_COLUMNS} from users u join accounts a on a.id = u.account_id \
             where a.organization_id = $1 and u.id = $2"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(organization.0)
            .bind(id.0)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound)?;
        user(&row)
    }

    /// Adds a user to one of the organization's accounts; its secret is kept only as the
    /// keyring's lookup hash.
    pub async fn insert_user(&self, new: NewUser<'_>) -> Result<UserDetails, StoreError> {
        let mut tx = self.writer().begin().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("select id from accounts where organization_id = $1 and id = $2")
                .bind(new.organization_id.0)
                .bind(new.account_id.0)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let id: i64 = sqlx::query_scalar(
            "insert into users (account_id, email, first_name, last_name, secret_hash, created_at, role) \
             values ($1, $2, $3, $4, $5, $6, $7) returning id",
        )
        .bind(new.account_id.0)
        .bind(new.email)
        .bind(new.first_name)
        .bind(new.last_name)
        .bind(self.keyring().lookup_hash(new.secret.expose()))
        .bind(new.now)
        .bind(new.role.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(UserDetails {
            id: UserId(id),
            account_id: new.account_id,
            email: new.email.to_owned(),
            first_name: new.first_name.to_owned(),
            last_name: new.last_name.to_owned(),
            role: new.role,
            created_at: new.now,
        })
    }

    /// Deletes one of the organization's users, unless they still own instances or are
    /// its last administrator.
    pub async fn delete_user(
        &self,
        organization: OrganizationId,
        id: UserId,
    ) -> Result<UserRemoval, StoreError> {
        let mut tx = self.writer().begin().await?;
        lock_organization(&mut tx, organization).await?;
        let role: String = sqlx::query_scalar(
            "select u.role from users u join accounts a on a.id = u.account_id \
             where a.organization_id = $1 and u.id = $2",
        )
        .bind(organization.0)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let owned: i64 = sqlx::query_scalar("select count(*) from instances where user_id = $1")
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
        if owned > 0 {
            return Ok(UserRemoval::OwnsInstances(owned));
        }
        if role == Role::Admin.as_str() {
            let other_admins: i64 = sqlx::query_scalar(
                "select count(*) from users u join accounts a on a.id = u.account_id \
                 where a.organization_id = $1 and u.id <> $2 and u.role = 'admin'",
            )
            .bind(organization.0)
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
            if other_admins == 0 {
                return Ok(UserRemoval::LastAdmin);
            }
        }
        sqlx::query("delete from users where id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        self.commit_announced(tx, Change::Users).await?;
        Ok(UserRemoval::Removed)
    }
}

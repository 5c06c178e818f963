//! Accounts and users: an organization's administrators create, read, change and delete
//! the organization's accounts and their users. Everything is scoped by the caller's
//! organization; another organization's account or user is "not found", like a missing one.

use crate::view::iso8601;
use crate::{Caller, ServiceError, Services, now_ms};
use junction_core::sanitize::strip_html;
use junction_core::{AccountId, UserId};
use junction_store::{
    AccountRecord, AccountRemoval, AccountUpdate, NewAccount, NewUser, Principal, Role, StoreError,
    UserDetails, UserRemoval,
};
use serde::{Deserialize, Serialize};

pub const MAX_NAME: usize = 255;
pub const MAX_DESCRIPTION: usize = 2000;
pub const MAX_EXTERNAL_ID: usize = 255;
pub const MAX_EMAIL: usize = 320;
/// Random bytes in a new user's secret.
const USER_SECRET_BYTES: usize = 32;

/// The body of `POST /accounts` and `PATCH /accounts/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub external_id: Option<String>,
}

/// The body of `POST /accounts/{id}/users`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserBody {
    pub email_address: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub role: Option<String>,
}

/// An account of the caller's organization.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub external_id: Option<String>,
    pub active: bool,
    pub created_date: String,
    pub organization_id: i64,
}

/// A user of an account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountUserView {
    pub id: i64,
    pub email_address: String,
    pub first_name: String,
    pub last_name: String,
    pub account_id: i64,
    #[schema(value_type = String)]
    pub role: &'static str,
    pub created_date: String,
}

/// A user just created: the only time their secret is shown. No `Debug`, so the secret
/// cannot reach a log line.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NewUserView {
    #[serde(flatten)]
    pub user: AccountUserView,
    pub secret: String,
}

impl From<AccountRecord> for AccountView {
    fn from(r: AccountRecord) -> Self {
        Self {
            id: r.id.0,
            name: r.name,
            description: r.description,
            external_id: r.external_id,
            active: true,
            created_date: iso8601(r.created_at),
            organization_id: r.organization_id.0,
        }
    }
}

impl From<UserDetails> for AccountUserView {
    fn from(u: UserDetails) -> Self {
        Self {
            id: u.id.0,
            email_address: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            account_id: u.account_id.0,
            role: u.role.as_str(),
            created_date: iso8601(u.created_at),
        }
    }
}

/// The caller, if they are an organization administrator.
fn require_admin(caller: &Caller) -> Result<Principal, ServiceError> {
    match caller {
        Caller::User(p) if p.is_admin => Ok(*p),
        Caller::User(_) => Err(ServiceError::Forbidden(
            "managing accounts and users needs an organization administrator; \
             this user is not one"
                .to_owned(),
        )),
        Caller::Instance(_) => Err(ServiceError::Unauthorized(
            "this call needs 'User <secret>, Organization <secret>' of an organization \
             administrator, not an Element token"
                .to_owned(),
        )),
    }
}

fn too_long(code: &'static str, field: &str, max: usize) -> ServiceError {
    ServiceError::bad_request(code, format!("{field} is longer than {max} characters"))
}

/// A name, HTML-stripped like instance names; blank is refused.
fn clean_name(raw: &str) -> Result<String, ServiceError> {
    let name = strip_html(raw);
    if name.is_empty() {
        return Err(ServiceError::bad_request(
            "invalid_name",
            "name must not be empty",
        ));
    }
    if name.chars().count() > MAX_NAME {
        return Err(too_long("invalid_name", "name", MAX_NAME));
    }
    Ok(name)
}

/// Optional free text, HTML-stripped; blank means none.
fn clean_text(
    raw: &str,
    code: &'static str,
    field: &str,
    max: usize,
) -> Result<Option<String>, ServiceError> {
    let text = strip_html(raw);
    if text.chars().count() > max {
        return Err(too_long(code, field, max));
    }
    Ok(Some(text).filter(|t| !t.is_empty()))
}

/// An external id is the application's own key, kept exactly (but trimmed); blank means none.
fn clean_external_id(raw: &str) -> Result<Option<String>, ServiceError> {
    let id = raw.trim();
    if id.chars().count() > MAX_EXTERNAL_ID {
        return Err(too_long(
            "invalid_external_id",
            "externalId",
            MAX_EXTERNAL_ID,
        ));
    }
    Ok(Some(id.to_owned()).filter(|i| !i.is_empty()))
}

fn clean_email(raw: Option<&str>) -> Result<String, ServiceError> {
    let email = raw.map(str::trim).unwrap_or_default();
    if email.is_empty() {
        return Err(ServiceError::bad_request(
            "missing_parameter",
            "emailAddress is required",
        ));
    }
    if email.chars().count() > MAX_EMAIL {
        return Err(too_long("invalid_email_address", "emailAddress", MAX_EMAIL));
    }
    let valid = email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.contains(char::is_whitespace)
        && !email.contains(['<', '>']);
    if !valid {
        return Err(ServiceError::bad_request(
            "invalid_email_address",
            format!("emailAddress must be an email address like name@example.com, got '{email}'"),
        ));
    }
    Ok(email.to_owned())
}

fn clean_role(raw: Option<&str>) -> Result<Role, ServiceError> {
    match raw {
        None => Ok(Role::User),
        Some(r) => Role::parse(r.trim()).ok_or_else(|| {
            ServiceError::bad_request(
                "invalid_role",
                format!("role must be 'user' or 'admin', got '{r}'"),
            )
        }),
    }
}

fn account_error(e: StoreError, id: i64, external_id: Option<&str>) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::AccountNotFound(id),
        StoreError::Conflict(_) => ServiceError::Conflict(format!(
            "another account of this organization already has externalId '{}'",
            external_id.unwrap_or_default()
        )),
        other => other.into(),
    }
}

impl Services {
    /// Refuses anyone but an organization administrator.
    pub fn require_admin(&self, caller: &Caller) -> Result<Principal, ServiceError> {
        require_admin(caller)
    }

    pub async fn list_accounts(&self, caller: &Caller) -> Result<Vec<AccountView>, ServiceError> {
        let admin = require_admin(caller)?;
        let accounts = self.store.list_accounts(admin.organization_id).await?;
        Ok(accounts.into_iter().map(AccountView::from).collect())
    }

    pub async fn get_account(&self, caller: &Caller, id: i64) -> Result<AccountView, ServiceError> {
        let admin = require_admin(caller)?;
        self.store
            .get_account(admin.organization_id, AccountId(id))
            .await
            .map(AccountView::from)
            .map_err(|e| account_error(e, id, None))
    }

    pub async fn create_account(
        &self,
        caller: &Caller,
        body: AccountBody,
    ) -> Result<AccountView, ServiceError> {
        let admin = require_admin(caller)?;
        let name = match body.name.as_deref() {
            Some(raw) => clean_name(raw)?,
            None => {
                return Err(ServiceError::bad_request(
                    "missing_parameter",
                    "name is required",
                ));
            }
        };
        let description = body
            .description
            .as_deref()
            .map(|d| clean_text(d, "invalid_description", "description", MAX_DESCRIPTION))
            .transpose()?
            .flatten();
        let external_id = body
            .external_id
            .as_deref()
            .map(clean_external_id)
            .transpose()?
            .flatten();
        let record = self
            .store
            .insert_account(NewAccount {
                organization_id: admin.organization_id,
                name: &name,
                description: description.as_deref(),
                external_id: external_id.as_deref(),
                now: now_ms(),
            })
            .await
            .map_err(|e| account_error(e, 0, external_id.as_deref()))?;
        tracing::info!(account_id = %record.id, "account created");
        Ok(record.into())
    }

    /// Changes only the fields the body names; a blank description or externalId clears it.
    pub async fn update_account(
        &self,
        caller: &Caller,
        id: i64,
        body: AccountBody,
    ) -> Result<AccountView, ServiceError> {
        let admin = require_admin(caller)?;
        let current = self
            .store
            .get_account(admin.organization_id, AccountId(id))
            .await
            .map_err(|e| account_error(e, id, None))?;
        let name = match body.name.as_deref() {
            Some(raw) => clean_name(raw)?,
            None => current.name,
        };
        let description = match body.description.as_deref() {
            Some(raw) => clean_text(raw, "invalid_description", "description", MAX_DESCRIPTION)?,
            None => current.description,
        };
        let external_id = match body.external_id.as_deref() {
            Some(raw) => clean_external_id(raw)?,
            None => current.external_id,
        };
        let record = self
            .store
            .update_account(AccountUpdate {
                organization_id: admin.organization_id,
                id: AccountId(id),
                name: &name,
                description: description.as_deref(),
                external_id: external_id.as_deref(),
            })
            .await
            .map_err(|e| account_error(e, id, external_id.as_deref()))?;
        Ok(record.into())
    }

    /// Deletes the account with its instances and users. Administrators cannot delete the
    /// account they belong to.
    pub async fn delete_account(&self, caller: &Caller, id: i64) -> Result<(), ServiceError> {
        let admin = require_admin(caller)?;
        if admin.account_id == AccountId(id) {
            return Err(ServiceError::Conflict(format!(
                "account {id} is your own account; an administrator of another account must delete it"
            )));
        }
        match self
            .store
            .delete_account(admin.organization_id, AccountId(id))
            .await
            .map_err(|e| account_error(e, id, None))?
        {
            AccountRemoval::Removed { instances, users } => {
                tracing::info!(account_id = id, instances, users, "account deleted");
                Ok(())
            }
            AccountRemoval::HoldsLastAdmin => Err(ServiceError::Conflict(format!(
                "account {id} holds every administrator of the organization; \
                 make a user of another account an administrator first"
            ))),
        }
    }

    pub async fn list_account_users(
        &self,
        caller: &Caller,
        account_id: i64,
    ) -> Result<Vec<AccountUserView>, ServiceError> {
        let admin = require_admin(caller)?;
        let users = self
            .store
            .list_account_users(admin.organization_id, AccountId(account_id))
            .await
            .map_err(|e| account_error(e, account_id, None))?;
        Ok(users.into_iter().map(AccountUserView::from).collect())
    }

    /// Adds a user to the account and answers their secret, this one time only.
    pub async fn create_user(
        &self,
        caller: &Caller,
        account_id: i64,
        body: UserBody,
    ) -> Result<NewUserView, ServiceError> {
        let admin = require_admin(caller)?;
        let email = clean_email(body.email_address.as_deref())?;
        let first_name = body
            .first_name
            .as_deref()
            .map(|n| clean_text(n, "invalid_first_name", "firstName", MAX_NAME))
            .transpose()?
            .flatten()
            .unwrap_or_default();
        let last_name = body
            .last_name
            .as_deref()
            .map(|n| clean_text(n, "invalid_last_name", "lastName", MAX_NAME))
            .transpose()?
            .flatten()
            .unwrap_or_default();
        let role = clean_role(body.role.as_deref())?;
        let secret = junction_crypto::generate_secret(USER_SECRET_BYTES)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let user = self
            .store
            .insert_user(NewUser {
                organization_id: admin.organization_id,
                account_id: AccountId(account_id),
                email: &email,
                first_name: &first_name,
                last_name: &last_name,
                role,
                secret: &secret,
                now: now_ms(),
            })
            .await
            .map_err(|e| account_error(e, account_id, None))?;
        tracing::info!(user_id = %user.id, account_id, role = role.as_str(), "user created");
        Ok(NewUserView {
            user: user.into(),
            secret: secret.expose().to_owned(),
        })
    }

    pub async fn get_account_user(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<AccountUserView, ServiceError> {
        let admin = require_admin(caller)?;
        self.store
            .get_user_details(admin.organization_id, UserId(id))
            .await
            .map(AccountUserView::from)
            .map_err(|e| user_error(e, id))
    }

    /// Deletes a user who owns no instances. Administrators cannot delete themselves, and
    /// the organization keeps at least one administrator.
    pub async fn delete_user(&self, caller: &Caller, id: i64) -> Result<(), ServiceError> {
        let admin = require_admin(caller)?;
        if admin.user_id == UserId(id) {
            return Err(ServiceError::Conflict(
                "you cannot delete yourself; another administrator must".to_owned(),
            ));
        }
        match self
            .store
            .delete_user(admin.organization_id, UserId(id))
            .await
            .map_err(|e| user_error(e, id))?
        {
            UserRemoval::Removed => {
                tracing::info!(user_id = id, "user deleted");
                Ok(())
            }
            UserRemoval::OwnsInstances(n) => Err(ServiceError::Conflict(format!(
                "user {id} still owns {n} instance{}; delete {} first, or delete the whole account",
                if n == 1 { "" } else { "s" },
                if n == 1 { "it" } else { "them" },
            ))),
            UserRemoval::LastAdmin => Err(ServiceError::Conflict(format!(
                "user {id} is the organization's last administrator"
            ))),
        }
    }
}

fn user_error(e: StoreError, id: i64) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::UserNotFound(id),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_need_an_at_sign_between_two_parts() {
        assert_eq!(
            clean_email(Some(" ops@example.com ")).unwrap(),
            "ops@example.com"
        );
        assert!(clean_email(Some("ops.example.com")).is_err());
        assert!(clean_email(Some("@example.com")).is_err());
        assert!(clean_email(Some("a b@example.com")).is_err());
        assert!(clean_email(None).is_err());
    }

    #[test]
    fn names_are_stripped_and_blank_text_means_none() {
        assert_eq!(clean_name("<b>Acme</b>").unwrap(), "Acme");
        assert!(clean_name("<i></i>").is_err());
        assert_eq!(clean_text("  ", "c", "f", 10).unwrap(), None);
        assert_eq!(clean_external_id(" cust-42 ").unwrap().unwrap(), "cust-42");
        assert!(clean_role(Some("owner")).is_err());
        assert_eq!(clean_role(None).unwrap(), Role::User);
    }
}

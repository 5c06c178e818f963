//! The hosted Connect page's use cases: an account's OAuth apps, and Connect sessions an
//! app creates for one end customer. The page asks the customer only for what they must
//! provide; the client id and secret come from the OAuth app, server side, and Junction
//! itself finishes the code exchange, with the OAuth `state` bound to the session.

use crate::instances::{ElementRef, InstanceBody, ProviderData, platform_user};
use crate::view::iso8601;
use crate::{Caller, OAuthUrlParams, ServiceError, Services, now_ms};
use junction_core::config::keys;
use junction_core::credential::OAuthGrant;
use junction_core::element::AuthenticationType;
use junction_core::{AccountId, ElementDefinition, Secret, UserId};
use junction_store::{
    ConnectSessionEnd, ConnectSessionRecord, ConnectStatus, NewConnectSession, NewOAuthApp,
    OAuthAppRecord, Principal, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Default and bounds of a session's life, in seconds.
pub const SESSION_SECONDS: i64 = 15 * 60;
pub const SESSION_SECONDS_MIN: i64 = 60;
pub const SESSION_SECONDS_MAX: i64 = 24 * 60 * 60;
/// Elements one session may offer.
pub const MAX_SESSION_ELEMENTS: usize = 20;
/// Where the provider sends the customer back, under Junction's own address.
pub const CALLBACK_PATH: &str = "/connect/callback";
/// Sessions one purge statement deletes.
pub const PURGE_BATCH: i64 = 500;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuthAppBody {
    /// The element's key.
    pub element: String,
    pub client_id: String,
    pub client_secret: String,
    /// Another account of the organization (administrators only); default: the caller's.
    pub account_id: Option<i64>,
    /// App-wide configuration every instance created through the app starts with, such
    /// as a sandbox's token URL.
    pub configuration: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthAppView {
    pub id: i64,
    pub element: String,
    pub account_id: i64,
    pub client_id: String,
    /// Always masked.
    pub client_secret: String,
    pub configuration: BTreeMap<String, String>,
    pub created_date: String,
}

impl From<OAuthAppRecord> for OAuthAppView {
    fn from(app: OAuthAppRecord) -> Self {
        Self {
            id: app.id,
            element: app.element_key,
            account_id: app.account_id.0,
            client_id: app.client_id,
            client_secret: junction_core::MASK.to_owned(),
            configuration: app.configuration,
            created_date: iso8601(app.created_at),
        }
    }
}

/// Which account's OAuth apps or sessions a call reads or deletes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AccountParams {
    /// Another account of the organization (administrators only); default: the caller's.
    pub account_id: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InlineOAuthApp {
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectSessionBody {
    /// The element to connect; or `elements`, a short list to choose from.
    pub element: Option<String>,
    pub elements: Option<Vec<String>>,
    /// The account the instance is created in (administrators only for another account).
    pub account_id: Option<i64>,
    /// Where the customer is sent when done, with `instanceId` and `connectSessionId`.
    pub return_url: String,
    pub name: Option<String>,
    pub tags: Option<Vec<String>>,
    /// Seconds until the link stops working: 60 to 86400, default 900.
    pub expires_in: Option<i64>,
    /// A client id and secret for this session, instead of the account's stored OAuth app.
    pub oauth_app: Option<InlineOAuthApp>,
    /// Where Junction POSTs one notification when the session ends (completed, failed or
    /// expired), as `event.notification.callback.url` does for an instance's events.
    /// Checked against the outbound address policy.
    pub event_notification_callback_url: Option<String>,
    /// Signs that notification (`Elements-Webhook-Signature`, and the Standard Webhooks
    /// headers), as `event.notification.signature.key` does for an instance. Stored
    /// sealed and never returned.
    pub event_notification_signature_key: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectSessionCreated {
    pub id: i64,
    /// The page to send the end customer to; the token rides in its fragment, which
    /// browsers never send to a server.
    pub url: String,
    pub token: String,
    pub expires_at: String,
    pub status: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectSessionView {
    pub id: i64,
    /// `pending`, `authorizing`, `completing`, `completed`, `denied`, `failed` or `expired`.
    pub status: String,
    pub elements: Vec<String>,
    pub element: Option<String>,
    pub instance_id: Option<i64>,
    pub error: Option<String>,
    pub return_url: String,
    /// Where the session's ending is notified, if anywhere.
    pub event_notification_callback_url: Option<String>,
    pub expires_at: String,
    pub created_date: String,
}

/// What a session's `eventNotificationCallbackUrl` receives, once, when the session ends.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectSessionEvent {
    pub message: ConnectSessionEventMessage,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectSessionEventMessage {
    /// The event's id. The `Elements-Webhook-Id` header, the same on every retry, is
    /// what a receiver deduplicates on.
    pub event_id: String,
    pub session_id: i64,
    /// `completed` (the instance exists), `failed` (the provider refused or the customer
    /// denied access, or the instance could not be created) or `expired`.
    pub status: String,
    /// The session's own status, as `GET /connect/sessions/{id}` shows it: `completed`,
    /// `denied`, `failed` or `expired`.
    pub session_status: String,
    /// The instance created, when `completed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<i64>,
    /// The element the customer chose, once they chose one.
    pub element_key: Option<String>,
    /// The elements the session offered.
    pub elements: Vec<String>,
    pub account_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub tags: Vec<String>,
    /// Why it failed: the provider's words, or Junction's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The body of a session's notification.
fn session_event_body(end: &ConnectSessionEnd, event_id: i64) -> String {
    let status = match end.status {
        ConnectStatus::Completed => "completed",
        ConnectStatus::Expired => "expired",
        _ => "failed",
    };
    let event = ConnectSessionEvent {
        message: ConnectSessionEventMessage {
            event_id: event_id.to_string(),
            session_id: end.id,
            status: status.to_owned(),
            session_status: end.status.as_str().to_owned(),
            instance_id: end.instance_id,
            element_key: end.element_key.clone(),
            elements: end.elements.clone(),
            account_id: end.account_id.0,
            name: end.name.clone(),
            tags: end.tags.clone(),
            error: end.error.clone(),
        },
    };
    // Plain strings and numbers: serializing cannot fail.
    serde_json::to_string(&event).unwrap_or_default()
}

impl From<&ConnectSessionRecord> for ConnectSessionView {
    fn from(s: &ConnectSessionRecord) -> Self {
        Self {
            id: s.id,
            status: s.status.as_str().to_owned(),
            elements: s.elements.clone(),
            element: s.element_key.clone(),
            instance_id: s.instance_id,
            error: s.error.clone(),
            return_url: s.return_url.clone(),
            event_notification_callback_url: s.callback_url.clone(),
            expires_at: iso8601(s.expires_at),
            created_date: iso8601(s.created_at),
        }
    }
}

/// What the Connect page shows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectPageView {
    pub elements: Vec<ConnectElementView>,
    pub expires_at: String,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectElementView {
    pub key: String,
    pub name: String,
    /// Whether the customer is sent to the provider to authorize.
    pub oauth: bool,
    pub fields: Vec<ConnectFieldView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectFieldView {
    pub key: String,
    pub name: String,
    pub secret: bool,
    pub required: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectStartBody {
    pub element: String,
    pub configuration: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectNext {
    /// Where the page sends the customer next: the provider, or the app's `returnUrl`.
    pub redirect_url: String,
}

/// What came back to `/connect/callback`.
#[derive(Debug, Default, Deserialize)]
pub struct ConnectCallback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Keys the OAuth app provides; never asked of, nor accepted from, the customer.
const APP_KEYS: &[&str] = &["oauth.api.key", "oauth.api.secret", "oauth.callback.url"];

fn authorizes(element: &ElementDefinition) -> bool {
    element.authentication.kind != AuthenticationType::Oauth1
        && element
            .oauth
            .as_ref()
            .is_some_and(|spec| spec.grant != OAuthGrant::ClientCredentials)
}

/// What the customer is asked for: required entries the app and the defaults do not fill.
fn customer_fields(
    element: &ElementDefinition,
    app_config: &BTreeMap<String, String>,
) -> Vec<ConnectFieldView> {
    element
        .configuration
        .iter()
        .filter(|c| c.required && !c.internal && !c.hide_from_console && c.default.is_none())
        .filter(|c| !APP_KEYS.contains(&c.key.as_str()) && !app_config.contains_key(&c.key))
        .map(|c| ConnectFieldView {
            key: c.key.clone(),
            name: c.name.clone(),
            secret: c.secret || c.kind == junction_core::element::ConfigType::Password,
            required: true,
        })
        .collect()
}

fn session_problem(session: &ConnectSessionRecord) -> Option<ServiceError> {
    match session.status {
        ConnectStatus::Pending | ConnectStatus::Authorizing => None,
        ConnectStatus::Expired => Some(ServiceError::ConnectSessionExpired),
        _ => Some(ServiceError::ConnectSessionUsed),
    }
}

fn check_return_url(raw: &str) -> Result<(), ServiceError> {
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(ServiceError::bad_request(
            "invalid_parameter",
            "returnUrl must be an absolute http(s) URL",
        )),
    }
}

fn with_query(base: &str, pairs: &[(&str, String)]) -> String {
    match url::Url::parse(base) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            u.into()
        }
        Err(_) => base.to_owned(),
    }
}

/// What the customer's page may say about a failure: the provider's refusal or Junction's
/// answer to the input, never a storage or internal failure's details.
fn customer_message(e: &ServiceError) -> String {
    match e {
        ServiceError::Store(_) | ServiceError::Internal(_) => {
            "Junction could not finish the connection".to_owned()
        }
        other => other.to_string(),
    }
}

/// The Connect page's own address for an outcome the customer is shown.
fn outcome(base_url: &str, status: &str, message: Option<&str>) -> String {
    let mut pairs = vec![("status", status.to_owned())];
    if let Some(m) = message {
        pairs.push(("message", m.chars().take(300).collect()));
    }
    with_query(&format!("{base_url}/connect"), &pairs)
}

impl Services {
    /// Ends every open session whose time is up, `batch` at a time, each with the
    /// notification its app asked for; returns how many ended.
    pub async fn expire_connect_sessions(&self, batch: i64) -> Result<u64, ServiceError> {
        let batch = batch.max(1);
        let mut expired = 0;
        loop {
            let ended = self
                .store
                .expire_connect_sessions(now_ms(), batch, &session_event_body)
                .await?;
            if ended > 0 {
                self.events.wake_deliveries();
            }
            expired += ended;
            if ended < batch.unsigned_abs() {
                return Ok(expired);
            }
        }
    }

    /// Deletes every Connect session that expired more than `retention` ago, `batch` at a
    /// time (each batch its own short statement), and returns how many went. Sessions
    /// still open are ended first, so none goes without its notification.
    pub async fn purge_connect_sessions(
        &self,
        retention: std::time::Duration,
        batch: i64,
    ) -> Result<u64, ServiceError> {
        self.expire_connect_sessions(batch).await?;
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms().saturating_sub(retention_ms);
        let batch = batch.max(1);
        let mut purged = 0;
        loop {
            let deleted = self.store.purge_connect_sessions(cutoff, batch).await?;
            purged += deleted;
            if deleted < batch.unsigned_abs() {
                return Ok(purged);
            }
        }
    }

    /// Ends a session with its notification; false when it had already ended.
    async fn end_session(
        &self,
        id: i64,
        status: ConnectStatus,
        instance_id: Option<i64>,
        error: Option<&str>,
    ) -> Result<bool, ServiceError> {
        let ended = self
            .store
            .finish_connect_session(
                id,
                status,
                instance_id,
                error,
                &session_event_body,
                now_ms(),
            )
            .await?;
        if ended {
            self.events.wake_deliveries();
        }
        Ok(ended)
    }

    async fn target_account(
        &self,
        caller: &Caller,
        account_id: Option<i64>,
    ) -> Result<(Principal, UserId), ServiceError> {
        platform_user(caller)?;
        let Caller::User(principal) = caller else {
            return Err(ServiceError::Unauthorized(
                "a platform user is required".into(),
            ));
        };
        match account_id {
            None => Ok((*principal, principal.user_id)),
            Some(id) if id == principal.account_id.0 => Ok((*principal, principal.user_id)),
            Some(id) => {
                if !principal.is_admin {
                    return Err(ServiceError::Forbidden(
                        "only an administrator may act for another account".into(),
                    ));
                }
                let users = self
                    .store
                    .list_account_users(principal.organization_id, AccountId(id))
                    .await
                    .map_err(|e| match e {
                        StoreError::NotFound => ServiceError::AccountNotFound(id),
                        other => other.into(),
                    })?;
                let owner = users.first().ok_or_else(|| {
                    ServiceError::bad_request(
                        "invalid_parameter",
                        format!("account {id} has no user to own the instance"),
                    )
                })?;
                Ok((
                    Principal {
                        organization_id: principal.organization_id,
                        account_id: AccountId(id),
                        user_id: owner.id,
                        is_admin: false,
                    },
                    owner.id,
                ))
            }
        }
    }

    pub async fn put_oauth_app(
        &self,
        caller: &Caller,
        body: OAuthAppBody,
    ) -> Result<OAuthAppView, ServiceError> {
        let (principal, _) = self.target_account(caller, body.account_id).await?;
        let element = self.find_element(Some(caller), &body.element).await?;
        if !authorizes(&element) {
            return Err(ServiceError::bad_request(
                "not_oauth_element",
                format!(
                    "element '{}' has no OAuth 2.0 authorization step for an app to take part in",
                    element.key
                ),
            ));
        }
        let client_id = body.client_id.trim();
        if client_id.is_empty() || body.client_secret.trim().is_empty() {
            return Err(ServiceError::bad_request(
                "missing_parameter",
                "clientId and clientSecret must not be empty",
            ));
        }
        let configuration = body.configuration.unwrap_or_default();
        if let Some(key) = configuration
            .keys()
            .find(|k| APP_KEYS.contains(&k.as_str()))
        {
            return Err(ServiceError::bad_request(
                "invalid_configuration",
                format!("'{key}' is set by Junction from clientId, clientSecret and its callback"),
            ));
        }
        let app = self
            .store
            .put_oauth_app(NewOAuthApp {
                account_id: principal.account_id,
                element_key: &element.key,
                client_id,
                client_secret: &Secret::new(body.client_secret),
                configuration: &configuration,
                now: now_ms(),
            })
            .await?;
        Ok(app.into())
    }

    pub async fn list_oauth_apps(
        &self,
        caller: &Caller,
        params: AccountParams,
    ) -> Result<Vec<OAuthAppView>, ServiceError> {
        let (principal, _) = self.target_account(caller, params.account_id).await?;
        let apps = self.store.list_oauth_apps(principal.account_id).await?;
        Ok(apps.into_iter().map(OAuthAppView::from).collect())
    }

    pub async fn delete_oauth_app(
        &self,
        caller: &Caller,
        id: i64,
        params: AccountParams,
    ) -> Result<(), ServiceError> {
        let (principal, _) = self.target_account(caller, params.account_id).await?;
        self.store
            .delete_oauth_app(principal.account_id, id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ServiceError::OAuthAppNotFound(id),
                other => other.into(),
            })
    }

    /// `base_url`: Junction's own address as the caller reached it, for the page's link
    /// and the provider's callback.
    pub async fn create_connect_session(
        &self,
        caller: &Caller,
        base_url: &str,
        body: ConnectSessionBody,
    ) -> Result<ConnectSessionCreated, ServiceError> {
        let (principal, owner) = self.target_account(caller, body.account_id).await?;
        let mut keys: Vec<String> = body.elements.unwrap_or_default();
        keys.extend(body.element);
        if keys.is_empty() || keys.len() > MAX_SESSION_ELEMENTS {
            return Err(ServiceError::bad_request(
                "missing_parameter",
                format!("name one element (element) or 1 to {MAX_SESSION_ELEMENTS} (elements)"),
            ));
        }
        check_return_url(&body.return_url)?;
        let seconds = body.expires_in.unwrap_or(SESSION_SECONDS);
        if !(SESSION_SECONDS_MIN..=SESSION_SECONDS_MAX).contains(&seconds) {
            return Err(ServiceError::bad_request(
                "invalid_duration",
                format!("expiresIn must be {SESSION_SECONDS_MIN} to {SESSION_SECONDS_MAX} seconds"),
            ));
        }
        let owner_caller = Caller::User(principal);
        let mut elements = Vec::new();
        for key in &keys {
            let element = self.find_element(Some(&owner_caller), key).await?;
            if element.authentication.kind == AuthenticationType::Oauth1 {
                return Err(ServiceError::bad_request(
                    "invalid_parameter",
                    format!(
                        "element '{}' uses OAuth 1.0a, which the Connect page does not run",
                        element.key
                    ),
                ));
            }
            if authorizes(&element)
                && body.oauth_app.is_none()
                && self
                    .store
                    .oauth_app_for(principal.account_id, &element.key)
                    .await?
                    .is_none()
            {
                return Err(ServiceError::bad_request(
                    "missing_oauth_app",
                    format!(
                        "element '{}' needs an OAuth app: POST /oauth-apps with its client id and secret, or give oauthApp",
                        element.key
                    ),
                ));
            }
            if !elements.contains(&element.key) {
                elements.push(element.key.clone());
            }
        }
        let name = body
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        let tags = body.tags.unwrap_or_default();
        crate::instances::check_name_and_tags(name, &tags)?;
        let app_secret = body
            .oauth_app
            .as_ref()
            .map(|a| (a.client_id.trim(), Secret::new(a.client_secret.clone())));
        if app_secret
            .as_ref()
            .is_some_and(|(id, secret)| id.is_empty() || secret.expose().trim().is_empty())
        {
            return Err(ServiceError::bad_request(
                "missing_parameter",
                "oauthApp needs a clientId and a clientSecret",
            ));
        }
        let callback_url = body
            .event_notification_callback_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty());
        let signature_key = body
            .event_notification_signature_key
            .filter(|k| !k.is_empty())
            .map(Secret::new);
        match callback_url {
            Some(url) => self
                .events
                .check_callback("eventNotificationCallbackUrl", url)?,
            None if signature_key.is_some() => {
                return Err(ServiceError::bad_request(
                    "invalid_parameter",
                    "eventNotificationSignatureKey needs an eventNotificationCallbackUrl to sign for",
                ));
            }
            None => {}
        }
        let token = junction_crypto::generate_secret(32)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let now = now_ms();
        let expires_at = now + seconds * 1000;
        let id = self
            .store
            .insert_connect_session(NewConnectSession {
                account_id: principal.account_id,
                user_id: owner,
                token: &token,
                elements: &elements,
                name,
                tags: &tags,
                return_url: &body.return_url,
                base_url,
                app: app_secret.as_ref().map(|(id, secret)| (*id, secret)),
                callback: callback_url.map(|url| (url, signature_key.as_ref())),
                expires_at,
                now,
            })
            .await?;
        Ok(ConnectSessionCreated {
            id,
            url: format!("{base_url}/connect#{}", token.expose()),
            token: token.expose().to_owned(),
            expires_at: iso8601(expires_at),
            status: ConnectStatus::Pending.as_str().to_owned(),
        })
    }

    pub async fn get_connect_session(
        &self,
        caller: &Caller,
        id: i64,
        params: AccountParams,
    ) -> Result<ConnectSessionView, ServiceError> {
        let (principal, _) = self.target_account(caller, params.account_id).await?;
        let session = self
            .store
            .get_connect_session(principal.account_id, id, now_ms())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ServiceError::ConnectSessionNotFound(id),
                other => other.into(),
            })?;
        Ok((&session).into())
    }

    async fn open_session(&self, token: &str) -> Result<ConnectSessionRecord, ServiceError> {
        let session = self
            .store
            .connect_session_by_token(token, now_ms())
            .await?
            .ok_or(ServiceError::ConnectSessionInvalid)?;
        match session_problem(&session) {
            Some(problem) => Err(problem),
            None => Ok(session),
        }
    }

    /// The OAuth app for the session's element: the session's own, or the account's.
    async fn session_app(
        &self,
        session: &ConnectSessionRecord,
        element_key: &str,
    ) -> Result<(String, Secret, BTreeMap<String, String>), ServiceError> {
        if let Some((id, secret)) = &session.app {
            return Ok((id.clone(), Secret::new(secret.expose()), BTreeMap::new()));
        }
        let app = self
            .store
            .oauth_app_for(session.account_id, element_key)
            .await?
            .ok_or_else(|| {
                ServiceError::bad_request(
                    "missing_oauth_app",
                    format!("the app has no OAuth app for '{element_key}' any more"),
                )
            })?;
        Ok((app.client_id, app.client_secret, app.configuration))
    }

    async fn owner(&self, session: &ConnectSessionRecord) -> Result<Caller, ServiceError> {
        let organization_id = self.store.account_organization(session.account_id).await?;
        Ok(Caller::User(Principal {
            organization_id,
            account_id: session.account_id,
            user_id: session.user_id,
            is_admin: false,
        }))
    }

    pub async fn connect_page(&self, token: &str) -> Result<ConnectPageView, ServiceError> {
        let session = self.open_session(token).await?;
        let owner = self.owner(&session).await?;
        let mut elements = Vec::new();
        for key in &session.elements {
            let element = self.find_element(Some(&owner), key).await?;
            let app_config = if authorizes(&element) {
                self.session_app(&session, key).await?.2
            } else {
                BTreeMap::new()
            };
            elements.push(ConnectElementView {
                key: element.key.clone(),
                name: element.name.clone(),
                oauth: authorizes(&element),
                fields: customer_fields(&element, &app_config),
            });
        }
        Ok(ConnectPageView {
            elements,
            expires_at: iso8601(session.expires_at),
            name: session.name.clone(),
        })
    }

    fn instance_body(
        session: &ConnectSessionRecord,
        element_key: &str,
        configuration: Map<String, Value>,
        code: Option<String>,
    ) -> InstanceBody {
        let code_verifier = session
            .pkce_verifier
            .as_ref()
            .map(|v| v.expose().to_owned());
        InstanceBody {
            element: Some(ElementRef {
                key: Some(element_key.to_owned()),
                id: None,
            }),
            provider_data: code.map(|code| ProviderData {
                code: Some(code),
                code_verifier,
                ..ProviderData::default()
            }),
            configuration: Some(configuration),
            tags: Some(session.tags.clone()),
            name: session.name.clone(),
            external_authentication: None,
        }
    }

    /// The customer pressed Connect: an OAuth element answers the provider's authorization
    /// URL (with a fresh `state` bound to the session), any other is provisioned at once.
    pub async fn connect_start(
        &self,
        token: &str,
        body: ConnectStartBody,
    ) -> Result<ConnectNext, ServiceError> {
        let session = self.open_session(token).await?;
        if !session.elements.contains(&body.element) {
            return Err(ServiceError::bad_request(
                "invalid_parameter",
                format!("this Connect session does not offer '{}'", body.element),
            ));
        }
        let owner = self.owner(&session).await?;
        let element = self.find_element(Some(&owner), &body.element).await?;
        let given = body.configuration.unwrap_or_default();
        let app_config = if authorizes(&element) {
            self.session_app(&session, &element.key).await?.2
        } else {
            BTreeMap::new()
        };
        let allowed = customer_fields(&element, &app_config);
        if let Some(key) = given.keys().find(|k| !allowed.iter().any(|f| &f.key == *k)) {
            return Err(ServiceError::bad_request(
                "invalid_configuration",
                format!("the Connect page does not take '{key}'"),
            ));
        }
        let now = now_ms();
        if !authorizes(&element) {
            if !self
                .store
                .claim_connect_session(session.id, &element.key, now)
                .await?
            {
                return Err(ServiceError::ConnectSessionUsed);
            }
            let configuration = given
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let body = Self::instance_body(&session, &element.key, configuration, None);
            return match self.create_instance(&owner, None, body).await {
                Ok(instance) => {
                    self.end_session(
                        session.id,
                        ConnectStatus::Completed,
                        Some(instance.id),
                        None,
                    )
                    .await?;
                    Ok(ConnectNext {
                        redirect_url: with_query(
                            &session.return_url,
                            &[
                                ("instanceId", instance.id.to_string()),
                                ("connectSessionId", session.id.to_string()),
                            ],
                        ),
                    })
                }
                Err(e) => {
                    // What the customer typed was refused: they may correct it.
                    self.store.reopen_connect_session(session.id).await?;
                    Err(e)
                }
            };
        }
        let (client_id, _, _) = self.session_app(&session, &element.key).await?;
        let state = junction_crypto::generate_secret(32)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        // The URL is built from what the instance will hold: the app's values (a
        // subdomain the app fills is not asked of the customer) under the customer's.
        // Only values the element's templates name go to it.
        let named = crate::templates::template_names(&element);
        let templates: BTreeMap<String, Value> = app_config
            .iter()
            .chain(&given)
            .filter(|(k, _)| named.contains(*k))
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let pkce = element.oauth.as_ref().is_some_and(|spec| spec.pkce);
        let verifier = if pkce {
            Some(
                junction_crypto::generate_secret(32)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?,
            )
        } else {
            None
        };
        let params = OAuthUrlParams {
            code_challenge: verifier
                .as_ref()
                .map(|v| junction_crypto::pkce_challenge(v.expose())),
            api_key: Some(client_id),
            callback_url: Some(format!("{}{CALLBACK_PATH}", session.base_url)),
            state: Some(state.expose().to_owned()),
            // The customer approves the scope the instance will record.
            scope: app_config.get(keys::SCOPE).cloned(),
            configuration: templates,
            ..OAuthUrlParams::default()
        };
        let url = self.oauth_url(Some(&owner), &element.key, &params).await?;
        if !self
            .store
            .start_connect_authorization(
                &session,
                &element.key,
                &state,
                &given,
                verifier.as_ref(),
                now,
            )
            .await?
        {
            return Err(ServiceError::ConnectSessionUsed);
        }
        Ok(ConnectNext {
            redirect_url: url.oauth_url,
        })
    }

    /// The provider sent the customer back. Answers where to send them: the app's
    /// `returnUrl` on success, otherwise the Connect page with what went wrong.
    pub async fn connect_callback(
        &self,
        fallback_base: &str,
        query: ConnectCallback,
    ) -> Result<String, ServiceError> {
        let now = now_ms();
        let Some(state) = query.state.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(outcome(fallback_base, "invalid", None));
        };
        let Some(session) = self.store.connect_session_by_state(state, now).await? else {
            return Ok(outcome(fallback_base, "used", None));
        };
        let base = session.base_url.clone();
        match session.status {
            ConnectStatus::Authorizing => {}
            ConnectStatus::Expired => return Ok(outcome(&base, "expired", None)),
            _ => return Ok(outcome(&base, "used", None)),
        }
        let Some(element_key) = session.element_key.clone() else {
            return Ok(outcome(&base, "invalid", None));
        };
        if let Some(error) = query.error.as_deref() {
            let status = if error == "access_denied" {
                ConnectStatus::Denied
            } else {
                ConnectStatus::Failed
            };
            let reason = query.error_description.as_deref().unwrap_or(error);
            if !self
                .store
                .end_connect_authorization(&session, status, reason, &session_event_body, now_ms())
                .await?
            {
                return Ok(outcome(&base, "used", None));
            }
            self.events.wake_deliveries();
            return Ok(outcome(&base, status.as_str(), Some(reason)));
        }
        let Some(code) = query.code.filter(|c| !c.is_empty()) else {
            return Ok(outcome(&base, "invalid", None));
        };
        if !self
            .store
            .claim_connect_authorization(&session, now)
            .await?
        {
            return Ok(outcome(&base, "used", None));
        }
        let (client_id, client_secret, app_config) =
            match self.session_app(&session, &element_key).await {
                Ok(app) => app,
                Err(e) => {
                    let message = customer_message(&e);
                    self.end_session(session.id, ConnectStatus::Failed, None, Some(&message))
                        .await?;
                    return Ok(outcome(&base, "failed", Some(&message)));
                }
            };
        let mut configuration: Map<String, Value> = app_config
            .into_iter()
            .chain(session.configuration.clone())
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        configuration.insert("oauth.api.key".into(), Value::String(client_id));
        configuration.insert(
            "oauth.api.secret".into(),
            Value::String(client_secret.expose().to_owned()),
        );
        configuration.insert(
            "oauth.callback.url".into(),
            Value::String(format!("{base}{CALLBACK_PATH}")),
        );
        let owner = self.owner(&session).await?;
        let body = Self::instance_body(&session, &element_key, configuration, Some(code));
        match self.create_instance(&owner, None, body).await {
            Ok(instance) => {
                self.end_session(
                    session.id,
                    ConnectStatus::Completed,
                    Some(instance.id),
                    None,
                )
                .await?;
                tracing::info!(
                    session = session.id,
                    instance_id = instance.id,
                    "connect session completed"
                );
                Ok(with_query(
                    &session.return_url,
                    &[
                        ("instanceId", instance.id.to_string()),
                        ("connectSessionId", session.id.to_string()),
                    ],
                ))
            }
            Err(e) => {
                let message = customer_message(&e);
                self.end_session(session.id, ConnectStatus::Failed, None, Some(&message))
                    .await?;
                Ok(outcome(&base, "failed", Some(&message)))
            }
        }
    }
}

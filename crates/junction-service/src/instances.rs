//! Instances: provisioning, reading, listing, updating, re-provisioning, enabling and
//! deleting.

use crate::configuration::{defaults, missing_required, overlay};
use crate::credentials::Authorization;
use crate::hosts;
use crate::schemes;
use crate::templates;
use crate::view::InstanceView;
use crate::{Caller, ServiceError, Services, now_ms};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use junction_core::config::keys;
use junction_core::credential::OAuthGrant;
use junction_core::element::{AuthenticationType, ProtocolType};
use junction_core::sanitize::strip_html;
use junction_core::{ConfigMap, ElementDefinition, InstanceId, UserId};
use junction_store::{
    InstanceQuery, InstanceRecord, InstanceUpdate, NewInstance, StoreError, UserRecord,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Longest instance name.
pub const MAX_NAME: usize = 255;
/// Most tags one instance carries.
pub const MAX_TAGS: usize = 100;
/// Most `tags[]` values one list call may filter by. Each value is a bound parameter of
/// the list query; an unbounded count made the query itself the attack.
pub const MAX_TAG_FILTERS: usize = 50;
/// Longest `searchText`: a name is at most this long, so a longer text can never match,
/// and SQLite refuses `LIKE` patterns past 50,000 bytes.
pub const MAX_SEARCH_TEXT: usize = MAX_NAME;
/// Longest tag or `tags[]` value.
pub const MAX_TAG: usize = MAX_NAME;
pub const DEFAULT_PAGE_SIZE: i64 = 200;
pub const MAX_PAGE_SIZE: i64 = 500;

/// The body of `POST`, `PUT` and `PATCH /instances`, as the Cloud Elements pages show it.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceBody {
    pub element: Option<ElementRef>,
    pub provider_data: Option<ProviderData>,
    /// Configuration values: strings, numbers, booleans, objects or null.
    #[schema(value_type = Option<Object>)]
    pub configuration: Option<Map<String, Value>>,
    pub tags: Option<Vec<String>>,
    pub name: Option<String>,
    /// `none` (default: exchange `providerData.code`) or `initial` (tokens given in
    /// `configuration`).
    pub external_authentication: Option<String>,
}

/// The element an instance is for, by key or id.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct ElementRef {
    pub key: Option<String>,
    pub id: Option<i64>,
}

/// What the provider's callback returned: an OAuth 2.0 `code`, or for OAuth 1.0a the
/// authorized request token (`oauth_token`), its `oauth_verifier`, and the request token
/// `secret` that `GET /elements/{keyOrId}/oauth/token` gave.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct ProviderData {
    pub code: Option<String>,
    pub oauth_token: Option<String>,
    pub oauth_verifier: Option<String>,
    pub secret: Option<String>,
    /// The PKCE verifier of the authorization that gave `code`, when it sent a challenge.
    pub code_verifier: Option<String>,
}

impl InstanceBody {
    fn code(&self) -> Option<&str> {
        self.provider_field(|p| p.code.as_deref())
    }

    fn code_verifier(&self) -> Option<&str> {
        self.provider_field(|p| p.code_verifier.as_deref())
    }

    fn provider_field(&self, field: impl Fn(&ProviderData) -> Option<&str>) -> Option<&str> {
        self.provider_data
            .as_ref()
            .and_then(field)
            .map(str::trim)
            .filter(|c| !c.is_empty())
    }

    /// The OAuth 1.0a callback's values; `None` when the body carries none of them,
    /// `missing_parameter` naming those absent when it carries some.
    fn oauth1(&self) -> Result<Option<Authorization<'_>>, ServiceError> {
        let token = self.provider_field(|p| p.oauth_token.as_deref());
        let verifier = self.provider_field(|p| p.oauth_verifier.as_deref());
        let secret = self.provider_field(|p| p.secret.as_deref());
        match (token, verifier, secret) {
            (None, None, None) => Ok(None),
            (Some(token), Some(verifier), Some(secret)) => Ok(Some(Authorization::OAuth1 {
                token,
                secret,
                verifier,
            })),
            _ => {
                let missing: Vec<&str> = [
                    ("providerData.oauth_token", token),
                    ("providerData.oauth_verifier", verifier),
                    ("providerData.secret", secret),
                ]
                .into_iter()
                .filter(|(_, v)| v.is_none())
                .map(|(name, _)| name)
                .collect();
                Err(ServiceError::bad_request(
                    "missing_parameter",
                    format!("missing required parameter(s): {}", missing.join(", ")),
                ))
            }
        }
    }

    /// Whether the body sets any configuration value the element's credentials read: new
    /// credentials are checked before anything is stored.
    fn sets_credentials(&self, element: &ElementDefinition, client_credentials: bool) -> bool {
        let Some(given) = self.configuration.as_ref() else {
            return false;
        };
        let mut keys: Vec<String> = element.credentials.iter().flat_map(|c| c.keys()).collect();
        if client_credentials {
            keys.extend([keys::API_KEY.to_owned(), keys::API_SECRET.to_owned()]);
        }
        keys.iter().any(|k| given.contains_key(k))
    }

    /// Whether the body re-authorizes the instance from its configuration alone: it gives
    /// every secret the element's credentials read (for the client credentials grant, the
    /// client secret) a non-empty value. Anything less would send stored secrets along.
    fn gives_all_secrets(&self, element: &ElementDefinition, client_credentials: bool) -> bool {
        let Some(given) = self.configuration.as_ref() else {
            return false;
        };
        let secrets = if client_credentials {
            vec![keys::API_SECRET.to_owned()]
        } else {
            hosts::credential_secrets(element)
        };
        let filled = |k: &String| {
            given
                .get(k)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.trim().is_empty())
        };
        !secrets.is_empty() && secrets.iter().all(filled)
    }
}

/// How a new instance of `element` gets its credentials.
fn provisioning<'b>(
    element: &ElementDefinition,
    external: &str,
    body: &'b InstanceBody,
) -> Result<Authorization<'b>, ServiceError> {
    match element.authentication.kind {
        AuthenticationType::Basic | AuthenticationType::ApiKey | AuthenticationType::Custom => {
            Ok(Authorization::Configured)
        }
        _ if external == "initial" => Ok(Authorization::External),
        AuthenticationType::Oauth1 => body.oauth1()?.ok_or_else(|| {
            ServiceError::bad_request(
                "missing_parameter",
                "providerData.oauth_token, providerData.oauth_verifier and providerData.secret are required",
            )
        }),
        AuthenticationType::Oauth2 => {
            if oauth_spec(element)?.grant == OAuthGrant::ClientCredentials {
                return Ok(Authorization::ClientCredentials);
            }
            body.code()
                .map(|code| Authorization::Code {
                    code,
                    verifier: body.code_verifier(),
                })
                .ok_or_else(|| {
                ServiceError::bad_request("missing_parameter", "providerData.code is required")
            })
        }
    }
}

/// `PUT` replaces what the body describes; `PATCH` changes only what it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    Replace,
    Merge,
}

#[derive(Debug, Default)]
pub struct ListInstances {
    pub tags: Vec<String>,
    pub search_text: Option<String>,
    pub page_size: Option<String>,
    pub next_page: Option<String>,
    pub element: Option<String>,
}

/// One page of instances and what the paging headers say.
#[derive(Debug)]
pub struct InstanceList {
    pub items: Vec<InstanceView>,
    /// Counted on the first page of a walk only.
    pub total: Option<i64>,
    pub next_page: Option<String>,
}

pub(crate) fn platform_user(caller: &Caller) -> Result<UserId, ServiceError> {
    match caller {
        Caller::User(p) => Ok(p.user_id),
        Caller::Instance(_) => Err(ServiceError::Unauthorized(
            "this call needs 'User <secret>, Organization <secret>', not an Element token"
                .to_owned(),
        )),
    }
}

fn external_authentication(raw: Option<&str>) -> Result<&'static str, ServiceError> {
    match raw {
        None | Some("none") => Ok("none"),
        Some("initial") => Ok("initial"),
        Some(other) => Err(ServiceError::bad_request(
            "invalid_external_authentication",
            format!("externalAuthentication must be 'none' or 'initial', got '{other}'"),
        )),
    }
}

/// Checks a name and tags given ahead of provisioning (a Connect session's), by the same
/// rules the instance will be held to.
pub(crate) fn check_name_and_tags(name: Option<&str>, tags: &[String]) -> Result<(), ServiceError> {
    let name = clean_name(name, "instance")?;
    clean_tags(tags.to_vec(), &name).map(|_| ())
}

fn clean_name(raw: Option<&str>, fallback: &str) -> Result<String, ServiceError> {
    let name = match raw.map(strip_html) {
        Some(n) if !n.is_empty() => n,
        _ => fallback.to_owned(),
    };
    if name.chars().count() > MAX_NAME {
        return Err(ServiceError::bad_request(
            "invalid_name",
            format!("name is longer than {MAX_NAME} characters"),
        ));
    }
    Ok(name)
}

/// HTML-stripped, de-duplicated tags; an instance without tags is tagged with its name.
fn clean_tags(raw: Vec<String>, name: &str) -> Result<Vec<String>, ServiceError> {
    if raw.len() > MAX_TAGS {
        return Err(ServiceError::bad_request(
            "invalid_tags",
            format!("at most {MAX_TAGS} tags are allowed"),
        ));
    }
    let mut tags: Vec<String> = Vec::new();
    for tag in raw {
        let tag = strip_html(&tag);
        if tag.chars().count() > MAX_NAME {
            return Err(ServiceError::bad_request(
                "invalid_tags",
                format!("tags are limited to {MAX_NAME} characters"),
            ));
        }
        if !tag.is_empty() && !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.is_empty() {
        tags.push(name.to_owned());
    }
    Ok(tags)
}

/// The `tags[]` filters of a list call, HTML-stripped like stored tags and de-duplicated.
fn tag_filters(raw: &[String]) -> Result<Vec<String>, ServiceError> {
    if raw.len() > MAX_TAG_FILTERS {
        return Err(ServiceError::bad_request(
            "too_many_tags",
            format!(
                "at most {MAX_TAG_FILTERS} tags[] filters are allowed, got {}",
                raw.len()
            ),
        ));
    }
    let mut tags: Vec<String> = Vec::new();
    for tag in raw {
        if tag.contains('\0') {
            return Err(ServiceError::bad_request(
                "invalid_tags",
                "tags[] must not contain NUL characters",
            ));
        }
        if tag.chars().count() > MAX_TAG {
            return Err(ServiceError::bad_request(
                "invalid_tags",
                format!("tags[] values are limited to {MAX_TAG} characters"),
            ));
        }
        // Repeats are left to the store, whose query needs them distinct anyway.
        let tag = strip_html(tag);
        if !tag.is_empty() {
            tags.push(tag);
        }
    }
    Ok(tags)
}

fn search_text(raw: Option<&str>) -> Result<Option<String>, ServiceError> {
    let Some(text) = raw.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    if text.contains('\0') {
        return Err(ServiceError::bad_request(
            "invalid_search_text",
            "searchText must not contain NUL characters",
        ));
    }
    if text.chars().count() > MAX_SEARCH_TEXT {
        return Err(ServiceError::bad_request(
            "invalid_search_text",
            format!("searchText is limited to {MAX_SEARCH_TEXT} characters"),
        ));
    }
    Ok(Some(text.to_owned()))
}

pub(crate) fn encode_cursor(after: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("after:{after}"))
}

pub(crate) fn decode_cursor(token: &str) -> Result<i64, ServiceError> {
    URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("after:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| {
            ServiceError::bad_request(
                "invalid_page_token",
                "nextPage is not a page token Junction issued",
            )
        })
}

pub(crate) fn page_size(raw: Option<&str>) -> Result<i64, ServiceError> {
    match raw {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(s) => match s.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            _ => Err(ServiceError::bad_request(
                "invalid_page_size",
                format!("pageSize must be a number from 1 to {MAX_PAGE_SIZE}"),
            )),
        },
    }
}

impl Services {
    async fn element(
        &self,
        caller: &Caller,
        key_or_id: &str,
    ) -> Result<Arc<ElementDefinition>, ServiceError> {
        self.find_element(Some(caller), key_or_id).await
    }

    /// Which element the request means: the route's `{keyOrId}`, or the body's
    /// `element.key`/`element.id`; both must agree when both are given.
    async fn requested_element(
        &self,
        caller: &Caller,
        from_path: Option<&str>,
        body: Option<&ElementRef>,
    ) -> Result<Arc<ElementDefinition>, ServiceError> {
        let from_body = match body {
            Some(ElementRef { key: Some(k), .. }) => Some(self.element(caller, k).await?),
            Some(ElementRef { id: Some(id), .. }) => {
                Some(self.element(caller, &id.to_string()).await?)
            }
            _ => None,
        };
        let from_path = match from_path {
            Some(p) => Some(self.element(caller, p).await?),
            None => None,
        };
        match (from_path, from_body) {
            (Some(a), Some(b)) if a.key != b.key => Err(ServiceError::bad_request(
                "element_mismatch",
                format!(
                    "the URL names element '{}' but the body names '{}'",
                    a.key, b.key
                ),
            )),
            (Some(a), _) => Ok(a),
            (None, Some(b)) => Ok(b),
            (None, None) => Err(ServiceError::bad_request(
                "missing_parameter",
                "element.key is required",
            )),
        }
    }

    /// The instance a `/instances/{id}/…` route or its Element-token twin `/instances/…`
    /// addresses.
    pub fn target_instance(&self, caller: &Caller, id: Option<i64>) -> Result<i64, ServiceError> {
        match (id, caller.only_instance()) {
            (Some(id), _) => Ok(id),
            (None, Some(own)) => Ok(own.0),
            (None, None) => Err(ServiceError::bad_request(
                "missing_instance",
                "this route addresses the instance of the Element token in the Authorization header; \
                 send 'Element <token>' or use /instances/{id}/…",
            )),
        }
    }

    /// Provisions an instance: validates everything, obtains credentials from the
    /// provider, runs the element's provisioning calls, then stores the instance in one
    /// transaction. Any failure leaves nothing behind.
    pub async fn create_instance(
        &self,
        caller: &Caller,
        element_from_path: Option<&str>,
        body: InstanceBody,
    ) -> Result<InstanceView, ServiceError> {
        let user_id = platform_user(caller)?;
        let element = self
            .requested_element(caller, element_from_path, body.element.as_ref())
            .await?;
        if element.protocol_type == ProtocolType::Jdbc {
            return Err(ServiceError::bad_request(
                "unsupported_protocol",
                format!(
                    "element '{}' uses protocolType jdbc, which Junction stores but cannot provision",
                    element.key
                ),
            ));
        }
        let external = external_authentication(body.external_authentication.as_deref())?;
        let name = clean_name(body.name.as_deref(), &element.name)?;
        let tags = clean_tags(body.tags.clone().unwrap_or_default(), &name)?;
        let mut config = defaults(&element);
        overlay(&element, &mut config, body.configuration.as_ref())?;
        missing_required(&element, &config)?;
        templates::fill_defaults(&element, &mut config, None, body.configuration.as_ref())?;
        self.check_pins(&element, &config, None)?;
        let authorization = provisioning(&element, external, &body)?;
        let expires_at = self
            .obtain_credentials(&element, &mut config, authorization)
            .await?;
        let now = now_ms();
        let poller = Self::poller_write_for(&config, false, &element, now);
        let (public, secrets) = split(&element, config);
        let token = junction_crypto::generate_secret(30)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let (record, user) = self
            .store
            .insert_instance_polling(
                NewInstance {
                    account_id: caller.account_id(),
                    user_id,
                    element_id: element.id,
                    element_key: &element.key,
                    name: &name,
                    token: &token,
                    config: &public,
                    secrets: &secrets,
                    tags: &tags,
                    external_authentication: external,
                    token_expires_at: expires_at,
                    now,
                },
                &poller,
            )
            .await
            .map_err(|e| match e {
                junction_store::StoreError::ElementGone => {
                    ServiceError::ElementNotFound(element.key.clone())
                }
                other => other.into(),
            })?;
        tracing::info!(instance_id = %record.id, element = %element.key, "instance provisioned");
        Ok(InstanceView::new(&element, record, user))
    }

    /// `PUT` and `PATCH`. With `providerData.code` the instance is re-provisioned: a new
    /// code exchange replaces its credentials, keeping its id and Element token; if the
    /// provider refuses, nothing changes and the old credentials keep working.
    pub async fn update_instance(
        &self,
        caller: &Caller,
        id: i64,
        body: InstanceBody,
        mode: UpdateMode,
    ) -> Result<InstanceView, ServiceError> {
        let record = self.owned_instance(caller, id).await?;
        let element = self.element_of(&record).await?;
        if let Some(requested) = body.element.as_ref() {
            let named = self
                .requested_element(caller, None, Some(requested))
                .await?;
            if named.key != element.key {
                return Err(ServiceError::bad_request(
                    "element_mismatch",
                    format!(
                        "instance {id} belongs to element '{}', not '{}'",
                        element.key, named.key
                    ),
                ));
            }
        }
        let external = match body.external_authentication.as_deref() {
            Some(raw) => external_authentication(Some(raw))?,
            None if record.external_authentication == "initial" => "initial",
            None => "none",
        };
        let name = match mode {
            UpdateMode::Replace | UpdateMode::Merge => {
                clean_name(body.name.as_deref(), &record.name)?
            }
        };
        let tags = match body.tags.clone() {
            Some(tags) => clean_tags(tags, &name)?,
            None => record.tags.clone(),
        };
        let mut config = match mode {
            // A full update starts over from the element's defaults, keeping only what
            // Junction itself manages (credentials, provisioning results).
            UpdateMode::Replace => {
                let mut fresh = defaults(&element);
                for (key, value) in &record.config {
                    if element.config_entry(key).is_some_and(|e| e.internal) {
                        fresh.insert(key.clone(), value.clone());
                    }
                }
                hosts::keep_bound_urls(&mut fresh, &record.config);
                fresh
            }
            UpdateMode::Merge => record.config.clone(),
        };
        overlay(&element, &mut config, body.configuration.as_ref())?;
        missing_required(&element, &config)?;
        templates::fill_defaults(
            &element,
            &mut config,
            Some(&record.config),
            body.configuration.as_ref(),
        )?;
        let mut expires_at = record.token_expires_at;
        let mut valid = record.valid;
        let client_credentials = element
            .oauth
            .as_ref()
            .is_some_and(|o| o.grant == OAuthGrant::ClientCredentials);
        let reauthorize = match (
            body.code(),
            external,
            body.external_authentication.is_some(),
        ) {
            (Some(code), _, _) => Some(Authorization::Code {
                code,
                verifier: body.code_verifier(),
            }),
            (None, "initial", true) => Some(Authorization::External),
            _ => match body.oauth1()? {
                Some(oauth1) => Some(oauth1),
                // New credentials in the configuration are checked (and, for the client
                // credentials grant, spent on a token) before anything is stored.
                None if schemes::uses_templates(&element)
                    && body.sets_credentials(&element, false) =>
                {
                    Some(Authorization::Configured)
                }
                None if client_credentials && body.sets_credentials(&element, true) => {
                    Some(Authorization::ClientCredentials)
                }
                None => None,
            },
        };
        let reauthorized = reauthorize.is_some();
        // Credentials from the configuration move the instance only when they are all new:
        // a stored secret must never reach a host the caller just named.
        let from_configuration = matches!(
            reauthorize,
            Some(Authorization::Configured | Authorization::ClientCredentials)
        );
        let may_move = reauthorized
            && (!from_configuration || body.gives_all_secrets(&element, client_credentials));
        let moved = hosts::check_update(caller, &element, &record.config, &config, may_move)?;
        self.check_pins(&element, &config, Some(&record.config))?;
        if moved {
            hosts::forget_stored_tokens(&element, &mut config, body.configuration.as_ref());
            if from_configuration {
                hosts::forget_stored_secrets(&element, &mut config, body.configuration.as_ref());
            }
        }
        if let Some(authorization) = reauthorize {
            expires_at = self
                .obtain_credentials(&element, &mut config, authorization)
                .await?;
            valid = true;
            tracing::info!(instance_id = id, element = %element.key, "instance re-provisioned");
        }
        let mut record = self
            .save_with(record, !reauthorized, |r| {
                r.name = name;
                r.tags = tags;
                r.config = config;
                r.token_expires_at = expires_at;
                r.valid = valid;
                r.external_authentication = external.to_owned();
            })
            .await?;
        if reauthorized {
            // New credentials: earlier refresh failures no longer say anything.
            self.store
                .clear_refresh_failures(record.account_id, record.id)
                .await?;
            record.invalid_reason = None;
            record.refresh_retry_at = None;
            record.refresh_failures = 0;
        }
        let user = self.store.get_user(record.user_id).await?;
        Ok(InstanceView::new(&element, record, user))
    }

    /// Enables or disables an instance; a disabled instance's Element token answers 403.
    pub async fn set_enabled(
        &self,
        caller: &Caller,
        id: i64,
        enabled: bool,
    ) -> Result<InstanceView, ServiceError> {
        let record = self.owned_instance(caller, id).await?;
        let record = self.save(record, |r| r.disabled = !enabled).await?;
        tracing::info!(instance_id = id, enabled, "instance enablement changed");
        self.view(record).await
    }

    pub async fn get_instance(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<InstanceView, ServiceError> {
        let record = self.owned_instance(caller, id).await?;
        self.view(record).await
    }

    pub async fn list_instances(
        &self,
        caller: &Caller,
        query: ListInstances,
    ) -> Result<InstanceList, ServiceError> {
        let tags = tag_filters(&query.tags)?;
        let search_text = search_text(query.search_text.as_deref())?;
        let limit = page_size(query.page_size.as_deref())?;
        let after = query
            .next_page
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(decode_cursor)
            .transpose()?;
        let element_key = match query.element.as_deref() {
            Some(k) => Some(self.element(caller, k).await?.key.clone()),
            None => None,
        };
        let page = self
            .store
            .list_instances(
                caller.account_id(),
                &InstanceQuery {
                    tags,
                    only: caller.only_instance(),
                    search_text,
                    element_key,
                    after,
                    limit: Some(limit),
                },
            )
            .await?;
        let mut users: HashMap<UserId, UserRecord> = HashMap::new();
        let mut items = Vec::with_capacity(page.items.len());
        for record in page.items {
            let element = self.element_of(&record).await?;
            let user = match users.get(&record.user_id) {
                Some(u) => u.clone(),
                None => {
                    let u = self.store.get_user(record.user_id).await?;
                    users.insert(record.user_id, u.clone());
                    u
                }
            };
            items.push(InstanceView::new(&element, record, user));
        }
        Ok(InstanceList {
            items,
            total: page.total,
            next_page: page.next_after.map(encode_cursor),
        })
    }

    pub async fn delete_instance(&self, caller: &Caller, id: i64) -> Result<(), ServiceError> {
        self.check_instance_scope(caller, id)?;
        self.store
            .delete_instance(caller.account_id(), InstanceId(id))
            .await
            .map_err(|e| not_found_as(e, id))?;
        self.proxy.forget(id);
        tracing::info!(instance_id = id, "instance deleted");
        Ok(())
    }

    pub(crate) async fn view(&self, record: InstanceRecord) -> Result<InstanceView, ServiceError> {
        let element = self.element_of(&record).await?;
        let user = self.store.get_user(record.user_id).await?;
        Ok(InstanceView::new(&element, record, user))
    }

    /// Applies `change` to the record and writes the result, leaving the stored
    /// credentials as they are (a refresh may have replaced them since `record` was read).
    pub(crate) async fn save(
        &self,
        record: InstanceRecord,
        change: impl FnOnce(&mut InstanceRecord),
    ) -> Result<InstanceRecord, ServiceError> {
        self.save_with(record, true, change).await
    }

    /// [`Services::save`], or with `keep_credentials: false` the write of a
    /// re-authorization's new credentials.
    async fn save_with(
        &self,
        mut record: InstanceRecord,
        keep_credentials: bool,
        change: impl FnOnce(&mut InstanceRecord),
    ) -> Result<InstanceRecord, ServiceError> {
        change(&mut record);
        let element = self.element_of(&record).await?;
        let (public, secrets) = split(&element, record.config.clone());
        let now = now_ms();
        let poller = Self::poller_write(&record, &element, now);
        self.store
            .update_instance_polling(
                InstanceUpdate {
                    account_id: record.account_id,
                    id: record.id,
                    name: &record.name,
                    config: &public,
                    secrets: &secrets,
                    tags: &record.tags,
                    valid: record.valid,
                    disabled: record.disabled,
                    trace_logging_until: record.trace_logging_until,
                    external_authentication: &record.external_authentication,
                    token_expires_at: record.token_expires_at,
                    keep_credentials,
                    now,
                },
                &poller,
            )
            .await
            .map_err(|e| not_found_as(e, record.id.0))?;
        record.updated_at = now;
        if keep_credentials {
            // Show what is stored, not the possibly stale credentials read earlier.
            return self
                .store
                .get_instance(record.account_id, record.id)
                .await
                .map_err(|e| not_found_as(e, record.id.0));
        }
        Ok(record)
    }

    pub(crate) async fn owned_instance(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<InstanceRecord, ServiceError> {
        self.owned_instance_shared(caller, id)
            .await
            .map(Arc::unwrap_or_clone)
    }

    pub(crate) async fn owned_instance_shared(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<Arc<InstanceRecord>, ServiceError> {
        self.check_instance_scope(caller, id)?;
        self.store
            .get_instance_shared(caller.account_id(), InstanceId(id))
            .await
            .map_err(|e| not_found_as(e, id))
    }

    fn check_instance_scope(&self, caller: &Caller, id: i64) -> Result<(), ServiceError> {
        match caller.only_instance() {
            Some(own) if own.0 != id => Err(ServiceError::InstanceNotFound(id)),
            _ => Ok(()),
        }
    }
}

fn oauth_spec(
    element: &ElementDefinition,
) -> Result<&junction_core::element::OAuthSpec, ServiceError> {
    element.oauth.as_ref().ok_or_else(|| {
        ServiceError::bad_request(
            "not_oauth_element",
            format!("element '{}' does not use OAuth 2.0", element.key),
        )
    })
}

/// Splits configuration into what is stored as JSON and what is sealed.
pub(crate) fn split(element: &ElementDefinition, config: ConfigMap) -> (ConfigMap, ConfigMap) {
    config
        .into_iter()
        .partition(|(k, _)| !element.is_secret_key(k))
}

fn not_found_as(e: StoreError, id: i64) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::InstanceNotFound(id),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_cleaned_and_default_to_the_name() {
        assert_eq!(
            clean_tags(vec!["<b>a</b>".into(), "a".into(), " ".into()], "n").unwrap(),
            vec!["a".to_owned()]
        );
        assert_eq!(
            clean_tags(vec![], "My name").unwrap(),
            vec!["My name".to_owned()]
        );
    }

    #[test]
    fn page_tokens_round_trip_and_forgeries_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        assert!(decode_cursor("not-a-token").is_err());
        assert!(page_size(Some("0")).is_err());
        assert!(page_size(Some("501")).is_err());
        assert_eq!(page_size(None).unwrap(), DEFAULT_PAGE_SIZE);
    }
}

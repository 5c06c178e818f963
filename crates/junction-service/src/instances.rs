//! Step 2 and after: provisioning an instance from an authorization code, reading,
//! listing and deleting instances.

use crate::view::InstanceView;
use crate::{Caller, ServiceError, Services, now_ms};
use junction_core::config::{config_value_from_json, keys};
use junction_core::sanitize::strip_html;
use junction_core::{ConfigMap, ElementDefinition, InstanceId, Secret, UserId};
use junction_oauth::{CodeExchange, exchange_code, run_provision_step};
use junction_store::{InstanceQuery, InstanceRecord, NewInstance, StoreError, UserRecord};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

const MAX_NAME: usize = 255;
const MAX_TAGS: usize = 100;
const MAX_KEY: usize = 255;
const MAX_VALUE: usize = 64 * 1024;

/// The body of `POST /instances`, as the Cloud Elements pages show it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CreateInstance {
    pub element: Option<ElementRef>,
    pub provider_data: Option<ProviderData>,
    pub configuration: Option<Map<String, Value>>,
    pub tags: Option<Vec<String>>,
    pub name: Option<String>,
    pub external_authentication: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ElementRef {
    pub key: Option<String>,
    pub id: Option<i64>,
}

#[derive(Deserialize, Default)]
pub struct ProviderData {
    pub code: Option<String>,
}

#[derive(Debug, Default)]
pub struct ListInstances {
    pub tags: Vec<String>,
}

fn platform_user(caller: &Caller) -> Result<UserId, ServiceError> {
    match caller {
        Caller::User(p) => Ok(p.user_id),
        Caller::Instance(_) => Err(ServiceError::Unauthorized(
            "this call needs 'User <secret>, Organization <secret>', not an Element token"
                .to_owned(),
        )),
    }
}

impl Services {
    fn element(
        &self,
        key_or_id: &str,
    ) -> Result<Arc<junction_core::ElementDefinition>, ServiceError> {
        self.catalog
            .get(key_or_id)
            .cloned()
            .ok_or_else(|| ServiceError::ElementNotFound(key_or_id.to_owned()))
    }

    /// Which element the request means: the route's `{keyOrId}`, or the body's
    /// `element.key`/`element.id`; both must agree when both are given.
    fn requested_element(
        &self,
        from_path: Option<&str>,
        body: Option<&ElementRef>,
    ) -> Result<Arc<ElementDefinition>, ServiceError> {
        let from_body = match body {
            Some(ElementRef { key: Some(k), .. }) => Some(self.element(k)?),
            Some(ElementRef { id: Some(id), .. }) => Some(self.element(&id.to_string())?),
            _ => None,
        };
        match (from_path.map(|p| self.element(p)).transpose()?, from_body) {
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

    /// Provisions an instance: validates everything, exchanges the code with the
    /// provider, runs the element's provisioning calls, then stores the instance in one
    /// transaction. Any failure leaves nothing behind.
    pub async fn create_instance(
        &self,
        caller: &Caller,
        element_from_path: Option<&str>,
        body: CreateInstance,
    ) -> Result<InstanceView, ServiceError> {
        let user_id = platform_user(caller)?;
        let element = self.requested_element(element_from_path, body.element.as_ref())?;
        let spec = element.oauth.as_ref().ok_or_else(|| {
            ServiceError::bad_request(
                "not_oauth_element",
                format!("element '{}' does not use OAuth 2.0", element.key),
            )
        })?;
        match body.external_authentication.as_deref() {
            None | Some("none") => {}
            Some(other) => {
                return Err(ServiceError::bad_request(
                    "unsupported_external_authentication",
                    format!("externalAuthentication '{other}' is not supported; use 'none'"),
                ));
            }
        }
        let name = match body.name.as_deref().map(strip_html) {
            Some(n) if !n.is_empty() => n,
            _ => element.name.clone(),
        };
        if name.chars().count() > MAX_NAME {
            return Err(ServiceError::bad_request(
                "invalid_name",
                format!("name is longer than {MAX_NAME} characters"),
            ));
        }
        let tags = clean_tags(body.tags.unwrap_or_default(), &name)?;
        let mut config = merged_configuration(&element, body.configuration.as_ref())?;
        let missing: Vec<String> = element
            .configuration
            .iter()
            .filter(|e| e.required)
            .filter(|e| {
                config
                    .get(&e.key)
                    .and_then(|v| v.as_deref())
                    .is_none_or(|v| v.trim().is_empty())
            })
            .map(|e| e.key.clone())
            .collect();
        if !missing.is_empty() {
            return Err(ServiceError::MissingConfiguration(missing));
        }
        let code = body
            .provider_data
            .as_ref()
            .and_then(|p| p.code.as_deref())
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                ServiceError::bad_request("missing_parameter", "providerData.code is required")
            })?;

        let value =
            |config: &ConfigMap, key: &str| config.get(key).cloned().flatten().unwrap_or_default();
        let client_secret = Secret::new(value(&config, keys::API_SECRET));
        let tokens = exchange_code(
            &self.outbound,
            spec,
            &CodeExchange {
                token_url: &value(&config, keys::TOKEN_URL),
                client_id: &value(&config, keys::API_KEY),
                client_secret: &client_secret,
                redirect_uri: &value(&config, keys::CALLBACK_URL),
                code,
            },
        )
        .await
        .inspect_err(
            |e| tracing::info!(element = %element.key, error = %e, "code exchange failed"),
        )?;

        let now = now_ms();
        config.insert(
            keys::USER_TOKEN.into(),
            Some(tokens.access_token.expose().to_owned()),
        );
        config.insert(
            keys::REFRESH_TOKEN.into(),
            tokens.refresh_token.as_ref().map(|t| t.expose().to_owned()),
        );
        config.insert(keys::REFRESH_TIME.into(), Some(now.to_string()));
        if let Some(expires_in) = tokens.expires_in {
            config.insert(keys::REFRESH_INTERVAL.into(), Some(expires_in.to_string()));
        }
        for (field, key) in &spec.token_response {
            if let Some(v) = tokens.fields.get(field) {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                config.insert(key.clone(), Some(text));
            }
        }
        for step in &spec.provision {
            let result = run_provision_step(
                &self.outbound,
                spec,
                &value(&config, keys::BASE_URL),
                step,
                &tokens.access_token,
            )
            .await
            .inspect_err(|e| tracing::info!(element = %element.key, step = %step.into, error = %e, "provisioning call failed"))?;
            config.insert(step.into.clone(), Some(result));
        }

        let (public, secrets): (ConfigMap, ConfigMap) = config
            .into_iter()
            .partition(|(k, _)| !element.is_secret_key(k));
        let token = junction_crypto::generate_secret(30)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let record = self
            .store
            .insert_instance(NewInstance {
                account_id: caller.account_id(),
                user_id,
                element_id: element.id,
                element_key: &element.key,
                name: &name,
                token: &token,
                config: &public,
                secrets: &secrets,
                tags: &tags,
                external_authentication: "none",
                token_expires_at: tokens.expires_in.map(|s| now + s * 1000),
                now,
            })
            .await?;
        tracing::info!(instance_id = %record.id, element = %element.key, "instance provisioned");
        let user = self.store.get_user(user_id).await?;
        Ok(InstanceView::new(&element, record, user))
    }

    pub async fn get_instance(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<InstanceView, ServiceError> {
        let record = self.owned_instance(caller, id).await?;
        let element = self.element_of(&record)?;
        let user = self.store.get_user(record.user_id).await?;
        Ok(InstanceView::new(&element, record, user))
    }

    pub async fn list_instances(
        &self,
        caller: &Caller,
        query: ListInstances,
    ) -> Result<Vec<InstanceView>, ServiceError> {
        let tags = query
            .tags
            .iter()
            .map(|t| strip_html(t))
            .filter(|t| !t.is_empty())
            .collect();
        let records = self
            .store
            .list_instances(
                caller.account_id(),
                &InstanceQuery {
                    tags,
                    only: caller.only_instance(),
                },
            )
            .await?;
        let mut users: HashMap<UserId, UserRecord> = HashMap::new();
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let element = self.element_of(&record)?;
            let user = match users.get(&record.user_id) {
                Some(u) => u.clone(),
                None => {
                    let u = self.store.get_user(record.user_id).await?;
                    users.insert(record.user_id, u.clone());
                    u
                }
            };
            out.push(InstanceView::new(&element, record, user));
        }
        Ok(out)
    }

    pub async fn delete_instance(&self, caller: &Caller, id: i64) -> Result<(), ServiceError> {
        self.check_instance_scope(caller, id)?;
        self.store
            .delete_instance(caller.account_id(), InstanceId(id))
            .await
            .map_err(|e| not_found_as(e, id))?;
        tracing::info!(instance_id = id, "instance deleted");
        Ok(())
    }

    async fn owned_instance(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<InstanceRecord, ServiceError> {
        self.check_instance_scope(caller, id)?;
        self.store
            .get_instance(caller.account_id(), InstanceId(id))
            .await
            .map_err(|e| not_found_as(e, id))
    }

    fn check_instance_scope(&self, caller: &Caller, id: i64) -> Result<(), ServiceError> {
        match caller.only_instance() {
            Some(own) if own.0 != id => Err(ServiceError::InstanceNotFound(id)),
            _ => Ok(()),
        }
    }

    fn element_of(&self, record: &InstanceRecord) -> Result<Arc<ElementDefinition>, ServiceError> {
        self.catalog
            .get(&record.element_key)
            .cloned()
            .ok_or_else(|| {
                ServiceError::Internal(format!(
                    "instance {} uses element '{}', which is no longer in the catalog",
                    record.id, record.element_key
                ))
            })
    }
}

fn not_found_as(e: StoreError, id: i64) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::InstanceNotFound(id),
        other => other.into(),
    }
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

/// Every declared entry with its default (or null), overlaid with the request's values.
fn merged_configuration(
    element: &ElementDefinition,
    given: Option<&Map<String, Value>>,
) -> Result<ConfigMap, ServiceError> {
    let mut config: ConfigMap = element
        .configuration
        .iter()
        .map(|e| (e.key.clone(), e.default.clone()))
        .collect();
    for (key, value) in given.into_iter().flatten() {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(ServiceError::bad_request(
                "invalid_configuration",
                format!("configuration keys must be 1 to {MAX_KEY} characters"),
            ));
        }
        let value = config_value_from_json(key, value)
            .map_err(|e| ServiceError::bad_request("invalid_configuration", e.to_string()))?;
        if value.as_ref().is_some_and(|v| v.len() > MAX_VALUE) {
            return Err(ServiceError::bad_request(
                "invalid_configuration",
                format!("configuration value for '{key}' is larger than {MAX_VALUE} bytes"),
            ));
        }
        config.insert(key.clone(), value);
    }
    Ok(config)
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
}

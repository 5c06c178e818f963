//! A resource whose vendor wants another credential than the instance's for its call
//! (`credential` in the element data): the credential is read from a vendor answer
//! first, with the instance's own, and used in its place for that one call.

use super::request::{SEGMENT, VendorBody, VendorRequest, lookup};
use super::response;
use super::route::Bindings;
use crate::proxy::{Target, check_vendor_path};
use crate::{ServiceError, Services};
use http::header::{ACCEPT, HeaderValue};
use http::{HeaderMap, Method};
use junction_core::Secret;
use junction_core::hub::Resource;
use serde_json::Value;

impl Services {
    /// `target` with the credential `resource` declares, read from the vendor; unchanged
    /// when it declares none.
    pub(super) async fn with_resource_credential(
        &self,
        mut target: Target,
        resource: &Resource,
        bindings: &Bindings,
    ) -> Result<Target, ServiceError> {
        let Some(spec) = &resource.credential else {
            return Ok(target);
        };
        let mut path = spec.path.clone();
        for (name, value) in bindings {
            let encoded = percent_encoding::utf8_percent_encode(value, SEGMENT).to_string();
            path = path.replace(&format!("{{{name}}}"), &encoded);
        }
        if path.contains('{') {
            return Err(ServiceError::Internal(format!(
                "element '{}': credential path '{}' keeps an unfilled placeholder",
                target.element.key, spec.path
            )));
        }
        check_vendor_path(&path)?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let request = VendorRequest {
            method: Method::GET,
            path,
            passed_query: Vec::new(),
            query: spec
                .query
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            headers,
            body: VendorBody::Empty,
        };
        let answer = self.vendor_call(&target, &request, None).await?;
        if !(200..300).contains(&answer.status) {
            return Err(ServiceError::ProviderStatus {
                status: answer.status,
                provider_message: response::error_message_of(
                    &answer.body,
                    target.element.error_message_path.as_deref(),
                ),
                retry_after: None,
            });
        }
        let token = match lookup(&answer.body, &spec.field) {
            Some(Value::String(token)) if !token.is_empty() => token.clone(),
            _ => {
                return Err(ServiceError::ProviderAnswer(format!(
                    "the answer that holds this call's credential has no '{}'",
                    spec.field
                )));
            }
        };
        target.token = Some(Secret::new(token));
        Ok(target)
    }
}

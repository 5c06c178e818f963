//! The resource engine: a hub call (`/hubs/{hub}/{path}`, or the bare `/{path}`) run
//! against the instance's element as one pipeline, in this order:
//!
//! route (which resource) → request mapping (its parameters) → query (`where`,
//! `orderBy`, `fields`) → paging (which vendor page) → hooks (`preRequest`) → credential
//! and outbound call (the passthrough's, with refresh, replay and `Retry-After`) →
//! hooks (`postRequest`) → response mapping (`rootKey`, nulls) → paging (the next token).
//!
//! Everything an element does differently is its data (`resources`, `parameters`,
//! `paging`, `query`), never code here.

mod credential;
mod hooks;
mod paging;
mod query;
mod request;
mod response;
mod route;

use crate::proxy::{Target, check_vendor_path};
use crate::{Caller, ServiceError, Services};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use junction_core::ElementDefinition;
use junction_core::hub::Resource;
use junction_oauth::{
    ProxyBody, ProxyResponse, forwardable_request_headers, forwardable_response_headers,
};
use junction_store::InstanceRecord;
use paging::{Plan, Position, Tokens};
use request::{HubQuery, Incoming, VendorBody, VendorRequest};
use route::Route;
use serde_json::{Value, json};
use std::sync::Arc;

/// The largest vendor answer read as JSON.
const MAX_VENDOR_BODY: usize = 16 * 1024 * 1024;

/// A hub resource call as the caller sent it.
#[derive(Debug)]
pub struct HubRequest {
    pub method: Method,
    /// The resource path without `/hubs/<hub>`, starting with `/`, percent-encoding as
    /// the caller wrote it.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: ProxyBody,
}

/// The hub's answer.
fn answer(status: StatusCode, headers: HeaderMap, body: Bytes) -> ProxyResponse {
    ProxyResponse {
        status,
        headers,
        body: reqwest::Body::from(body),
    }
}

fn json_answer(value: &Value, mut headers: HeaderMap) -> Result<ProxyResponse, ServiceError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| ServiceError::Internal(format!("serializing an answer: {e}")))?;
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(answer(StatusCode::OK, headers, Bytes::from(bytes)))
}

impl Services {
    /// Runs one hub resource call for the Element token's instance.
    pub async fn hub_resource(
        &self,
        caller: &Caller,
        request: HubRequest,
    ) -> Result<ProxyResponse, ServiceError> {
        let id = caller.only_instance().ok_or_else(|| {
            ServiceError::Unauthorized(
                "this call acts as an instance: send 'Authorization: Element <token>'".to_owned(),
            )
        })?;
        let record = self.owned_instance_shared(caller, id.0).await?;
        let element = self.element_of(&record).await?;
        let (resource, bindings) = match route::find(&element, &request.method, &request.path)? {
            // Describing the element needs no provider, so a disabled instance may.
            Route::Objects => return json_answer(&objects(&element), HeaderMap::new()),
            Route::ObjectMetadata(name) => {
                return json_answer(&object_metadata(&element, &name)?, HeaderMap::new());
            }
            Route::Resource(resource, bindings) => (resource, bindings),
        };
        let target = self.target_of(Arc::clone(&record), Arc::clone(&element))?;
        hooks::check_runnable(&element, resource)?;
        if resource.stream {
            return self.stream(&target, resource, &bindings, request).await;
        }
        let query = HubQuery::parse(request.query.as_deref());
        let _query_plan = query::plan(&element, resource, &query)?;
        let tokens = Tokens {
            store: &self.store,
            context: token_context(&record, resource, &request.path, &query),
        };
        let plan = Plan::read(resource.paging.as_ref(), &query, &tokens)?;
        let body = json_body(request.body).await?;
        let incoming = Incoming {
            bindings: &bindings,
            query: &query,
            headers: &request.headers,
            body: body.as_ref(),
            config: &record.config,
        };
        let vendor = request::build(&element, resource, &incoming)?;
        check_vendor_path(&vendor.path)?;
        let base = self.proxy.check_url("base.url", &target.base_url)?;
        let target = self
            .with_resource_credential(target, resource, &bindings)
            .await?;

        let mut position = plan.position.clone();
        let mut page = vendor.clone();
        let url = plan.apply(&position, &mut page)?;
        let (headers, answer) = self.vendor_json(&target, &page, url).await?;
        self.keep_response_configuration(&record, &element, resource, &answer, &headers)
            .await?;
        let mut out_headers = HeaderMap::new();
        let Some(records) = response::records(&answer, resource.root_key.as_deref()) else {
            // A single object, as the vendor sent it.
            let mut answer = answer;
            if response::strips_nulls(&record.config) {
                response::strip_nulls(&mut answer);
            }
            return json_answer(&answer, out_headers);
        };
        let next = plan.next(&position.vendor, &answer, &headers, records.len(), &base)?;
        let size = plan.size.unwrap_or(usize::MAX);
        let available = records.len().saturating_sub(position.skip);
        let taken = available.min(size);
        let mut list: Vec<Value> = records
            .into_iter()
            .skip(position.skip)
            .take(taken)
            .collect();
        let token = if taken < available {
            position.skip += taken;
            Some(position)
        } else {
            next.map(|vendor| Position { vendor, skip: 0 })
        };
        if response::strips_nulls(&record.config) {
            list.iter_mut().for_each(response::strip_nulls);
        }
        out_headers.insert(
            HeaderName::from_static("elements-returned-count"),
            HeaderValue::from(list.len()),
        );
        if let Some(token) = token {
            let sealed = tokens.seal(&token)?;
            let value = HeaderValue::from_str(&sealed)
                .map_err(|_| ServiceError::Internal("page token is not a header".to_owned()))?;
            out_headers.insert(HeaderName::from_static("elements-next-page-token"), value);
        }
        json_answer(&Value::Array(list), out_headers)
    }

    /// The instance's provider, refusing a disabled instance.
    fn target_of(
        &self,
        record: Arc<InstanceRecord>,
        element: Arc<ElementDefinition>,
    ) -> Result<Target, ServiceError> {
        if record.disabled {
            return Err(ServiceError::Forbidden(
                "this instance is disabled".to_owned(),
            ));
        }
        Target::of(record, element)
    }

    /// Sends one vendor call and reads its JSON answer; a vendor error status becomes the
    /// caller's, with the vendor's message.
    async fn vendor_json(
        &self,
        target: &Target,
        vendor: &VendorRequest,
        url: Option<String>,
    ) -> Result<(HeaderMap, Value), ServiceError> {
        let url = match url {
            Some(url) => self.proxy.check_url("base.url", &url)?,
            None => {
                let query = vendor.query_string();
                self.proxy.target_url(
                    target.record.id.0,
                    "base.url",
                    &target.base_url,
                    &vendor.path,
                    Some(&query),
                )?
            }
        };
        let body = match &vendor.body {
            VendorBody::Empty => Bytes::new(),
            VendorBody::Json(value) => Bytes::from(
                serde_json::to_vec(value)
                    .map_err(|e| ServiceError::Internal(format!("vendor body: {e}")))?,
            ),
            VendorBody::Form(pairs) => Bytes::from(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish(),
            ),
        };
        let response = self
            .call_provider(
                target,
                vendor.method.clone(),
                url,
                vendor.headers.clone(),
                ProxyBody::Buffered(body),
            )
            .await?;
        let status = response.status;
        let headers = response.headers.clone();
        let bytes = response.read_body(MAX_VENDOR_BODY).await?;
        if !status.is_success() {
            return Err(ServiceError::ProviderStatus {
                status: status.as_u16(),
                provider_message: response::error_message(
                    &bytes,
                    target.element.error_message_path.as_deref(),
                ),
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok((headers, Value::Null));
        }
        let value = serde_json::from_slice(&bytes).map_err(|_| {
            ServiceError::ProviderAnswer(format!(
                "HTTP {} with a body that is not JSON",
                status.as_u16()
            ))
        })?;
        Ok((headers, value))
    }

    /// Writes `source: response` parameters into the instance's configuration, through
    /// the same update as any other configuration change.
    async fn keep_response_configuration(
        &self,
        record: &Arc<InstanceRecord>,
        element: &ElementDefinition,
        resource: &Resource,
        answer: &Value,
        headers: &HeaderMap,
    ) -> Result<(), ServiceError> {
        let changes: Vec<(String, String)> =
            request::response_configuration(element, resource, Some(answer), headers)
                .into_iter()
                .filter(|(k, v)| record.config.get(k).cloned().flatten().as_ref() != Some(v))
                .collect();
        if changes.is_empty() {
            return Ok(());
        }
        let current = Arc::unwrap_or_clone(Arc::clone(record));
        self.save(current, |r| {
            for (key, value) in changes {
                r.config.insert(key, Some(value));
            }
        })
        .await?;
        Ok(())
    }

    /// A resource whose bodies are not JSON (files): the caller's body goes to the vendor
    /// and the vendor's answer comes back, both unchanged and streamed.
    async fn stream(
        &self,
        target: &Target,
        resource: &Resource,
        bindings: &route::Bindings,
        request: HubRequest,
    ) -> Result<ProxyResponse, ServiceError> {
        let query = HubQuery::parse(request.query.as_deref());
        let incoming = Incoming {
            bindings,
            query: &query,
            headers: &request.headers,
            body: None,
            config: &target.record.config,
        };
        let mapped = request::build(&target.element, resource, &incoming)?;
        check_vendor_path(&mapped.path)?;
        let mut headers = forwardable_request_headers(&request.headers);
        for (name, value) in &mapped.headers {
            // The caller says what its body is and what it accepts back.
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        let url = self.proxy.target_url(
            target.record.id.0,
            "base.url",
            &target.base_url,
            &mapped.path,
            Some(&mapped.query_string()),
        )?;
        let response = self
            .call_provider(target, mapped.method, url, headers, request.body)
            .await?;
        if !response.status.is_success() {
            let status = response.status.as_u16();
            let bytes = response
                .read_body(MAX_VENDOR_BODY)
                .await
                .unwrap_or_default();
            return Err(ServiceError::ProviderStatus {
                status,
                provider_message: response::error_message(
                    &bytes,
                    target.element.error_message_path.as_deref(),
                ),
            });
        }
        Ok(ProxyResponse {
            headers: forwardable_response_headers(&response.headers),
            ..response
        })
    }
}

/// The request body as JSON; none when empty.
async fn json_body(body: ProxyBody) -> Result<Option<Value>, ServiceError> {
    let bytes = match body {
        ProxyBody::Buffered(bytes) => bytes,
        ProxyBody::Streaming(_) => {
            return Err(ServiceError::bad_request(
                "invalid_body",
                "the request body is larger than this resource accepts",
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        ServiceError::bad_request("invalid_body", format!("the request body is not JSON: {e}"))
    })
}

/// What a page token is bound to: the instance, the resource, the hub path (its bound
/// placeholders) and the query that shaped the pages. A token used anywhere else fails
/// to open.
fn token_context(
    record: &InstanceRecord,
    resource: &Resource,
    path: &str,
    query: &HubQuery,
) -> Vec<u8> {
    let get = |name| query.get(name).unwrap_or_default();
    let context = json!([
        "junction page token 1",
        record.id.0,
        resource.method.as_str(),
        resource.path,
        path,
        get("where"),
        get("orderBy"),
        get("fields"),
        get("pageSize"),
    ]);
    context.to_string().into_bytes()
}

/// `GET /objects`: the names of the element's declared objects.
fn objects(element: &ElementDefinition) -> Value {
    Value::Array(
        element
            .objects
            .iter()
            .map(|o| Value::String(o.name.clone()))
            .collect(),
    )
}

/// `GET /objects/{name}/metadata`, Cloud Elements' shape, from the declared fields.
fn object_metadata(element: &ElementDefinition, name: &str) -> Result<Value, ServiceError> {
    let object = element
        .objects
        .iter()
        .find(|o| o.name == name)
        .ok_or_else(|| ServiceError::ElementPartNotFound {
            element: element.key.clone(),
            part: "object",
            id: name.to_owned(),
        })?;
    let fields: Vec<Value> = object
        .fields
        .iter()
        .map(|f| {
            let mut field = json!({
                "vendorPath": f.name,
                "vendorDisplayName": f.name,
                "type": f.kind,
                "vendorReadOnly": f.read_only,
                "vendorRequired": f.required,
                "hidden": f.hidden,
            });
            if let Some(format) = &f.format {
                field["format"] = json!(format);
            }
            if f.primary_key || object.primary_key_name.as_deref() == Some(f.name.as_str()) {
                field["primaryKey"] = json!(true);
            }
            field
        })
        .collect();
    Ok(json!({ "fields": fields }))
}

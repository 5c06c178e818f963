//! The resource engine: a hub call (`/hubs/{hub}/{path}`, or the bare `/{path}`) run
//! against the instance's element as one pipeline, in this order:
//!
//! route (which resource) → request mapping (its parameters) → query (`where`,
//! `orderBy`, `fields`) → paging (which vendor page) → `preRequest` hooks → credential
//! and outbound call (the passthrough's, with refresh, replay and `Retry-After`) →
//! `postRequest` hooks → response mapping (`rootKey`, nulls) → paging (the next token).
//!
//! Everything an element does differently is its data (`resources`, `parameters`,
//! `paging`, `query`), never code here.

mod credential;
mod hooks;
mod paging;
mod query;
mod raw;
mod request;
mod response;
mod route;
mod scan;

use crate::proxy::{Target, check_vendor_path};
use crate::{Caller, ServiceError, Services};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use junction_core::ElementDefinition;
use junction_core::hub::{HookType, Resource};
use junction_oauth::{
    ProxyBody, ProxyResponse, ResponseBody, forwardable_request_headers,
    forwardable_response_headers,
};
use junction_store::InstanceRecord;
use paging::{Plan, Position, Tokens};
use request::{HubQuery, Incoming, VendorBody, VendorRequest};
use route::Route;
use serde_json::{Value, json};
use std::sync::Arc;

/// The largest vendor answer read as JSON.
const MAX_VENDOR_BODY: usize = 16 * 1024 * 1024;
/// Vendor pages one hub call reads at most while Junction filters them itself.
const MAX_VENDOR_CALLS: usize = 10;

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
        body: ResponseBody::from(body),
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
        if resource.stream {
            return self.stream(&target, resource, &bindings, request).await;
        }
        let query = HubQuery::parse(request.query.as_deref());
        let query_plan = query::plan(&element, resource, &query)?;
        let tokens = Tokens {
            store: &self.store,
            context: token_context(&record, resource, &request.path, &query, &target.base_url)?,
        };
        let plan = Plan::read(resource.paging.as_ref(), &query, &tokens)?;
        let body = json_body(request.body).await?;
        // Hooks are written by an organization's admin and `type: header` parameters copy
        // to the vendor: neither may see the caller's own credentials (its User secret
        // belongs to whoever calls, possibly another account) or cookies.
        let caller_headers = forwardable_request_headers(request.headers);
        let incoming = Incoming {
            bindings: &bindings,
            query: &query,
            headers: &caller_headers,
            body: body.as_ref(),
            config: &record.config,
        };
        let vendor = request::build(&element, resource, &incoming)?;
        let base = paging::Base::new(self.proxy.base_url(
            target.record.id.0,
            "base.url",
            &target.base_url,
        )?);
        let target = self
            .with_resource_credential(target, resource, &bindings)
            .await?;
        let pre_hooks = hooks::any(&element, resource, HookType::PreRequest);
        let post_hooks = hooks::any(&element, resource, HookType::PostRequest);
        // What hooks are shown of the hub request, built only for a resource that has any.
        let hub_side = (pre_hooks || post_hooks).then(|| hooks::HubSide {
            method: request.method.as_str(),
            path: &request.path,
            parameters: query.as_json(),
            headers: &caller_headers,
            body: body.as_ref(),
            config: &record.config,
            instance_id: record.id.0,
        });
        let strip = response::strips_nulls(&record.config);
        let passes_through = query_plan.passes_records_through()
            && !post_hooks
            && !request::reads_response_body(&element, resource);
        let mut configuration = Vec::new();

        let mut position = plan.position.clone();
        let size = plan.size.unwrap_or(usize::MAX);
        let mut list: Vec<Value> = Vec::new();
        let mut calls = 0;
        let mut vendor = vendor;
        let token = loop {
            calls += 1;
            // Only a call Junction filters reads more than one vendor page.
            let mut page = if query_plan.filters() {
                vendor.clone()
            } else {
                std::mem::take(&mut vendor)
            };
            let root = match plan.apply(&position, &mut page)? {
                // base.url may have moved since the token was issued: the instance's
                // credential only goes to its current origin and allowed paths. The
                // vendor's next URL is complete: the query plan was applied to the first.
                Some(url) => {
                    let next = paging::recheck(&base, &url)?;
                    page.follow(&base.url, &next, &request::own_query_names(&element))
                }
                None => {
                    query_plan.apply(&mut page);
                    None
                }
            };
            let vendor_base = root
                .as_ref()
                .map_or(target.base_url.as_str(), |r| r.as_str());
            if let Some(hub_side) = hub_side.as_ref().filter(|_| pre_hooks) {
                let pre = hooks::pre_request(
                    &self.sandbox,
                    &element,
                    resource,
                    hub_side,
                    vendor_base,
                    &mut page,
                )
                .await?;
                configuration.extend(pre.configuration);
                if let Some(mut answer) = pre.answer {
                    self.keep_configuration(caller, &record, &element, configuration)
                        .await?;
                    if strip {
                        response::strip_nulls(&mut answer);
                    }
                    return json_answer(&answer, HeaderMap::new());
                }
            }
            check_vendor_path(&page.path)?;
            // After the call only postRequest hooks read the page again.
            let headers = if post_hooks {
                page.headers.clone()
            } else {
                std::mem::take(&mut page.headers)
            };
            let sent = self
                .vendor_send(&target, &page, headers, root.as_ref())
                .await?;
            if passes_through && sent.status.is_success() {
                // Nothing reads the records one by one: they go out as the vendor's bytes.
                if let Some(split) = raw::split(&sent.bytes, resource.root_key.as_deref()) {
                    configuration.extend(request::response_configuration(
                        &element,
                        resource,
                        Some(&split.rest),
                        &sent.headers,
                    ));
                    let total = split.records.len();
                    let next =
                        plan.next(&position.vendor, &split.rest, &sent.headers, total, &base)?;
                    let start = position.skip.min(total);
                    let end = start.saturating_add(size).min(total);
                    let token = if end < total {
                        Some(Position {
                            vendor: position.vendor,
                            skip: end,
                        })
                    } else {
                        next.map(|vendor| Position { vendor, skip: 0 })
                    };
                    self.keep_learned(caller, &record, &element, configuration)
                        .await;
                    let body = match raw::as_sent(&split, start..end, strip) {
                        Some(range) => sent.bytes.slice(range),
                        None => {
                            let mut out = Vec::with_capacity(sent.bytes.len());
                            raw::write_list(&split, start..end, strip, &mut out);
                            Bytes::from(out)
                        }
                    };
                    return list_answer(body, end - start, token, &tokens);
                }
            }
            let mut answer = sent.parse()?;
            if let Some(hub_side) = hub_side.as_ref().filter(|_| post_hooks) {
                let post = hooks::post_request(
                    &self.sandbox,
                    &element,
                    resource,
                    hub_side,
                    vendor_base,
                    &page,
                    &mut answer,
                )
                .await?;
                configuration.extend(post.configuration);
            }
            if !(200..300).contains(&answer.status) {
                self.keep_learned(caller, &record, &element, configuration)
                    .await;
                return Err(ServiceError::ProviderStatus {
                    status: answer.status,
                    provider_message: response::error_message_of(
                        &answer.body,
                        element.error_message_path.as_deref(),
                    ),
                    retry_after: crate::proxy::retry_after(&answer.headers, chrono::Utc::now())
                        .map(|d| d.as_secs()),
                });
            }
            configuration.extend(request::response_configuration(
                &element,
                resource,
                Some(&answer.body),
                &answer.headers,
            ));
            let Some(mut records) =
                response::records(&mut answer.body, resource.root_key.as_deref())
            else {
                // A single object: as the vendor sent it, or the one its `rootKey` names.
                self.keep_learned(caller, &record, &element, configuration)
                    .await;
                let body = response::single(answer.body, resource.root_key.as_deref());
                let mut single = query_plan.project(body);
                if strip {
                    response::strip_nulls(&mut single);
                }
                return json_answer(&single, HeaderMap::new());
            };
            let next = plan.next(
                &position.vendor,
                &answer.body,
                &answer.headers,
                records.len(),
                &base,
            )?;
            query_plan.sort(&mut records);
            let total = records.len();
            let mut consumed = position.skip;
            for record in records.into_iter().skip(position.skip) {
                if list.len() == size {
                    break;
                }
                consumed += 1;
                if query_plan.matches(&record) {
                    list.push(query_plan.project(record));
                }
            }
            if consumed < total {
                // The rest of this vendor page is for the next hub page.
                break Some(Position {
                    vendor: position.vendor,
                    skip: consumed,
                });
            }
            let Some(vendor) = next else { break None };
            let following = Position { vendor, skip: 0 };
            // Filtering inside Junction reads on until the page is full, within a bound
            // per hub call; the token carries where it stopped.
            if list.len() == size || !query_plan.filters() || calls >= MAX_VENDOR_CALLS {
                break Some(following);
            }
            position = following;
        };
        self.keep_learned(caller, &record, &element, configuration)
            .await;
        if strip {
            list.iter_mut().for_each(response::strip_nulls);
        }
        let count = list.len();
        let bytes = serde_json::to_vec(&Value::Array(list))
            .map_err(|e| ServiceError::Internal(format!("answer body: {e}")))?;
        list_answer(Bytes::from(bytes), count, token, &tokens)
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

    /// Sends one vendor call and reads its answer: JSON, or for an error status whatever
    /// text the vendor sent.
    async fn vendor_call(
        &self,
        target: &Target,
        vendor: &VendorRequest,
        root: Option<&url::Url>,
    ) -> Result<hooks::VendorAnswer, ServiceError> {
        self.vendor_send(target, vendor, vendor.headers.clone(), root)
            .await?
            .parse()
    }

    /// Sends one vendor call, with `headers` for its own, and reads its answer's bytes.
    async fn vendor_send(
        &self,
        target: &Target,
        vendor: &VendorRequest,
        headers: HeaderMap,
        root: Option<&url::Url>,
    ) -> Result<Sent, ServiceError> {
        let query = vendor.query_string();
        let url = match root {
            // A next page outside base.url's path, on its origin (see `follow`).
            Some(root) => {
                let mut url = root.clone();
                url.set_path(&vendor.path);
                url.set_query(Some(query.as_str()).filter(|q| !q.is_empty()));
                url
            }
            None => self.proxy.target_url(
                target.record.id.0,
                "base.url",
                &target.base_url,
                &vendor.path,
                Some(&query),
            )?,
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
            VendorBody::Multipart { boundary, fields } => {
                Bytes::from(request::multipart_bytes(boundary, fields))
            }
        };
        let response = self
            .call_provider(
                target,
                vendor.method.clone(),
                url,
                headers,
                ProxyBody::Buffered(body),
            )
            .await?;
        let status = response.status;
        let headers = response.headers.clone();
        let bytes = response.read_body(MAX_VENDOR_BODY).await?;
        Ok(Sent {
            status,
            headers,
            bytes,
        })
    }

    /// [`Self::keep_configuration`] once the vendor has answered. The vendor's answer
    /// stands even when the learned values cannot be stored: the vendor may already have
    /// written something, and an error would make the caller retry and write it twice.
    /// Values learned from an answer cannot be checked before the call, so they are
    /// checked here and a refusal is logged (instance and key names, never the values).
    async fn keep_learned(
        &self,
        caller: &Caller,
        record: &Arc<InstanceRecord>,
        element: &ElementDefinition,
        changes: Vec<(String, String)>,
    ) {
        let keys: Vec<String> = changes.iter().map(|(k, _)| k.clone()).collect();
        if let Err(e) = self
            .keep_configuration(caller, record, element, changes)
            .await
        {
            // Refusal messages may quote the value; only its kind is logged.
            let reason = match &e {
                ServiceError::Store(_) => "storage failure",
                ServiceError::BadRequest { code, .. } => code,
                ServiceError::Forbidden(_) => "forbidden for this caller",
                ServiceError::MissingConfiguration(_) => "missing configuration",
                _ => "refused",
            };
            tracing::warn!(
                instance = record.id.0,
                keys = ?keys,
                reason,
                "configuration learned by a hub call was not stored"
            );
        }
    }

    /// Stores configuration values a call learned (`source: response` parameters, a
    /// hook's `configuration` output) into the instance, through the same update, and
    /// checks, as a `PATCH` by the caller (so an Element token cannot move `base.url`
    /// this way either), in one write. Only declared entries, or keys that hold no
    /// credential, may be written: a vendor answer or a script must not plant a secret
    /// the element never asked for.
    async fn keep_configuration(
        &self,
        caller: &Caller,
        record: &Arc<InstanceRecord>,
        element: &ElementDefinition,
        changes: Vec<(String, String)>,
    ) -> Result<(), ServiceError> {
        let changes: Vec<(String, String)> = changes
            .into_iter()
            .filter(|(k, _)| element.config_entry(k).is_some() || !element.is_secret_key(k))
            .collect();
        if changes.is_empty() {
            return Ok(());
        }
        // The record read when the call began may be seconds old (a vendor call, hooks,
        // several pages): writing it back would undo a disable or a PATCH made meanwhile,
        // so the learned values go onto the instance as it is now.
        let current = self
            .store
            .get_instance_fresh(record.account_id, record.id)
            .await?;
        let given: serde_json::Map<String, Value> = changes
            .into_iter()
            .filter(|(k, v)| current.config.get(k).cloned().flatten().as_ref() != Some(v))
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        if given.is_empty() {
            return Ok(());
        }
        self.change_configuration(caller, current, element, &given)
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
        let caller_headers = forwardable_request_headers(request.headers);
        let incoming = Incoming {
            bindings,
            query: &query,
            headers: &caller_headers,
            body: None,
            config: &target.record.config,
        };
        let mapped = request::build(&target.element, resource, &incoming)?;
        check_vendor_path(&mapped.path)?;
        let mut headers = caller_headers.clone();
        for (name, value) in &mapped.headers {
            // The caller says what its body is and what it accepts back; every other
            // header the element maps (a tenant, an API version) is the element's.
            let callers = name == CONTENT_TYPE || name == ACCEPT;
            if !(callers && headers.contains_key(name)) {
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
                retry_after: None,
            });
        }
        let ProxyResponse {
            status,
            headers,
            body,
        } = response;
        Ok(ProxyResponse {
            status,
            headers: forwardable_response_headers(headers),
            body,
        })
    }
}

/// The request body as JSON; none when empty.
/// A vendor's answer, its body read but not parsed.
struct Sent {
    status: StatusCode,
    headers: HeaderMap,
    bytes: Bytes,
}

impl Sent {
    /// The answer as hooks and the tree path read it: JSON, or for an error status
    /// whatever text the vendor sent.
    fn parse(self) -> Result<hooks::VendorAnswer, ServiceError> {
        let body = if self.bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            match serde_json::from_slice(&self.bytes) {
                Ok(value) => value,
                Err(_) if !self.status.is_success() => {
                    Value::String(String::from_utf8_lossy(&self.bytes).into_owned())
                }
                Err(_) => {
                    return Err(ServiceError::ProviderAnswer(format!(
                        "HTTP {} with a body that is not JSON",
                        self.status.as_u16()
                    )));
                }
            }
        };
        Ok(hooks::VendorAnswer {
            status: self.status.as_u16(),
            headers: self.headers,
            body,
        })
    }
}

/// Headers a hub list page is likely to carry when sent.
const ANSWER_HEADERS: usize = 12;
const RETURNED_COUNT: HeaderName = HeaderName::from_static("elements-returned-count");
const NEXT_PAGE_TOKEN: HeaderName = HeaderName::from_static("elements-next-page-token");

/// A hub list page: the JSON array in `bytes`, its count, and the token of the page
/// after it.
fn list_answer(
    bytes: Bytes,
    count: usize,
    token: Option<Position>,
    tokens: &Tokens<'_>,
) -> Result<ProxyResponse, ServiceError> {
    // Room for these three and the ones every answer gets on its way out (its request
    // and trace ids, CORS, the instance's id): a table that fills up is rebuilt.
    let mut headers = HeaderMap::with_capacity(ANSWER_HEADERS);
    headers.insert(RETURNED_COUNT, HeaderValue::from(count));
    if let Some(token) = token {
        let sealed = tokens.seal(&token)?;
        let value = HeaderValue::from_str(&sealed)
            .map_err(|_| ServiceError::Internal("page token is not a header".to_owned()))?;
        headers.insert(NEXT_PAGE_TOKEN, value);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(answer(StatusCode::OK, headers, bytes))
}

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

/// What a page token is bound to: the instance and its `base.url`, the resource, the
/// hub path (its bound placeholders) and every query pair that shaped the pages (`where`,
/// `orderBy`, `fields`, `pageSize` and the resource's own parameters). A token used
/// anywhere else fails to open.
fn token_context(
    record: &InstanceRecord,
    resource: &Resource,
    path: &str,
    query: &HubQuery,
    base_url: &str,
) -> Result<Vec<u8>, ServiceError> {
    context_bytes(
        record.id.0,
        base_url,
        resource.method.as_str(),
        &resource.path,
        path,
        &query.shaping_pairs(),
    )
    .map_err(|e| ServiceError::Internal(format!("page token context: {e}")))
}

/// [`token_context`]'s bytes: a JSON array written straight from a tuple, without a
/// tree of it. They must stay as they are, or every token issued before would stop
/// opening (a walk may span a restart or move between replicas).
fn context_bytes(
    instance: i64,
    base_url: &str,
    method: &str,
    resource_path: &str,
    path: &str,
    pairs: &[(&str, &str)],
) -> serde_json::Result<Vec<u8>> {
    let context = (
        "junction page token 2",
        instance,
        base_url,
        method,
        resource_path,
        path,
        pairs,
    );
    serde_json::to_vec(&context)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_context_is_written_as_the_json_array_it_always_was() {
        let pairs = [("pageSize", "200"), ("where", "Name = 'a\\\"b' \u{e9}\n")];
        let tree = json!([
            "junction page token 2",
            -7_i64,
            "https://x.example/a?b=\"c\"",
            "GET",
            "/hubs/crm/accounts/{id}",
            "/accounts/1",
            pairs,
        ]);
        assert_eq!(
            context_bytes(
                -7,
                "https://x.example/a?b=\"c\"",
                "GET",
                "/hubs/crm/accounts/{id}",
                "/accounts/1",
                &pairs,
            )
            .unwrap(),
            tree.to_string().into_bytes()
        );
        assert_eq!(
            context_bytes(1, "", "GET", "/a", "/a", &[]).unwrap(),
            br#"["junction page token 2",1,"","GET","/a","/a",[]]"#
        );
    }
}

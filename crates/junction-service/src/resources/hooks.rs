//! The element's and the resource's JavaScript hooks (spec §6.5), run in
//! `junction-sandbox`: `preRequest` once the vendor call is mapped and before it is
//! sent, `postRequest` once the vendor answered and before the answer is mapped. Element
//! hooks run before the resource's, each seeing what the previous one left.

use super::request::{VendorBody, VendorRequest};
use crate::ServiceError;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use junction_core::ElementDefinition;
use junction_core::config::ConfigMap;
use junction_core::hub::{Hook, HookType, Resource};
use junction_sandbox::{HookError, Sandbox};
use serde_json::{Map, Value, json};

/// The hooks of `kind` for a call of `resource`, element-level first.
fn declared<'a>(
    element: &'a ElementDefinition,
    resource: &'a Resource,
    kind: HookType,
) -> impl Iterator<Item = (&'static str, &'a Hook)> {
    element
        .hooks
        .iter()
        .map(|h| ("element", h))
        .chain(resource.hooks.iter().map(|h| ("resource", h)))
        .filter(move |(_, h)| h.kind == kind)
}

/// What the hub request was, for the hooks' `request_*` inputs.
pub(super) struct HubSide<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub parameters: Map<String, Value>,
    pub headers: &'a HeaderMap,
    pub body: Option<&'a Value>,
    pub config: &'a ConfigMap,
    pub instance_id: i64,
}

/// What the hooks decided beyond the vendor call itself.
#[derive(Debug, Default)]
pub(super) struct Decisions {
    /// Configuration values to store into the instance.
    pub configuration: Vec<(String, String)>,
    /// `done({continue: false, ...})` in a `preRequest` hook: answer this without calling
    /// the vendor.
    pub answer: Option<Value>,
}

fn headers_json(headers: &HeaderMap) -> Value {
    let map: Map<String, Value> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), json!(v.to_str().ok()?))))
        .collect();
    Value::Object(map)
}

fn common_inputs(element: &ElementDefinition, hub: &HubSide<'_>) -> Map<String, Value> {
    let mut input = Map::new();
    input.insert("request_method".into(), json!(hub.method));
    input.insert("request_path".into(), json!(hub.path));
    input.insert(
        "request_parameters".into(),
        Value::Object(hub.parameters.clone()),
    );
    input.insert("request_headers".into(), headers_json(hub.headers));
    if let Some(body) = hub.body {
        input.insert("request_body".into(), body.clone());
        if body.is_object() {
            input.insert("request_body_map".into(), body.clone());
        }
    }
    let configuration: Map<String, Value> = hub
        .config
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), json!(v.as_ref()?))))
        .collect();
    input.insert("configuration".into(), Value::Object(configuration));
    input.insert(
        "meta_data".into(),
        json!({
            "now": chrono::Utc::now().timestamp_millis(),
            "element_key": element.key,
            "instance_id": hub.instance_id,
        }),
    );
    input
}

fn vendor_inputs(input: &mut Map<String, Value>, vendor: &VendorRequest, base_url: &str) {
    let mut parameters = Map::new();
    for raw in &vendor.passed_query {
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            parameters.insert(k.into_owned(), json!(v));
        }
    }
    for (k, v) in &vendor.query {
        parameters.insert(k.clone(), json!(v));
    }
    input.insert(
        "request_vendor_parameters".into(),
        Value::Object(parameters),
    );
    input.insert(
        "request_vendor_method".into(),
        json!(vendor.method.as_str()),
    );
    input.insert("request_vendor_path".into(), json!(vendor.path));
    input.insert(
        "request_vendor_url".into(),
        json!(format!("{}{}", base_url.trim_end_matches('/'), vendor.path)),
    );
    input.insert(
        "request_vendor_headers".into(),
        headers_json(&vendor.headers),
    );
    if let VendorBody::Json(body) = &vendor.body {
        input.insert("request_vendor_body".into(), body.clone());
        if body.is_object() {
            input.insert("request_vendor_body_map".into(), body.clone());
        }
    }
}

fn failed(error: HookError) -> ServiceError {
    let status = match error {
        // The script refused the call on purpose: its words are for the caller.
        HookError::Thrown { .. } => 400,
        HookError::Internal { .. } => {
            return ServiceError::Internal(error.to_string());
        }
        _ => 502,
    };
    ServiceError::HookFailed {
        status,
        message: error.to_string(),
    }
}

fn bad_output(name: &str, what: &str) -> ServiceError {
    ServiceError::HookFailed {
        status: 502,
        message: format!("hook {name} gave an unusable output: {what}"),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn keep_configuration(
    name: &str,
    output: &Map<String, Value>,
    decisions: &mut Decisions,
) -> Result<(), ServiceError> {
    match output.get("configuration") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(map)) => {
            for (k, v) in map {
                decisions.configuration.push((k.clone(), text(v)));
            }
            Ok(())
        }
        Some(_) => Err(bad_output(name, "'configuration' must be an object")),
    }
}

fn hook_name(kind: &str, level: &str, resource: &Resource) -> String {
    format!(
        "'{kind}' of {level} for '{} {}'",
        resource.method.as_str(),
        resource.path
    )
}

/// Runs the `preRequest` hooks, changing `vendor` as their outputs say.
pub(super) async fn pre_request(
    sandbox: &Sandbox,
    element: &ElementDefinition,
    resource: &Resource,
    hub: &HubSide<'_>,
    base_url: &str,
    vendor: &mut VendorRequest,
) -> Result<Decisions, ServiceError> {
    let mut decisions = Decisions::default();
    for (level, hook) in declared(element, resource, HookType::PreRequest) {
        let name = hook_name("preRequest", level, resource);
        let mut input = common_inputs(element, hub);
        vendor_inputs(&mut input, vendor, base_url);
        let result = sandbox
            .run(&name, &hook.body, input)
            .await
            .map_err(failed)?;
        let output = result.output;
        if let Some(path) = output.get("request_vendor_path") {
            let path = path
                .as_str()
                .ok_or_else(|| bad_output(&name, "'request_vendor_path' must be a string"))?;
            vendor.path = if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/{path}")
            };
        }
        match output.get("request_vendor_headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(headers)) => {
                for (k, v) in headers {
                    let header = HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| bad_output(&name, "a header name is not valid"))?;
                    if v.is_null() {
                        vendor.headers.remove(&header);
                    } else {
                        let value = HeaderValue::from_str(&text(v))
                            .map_err(|_| bad_output(&name, "a header value is not valid"))?;
                        vendor.headers.insert(header, value);
                    }
                }
            }
            Some(_) => {
                return Err(bad_output(
                    &name,
                    "'request_vendor_headers' must be an object",
                ));
            }
        }
        match output.get("request_vendor_parameters") {
            None | Some(Value::Null) => {}
            Some(Value::Object(parameters)) => {
                vendor.passed_query.clear();
                vendor.query = parameters
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), text(v)))
                    .collect();
            }
            Some(_) => {
                return Err(bad_output(
                    &name,
                    "'request_vendor_parameters' must be an object",
                ));
            }
        }
        if let Some(body) = output.get("request_vendor_body") {
            vendor.body = VendorBody::Json(body.clone());
        }
        keep_configuration(&name, &output, &mut decisions)?;
        if !result.proceed {
            decisions.answer = Some(output.get("response_body").cloned().unwrap_or(Value::Null));
            return Ok(decisions);
        }
    }
    Ok(decisions)
}

/// The vendor's answer as the `postRequest` hooks see and may replace it.
pub(super) struct VendorAnswer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Runs the `postRequest` hooks; `response_body` replaces the vendor's answer.
pub(super) async fn post_request(
    sandbox: &Sandbox,
    element: &ElementDefinition,
    resource: &Resource,
    hub: &HubSide<'_>,
    base_url: &str,
    vendor: &VendorRequest,
    answer: &mut VendorAnswer,
) -> Result<Decisions, ServiceError> {
    let mut decisions = Decisions::default();
    for (level, hook) in declared(element, resource, HookType::PostRequest) {
        let name = hook_name("postRequest", level, resource);
        let mut input = common_inputs(element, hub);
        vendor_inputs(&mut input, vendor, base_url);
        input.insert("response_body".into(), answer.body.clone());
        input.insert("response_headers".into(), headers_json(&answer.headers));
        input.insert("response_status_code".into(), json!(answer.status));
        input.insert("response_iserror".into(), json!(answer.status >= 400));
        let result = sandbox
            .run(&name, &hook.body, input)
            .await
            .map_err(failed)?;
        if let Some(body) = result.output.get("response_body") {
            answer.body = body.clone();
        }
        keep_configuration(&name, &result.output, &mut decisions)?;
    }
    Ok(decisions)
}

/// Whether any hook of `kind` applies, so a call without hooks pays nothing.
pub(super) fn any(element: &ElementDefinition, resource: &Resource, kind: HookType) -> bool {
    declared(element, resource, kind).next().is_some()
}

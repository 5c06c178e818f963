//! An element's API documentation: the Swagger 2.0 document Cloud Elements serves at
//! `/elements/{keyOrId}/docs` and `/instances/{id}/docs`, generated from the element's
//! definition alone (its resources, parameters, models and objects). No I/O: the caller
//! finds the element and says where the API is reached.
//!
//! Models arrive as the Element Builder stored them, so they are read generously and
//! held to what Swagger 2.0 allows: keywords it does not know are dropped, definition
//! names are reduced to characters a `$ref` carries as they are, and a reference to a
//! model the element does not define becomes a plain object. The document is built from
//! sorted maps, so one definition always gives the same bytes.

use junction_core::ElementDefinition;
use junction_core::hub::{HttpMethod, Parameter, ParameterSource, ParameterType, Resource};
use junction_core::hub::{ObjectDefinition, ResourceType};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use url::Url;

/// The instance a document is generated for, when it is one instance's.
#[derive(Debug, Clone)]
pub struct InstanceLabel {
    pub id: i64,
    pub name: String,
}

/// The query parameters every list answers to (the resource engine's own).
const LIST_PARAMETERS: [(&str, &str, &str); 6] = [
    (
        "where",
        "string",
        "A CEQL filter, such as `Name = 'Acme' AND Amount > 100`",
    ),
    (
        "orderBy",
        "string",
        "Fields to sort by, each with `asc` or `desc`: `Name asc, CreatedDate desc`",
    ),
    (
        "fields",
        "string",
        "Only these fields of each record, comma-separated: `Id,Name`",
    ),
    ("pageSize", "integer", "Records per page"),
    (
        "nextPage",
        "string",
        "The `Elements-Next-Page-Token` of the previous page",
    ),
    ("page", "integer", "The page to return, from 1"),
];

const ERROR_RESPONSES: [(&str, &str, &str); 7] = [
    (
        "400",
        "BadRequest",
        "The request is malformed or names something the element does not accept",
    ),
    (
        "401",
        "Unauthorized",
        "The Authorization header proves no instance",
    ),
    ("403", "Forbidden", "The instance is disabled"),
    (
        "404",
        "NotFound",
        "The element offers no such resource, or the provider has no such record",
    ),
    (
        "429",
        "TooManyRequests",
        "Too many calls: wait as long as `Retry-After` says",
    ),
    (
        "500",
        "InternalError",
        "Junction failed; the request id identifies the call in its log",
    ),
    (
        "502",
        "ProviderError",
        "The provider could not be reached or answered in a way Junction cannot use",
    ),
];

const AUTHORIZATION: &str = "Authorization";

/// The Swagger 2.0 document of `element`'s hub API, as reached under `api_base` (the
/// public URL of `/elements/api-v2`). With `instance`, it is that instance's document.
pub fn swagger(
    element: &ElementDefinition,
    api_base: &Url,
    instance: Option<&InstanceLabel>,
) -> Value {
    let mut definitions = Definitions::default();
    for object in &element.objects {
        definitions.add_object(object);
    }
    let mut models = BTreeMap::new();
    for resource in documented(element) {
        if let Some(model) = &resource.model
            && let Some(name) = definitions.add_model(model)
        {
            // The first resource on a route is the one documented, with its model.
            models.entry(operation_key(resource)).or_insert(name);
        }
    }
    let standard = definitions.add_standard();
    definitions.resolve_references();

    let mut operations: BTreeMap<(String, &'static str), Value> = BTreeMap::new();
    let mut families: BTreeSet<String> = BTreeSet::new();
    let mut operation_ids = OperationIds::default();
    let mut declared: Vec<&Resource> = documented(element).collect();
    // Sorted by route, so operation ids are numbered the same way on every run.
    declared.sort_by(|a, b| operation_key(a).cmp(&operation_key(b)));
    for resource in declared {
        let (path, method) = operation_key(resource);
        if operations.contains_key(&(path.clone(), method)) {
            continue;
        }
        let family = family(&path);
        let model = models
            .get(&(path.clone(), method))
            .cloned()
            .or_else(|| definitions.object_named(collection(&path)));
        let op = operation(
            element,
            resource,
            &path,
            &family,
            model.as_deref(),
            &mut operation_ids,
            &definitions,
        );
        families.insert(family);
        operations.insert((path, method), op);
    }
    for (path, method, op) in standard_operations(element, &standard, &mut operation_ids) {
        if !operations.contains_key(&(path.clone(), method)) {
            families.insert(family(&path));
            operations.insert((path, method), op);
        }
    }

    let mut paths = BTreeMap::<String, Map<String, Value>>::new();
    for ((path, method), op) in operations {
        paths.entry(path).or_default().insert(method.to_owned(), op);
    }
    let tags: Vec<Value> = families
        .iter()
        .map(|name| {
            let mut tag = json!({ "name": name });
            if let Some(description) = family_description(element, name) {
                tag["description"] = Value::String(description);
            }
            tag
        })
        .collect();

    let mut info = json!({
        "title": element.name,
        "version": "v2",
        "description": description(element, instance),
    });
    if let Some(instance) = instance {
        info["x-instance"] = json!({ "id": instance.id, "name": instance.name });
    }
    let mut doc = json!({
        "swagger": "2.0",
        "info": info,
        "basePath": format!(
            "{}/hubs/{}",
            api_base.path().trim_end_matches('/'),
            element.hub
        ),
        "schemes": [api_base.scheme()],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "tags": tags,
        "securityDefinitions": {
            AUTHORIZATION: {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`User <user secret>, Organization <organization secret>, \
                    Element <element token>`: the Element token names the instance whose \
                    provider answers, and proves it alone too (`Element <token>`). The \
                    parts may come in any order, separated by commas.",
            }
        },
        "security": [{ AUTHORIZATION: [] }],
        "paths": paths,
        "definitions": definitions.into_map(),
        "responses": error_responses(&standard.error),
    });
    if let Some(host) = swagger_host(api_base) {
        doc["host"] = Value::String(host);
    }
    doc
}

/// `host[:port]` as Swagger 2.0 spells it, which has no room for an IPv6 literal: such
/// a document leaves `host` out, and clients use the host that served it.
fn swagger_host(api_base: &Url) -> Option<String> {
    let host = api_base.host_str()?;
    if host.contains(':') || host.starts_with('[') {
        return None;
    }
    Some(match api_base.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

fn description(element: &ElementDefinition, instance: Option<&InstanceLabel>) -> String {
    let mut text = element.description.trim().to_owned();
    if let Some(instance) = instance {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(&format!(
            "Instance {} ({}) of the {} element.",
            instance.id, instance.name, element.key
        ));
    }
    text
}

/// The resources a document shows: hub routes, not the lifecycle steps Junction runs
/// itself nor the routes the element keeps out of its documentation.
fn documented(element: &ElementDefinition) -> impl Iterator<Item = &Resource> {
    element
        .resources
        .iter()
        .filter(|r| r.kind == ResourceType::Api)
}

/// The route of a resource as the document names it: its path below `/hubs/<hub>`
/// (the hub segment is not part of routing) and its method.
fn operation_key(resource: &Resource) -> (String, &'static str) {
    (hub_path(&resource.path), method_name(resource.method))
}

fn hub_path(path: &str) -> String {
    let rest = path
        .strip_prefix("/hubs/")
        .map(|rest| rest.find('/').map_or("", |i| &rest[i..]))
        .unwrap_or(path);
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        "/".to_owned()
    } else if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    }
}

fn method_name(method: HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Put => "put",
        HttpMethod::Patch => "patch",
        HttpMethod::Delete => "delete",
    }
}

/// A resource family, the tag its operations share: the first segment of the path
/// (`contacts` for `/contacts/{id}/notes`).
fn family(path: &str) -> String {
    let first = path.split('/').find(|s| !s.is_empty()).unwrap_or("root");
    first
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_owned()
}

/// The records a path addresses: its last segment that is not a `{placeholder}`
/// (`orders` for `/customers/{id}/orders` and `/orders/{id}`).
fn collection(path: &str) -> &str {
    path.rsplit('/')
        .find(|s| !s.is_empty() && !s.starts_with('{'))
        .unwrap_or_default()
}

fn family_description(element: &ElementDefinition, family: &str) -> Option<String> {
    match family {
        "ping" => Some("Whether the instance's credentials work".to_owned()),
        "objects" => Some("The objects the element reads and writes, and their fields".into()),
        _ => element
            .objects
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(family))
            .map(|o| format!("{} records", o.name)),
    }
}

/// The `{placeholders}` of a path, in order.
fn placeholders(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A GET answers a list when its path ends in a collection rather than a `{placeholder}`,
/// or when it declares how the provider pages or where the records sit in its answer.
fn is_list(resource: &Resource, path: &str) -> bool {
    resource.method == HttpMethod::Get
        && (!path.ends_with('}')
            || resource.pagination_type.is_some()
            || resource.next_page_key.is_some()
            || resource.root_key.is_some())
}

fn operation(
    element: &ElementDefinition,
    resource: &Resource,
    path: &str,
    family: &str,
    model: Option<&str>,
    ids: &mut OperationIds,
    definitions: &Definitions,
) -> Value {
    let list = is_list(resource, path);
    let writes = matches!(
        resource.method,
        HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch
    );
    let mut parameters: Vec<Value> = Vec::new();
    let mut taken: BTreeSet<(String, &'static str)> = BTreeSet::new();
    let placeholders = placeholders(path);
    // Resource parameters override element-wide ones of the same name and place.
    let declared: Vec<&Parameter> = resource
        .parameters
        .iter()
        .chain(element.parameters.iter())
        .filter(|p| p.source == ParameterSource::Request)
        .collect();
    for name in &placeholders {
        // A name a path repeats (`/a/{id}/b/{id}`) is one parameter.
        if !taken.insert((name.clone(), "path")) {
            continue;
        }
        let given = declared
            .iter()
            .find(|p| p.kind == ParameterType::Path && &p.name == name);
        let mut param = simple_parameter(name, "path", given.and_then(|p| p.data_type.as_deref()));
        param["required"] = Value::Bool(true);
        if let Some(description) = given.and_then(|p| p.description.as_deref()) {
            param["description"] = Value::String(description.to_owned());
        }
        parameters.push(param);
    }
    let has_form = declared
        .iter()
        .any(|p| matches!(p.kind, ParameterType::Form | ParameterType::Multipart));
    let multipart = declared.iter().any(|p| p.kind == ParameterType::Multipart);
    let mut body: Option<Value> = None;
    for p in &declared {
        let place = match p.kind {
            ParameterType::Query => "query",
            ParameterType::Header if !p.name.eq_ignore_ascii_case(AUTHORIZATION) => "header",
            ParameterType::Form | ParameterType::Multipart => "formData",
            ParameterType::Body if !has_form => {
                if body.is_none() {
                    body = Some(body_parameter(
                        &p.name,
                        p.required,
                        p.description.as_deref(),
                        model,
                        definitions,
                    ));
                }
                continue;
            }
            _ => continue,
        };
        if !taken.insert((p.name.clone(), place)) {
            continue;
        }
        let mut param = simple_parameter(&p.name, place, p.data_type.as_deref());
        if p.kind == ParameterType::Multipart
            && matches!(p.data_type.as_deref(), Some("binary" | "file"))
        {
            param["type"] = Value::String("file".into());
            if let Some(map) = param.as_object_mut() {
                map.remove("format");
            }
        }
        if p.required {
            param["required"] = Value::Bool(true);
        }
        if let Some(description) = p.description.as_deref() {
            param["description"] = Value::String(description.to_owned());
        }
        parameters.push(param);
    }
    if writes && body.is_none() && !has_form {
        body = Some(body_parameter("body", true, None, model, definitions));
    }
    parameters.extend(body);
    if list {
        for (name, kind, description) in LIST_PARAMETERS {
            if !taken.insert((name.to_owned(), "query")) {
                continue;
            }
            let mut param = json!({
                "name": name, "in": "query", "required": false,
                "type": kind, "description": description,
            });
            if kind == "integer" {
                param["format"] = Value::String("int32".into());
                param["minimum"] = json!(1);
            }
            parameters.push(param);
        }
    }

    let method = method_name(resource.method);
    let mut ok = json!({ "description": "OK" });
    let schema = match (model, list) {
        (Some(name), true) => Some(json!({ "type": "array", "items": reference(name) })),
        (Some(name), false) => Some(reference(name)),
        (None, true) => Some(json!({ "type": "array", "items": { "type": "object" } })),
        (None, false) if resource.method != HttpMethod::Delete => Some(json!({ "type": "object" })),
        (None, false) => None,
    };
    if let Some(schema) = schema {
        ok["schema"] = schema;
    }
    if list {
        ok["headers"] = json!({
            "Elements-Next-Page-Token": {
                "type": "string",
                "description": "Pass it back as `nextPage` for the next page; absent on the last",
            },
            "Elements-Returned-Count": {
                "type": "integer",
                "description": "Records in this page",
            },
        });
    }
    let mut op = json!({
        "tags": [family],
        "summary": resource
            .description
            .clone()
            .unwrap_or_else(|| format!("{} {path}", resource.method.as_str())),
        "operationId": ids.claim(resource.operation_id.as_deref(), method, path),
        "parameters": parameters,
        "responses": responses(ok),
    });
    if has_form {
        let kind = if multipart {
            "multipart/form-data"
        } else {
            "application/x-www-form-urlencoded"
        };
        op["consumes"] = json!([kind]);
    }
    op
}

fn body_parameter(
    name: &str,
    required: bool,
    description: Option<&str>,
    model: Option<&str>,
    definitions: &Definitions,
) -> Value {
    let schema = match model.filter(|m| definitions.contains(m)) {
        Some(name) => reference(name),
        None => json!({ "type": "object" }),
    };
    let mut param = json!({ "name": name, "in": "body", "required": required, "schema": schema });
    if let Some(description) = description {
        param["description"] = Value::String(description.to_owned());
    }
    param
}

/// A path, query, header or form parameter of the given Cloud Elements data type.
fn simple_parameter(name: &str, place: &str, data_type: Option<&str>) -> Value {
    let (kind, format) = data_type.map_or(("string", None), swagger_type);
    let kind = if kind == "object" || kind == "array" {
        "string"
    } else {
        kind
    };
    let mut param = json!({ "name": name, "in": place, "required": false, "type": kind });
    if let Some(format) = format {
        param["format"] = Value::String(format.into());
    }
    param
}

/// Cloud Elements' data types (`long`, `dateTime`, …) as a Swagger type and format.
fn swagger_type(data_type: &str) -> (&'static str, Option<&'static str>) {
    match data_type.to_ascii_lowercase().as_str() {
        "integer" | "int" | "int32" => ("integer", Some("int32")),
        "long" | "int64" => ("integer", Some("int64")),
        "float" => ("number", Some("float")),
        "double" => ("number", Some("double")),
        "number" | "decimal" | "currency" | "percent" => ("number", None),
        "boolean" | "bool" => ("boolean", None),
        "date" => ("string", Some("date")),
        "datetime" | "date-time" | "timestamp" => ("string", Some("date-time")),
        "byte" => ("string", Some("byte")),
        "binary" | "file" => ("string", Some("binary")),
        "password" => ("string", Some("password")),
        "array" | "list" => ("array", None),
        "object" | "map" => ("object", None),
        _ => ("string", None),
    }
}

fn responses(ok: Value) -> Value {
    let mut map = Map::new();
    map.insert("200".into(), ok);
    for (status, name, _) in ERROR_RESPONSES {
        map.insert(
            status.into(),
            json!({ "$ref": format!("#/responses/{name}") }),
        );
    }
    Value::Object(map)
}

fn error_responses(error: &str) -> Value {
    let map: Map<String, Value> = ERROR_RESPONSES
        .iter()
        .map(|(_, name, description)| {
            (
                (*name).to_owned(),
                json!({ "description": description, "schema": reference(error) }),
            )
        })
        .collect();
    Value::Object(map)
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/definitions/{name}") })
}

/// `GET /ping`, `GET /objects` and `GET /objects/{objectName}/metadata`, which every
/// element answers.
fn standard_operations(
    element: &ElementDefinition,
    names: &StandardNames,
    ids: &mut OperationIds,
) -> Vec<(String, &'static str, Value)> {
    let mut object_name = json!({
        "name": "objectName", "in": "path", "required": true, "type": "string",
        "description": "One of the names `GET /objects` lists",
    });
    let declared: BTreeSet<&str> = element.objects.iter().map(|o| o.name.as_str()).collect();
    if !declared.is_empty() {
        object_name["enum"] = json!(declared);
    }
    vec![
        (
            "/ping".to_owned(),
            "get",
            json!({
                "tags": ["ping"],
                "summary": "Check that the instance's credentials work",
                "operationId": ids.claim(None, "get", "/ping"),
                "parameters": [],
                "responses": responses(json!({ "description": "OK", "schema": reference(&names.pong) })),
            }),
        ),
        (
            "/objects".to_owned(),
            "get",
            json!({
                "tags": ["objects"],
                "summary": "List the names of the objects the element reads and writes",
                "operationId": ids.claim(None, "get", "/objects"),
                "parameters": [],
                "responses": responses(json!({
                    "description": "OK",
                    "schema": { "type": "array", "items": { "type": "string" } },
                })),
            }),
        ),
        (
            "/objects/{objectName}/metadata".to_owned(),
            "get",
            json!({
                "tags": ["objects"],
                "summary": "Describe an object's fields",
                "operationId": ids.claim(None, "get", "/objects/{objectName}/metadata"),
                "parameters": [object_name],
                "responses": responses(json!({ "description": "OK", "schema": reference(&names.metadata) })),
            }),
        ),
    ]
}

/// Operation ids: the resource's own when it has one, else derived from the route
/// (`getContactsByIdNotes`); a repeat gets a number (`getContacts2`).
#[derive(Default)]
struct OperationIds(BTreeSet<String>);

impl OperationIds {
    fn claim(&mut self, given: Option<&str>, method: &str, path: &str) -> String {
        let base = given
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| derived_operation_id(method, path));
        let mut id = base.clone();
        let mut n = 2;
        while !self.0.insert(id.clone()) {
            id = format!("{base}{n}");
            n += 1;
        }
        id
    }
}

fn derived_operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let (prefix, word) = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => ("By", name),
            None => ("", segment),
        };
        id.push_str(prefix);
        for part in word
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|p| !p.is_empty())
        {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                id.push(first.to_ascii_uppercase());
                id.push_str(chars.as_str());
            }
        }
    }
    id
}

/// The names Junction's own definitions got (see [`Definitions::add_standard`]).
struct StandardNames {
    error: String,
    pong: String,
    metadata: String,
}

/// The document's `definitions`, by sanitized name.
#[derive(Default)]
struct Definitions(BTreeMap<String, Value>);

impl Definitions {
    fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn into_map(self) -> BTreeMap<String, Value> {
        self.0
    }

    /// The definition named like the records a resource addresses, for resources that
    /// declare no model (the `contacts` object for `/contacts/{id}`).
    fn object_named(&self, collection: &str) -> Option<String> {
        if collection.is_empty() {
            return None;
        }
        let wanted = definition_name(collection);
        self.0
            .keys()
            .find(|k| k.eq_ignore_ascii_case(&wanted))
            .cloned()
    }

    fn add_object(&mut self, object: &ObjectDefinition) {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for field in object.fields.iter().filter(|f| !f.hidden) {
            let (kind, format) = swagger_type(&field.kind);
            let mut schema = json!({ "type": kind });
            if let Some(format) = field.format.as_deref().or(format) {
                schema["format"] = Value::String(format.to_owned());
            }
            if kind == "array" {
                schema["items"] = json!({});
            }
            if field.read_only || field.primary_key {
                schema["readOnly"] = Value::Bool(true);
            }
            if field.required && !required.contains(&field.name) {
                required.push(field.name.clone());
            }
            properties.insert(field.name.clone(), schema);
        }
        let mut schema = json!({ "type": "object", "properties": properties });
        if !required.is_empty() {
            schema["required"] = json!(required);
        }
        self.0.insert(definition_name(&object.name), schema);
    }

    /// Adds a resource's model (Cloud Elements' `{name, swagger: {name: schema, …}}`, or
    /// `{name, schema}`, or a schema with a `name`) and returns the name responses refer
    /// to, if it has a schema at all.
    fn add_model(&mut self, model: &Value) -> Option<String> {
        let name = model
            .get("name")
            .and_then(Value::as_str)
            .map(definition_name);
        if let Some(all) = model.get("swagger").and_then(Value::as_object) {
            for (key, schema) in all {
                if schema.is_object() {
                    self.0.insert(definition_name(key), sanitize_schema(schema));
                }
            }
            if let Some(name) = name.filter(|n| self.0.contains_key(n)) {
                return Some(name);
            }
            // A single schema is the model whatever its name.
            let only = (all.len() == 1).then(|| all.keys().next()).flatten();
            return only
                .map(|k| definition_name(k))
                .filter(|n| self.0.contains_key(n));
        }
        let name = name?;
        let schema = match model.get("schema") {
            Some(schema) if schema.is_object() => sanitize_schema(schema),
            _ => {
                let mut rest = model.as_object()?.clone();
                for key in ["name", "transform", "rawSwagger", "swagger", "schema"] {
                    rest.remove(key);
                }
                if rest.is_empty() {
                    return None;
                }
                sanitize_schema(&Value::Object(rest))
            }
        };
        self.0.insert(name.clone(), schema);
        Some(name)
    }

    /// Junction's own definitions, under names the element's models left free.
    fn add_standard(&mut self) -> StandardNames {
        let error = self.free("ElementsError");
        self.0.insert(
            error.clone(),
            json!({
                "type": "object",
                "required": ["requestId", "message", "code"],
                "properties": {
                    "requestId": { "type": "string", "description": "Also in the `Elements-Request-Id` header and the server log" },
                    "message": { "type": "string" },
                    "providerMessage": { "type": "string", "description": "The provider's own words, when it refused" },
                    "code": { "type": "string", "description": "A stable code, such as `resource_not_found`" },
                },
            }),
        );
        let pong = self.free("Pong");
        self.0.insert(
            pong.clone(),
            json!({
                "type": "object",
                "properties": {
                    "dateTime": { "type": "string", "format": "date-time" },
                    "endpoint": { "type": "string", "description": "The element's key" },
                },
            }),
        );
        let metadata = self.free("ObjectMetadata");
        self.0.insert(
            metadata.clone(),
            json!({
                "type": "object",
                "properties": {
                    "fields": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "vendorPath": { "type": "string" },
                                "type": { "type": "string" },
                                "vendorNativeType": { "type": "string" },
                                "format": { "type": "string" },
                                "readOnly": { "type": "boolean" },
                                "required": { "type": "boolean" },
                                "primaryKey": { "type": "boolean" },
                            },
                        },
                    },
                },
            }),
        );
        StandardNames {
            error,
            pong,
            metadata,
        }
    }

    fn free(&self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut n = 2;
        while self.0.contains_key(&name) {
            name = format!("{base}{n}");
            n += 1;
        }
        name
    }

    /// A model may name models the element never defines: those references become
    /// plain objects, so every `$ref` in the document resolves.
    fn resolve_references(&mut self) {
        let known: BTreeSet<String> = self.0.keys().cloned().collect();
        for schema in self.0.values_mut() {
            resolve(schema, &known);
        }
    }
}

fn resolve(schema: &mut Value, known: &BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            let dangling = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/definitions/"))
                .is_some_and(|name| !known.contains(name));
            if dangling {
                *schema = json!({ "type": "object" });
                return;
            }
            for value in map.values_mut() {
                resolve(value, known);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| resolve(v, known)),
        _ => {}
    }
}

/// A definition name a `$ref` carries without escaping: letters, digits, `.`, `_`, `-`.
fn definition_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "_".to_owned()
    } else {
        cleaned
    }
}

/// A schema as the Element Builder stored it, held to Swagger 2.0's schema object:
/// unknown keywords dropped, Cloud Elements' data types (`dateTime`) turned into a type
/// and format, references pointed at `#/definitions/`.
fn sanitize_schema(schema: &Value) -> Value {
    let Some(map) = schema.as_object() else {
        return json!({});
    };
    let mut out = Map::new();
    for (key, value) in map {
        let kept = match key.as_str() {
            "$ref" => value
                .as_str()
                .and_then(reference_target)
                .map(|n| Value::String(format!("#/definitions/{n}"))),
            "type" => {
                let given = match value {
                    Value::String(s) => Some(s.as_str()),
                    Value::Array(types) => types
                        .iter()
                        .filter_map(Value::as_str)
                        .find(|t| *t != "null"),
                    _ => None,
                };
                if let Some(given) = given {
                    let (kind, format) = match given {
                        "array" | "boolean" | "integer" | "number" | "object" | "string" => {
                            (given_static(given), None)
                        }
                        other => swagger_type(other),
                    };
                    if let Some(format) = format
                        && !map.contains_key("format")
                    {
                        out.insert("format".into(), Value::String(format.into()));
                    }
                    Some(Value::String(kind.into()))
                } else {
                    None
                }
            }
            "format" | "title" | "description" | "pattern" => {
                value.as_str().map(|s| Value::String(s.to_owned()))
            }
            "default" | "example" => Some(value.clone()),
            "multipleOf" => value.as_f64().filter(|n| *n > 0.0).map(|_| value.clone()),
            "maximum" | "minimum" => value.is_number().then(|| value.clone()),
            "exclusiveMaximum" | "exclusiveMinimum" | "uniqueItems" | "readOnly" => {
                value.is_boolean().then(|| value.clone())
            }
            "maxLength" | "minLength" | "maxItems" | "minItems" | "maxProperties"
            | "minProperties" => value.is_u64().then(|| value.clone()),
            "required" => {
                let mut names: Vec<&str> = Vec::new();
                for name in value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                (!names.is_empty()).then(|| json!(names))
            }
            "enum" => {
                let mut values: Vec<&Value> = Vec::new();
                for v in value.as_array().into_iter().flatten() {
                    if !values.contains(&v) {
                        values.push(v);
                    }
                }
                (!values.is_empty()).then(|| json!(values))
            }
            "properties" => value.as_object().map(|props| {
                Value::Object(
                    props
                        .iter()
                        .map(|(k, v)| (k.clone(), sanitize_schema(v)))
                        .collect(),
                )
            }),
            "items" => match value {
                Value::Object(_) => Some(sanitize_schema(value)),
                Value::Array(items) if !items.is_empty() => {
                    Some(Value::Array(items.iter().map(sanitize_schema).collect()))
                }
                _ => None,
            },
            "allOf" => value
                .as_array()
                .filter(|items| !items.is_empty())
                .map(|items| Value::Array(items.iter().map(sanitize_schema).collect())),
            "additionalProperties" => match value {
                Value::Bool(_) => Some(value.clone()),
                Value::Object(_) => Some(sanitize_schema(value)),
                _ => None,
            },
            k if k.starts_with("x-") => Some(value.clone()),
            _ => None,
        };
        if let Some(kept) = kept {
            out.insert(key.clone(), kept);
        }
    }
    Value::Object(out)
}

fn given_static(kind: &str) -> &'static str {
    match kind {
        "array" => "array",
        "boolean" => "boolean",
        "integer" => "integer",
        "number" => "number",
        "object" => "object",
        _ => "string",
    }
}

/// The definition a model's `$ref` names: `#/definitions/X`, or a bare `X` as Cloud
/// Elements writes it. References to other documents are not followed.
fn reference_target(reference: &str) -> Option<String> {
    if let Some(name) = reference.strip_prefix("#/definitions/") {
        let name = name.replace("~1", "/").replace("~0", "~");
        return Some(definition_name(&name));
    }
    if reference.contains(['#', '/', ':']) {
        return None;
    }
    Some(definition_name(reference))
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_testkit::swagger::assert_sound;

    fn element(extra: Value) -> ElementDefinition {
        let mut json = json!({
            "id": 100001, "key": "shop", "name": "Shop", "hookName": "Shop", "hub": "crm",
            "description": "A shop", "image": "", "authentication": {"type": "basic"},
        });
        if let (Some(base), Some(extra)) = (json.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(json).unwrap()
    }

    fn base() -> Url {
        Url::parse("https://hub.example.com:8443/elements/api-v2").unwrap()
    }

    fn shop() -> ElementDefinition {
        element(json!({
            "parameters": [
                {"name": "X-Tenant", "vendorName": "X-Tenant", "type": "header", "vendorType": "header"}
            ],
            "objects": [{"name": "contacts", "fields": [
                {"name": "Id", "type": "string", "primaryKey": true},
                {"name": "Email", "type": "string", "required": true},
                {"name": "Age", "type": "integer"},
                {"name": "Secret", "type": "string", "hidden": true}
            ]}],
            "resources": [
                {"path": "/hubs/crm/contacts", "method": "GET", "vendorPath": "/contacts",
                 "description": "List contacts"},
                {"path": "/hubs/crm/contacts/{id}", "method": "GET", "vendorPath": "/contacts/{id}",
                 "parameters": [{"name": "id", "vendorName": "id", "type": "path", "vendorType": "path",
                                 "dataType": "long", "description": "The contact's id"}]},
                {"path": "/hubs/crm/orders", "method": "POST", "vendorPath": "/orders",
                 "model": {"name": "order", "swagger": {
                     "order": {"type": "object", "nullable": true, "required": [],
                               "properties": {"lines": {"type": "array", "items": {"$ref": "orderLine"}},
                                              "placed": {"type": "dateTime"},
                                              "coupon": {"$ref": "coupon"}}},
                     "orderLine": {"properties": {"sku": {"type": "string"}}}
                 }}},
                {"path": "/hubs/crm/orders", "method": "GET", "vendorPath": "/orders",
                 "operationId": "listOrders", "model": {"name": "order"}},
                {"path": "/hubs/crm/orders/{id}", "method": "DELETE", "vendorPath": "/orders/{id}",
                 "operationId": "listOrders"},
                {"path": "/uploads", "method": "POST", "vendorPath": "/files",
                 "parameters": [{"name": "file", "vendorName": "file", "type": "multipart",
                                 "vendorType": "multipart", "dataType": "binary"}]},
                {"path": "/hubs/crm/secret", "method": "GET", "vendorPath": "/s", "type": "apiNoDocumentation"},
                {"path": "/hubs/crm/provision", "method": "POST", "vendorPath": "/p", "type": "onProvision"}
            ]
        }))
    }

    #[test]
    fn the_document_is_sound_swagger_2() {
        assert_sound("shop", &swagger(&shop(), &base(), None));
        assert_sound(
            "an element with nothing declared",
            &swagger(&element(json!({})), &base(), None),
        );
    }

    #[test]
    fn where_the_api_is_comes_from_the_base_and_the_hub() {
        let doc = swagger(&shop(), &base(), None);
        assert_eq!(doc["swagger"], "2.0");
        assert_eq!(doc["host"], "hub.example.com:8443");
        assert_eq!(doc["basePath"], "/elements/api-v2/hubs/crm");
        assert_eq!(doc["schemes"], json!(["https"]));
        assert_eq!(doc["info"]["title"], "Shop");
        let ipv6 = Url::parse("http://[::1]:8080/elements/api-v2").unwrap();
        assert!(swagger(&shop(), &ipv6, None).get("host").is_none());
    }

    #[test]
    fn paths_drop_the_hub_prefix_and_leave_out_undocumented_resources() {
        let doc = swagger(&shop(), &base(), None);
        let paths: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            paths,
            [
                "/contacts",
                "/contacts/{id}",
                "/objects",
                "/objects/{objectName}/metadata",
                "/orders",
                "/orders/{id}",
                "/ping",
                "/uploads"
            ]
        );
        let tags: Vec<&str> = doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(tags, ["contacts", "objects", "orders", "ping", "uploads"]);
    }

    #[test]
    fn lists_take_the_query_parameters_and_answer_the_paging_headers() {
        let doc = swagger(&shop(), &base(), None);
        let list = &doc["paths"]["/contacts"]["get"];
        let names: Vec<&str> = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "X-Tenant", "where", "orderBy", "fields", "pageSize", "nextPage", "page"
            ]
        );
        let ok = &list["responses"]["200"];
        assert_eq!(ok["schema"]["items"]["$ref"], "#/definitions/contacts");
        assert!(ok["headers"]["Elements-Next-Page-Token"].is_object());
        assert!(ok["headers"]["Elements-Returned-Count"].is_object());
        let one = &doc["paths"]["/contacts/{id}"]["get"];
        assert_eq!(
            one["parameters"][0],
            json!({"name": "id", "in": "path", "required": true, "type": "integer", "format": "int64", "description": "The contact's id"})
        );
        assert_eq!(
            one["responses"]["200"]["schema"]["$ref"],
            "#/definitions/contacts"
        );
        assert!(one["responses"]["200"].get("headers").is_none());
        assert_eq!(one["responses"]["404"]["$ref"], "#/responses/NotFound");
    }

    #[test]
    fn writes_take_the_model_as_their_body() {
        let doc = swagger(&shop(), &base(), None);
        let create = &doc["paths"]["/orders"]["post"];
        assert_eq!(create["parameters"][0]["name"], "X-Tenant");
        assert_eq!(
            create["parameters"][1],
            json!({"name": "body", "in": "body", "required": true, "schema": {"$ref": "#/definitions/order"}})
        );
        let upload = &doc["paths"]["/uploads"]["post"];
        assert_eq!(upload["consumes"], json!(["multipart/form-data"]));
        let file = upload["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "file")
            .unwrap();
        assert_eq!(file["in"], "formData");
        assert_eq!(file["type"], "file");
    }

    #[test]
    fn models_are_held_to_swagger_2_and_objects_become_definitions() {
        let doc = swagger(&shop(), &base(), None);
        let order = &doc["definitions"]["order"];
        assert!(
            order.get("nullable").is_none() && order.get("required").is_none(),
            "{order}"
        );
        assert_eq!(
            order["properties"]["lines"]["items"]["$ref"],
            "#/definitions/orderLine"
        );
        assert_eq!(
            order["properties"]["placed"],
            json!({"type": "string", "format": "date-time"})
        );
        assert_eq!(order["properties"]["coupon"], json!({"type": "object"}));
        let contacts = &doc["definitions"]["contacts"];
        assert_eq!(contacts["required"], json!(["Email"]));
        assert_eq!(contacts["properties"]["Age"]["format"], "int32");
        assert_eq!(contacts["properties"]["Id"]["readOnly"], true);
        assert!(contacts["properties"].get("Secret").is_none());
        assert!(doc["definitions"]["ElementsError"]["required"].is_array());
        assert_eq!(
            doc["paths"]["/objects/{objectName}/metadata"]["get"]["parameters"][0]["enum"],
            json!(["contacts"])
        );
    }

    #[test]
    fn operation_ids_are_unique_and_stable() {
        let doc = swagger(&shop(), &base(), None);
        assert_eq!(doc["paths"]["/orders"]["get"]["operationId"], "listOrders");
        assert_eq!(
            doc["paths"]["/orders/{id}"]["delete"]["operationId"],
            "listOrders2"
        );
        assert_eq!(
            doc["paths"]["/contacts/{id}"]["get"]["operationId"],
            "getContactsById"
        );
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            serde_json::to_string(&swagger(&shop(), &base(), None)).unwrap()
        );
    }

    #[test]
    fn the_first_resource_on_a_route_is_documented_with_its_own_model() {
        let e = element(json!({"resources": [
            {"path": "/hubs/crm/things", "method": "POST", "vendorPath": "/a", "operationId": "first",
             "model": {"name": "first", "type": "object"}},
            {"path": "/things", "method": "POST", "vendorPath": "/b", "operationId": "second",
             "model": {"name": "second", "type": "object"}}
        ]}));
        let doc = swagger(&e, &base(), None);
        let create = &doc["paths"]["/things"]["post"];
        assert_eq!(create["operationId"], "first");
        assert_eq!(
            create["responses"]["200"]["schema"]["$ref"],
            "#/definitions/first"
        );
        assert_sound("a route declared twice", &doc);
    }

    #[test]
    fn a_placeholder_named_twice_is_one_path_parameter() {
        let e = element(json!({"resources": [
            {"path": "/hubs/crm/a/{id}/b/{id}", "method": "GET", "vendorPath": "/a/{id}"}
        ]}));
        let doc = swagger(&e, &base(), None);
        let params = doc["paths"]["/a/{id}/b/{id}"]["get"]["parameters"]
            .as_array()
            .unwrap();
        assert_eq!(params.iter().filter(|p| p["in"] == "path").count(), 1);
        assert_sound("a repeated placeholder", &doc);
    }

    #[test]
    fn a_model_named_like_a_standard_definition_keeps_its_name() {
        let e = element(json!({"resources": [
            {"path": "/hubs/crm/errors", "method": "GET", "vendorPath": "/e",
             "model": {"name": "ElementsError", "type": "object", "properties": {"x": {"type": "string"}}}}
        ]}));
        let doc = swagger(&e, &base(), None);
        assert!(doc["definitions"]["ElementsError"]["properties"]["x"].is_object());
        assert_eq!(
            doc["responses"]["NotFound"]["schema"]["$ref"],
            "#/definitions/ElementsError2"
        );
        assert_sound("colliding names", &doc);
    }

    #[test]
    fn an_instance_document_names_its_instance() {
        let label = InstanceLabel {
            id: 7,
            name: "Acme".into(),
        };
        let doc = swagger(&shop(), &base(), Some(&label));
        assert_eq!(doc["info"]["x-instance"], json!({"id": 7, "name": "Acme"}));
        assert!(
            doc["info"]["description"]
                .as_str()
                .unwrap()
                .contains("Instance 7 (Acme)")
        );
        assert_sound("instance", &doc);
    }
}

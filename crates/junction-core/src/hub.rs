//! What an element offers through the hub API, as data (Cloud Elements' element
//! definition, spec §6.3–6.6): resources (a normalized route mapped onto a vendor call),
//! their parameters, JavaScript hooks, and object definitions. The same types are read
//! from the embedded YAML files and from the Element Builder's JSON.

use serde::{Deserialize, Serialize};

/// One hub route of an element and the vendor call behind it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resource {
    /// Stable within its element; assigned on creation when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The hub route, `/hubs/<hub>/<resource>[/{id}]` (a bare `/contacts` is stored under
    /// the element's hub).
    pub path: String,
    pub method: HttpMethod,
    /// Appended to `base.url`; `{placeholders}` are filled from path parameters.
    pub vendor_path: String,
    /// The vendor's method; the resource's own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_method: Option<HttpMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: ResourceType,
    /// Selects the list inside the vendor's answer (`|records`, `data.items`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_key: Option<String>,
    /// Where the vendor's answer names the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination_type: Option<PaginationType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    /// The resource's model (a Swagger 2.0 schema object and its name), kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// What a resource is for: a hub route, or a step Junction runs itself at a moment of
/// the instance's life. The misspelled `oauthOnAuthroizeUrl` is Cloud Elements' own.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ResourceType {
    #[default]
    Api,
    ApiNoDocumentation,
    OnProvision,
    OnDelete,
    OnRefresh,
    OnProvisionWebhook,
    OnDeleteWebhook,
    #[serde(rename = "oauthOnAuthroizeUrl")]
    OauthOnAuthorizeUrl,
    OauthOnTokenExchange,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaginationType {
    VendorSupported,
    VendorNotSupported,
}

/// One value mapped between the hub request (or response) and the vendor's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Parameter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The name on the hub side (for `value` parameters, the value itself).
    pub name: String,
    /// The name on the vendor's side.
    pub vendor_name: String,
    #[serde(rename = "type")]
    pub kind: ParameterType,
    pub vendor_type: ParameterType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_data_type: Option<String>,
    /// `response` maps from the vendor's answer back (into configuration, say).
    #[serde(default)]
    pub source: ParameterSource,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A named conversion, such as `toQueryParameters` for `where`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converter: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ParameterType {
    Configuration,
    Header,
    Path,
    Body,
    Query,
    Form,
    Multipart,
    Value,
    BodyField,
    BodyToken,
    PrevBody,
    PrevBodyField,
    #[serde(rename = "no-op")]
    NoOp,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ParameterSource {
    #[default]
    Request,
    Response,
}

/// A JavaScript hook run around a vendor call (or on an incoming event).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(rename = "type")]
    pub kind: HookType,
    #[serde(default = "javascript")]
    pub mime_type: String,
    pub body: String,
    #[serde(default)]
    pub is_legacy: bool,
}

fn javascript() -> String {
    "application/javascript".into()
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum HookType {
    PreRequest,
    PostRequest,
    Event,
}

/// One object the element's resources read and write, with its fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_date_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_date_format: Option<String>,
    #[serde(default)]
    pub events_enabled: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<ObjectField>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectField {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default)]
    pub primary_key: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub required: bool,
}

/// A hub: a family of elements sharing one normalized API (`crm`, `marketing`, …). The
/// built-in ones are data (`elements/hubs/hubs.yaml`); an organization may add its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HubDefinition {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_link: Option<String>,
}

/// Whether `key` may name a hub or an element: 1 to 64 lower-case letters and digits.
pub fn is_catalog_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cloud_elements_resource_reads_as_is() {
        let r: Resource = serde_json::from_value(serde_json::json!({
            "path": "/hubs/crm/contacts",
            "method": "GET",
            "vendorPath": "/contacts",
            "type": "api",
            "rootKey": "|records",
            "parameters": [
                {"name": "where", "vendorName": "q", "type": "query", "vendorType": "query",
                 "converter": "toQueryParameters"},
                {"name": "application/json", "vendorName": "Accept", "type": "value",
                 "vendorType": "header"}
            ],
            "hooks": [{"type": "preRequest", "body": "done({});"}]
        }))
        .unwrap();
        assert_eq!(r.method, HttpMethod::Get);
        assert_eq!(
            r.parameters[0].converter.as_deref(),
            Some("toQueryParameters")
        );
        assert_eq!(r.hooks[0].mime_type, "application/javascript");
    }

    #[test]
    fn the_misspelled_oauth_resource_type_is_the_one_cloud_elements_sends() {
        let t: ResourceType = serde_json::from_str(r#""oauthOnAuthroizeUrl""#).unwrap();
        assert_eq!(t, ResourceType::OauthOnAuthorizeUrl);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#""oauthOnAuthroizeUrl""#
        );
    }
}

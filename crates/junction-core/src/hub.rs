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
    /// How the vendor pages this list; absent, one vendor answer is the whole list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<Paging>,
    /// How `where` (and `orderBy`, `fields`) reach the vendor; absent, `where` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Query>,
    /// Bodies pass through unchanged in both directions (files, binary downloads) instead
    /// of being read as JSON.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stream: bool,
    /// Where the call's credential comes from when the vendor wants another one than the
    /// instance's for it; absent, the instance's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialLookup>,
}

/// A credential read from a vendor answer (Graph's lead-ads edges want the page's own
/// access token, which the user's token reads from the page node): Junction first GETs
/// `path` with the instance's credential, then sends the resource's call with the value
/// at `field` of that answer in the credential's place.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialLookup {
    /// Appended to `base.url`; `{placeholders}` take the hub path's values.
    pub path: String,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub query: std::collections::BTreeMap<String, String>,
    /// Dotted path of the credential in the answer.
    pub field: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A vendor's paging style. The caller always walks with Junction's own `nextPage`
/// token; this says how each step becomes a vendor call, and where the vendor says more
/// follows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Paging {
    pub style: PagingStyle,
    /// The query parameter carrying the position: the record offset (`offset`), the page
    /// number (`page`) or the cursor (`cursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// `page` style: the number of the vendor's first page, 0 or 1.
    #[serde(default = "one")]
    pub first_page: u64,
    /// `cursor`: dotted path of the next cursor in the answer; `nextUrl`: of the next
    /// page's URL (absolute, or relative to `base.url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// `cursor`: a response header holding the next cursor, instead of `next`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_header: Option<String>,
    /// Dotted path of a boolean in the answer that is true while more records follow
    /// (`has_more`). Without it a short or empty page, or a missing next cursor or URL,
    /// is the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more: Option<String>,
    pub page_size: PageSize,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PagingStyle {
    /// Offset and limit parameters.
    Offset,
    /// A page number and a page size.
    Page,
    /// An opaque vendor cursor sent back as a parameter.
    Cursor,
    /// The answer holds the next page's URL (Salesforce `nextRecordsUrl`, Graph
    /// `paging.next`).
    NextUrl,
    /// An RFC 8288 `Link: <…>; rel="next"` header.
    LinkHeader,
}

impl PagingStyle {
    /// Whether a caller may jump to page N: only where the vendor addresses pages by
    /// number or offset.
    pub fn addressable(self) -> bool {
        matches!(self, Self::Offset | Self::Page)
    }
}

/// How many records the vendor returns per page and how it is asked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageSize {
    /// The query parameter or header name.
    pub name: String,
    #[serde(default, rename = "in")]
    pub location: PageSizeIn,
    /// The value sent, `{pageSize}` standing for the number (Salesforce's
    /// `Sforce-Query-Options: batchSize={pageSize}`); the bare number when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Used when the caller names no `pageSize`.
    pub default: u32,
    /// The most the vendor accepts; a larger `pageSize` is lowered to it.
    pub max: u32,
    /// The fewest the vendor returns a page (Salesforce's 200); a smaller `pageSize` is
    /// raised to it. Without it, such a page would be handed out in pieces, each piece
    /// reading the vendor page again, which a vendor whose next-page URL may be used once
    /// (a Salesforce query locator) refuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PageSizeIn {
    #[default]
    Query,
    Header,
}

/// How a resource serves CEQL (`where`, `orderBy`, `fields`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Query {
    pub translation: Translation,
    /// `soql`/`jql`: the statement, `{where}` standing for the translated condition
    /// (`SELECT Id, Name FROM Account WHERE {where}`); `{orderBy}` and `{fields}` may
    /// appear too. A `where`-less call sends `without` instead, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// `soql`/`jql`: the statement used when the caller sends no `where`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without: Option<String>,
    /// `soql`/`jql`: the query parameter receiving the statement (`q`, `jql`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// `parameters`: which field and operator pairs map onto which vendor parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<FilterRule>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Translation {
    /// Salesforce's SOQL.
    Soql,
    /// Jira's JQL.
    Jql,
    /// The vendor's own filter parameters, one per field and operator.
    Parameters,
    /// Junction reads the vendor's pages and filters, sorts and projects itself.
    Junction,
    /// `where` is refused.
    None,
}

/// `field <operator> value` sent as `parameter=value`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterRule {
    pub field: String,
    /// CEQL operators as written (`=`, `>=`, `LIKE`, `IN`, …).
    pub operators: Vec<String>,
    pub parameter: String,
}

/// The CEQL operators a [`FilterRule`] may name.
pub const CEQL_OPERATORS: &[&str] = &[
    "=",
    "!=",
    "<",
    ">",
    "<=",
    ">=",
    "LIKE",
    "IN",
    "IS NULL",
    "IS NOT NULL",
];

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

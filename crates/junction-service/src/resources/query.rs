//! `where`, `orderBy` and `fields` of a hub call, as the resource's `query` block says
//! they reach the vendor.

use super::request::HubQuery;
use crate::ServiceError;
use junction_core::ElementDefinition;
use junction_core::hub::{Resource, Translation};

/// How this call's query is served.
#[derive(Debug, Default)]
pub(super) struct QueryPlan {}

fn unsupported(element: &ElementDefinition, resource: &Resource, what: &str) -> ServiceError {
    ServiceError::bad_request(
        "unsupported_query",
        format!(
            "element '{}' cannot serve {what} on {} {}",
            element.key,
            resource.method.as_str(),
            resource.path
        ),
    )
}

/// Reads the query parameters, refusing what the resource cannot serve.
pub(super) fn plan(
    element: &ElementDefinition,
    resource: &Resource,
    query: &HubQuery,
) -> Result<QueryPlan, ServiceError> {
    let translation = resource
        .query
        .as_ref()
        .map_or(Translation::None, |q| q.translation);
    for name in ["where", "orderBy", "fields"] {
        if query.get(name).is_some_and(|v| !v.trim().is_empty()) {
            let what = format!("'{name}' (its translation is {translation:?})");
            return Err(unsupported(element, resource, &what));
        }
    }
    Ok(QueryPlan {})
}

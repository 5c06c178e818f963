//! `where`, `orderBy` and `fields` of a hub call (spec §5.2), served as the resource's
//! `query` block declares: translated into SOQL or JQL in one vendor parameter, into the
//! vendor's own filter parameters, or evaluated by Junction over the vendor's pages.
//! Whatever the element cannot serve faithfully is refused, naming the operator and the
//! element, never answered without it.

use super::request::{HubQuery, VendorRequest};
use crate::ServiceError;
use junction_ceql::translate::{self, FilterRule, Unsupported};
use junction_ceql::{Direction, Expr, Operator, OrderBy, ParseError};
use junction_core::ElementDefinition;
use junction_core::hub::{Resource, Translation};
use serde_json::Value;
use std::sync::OnceLock;

/// How this call's query is served.
#[derive(Debug, Default)]
pub(super) struct QueryPlan<'a> {
    /// Evaluated by Junction on every record.
    filter: Option<Expr>,
    /// Sorted by Junction, for a list the vendor sends whole.
    order: Option<OrderBy>,
    /// Projected by Junction.
    fields: Option<Vec<String>>,
    /// Query parameters the vendor is sent.
    vendor: Vec<(String, String)>,
    /// The SOQL or JQL statement the vendor is sent.
    statement: Option<Statement<'a>>,
}

/// A `soql`/`jql` statement, written when a vendor call first needs it: the later pages
/// of a walk by the vendor's next-page URL never do.
#[derive(Debug)]
struct Statement<'a> {
    parameter: &'a str,
    template: &'a str,
    without: Option<&'a str>,
    condition: Option<String>,
    order: Option<String>,
    text: OnceLock<String>,
}

impl Statement<'_> {
    fn text(&self) -> &str {
        self.text.get_or_init(|| {
            statement(
                self.template,
                self.without,
                self.condition.as_deref(),
                self.order.as_deref(),
            )
        })
    }
}

impl QueryPlan<'_> {
    /// Sets what the vendor is sent of the query.
    pub(super) fn apply(&self, vendor: &mut VendorRequest) {
        if let Some(statement) = &self.statement {
            vendor.set_query(statement.parameter, statement.text().to_owned());
        }
        for (name, value) in &self.vendor {
            vendor.set_query(name, value.clone());
        }
    }

    /// Whether Junction filters records itself.
    pub(super) fn filters(&self) -> bool {
        self.filter.is_some()
    }

    /// Whether Junction leaves the records as the vendor sent them (no filter, order or
    /// projection of its own).
    pub(super) fn passes_records_through(&self) -> bool {
        self.filter.is_none() && self.order.is_none() && self.fields.is_none()
    }

    /// Whether `record` is one the caller asked for.
    pub(super) fn matches(&self, record: &Value) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|e| junction_ceql::evaluate(e, record))
    }

    /// `record` with only the fields the caller asked for.
    pub(super) fn project(&self, record: Value) -> Value {
        match &self.fields {
            Some(fields) => junction_ceql::project(fields, &record),
            None => record,
        }
    }

    /// Orders one whole list, where Junction sorts.
    pub(super) fn sort(&self, records: &mut [Value]) {
        if let Some(order) = &self.order {
            records.sort_by(|a, b| junction_ceql::compare_records(order, a, b));
        }
    }
}

fn invalid(name: &str, error: ParseError) -> ServiceError {
    ServiceError::bad_request("invalid_query", format!("{name}: {error}"))
}

fn refused(
    element: &ElementDefinition,
    resource: &Resource,
    what: &str,
    why: &str,
) -> ServiceError {
    ServiceError::bad_request(
        "unsupported_query",
        format!(
            "element '{}' cannot serve {what} on {} {}: {why}",
            element.key,
            resource.method.as_str(),
            resource.path
        ),
    )
}

fn untranslatable(
    element: &ElementDefinition,
    resource: &Resource,
    u: Unsupported,
) -> ServiceError {
    refused(
        element,
        resource,
        &format!("{} in where", u.operator),
        &u.reason,
    )
}

fn given<'q>(query: &'q HubQuery, name: &str) -> Option<&'q str> {
    query.get(name).filter(|v| !v.trim().is_empty())
}

/// `ORDER BY a ASC, b DESC`, as SOQL and JQL both write it; names must be plain.
fn order_clause(order: &OrderBy) -> Option<String> {
    let plain = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    };
    let keys: Option<Vec<String>> = order
        .0
        .iter()
        .map(|(field, direction)| {
            plain(field).then(|| {
                let dir = match direction {
                    Direction::Asc => "ASC",
                    Direction::Desc => "DESC",
                };
                format!("{field} {dir}")
            })
        })
        .collect();
    Some(format!("ORDER BY {}", keys?.join(", ")))
}

/// The statement of a `soql`/`jql` resource: the template with `{where}` and `{orderBy}`
/// filled. A call without `where` sends `without`, else the template with its
/// `WHERE {where}` (or `AND {where}`) left out.
fn statement(
    template: &str,
    without: Option<&str>,
    condition: Option<&str>,
    order: Option<&str>,
) -> String {
    let text = match condition {
        Some(condition) => template.replace("{where}", &format!("({condition})")),
        None => match without {
            Some(without) => without.to_owned(),
            None => {
                let mut t = template.to_owned();
                for keyword in [
                    " WHERE {where}",
                    " where {where}",
                    " AND {where}",
                    " and {where}",
                ] {
                    t = t.replace(keyword, "");
                }
                t.replace("{where}", "")
            }
        },
    };
    let text = text.replace("{orderBy}", order.unwrap_or(""));
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads the query parameters, refusing what the resource cannot serve.
pub(super) fn plan<'a>(
    element: &ElementDefinition,
    resource: &'a Resource,
    query: &HubQuery<'_>,
) -> Result<QueryPlan<'a>, ServiceError> {
    let expr = given(query, "where")
        .map(junction_ceql::parse)
        .transpose()
        .map_err(|e| invalid("where", e))?;
    let order = given(query, "orderBy")
        .map(junction_ceql::parse_order_by)
        .transpose()
        .map_err(|e| invalid("orderBy", e))?;
    let fields = given(query, "fields")
        .map(junction_ceql::parse_fields)
        .transpose()
        .map_err(|e| invalid("fields", e))?;
    let spec = resource.query.as_ref();
    let translation = spec.map_or(Translation::None, |q| q.translation);
    // Projection is exact whoever filters, so Junction always does it.
    let mut plan = QueryPlan {
        fields,
        ..QueryPlan::default()
    };
    let no_sort = |why: &str| refused(element, resource, "orderBy", why);
    match (translation, spec) {
        (Translation::Soql | Translation::Jql, Some(spec)) => {
            let condition = expr
                .as_ref()
                .map(|e| match translation {
                    Translation::Soql => translate::soql(e),
                    _ => translate::jql(e),
                })
                .transpose()
                .map_err(|u| untranslatable(element, resource, u))?;
            let template = spec.template.as_deref().unwrap_or("{where}");
            let order = match &order {
                None => None,
                Some(_) if !template.contains("{orderBy}") => {
                    return Err(no_sort("its statement takes no ORDER BY"));
                }
                Some(order) => {
                    Some(order_clause(order).ok_or_else(|| no_sort("a field name is not plain"))?)
                }
            };
            plan.statement = spec.parameter.as_deref().map(|parameter| Statement {
                parameter,
                template,
                without: spec.without.as_deref(),
                condition,
                order,
                text: OnceLock::new(),
            });
        }
        (Translation::Parameters, Some(spec)) => {
            if let Some(expr) = &expr {
                let rules: Vec<FilterRule> = spec
                    .rules
                    .iter()
                    .map(|r| FilterRule {
                        field: r.field.clone(),
                        operators: r
                            .operators
                            .iter()
                            .filter_map(|o| Operator::from_name(o))
                            .collect(),
                        parameter: r.parameter.clone(),
                    })
                    .collect();
                plan.vendor = translate::parameters(expr, &rules)
                    .map_err(|u| untranslatable(element, resource, u))?;
            }
            if order.is_some() {
                return Err(no_sort(
                    "its vendor filters by parameters and does not sort",
                ));
            }
        }
        (Translation::Junction, Some(_)) => {
            plan.filter = expr;
            if order.is_some() {
                if resource.paging.is_some() {
                    return Err(no_sort(
                        "Junction sorts only a list the vendor sends whole, and this one is paged",
                    ));
                }
                plan.order = order;
            }
        }
        _ => {
            if expr.is_some() {
                return Err(refused(
                    element,
                    resource,
                    "where",
                    "it declares no query translation",
                ));
            }
            if order.is_some() {
                return Err(no_sort("it declares no query translation"));
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Method};

    #[test]
    fn a_statement_is_written_once_and_only_for_a_call_that_sends_it() {
        let element: ElementDefinition = serde_json::from_value(serde_json::json!({
            "id": 1, "key": "demo", "name": "Demo", "hookName": "Demo", "hub": "crm",
            "description": "d", "image": "i", "authentication": {"type": "basic"},
            "resources": [{
                "path": "/hubs/crm/accounts", "method": "GET", "vendorPath": "/query",
                "query": {"translation": "soql", "parameter": "q",
                          "template": "SELECT Id FROM Account WHERE {where} {orderBy}"},
            }],
        }))
        .unwrap();
        let resource = &element.resources[0];
        let query = HubQuery::parse(Some("where=Name%20%3D%20%27a%27&orderBy=Name%20desc"));
        let plan = plan(&element, resource, &query).unwrap();
        let written =
            |plan: &QueryPlan<'_>| plan.statement.as_ref().and_then(|s| s.text.get().cloned());
        assert_eq!(written(&plan), None);
        for _ in 0..2 {
            let mut page = VendorRequest {
                method: Method::GET,
                path: "/query".to_owned(),
                passed_query: Vec::new(),
                query: Vec::new(),
                headers: HeaderMap::new(),
                body: super::super::request::VendorBody::Empty,
            };
            plan.apply(&mut page);
            assert_eq!(
                page.query,
                vec![(
                    "q".to_owned(),
                    "SELECT Id FROM Account WHERE (Name = 'a') ORDER BY Name DESC".to_owned()
                )]
            );
        }
        assert!(written(&plan).is_some());
    }

    #[test]
    fn a_statement_without_where_drops_its_clause_and_keeps_the_order() {
        let t = "SELECT Id FROM Account WHERE {where} {orderBy}";
        assert_eq!(
            statement(t, None, Some("Name = 'a'"), Some("ORDER BY Name ASC")),
            "SELECT Id FROM Account WHERE (Name = 'a') ORDER BY Name ASC"
        );
        assert_eq!(statement(t, None, None, None), "SELECT Id FROM Account");
        assert_eq!(
            statement(t, Some("SELECT Id FROM Account LIMIT 10"), None, None),
            "SELECT Id FROM Account LIMIT 10"
        );
    }
}

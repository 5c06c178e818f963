//! Checks a Swagger 2.0 document the way a client would rely on it: valid against the
//! official JSON Schema (`tests/data/swagger-2.0/schema.json`), and sound where the schema
//! cannot look: every `$ref` resolves, each path's `{placeholders}` are exactly its path
//! parameters, and operation ids are unique.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The official Swagger 2.0 JSON Schema (draft-04), vendored with its source noted.
pub const SCHEMA: &str = include_str!("../../../tests/data/swagger-2.0/schema.json");

/// Every problem found in `doc`, each naming where it is; empty when it is sound.
pub fn problems(doc: &Value) -> Vec<String> {
    let mut found = Vec::new();
    match serde_json::from_str::<Value>(SCHEMA)
        .map_err(|e| e.to_string())
        .and_then(|schema| jsonschema::draft4::new(&schema).map_err(|e| e.to_string()))
    {
        Ok(validator) => {
            for error in validator.iter_errors(doc) {
                found.push(format!("schema: {} at {}", error, error.instance_path()));
            }
        }
        Err(e) => found.push(format!("the Swagger 2.0 schema does not load: {e}")),
    }
    references(doc, doc, &mut String::new(), &mut found);
    operations(doc, &mut found);
    found
}

/// Panics with every problem of `doc`, naming `what` it is.
pub fn assert_sound(what: &str, doc: &Value) {
    let problems = problems(doc);
    assert!(
        problems.is_empty(),
        "{what} is not a sound Swagger 2.0 document:\n{}",
        problems.join("\n")
    );
}

fn references(root: &Value, value: &Value, at: &mut String, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(target) = map.get("$ref").and_then(Value::as_str) {
                let resolved = target
                    .strip_prefix('#')
                    .and_then(|pointer| root.pointer(pointer));
                if resolved.is_none() {
                    found.push(format!("{at}: $ref {target} resolves to nothing"));
                }
            }
            for (key, item) in map {
                let len = at.len();
                at.push('/');
                at.push_str(key);
                references(root, item, at, found);
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                references(root, item, at, found);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

fn operations(doc: &Value, found: &mut Vec<String>) {
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        found.push("paths: missing".into());
        return;
    };
    for (path, item) in paths {
        let placeholders: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, op) in item {
            let mut in_path = BTreeSet::new();
            let mut seen = BTreeSet::new();
            let mut bodies = 0;
            let mut form = false;
            for param in op["parameters"].as_array().into_iter().flatten() {
                let (name, place) = (
                    param["name"].as_str().unwrap_or_default(),
                    param["in"].as_str().unwrap_or_default(),
                );
                if !seen.insert((name, place)) {
                    found.push(format!(
                        "{method} {path}: parameter {name} in {place} twice"
                    ));
                }
                match place {
                    "path" => {
                        in_path.insert(name);
                        if param["required"] != Value::Bool(true) {
                            found.push(format!(
                                "{method} {path}: path parameter {name} is not required"
                            ));
                        }
                    }
                    "body" => bodies += 1,
                    "formData" => form = true,
                    _ => {}
                }
            }
            if in_path != placeholders {
                found.push(format!(
                    "{method} {path}: path parameters {in_path:?} do not match the placeholders {placeholders:?}"
                ));
            }
            if bodies > 1 || (bodies == 1 && form) {
                found.push(format!(
                    "{method} {path}: more than one body, or a body beside form fields"
                ));
            }
            match op["operationId"].as_str() {
                Some(id) => *ids.entry(id).or_default() += 1,
                None => found.push(format!("{method} {path}: no operationId")),
            }
        }
    }
    for (id, count) in ids {
        if count > 1 {
            found.push(format!("operationId {id} is used {count} times"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "swagger": "2.0",
            "info": {"title": "t", "version": "1"},
            "paths": {"/a/{id}": {"get": {
                "operationId": "getA",
                "parameters": [{"name": "id", "in": "path", "required": true, "type": "string"}],
                "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/A"}}},
            }}},
            "definitions": {"A": {"type": "object"}},
        })
    }

    #[test]
    fn a_sound_document_has_no_problems() {
        assert_eq!(problems(&minimal()), Vec::<String>::new());
    }

    #[test]
    fn each_kind_of_problem_is_found() {
        let mut doc = minimal();
        doc["swagger"] = json!("3.0");
        assert!(problems(&doc).iter().any(|p| p.starts_with("schema:")));

        let mut doc = minimal();
        doc["definitions"] = json!({});
        assert!(
            problems(&doc)
                .iter()
                .any(|p| p.contains("resolves to nothing"))
        );

        let mut doc = minimal();
        doc["paths"]["/a/{id}"]["get"]["parameters"] = json!([]);
        assert!(problems(&doc).iter().any(|p| p.contains("placeholders")));

        let mut doc = minimal();
        doc["paths"]["/b"] =
            json!({"get": {"operationId": "getA", "responses": {"200": {"description": "OK"}}}});
        assert!(problems(&doc).iter().any(|p| p.contains("used 2 times")));
    }
}

//! Extractors whose rejections speak the API's error format.

use super::error::ApiError;
use super::limit::PermitSlot;
use crate::http::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use junction_service::Caller;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::{Arc, OnceLock};

/// Where an extractor records the instance whose Element token authenticated the call,
/// so that the response can name it in `Elements-Element-Instance-Id`.
#[derive(Clone, Default)]
pub struct ElementInstance(pub Arc<OnceLock<i64>>);

pub(crate) fn note_instance(parts: &Parts, caller: &Caller) {
    if let (Some(slot), Some(id)) = (
        parts.extensions.get::<ElementInstance>(),
        caller.only_instance(),
    ) {
        let _ = slot.0.set(id.0);
    }
}

/// A JSON body; malformed JSON, wrong types, a missing content type and oversized bodies
/// each get a 4xx that says which.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let value = match axum::Json::<Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        if let Some(path) = nul_at(&value, &mut String::new()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!(
                    "{path} contains a NUL character (\\u0000), which Junction does not accept"
                ),
            ));
        }
        // Typed a second time from the checked value, so type errors keep axum's wording,
        // which names the offending field.
        let bytes = serde_json::to_vec(&value)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.to_string()))?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Where a NUL character occurs in a request body, keys included. PostgreSQL cannot store
/// one in text, and no name, tag, address or configuration value needs one, so every body
/// is held to the same rule on both databases.
fn nul_at(value: &Value, path: &mut String) -> Option<String> {
    let shown = |path: &str| {
        if path.is_empty() {
            "the body".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(shown(path)),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = nul_at(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&key.replace('\0', "\\u0000"));
            let found = if key.contains('\0') {
                Some(shown(path))
            } else {
                nul_at(item, path)
            };
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "invalid_body",
    };
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than the 1 MiB limit".to_owned()
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "the request body must be JSON with 'Content-Type: application/json'".to_owned()
        }
        _ => rejection.body_text(),
    };
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    ApiError::new(status, code, message)
}

/// The `Authorization` header's text, if any.
pub fn authorization_header(parts: &Parts) -> Result<Option<&str>, ApiError> {
    parts
        .headers
        .get(AUTHORIZATION)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the Authorization header is not valid text",
                )
            })
        })
        .transpose()
}

/// The authenticated caller, from the `Authorization` header.
pub struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = state
            .services
            .authenticate(authorization_header(parts)?)
            .await?;
        note_instance(parts, &caller);
        if let Some(slot) = parts.extensions.get::<PermitSlot>() {
            let permit = state
                .limits
                .try_acquire(&caller)
                .ok_or_else(ApiError::too_many_requests)?;
            slot.hold(permit);
        }
        Ok(Self(caller))
    }
}

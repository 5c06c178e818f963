//! Extractors whose rejections speak the API's error format.

use super::error::ApiError;
use crate::http::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use junction_service::Caller;
use serde::de::DeserializeOwned;
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
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
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
        Ok(Self(caller))
    }
}

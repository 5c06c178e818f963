//! The one place errors become HTTP responses.
//!
//! The wire shape is Cloud Elements' `{"requestId", "message", "providerMessage"?}` plus a
//! stable `code`. A 5xx says only that something failed and carries the request id; its
//! cause goes to the log, never to the caller.

use axum::Json;
use axum::http::header::{ALLOW, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use junction_oauth::OAuthError;
use junction_service::ServiceError;
use junction_store::StoreError;
use serde::Serialize;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware for the whole handler.
    pub static REQUEST_ID: RequestId;
}

pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.as_str().to_owned())
        .unwrap_or_default()
}

/// A request's id: 128 random bits as 32 lower-case hex digits. Copied, not shared or
/// allocated, since every request sets it twice (for the layers' calls and for its
/// handler's future).
#[derive(Clone, Copy)]
pub struct RequestId([u8; 32]);

impl RequestId {
    /// From the thread's generator: unique enough for a request id, and no system call on
    /// the hot path.
    pub fn random() -> Self {
        let mut hex = [0u8; 32];
        // Cannot fail: the output is exactly twice the input's length.
        let _ = hex::encode_to_slice(rand::random::<u128>().to_be_bytes(), &mut hex);
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        // Hex digits only, so always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub provider_message: Option<String>,
    /// Seconds for the `Retry-After` header of a 429 or 503.
    pub retry_after: Option<u64>,
    /// The methods a 405 names in its `Allow` header.
    pub allow: Option<String>,
    /// The error comes from the provider (`Elements-Error: true`), as Cloud Elements
    /// marks it.
    pub from_provider: bool,
}

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiErrorBody {
    /// Also in the `Elements-Request-Id` header and the server log.
    pub request_id: String,
    pub message: String,
    /// The provider's own error, when a provider refused or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message: Option<String>,
    /// Stable and machine-readable, e.g. `missing_configuration`.
    pub code: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            provider_message: None,
            retry_after: None,
            allow: None,
            from_provider: false,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn internal(cause: &dyn std::error::Error) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Junction failed to complete the request; the request id identifies it in the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiErrorBody {
            request_id: current_request_id(),
            message: self.message,
            provider_message: self.provider_message,
            code: self.code.to_owned(),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            response.headers_mut().insert(ALLOW, allow);
        }
        if self.from_provider {
            response
                .headers_mut()
                .insert("elements-error", HeaderValue::from_static("true"));
        }
        response
    }
}

fn provider_error(e: OAuthError) -> ApiError {
    let provider_message = e.provider_message();
    let (status, code, message) = match &e {
        OAuthError::Provider { status, .. } if *status >= 500 => (
            StatusCode::BAD_GATEWAY,
            "provider_unavailable",
            format!("the provider failed (HTTP {status})"),
        ),
        OAuthError::Provider { .. } => (
            StatusCode::BAD_REQUEST,
            "provider_refused",
            format!("{e}; check the authorization code, client id, client secret and callback URL"),
        ),
        OAuthError::BadResponse { status, .. } if *status >= 500 => (
            StatusCode::BAD_GATEWAY,
            "provider_unavailable",
            e.to_string(),
        ),
        OAuthError::BadResponse { .. } => (
            StatusCode::BAD_REQUEST,
            "provider_bad_response",
            e.to_string(),
        ),
        OAuthError::Timeout { .. } => (
            StatusCode::GATEWAY_TIMEOUT,
            "provider_timeout",
            e.to_string(),
        ),
        OAuthError::Unreachable { .. } => (
            StatusCode::BAD_GATEWAY,
            "provider_unreachable",
            e.to_string(),
        ),
        OAuthError::Unsignable { .. } => {
            (StatusCode::BAD_REQUEST, "unsignable_request", e.to_string())
        }
        // Refusals of the caller's own input become `ServiceError::BadRequest` with their
        // codes where the service converts them, so they never arrive here.
        OAuthError::Policy(_)
        | OAuthError::BadUrl { .. }
        | OAuthError::BadSiteAddress { .. }
        | OAuthError::Client(_)
        | OAuthError::Tls(_) => return ApiError::internal(&e),
    };
    ApiError {
        provider_message,
        from_provider: true,
        ..ApiError::new(status, code, message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unauthorized(m) => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", m),
            ServiceError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            ServiceError::ElementNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "element_not_found", e.to_string())
            }
            ServiceError::ReadOnlyElement(_) => {
                Self::new(StatusCode::FORBIDDEN, "read_only_element", e.to_string())
            }
            ServiceError::ElementPartNotFound { .. } => Self::new(
                StatusCode::NOT_FOUND,
                "element_part_not_found",
                e.to_string(),
            ),
            ServiceError::ElementInUse { .. } | ServiceError::ElementChangeInUse { .. } => {
                Self::new(StatusCode::CONFLICT, "element_in_use", e.to_string())
            }
            ServiceError::InstanceNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "instance_not_found", e.to_string())
            }
            ServiceError::WebhookInstanceNotFound => {
                Self::new(StatusCode::NOT_FOUND, "instance_not_found", e.to_string())
            }
            ServiceError::InvalidSignature(_) => {
                Self::new(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string())
            }
            ServiceError::EventNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "event_not_found", e.to_string())
            }
            ServiceError::ConfigurationNotFound(_) => Self::new(
                StatusCode::NOT_FOUND,
                "configuration_not_found",
                e.to_string(),
            ),
            ServiceError::AccountNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "account_not_found", e.to_string())
            }
            ServiceError::UserNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "user_not_found", e.to_string())
            }
            ServiceError::HubNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "hub_not_found", e.to_string())
            }
            ServiceError::ResourceNotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "resource_not_found", e.to_string())
            }
            ServiceError::MethodNotAllowed { ref allowed, .. } => Self {
                allow: Some(allowed.join(", ")),
                ..Self::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    e.to_string(),
                )
            },
            ServiceError::ProviderAnswer(_) => Self {
                from_provider: true,
                ..Self::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_answer_unusable",
                    e.to_string(),
                )
            },
            ServiceError::HookFailed { status, message } => Self::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                "hook_failed",
                message,
            ),
            ServiceError::ConnectSessionInvalid => Self::new(
                StatusCode::UNAUTHORIZED,
                "connect_session_invalid",
                e.to_string(),
            ),
            ServiceError::ConnectSessionExpired => {
                Self::new(StatusCode::GONE, "connect_session_expired", e.to_string())
            }
            ServiceError::ConnectSessionUsed => {
                Self::new(StatusCode::CONFLICT, "connect_session_used", e.to_string())
            }
            ServiceError::ConnectSessionNotFound(_) => Self::new(
                StatusCode::NOT_FOUND,
                "connect_session_not_found",
                e.to_string(),
            ),
            ServiceError::OAuthAppNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "oauth_app_not_found", e.to_string())
            }
            ServiceError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            ServiceError::BadRequest { code, message } => {
                Self::new(StatusCode::BAD_REQUEST, code, message)
            }
            ServiceError::MissingConfiguration(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "missing_configuration",
                e.to_string(),
            ),
            ServiceError::Provider(inner) => provider_error(inner),
            // A call made for the caller: the provider's own status is the answer.
            ServiceError::ProviderStatus {
                status,
                ref provider_message,
                retry_after,
            } => Self {
                provider_message: provider_message.clone(),
                from_provider: true,
                // The provider's own wait, passed on with its own status.
                retry_after,
                ..Self::new(
                    StatusCode::from_u16(status)
                        .ok()
                        .filter(|s| s.is_client_error() || s.is_server_error())
                        .unwrap_or(StatusCode::BAD_GATEWAY),
                    "provider_error",
                    e.to_string(),
                )
            },
            ServiceError::CredentialsRefused {
                ref provider_message,
                ..
            } => Self {
                provider_message: provider_message.clone(),
                ..Self::new(StatusCode::BAD_REQUEST, "provider_refused", e.to_string())
            },
            ServiceError::ReauthorizationRequired { ref reason, .. } => Self {
                provider_message: reason.clone(),
                ..Self::new(
                    StatusCode::BAD_REQUEST,
                    "reauthorization_required",
                    e.to_string(),
                )
            },
            ServiceError::TooManyRequests {
                message,
                retry_after,
            } => Self {
                retry_after: Some(retry_after),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
            },
            ServiceError::RateLimited {
                message,
                retry_after,
            } => Self {
                retry_after: Some(retry_after),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            },
            ServiceError::Store(StoreError::Timeout(ref cause)) => {
                tracing::warn!(error = %cause, "a database statement timed out");
                Self {
                    retry_after: Some(1),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "database_timeout",
                        "the database did not answer in time; retry shortly",
                    )
                }
            }
            ServiceError::Store(StoreError::Unavailable(ref cause)) => {
                tracing::warn!(error = %cause, "the database is unavailable");
                Self {
                    retry_after: Some(1),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "database_unavailable",
                        "the database cannot be reached right now; retry shortly",
                    )
                }
            }
            ServiceError::Store(StoreError::Unwritable(ref cause)) => {
                tracing::error!(error = %cause, "the database cannot write (is its disk full?)");
                Self {
                    retry_after: Some(30),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "database_unwritable",
                        "the database cannot store changes right now (its storage is full or read-only); nothing was changed",
                    )
                }
            }
            ServiceError::Store(_) | ServiceError::Internal(_) => Self::internal(&e),
        }
    }
}

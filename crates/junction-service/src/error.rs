use junction_oauth::OAuthError;
use junction_store::StoreError;

/// Everything a use case can refuse or fail with. The HTTP layer turns each variant into a
/// status and a stable code; the messages here are written for API callers.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("no element with key or id '{0}'")]
    ElementNotFound(String),
    /// A write to a built-in element, which only its clones allow.
    #[error(
        "element '{0}' is built in and read-only; clone it with POST /elements/{0}/clone and change the clone"
    )]
    ReadOnlyElement(String),
    /// One part of an element (a configuration entry, resource, parameter, hook, object
    /// or field) that the element does not have.
    #[error("element '{element}' has no {part} '{id}'")]
    ElementPartNotFound {
        element: String,
        part: &'static str,
        id: String,
    },
    #[error("element '{key}' still has {instances} instance(s); delete them before the element")]
    ElementInUse { key: String, instances: i64 },
    #[error(
        "element '{key}' still has {instances} instance(s): {change} would misread their stored configuration; create a new element instead"
    )]
    ElementChangeInUse {
        key: String,
        instances: i64,
        change: String,
    },
    #[error("no instance with id {0}")]
    InstanceNotFound(i64),
    /// A webhook names (or its payload leads to) no instance of its element.
    #[error("no instance of this element receives this webhook")]
    WebhookInstanceNotFound,
    /// A webhook's signature is missing or does not match its body.
    #[error("the webhook's signature is missing or wrong: {0}")]
    InvalidSignature(String),
    #[error("no event with id {0}")]
    EventNotFound(i64),
    #[error("no configuration entry with id {0}")]
    ConfigurationNotFound(i64),
    #[error("no account with id {0}")]
    AccountNotFound(i64),
    #[error("no user with id {0}")]
    UserNotFound(i64),
    #[error("no hub with key '{0}'")]
    HubNotFound(String),
    #[error("element '{element}' has no hub resource {resource}")]
    ResourceNotFound { element: String, resource: String },
    /// The resource exists at that path, for other methods.
    #[error("element '{element}' has no {method} on hub resource {resource}; it allows {}", .allowed.join(", "))]
    MethodNotAllowed {
        element: String,
        method: String,
        resource: String,
        allowed: Vec<&'static str>,
    },
    /// The provider's answer cannot be used as its element says it should (not JSON, a
    /// next page on another host).
    #[error("the provider's answer could not be used: {0}")]
    ProviderAnswer(String),
    /// An element's hook failed (it threw, ran out of time or memory, or gave an
    /// unusable output); `status` is 400 when the script threw, 502 otherwise.
    #[error("{message}")]
    HookFailed { status: u16, message: String },
    /// The request contradicts what is stored (a duplicate, or a deletion that would
    /// leave something behind).
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("missing required configuration: {}", .0.join(", "))]
    MissingConfiguration(Vec<String>),
    #[error("{0}")]
    Provider(#[source] OAuthError),
    /// The provider answered a call made on the caller's behalf with an error status,
    /// which the caller gets as it is.
    #[error("the provider answered HTTP {status}")]
    ProviderStatus {
        status: u16,
        provider_message: Option<String>,
        /// The provider's `Retry-After`, in seconds, when it sent one.
        retry_after: Option<u64>,
    },
    /// The provider refused credentials taken from configuration at the element's
    /// validation call, so nothing was stored.
    #[error(
        "the provider refused the credentials in the configuration (HTTP {status} from the element's validation call); nothing was stored"
    )]
    CredentialsRefused {
        status: u16,
        provider_message: Option<String>,
    },
    /// The instance's credentials are dead (the provider refused to renew them): the
    /// customer must authorize again, and the instance is re-provisioned with the new code.
    #[error(
        "instance {instance_id} must be re-authorized: the provider no longer accepts its credentials; \
         send the customer through the OAuth flow again and PATCH /instances/{instance_id} with the new providerData.code"
    )]
    ReauthorizationRequired {
        instance_id: i64,
        /// The provider's reason, as stored on the instance.
        reason: Option<String>,
    },
    /// A Connect token that names no session.
    #[error("this Connect link is not valid")]
    ConnectSessionInvalid,
    #[error("this Connect link has expired; the app must create a new session")]
    ConnectSessionExpired,
    #[error("this Connect link was already used; the app must create a new session")]
    ConnectSessionUsed,
    #[error("no Connect session with id {0}")]
    ConnectSessionNotFound(i64),
    #[error("no OAuth app with id {0}")]
    OAuthAppNotFound(i64),
    /// The caller must slow down; `retry_after` is in seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// The provider's declared rate limit has no slot for this call within the wait
    /// allowed, so it was not sent; `retry_after` (seconds) is when one is free.
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    #[error("storage failure")]
    Store(#[source] StoreError),
    #[error("internal failure: {0}")]
    Internal(String),
}

impl ServiceError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<OAuthError> for ServiceError {
    fn from(e: OAuthError) -> Self {
        match e {
            OAuthError::Policy(v) => Self::bad_request("outbound_address_refused", v.to_string()),
            OAuthError::BadUrl { what } => Self::bad_request(
                "invalid_configuration",
                format!("{what} is not a valid http(s) URL"),
            ),
            OAuthError::BadSiteAddress { .. } => {
                Self::bad_request("invalid_parameter", e.to_string())
            }
            other => Self::Provider(other),
        }
    }
}

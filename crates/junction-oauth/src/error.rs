use junction_core::net::PolicyViolation;

/// What went wrong talking to a provider. Provider answers are kept as data (status,
/// error, description) so the API can say why, without leaking anything of Junction's.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{what} is not a valid http(s) URL")]
    BadUrl { what: String },
    #[error("siteAddress is refused: {why}")]
    BadSiteAddress { why: String },
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    #[error("the provider refused the request (HTTP {status})")]
    Provider {
        status: u16,
        error: Option<String>,
        description: Option<String>,
    },
    #[error("the provider answered HTTP {status} with a body Junction cannot use: {reason}")]
    BadResponse {
        status: u16,
        reason: String,
        snippet: String,
    },
    #[error("the provider did not answer within {seconds} s")]
    Timeout { seconds: u64 },
    #[error("the provider could not be reached: {reason}")]
    Unreachable { reason: String },
    /// The request cannot carry the instance's credentials as its element requires.
    #[error("the request cannot be signed: {reason}")]
    Unsignable { reason: String },
    #[error("outbound HTTP client could not be built")]
    Client(#[source] reqwest::Error),
    #[error("the TLS configuration of the outbound clients could not be built")]
    Tls(#[source] rustls::Error),
}

impl OAuthError {
    /// The provider's own words, for the `providerMessage` of an API error.
    pub fn provider_message(&self) -> Option<String> {
        match self {
            Self::Provider {
                error, description, ..
            } => match (error, description) {
                (Some(e), Some(d)) => Some(format!("{e}: {d}")),
                (Some(e), None) => Some(e.clone()),
                (None, Some(d)) => Some(d.clone()),
                (None, None) => None,
            },
            Self::BadResponse { snippet, .. } if !snippet.is_empty() => Some(snippet.clone()),
            _ => None,
        }
    }
}

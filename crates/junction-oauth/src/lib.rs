//! The client side of OAuth 2.0, and every call Junction makes to a provider.
//!
//! [`OutboundClient`] and, for passthrough calls, [`ProxyClient`] are the only ways out:
//! they have timeouts, never follow redirects, and resolve names through the outbound
//! address policy, so a configuration value pointing at a metadata service or an
//! internal port is refused before a byte is sent.
//! [`authorization_url`], [`exchange_code`] and [`run_provision_step`] are driven entirely
//! by the element definition (`junction_core::element::OAuthSpec`): no provider is named
//! in this crate. No database, no HTTP server.

mod authorize;
mod client;
mod error;
pub mod oauth1;
mod proxy;
mod refresh;
#[cfg(test)]
mod testing;
mod token;
mod transport;

pub use authorize::{AuthorizationRequest, authorization_url, join_scopes};
pub use client::{OutboundClient, OutboundSettings};
pub use error::OAuthError;
pub use proxy::{
    PROXIED_CONTENT_SECURITY_POLICY, ProviderAuth, ProxyBody, ProxyCall, ProxyClient,
    ProxyResponse, REPLAY_LIMIT, authorize, forwardable_request_headers,
    forwardable_response_headers, is_reserved_request_header, provider_message,
};
pub use refresh::{
    ClientCredentials, client_credentials_grant, exchange_long_lived, refresh_grant,
};
pub use token::{CodeExchange, TokenResponse, apply_credential, exchange_code, run_provision_step};
pub use transport::{ResponseBody, StreamingBody};

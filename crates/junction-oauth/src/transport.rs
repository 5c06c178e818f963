//! The connection to providers, on hyper's own client, for the passthrough and for
//! [`crate::OutboundClient`]: what reqwest gave (names resolved through the address
//! policy, a connect timeout, rustls with the platform's roots, HTTP/2 by ALPN, no proxy,
//! no redirects), without the layers neither uses.

use crate::client::{OutboundSettings, PolicyResolver};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::Uri;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

pub(crate) type HttpClient = Client<Connector, OutBody>;

/// TCP keep-alive probes on provider connections, as reqwest sends them: a provider
/// that vanished without closing is noticed instead of held forever.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// Unacknowledged data on a provider connection for this long breaks it (Linux only).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// A client keeping at most `max_idle_per_host` idle connections per provider.
pub(crate) fn client(
    settings: &OutboundSettings,
    tls: rustls::ClientConfig,
    max_idle_per_host: usize,
) -> HttpClient {
    let mut http = HttpConnector::new_with_resolver(PolicyResolver {
        policy: settings.policy,
    });
    // The scheme is the TLS layer's to judge: `https` goes through it.
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.set_keepalive_interval(Some(TCP_KEEPALIVE));
    http.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
    #[cfg(target_os = "linux")]
    http.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(settings.idle_timeout)
        .pool_max_idle_per_host(max_idle_per_host)
        .build(Connector {
            https,
            timeout: settings.connect_timeout,
        })
}

/// What reqwest's client put on every request, and providers may rely on: Junction's
/// user agent and `Accept: */*`, unless the request names its own.
pub(crate) fn default_headers(headers: &mut http::HeaderMap) {
    headers
        .entry(http::header::USER_AGENT)
        .or_insert(http::HeaderValue::from_static(crate::client::USER_AGENT));
    headers
        .entry(http::header::ACCEPT)
        .or_insert(http::HeaderValue::from_static("*/*"));
}

/// rustls with the platform's root certificates, as reqwest verifies them; ALPN is the
/// connector's to set.
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The TLS connector with a bound on the whole connection's set-up: the name's
/// resolution, TCP and the TLS handshake (hyper's own bound covers the TCP connect only).
#[derive(Clone)]
pub(crate) struct Connector {
    https: HttpsConnector<HttpConnector<PolicyResolver>>,
    timeout: Duration,
}

type Connection = MaybeHttpsStream<TokioIo<TcpStream>>;

impl tower_service::Service<Uri> for Connector {
    type Response = Connection;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Connection, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.https.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.https.call(uri);
        let limit = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting took longer than the connect timeout",
                )) as BoxError),
            }
        })
    }
}

/// A request body as the client sends it: held bytes (none for an empty body), which
/// can be sent again, or a stream.
pub(crate) enum OutBody {
    Held(Option<Bytes>),
    Streaming(StreamingBody),
}

impl HttpBody for OutBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Held(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Streaming(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Held(bytes) => bytes.is_none(),
            Self::Streaming(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Held(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Streaming(body) => body.size_hint(),
        }
    }
}

/// A request body that streams to the provider once.
pub struct StreamingBody(UnsyncBoxBody<Bytes, BoxError>);

impl StreamingBody {
    pub fn wrap<B>(body: B) -> Self
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self(body.map_err(Into::into).boxed_unsync())
    }
}

impl HttpBody for StreamingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// An answer's body: the provider's as it arrives, or one Junction made.
pub struct ResponseBody(Answer);

enum Answer {
    Provider(Waited),
    Held(Option<Bytes>),
    Wrapped(UnsyncBoxBody<Bytes, BoxError>),
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Answer::Provider(_) => "ResponseBody(provider)",
            Answer::Held(_) => "ResponseBody(held)",
            Answer::Wrapped(_) => "ResponseBody(wrapped)",
        })
    }
}

impl ResponseBody {
    /// The provider's body, each wait for its next chunk bounded by `limit`.
    pub(crate) fn provider(body: Incoming, limit: Duration) -> Self {
        Self(Answer::Provider(Waited {
            body,
            limit,
            timer: None,
            waiting: false,
        }))
    }

    pub fn wrap<B>(body: B) -> Self
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self(Answer::Wrapped(body.map_err(Into::into).boxed_unsync()))
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        Self(Answer::Held((!bytes.is_empty()).then_some(bytes)))
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Answer::Provider(waited) => waited.poll_frame(cx),
            Answer::Held(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Answer::Wrapped(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Answer::Provider(waited) => waited.body.is_end_stream(),
            Answer::Held(bytes) => bytes.is_none(),
            Answer::Wrapped(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Answer::Provider(waited) => waited.body.size_hint(),
            Answer::Held(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Answer::Wrapped(body) => body.size_hint(),
        }
    }
}

/// The provider's body with each wait for it bounded. Only time spent waiting on the
/// provider counts: a caller slow to take the chunks does not use up the bound. The
/// timer is made the first time the body keeps its reader waiting (a small answer
/// usually arrives whole with its headers) and reset for each later wait.
struct Waited {
    body: Incoming,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer is set for the current wait.
    waiting: bool,
}

impl Waited {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            self.waiting = false;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let timer = match &mut self.timer {
            Some(timer) => {
                if !self.waiting {
                    timer.as_mut().reset(Instant::now() + self.limit);
                }
                timer
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep(self.limit))),
        };
        self.waiting = true;
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the provider sent nothing more within the read timeout",
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }
}

//! Step 2 of provisioning: the code exchange, and the provider calls made right after it.

use crate::{OAuthError, OutboundClient};
use junction_core::Secret;
use junction_core::element::{
    ClientAuthentication, CredentialLocation, CredentialPlacement, OAuthSpec, ProvisionStep,
    TokenMethod,
};
use reqwest::Method;
use serde_json::{Map, Value};
use url::Url;

pub struct CodeExchange<'a> {
    pub token_url: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a Secret,
    pub redirect_uri: &'a str,
    pub code: &'a str,
    /// The PKCE verifier of the authorization that gave `code`, if it had a challenge.
    pub code_verifier: Option<&'a str>,
}

/// A provider's token response, parsed leniently: providers disagree on content types,
/// send `expires_in` as a string, or add their own fields (Salesforce's `instance_url`).
pub struct TokenResponse {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_in: Option<i64>,
    /// Every other field of the response, for the element's `tokenResponse` mapping.
    pub fields: Map<String, Value>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("expires_in", &self.expires_in)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Exchanges an authorization code as the element's provider expects (RFC 6749 §4.1.3,
/// or Graph's GET variant).
pub async fn exchange_code(
    client: &OutboundClient,
    spec: &OAuthSpec,
    exchange: &CodeExchange<'_>,
) -> Result<TokenResponse, OAuthError> {
    let url = client.check_url("oauth.token.url", exchange.token_url)?;
    let mut params: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", exchange.code),
        ("redirect_uri", exchange.redirect_uri),
    ];
    if let Some(verifier) = exchange.code_verifier {
        params.push(("code_verifier", verifier));
    }
    if spec.token_request.client_authentication == ClientAuthentication::Body {
        params.push(("client_id", exchange.client_id));
        params.push(("client_secret", exchange.client_secret.expose()));
    }
    let mut request = match spec.token_request.method {
        TokenMethod::Get => client.request(Method::GET, url).query(&params),
        TokenMethod::Post => client.request(Method::POST, url).form(&params),
    };
    if spec.token_request.client_authentication == ClientAuthentication::Basic {
        request = request.basic_auth(exchange.client_id, Some(exchange.client_secret.expose()));
    }
    let (status, body) = client
        .send(request.header(reqwest::header::ACCEPT, "application/json"))
        .await?;
    parse_token_response(status.as_u16(), &body)
}

pub(crate) fn parse_token_response(status: u16, body: &[u8]) -> Result<TokenResponse, OAuthError> {
    let parsed = parse_body(body);
    if !(200..300).contains(&status) {
        return Err(provider_error(status, parsed.as_ref(), body));
    }
    let Some(mut fields) = parsed else {
        return Err(bad_response(
            status,
            "it is neither JSON nor form-encoded",
            body,
        ));
    };
    if fields.contains_key("error") {
        return Err(provider_error(status, Some(&fields), body));
    }
    let access_token = match fields.remove("access_token") {
        Some(Value::String(t)) if !t.is_empty() => Secret::new(t),
        _ => return Err(bad_response(status, "it has no access_token", body)),
    };
    let refresh_token = match fields.remove("refresh_token") {
        Some(Value::String(t)) if !t.is_empty() => Some(Secret::new(t)),
        _ => None,
    };
    // Graph's legacy responses call it `expires`.
    let expires_in = ["expires_in", "expires"]
        .iter()
        .find_map(|k| fields.get(*k).and_then(as_i64));
    Ok(TokenResponse {
        access_token,
        refresh_token,
        expires_in,
        fields,
    })
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// JSON object, or a form-encoded body (old Graph versions answered that way).
pub(crate) fn parse_body(body: &[u8]) -> Option<Map<String, Value>> {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        return Some(map);
    }
    let text = std::str::from_utf8(body).ok()?.trim();
    if text.is_empty() || !text.contains('=') || text.contains(char::is_whitespace) {
        return None;
    }
    let map: Map<String, Value> = url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Some(map)
}

fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads the provider's error in any of the shapes in use: RFC 6749 (`error`,
/// `error_description`), Graph (`error: {message, type, code}`), Instagram's legacy
/// (`error_type`, `error_message`), or a bare `message`.
fn provider_error(status: u16, parsed: Option<&Map<String, Value>>, body: &[u8]) -> OAuthError {
    let Some(map) = parsed else {
        return bad_response(status, "the error body is not JSON", body);
    };
    let (error, description) = match map.get("error") {
        Some(Value::Object(graph)) => (
            text_of(graph.get("type")).or_else(|| text_of(graph.get("code"))),
            text_of(graph.get("message")),
        ),
        Some(other) => (
            text_of(Some(other)),
            text_of(map.get("error_description")).or_else(|| text_of(map.get("message"))),
        ),
        None => (
            text_of(map.get("error_type")).or_else(|| text_of(map.get("errorCode"))),
            text_of(map.get("error_message")).or_else(|| text_of(map.get("message"))),
        ),
    };
    if error.is_none() && description.is_none() {
        return bad_response(status, "the error body has no error field", body);
    }
    OAuthError::Provider {
        status,
        error,
        description,
    }
}

fn bad_response(status: u16, reason: &str, body: &[u8]) -> OAuthError {
    let text = String::from_utf8_lossy(body);
    // A body that mentions a token is not echoed back, even truncated.
    let snippet = if text.contains("token") {
        String::new()
    } else {
        text.chars().take(200).collect()
    };
    OAuthError::BadResponse {
        status,
        reason: reason.to_owned(),
        snippet,
    }
}

/// Adds the access token to a provider request the way the element says.
pub fn apply_credential(
    placement: &CredentialPlacement,
    mut url: Url,
    token: &Secret,
    method: Method,
    client: &OutboundClient,
) -> reqwest::RequestBuilder {
    match placement.location {
        CredentialLocation::Query => {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != placement.name.as_str())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(kept)
                .append_pair(
                    &placement.name,
                    &format!("{}{}", placement.prefix, token.expose()),
                );
            client.request(method, url)
        }
        CredentialLocation::Header => client.request(method, url).header(
            placement.name.as_str(),
            format!("{}{}", placement.prefix, token.expose()),
        ),
    }
}

/// Most pages a provisioning listing follows before giving up.
const MAX_PAGES: usize = 50;

/// Runs one provisioning call and returns the joined values it collected.
pub async fn run_provision_step(
    client: &OutboundClient,
    spec: &OAuthSpec,
    base_url: &str,
    step: &ProvisionStep,
    access_token: &Secret,
) -> Result<String, OAuthError> {
    let mut url = client.check_url(
        "base.url",
        &format!("{}{}", base_url.trim_end_matches('/'), step.path),
    )?;
    url.query_pairs_mut().extend_pairs(&step.query);
    let mut values = Vec::new();
    for _ in 0..MAX_PAGES {
        let request = apply_credential(&spec.credential, url, access_token, Method::GET, client);
        let (status, body) = client
            .send(request.header(reqwest::header::ACCEPT, "application/json"))
            .await?;
        let status = status.as_u16();
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        if !(200..300).contains(&status) {
            let map = parsed.as_ref().and_then(Value::as_object);
            return Err(provider_error(status, map, &body));
        }
        let Some(document) = parsed else {
            return Err(bad_response(status, "it is not JSON", &body));
        };
        let Some(items) = at_path(&document, &step.items).and_then(Value::as_array) else {
            return Err(bad_response(
                status,
                &format!("it has no '{}' list", step.items),
                &body,
            ));
        };
        values.extend(
            items
                .iter()
                .filter_map(|item| text_of(item.get(&step.field))),
        );
        let next = step
            .next_page
            .as_deref()
            .and_then(|p| at_path(&document, p))
            .and_then(Value::as_str);
        match next {
            Some(next) => url = client.check_url("next page", next)?,
            None => return Ok(values.join(&step.join)),
        }
    }
    Ok(values.join(&step.join))
}

fn at_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(value, |v, key| v.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_response_with_string_expiry_parses() {
        let body = br#"{"access_token":"at","refresh_token":"rt","expires_in":"3600","token_type":"Bearer","instance_url":"https://na1.example"}"#;
        let t = parse_token_response(200, body).unwrap();
        assert_eq!(t.access_token.expose(), "at");
        assert_eq!(t.refresh_token.unwrap().expose(), "rt");
        assert_eq!(t.expires_in, Some(3600));
        assert_eq!(t.fields["instance_url"], "https://na1.example");
        assert!(!t.fields.contains_key("access_token"));
    }

    #[test]
    fn form_encoded_legacy_graph_response_parses() {
        let t = parse_token_response(200, b"access_token=abc&expires=5183944").unwrap();
        assert_eq!(t.access_token.expose(), "abc");
        assert_eq!(t.expires_in, Some(5183944));
    }

    #[test]
    fn rfc6749_error_keeps_error_and_description() {
        let err = parse_token_response(
            400,
            br#"{"error":"invalid_grant","error_description":"code expired"}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.provider_message().unwrap(),
            "invalid_grant: code expired"
        );
    }

    #[test]
    fn graph_error_object_is_understood() {
        let body = br#"{"error":{"message":"This authorization code has been used.","type":"OAuthException","code":100,"fbtrace_id":"x"}}"#;
        let err = parse_token_response(400, body).unwrap_err();
        assert_eq!(
            err.provider_message().unwrap(),
            "OAuthException: This authorization code has been used."
        );
    }

    #[test]
    fn success_without_access_token_is_a_bad_response() {
        let err = parse_token_response(200, br#"{"hello":"world"}"#).unwrap_err();
        assert!(matches!(err, OAuthError::BadResponse { .. }), "{err:?}");
        let err = parse_token_response(200, b"<html>oops</html>").unwrap_err();
        assert!(err.to_string().contains("neither JSON"), "{err}");
    }

    #[test]
    fn error_inside_a_200_is_still_an_error() {
        let err = parse_token_response(200, br#"{"error":"invalid_client"}"#).unwrap_err();
        assert!(matches!(err, OAuthError::Provider { .. }));
    }

    #[test]
    fn debug_of_a_token_response_hides_the_tokens() {
        let t = parse_token_response(
            200,
            br#"{"access_token":"sekrit-at","refresh_token":"sekrit-rt"}"#,
        )
        .unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("sekrit"), "{shown}");
    }
}

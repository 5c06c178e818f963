//! Step 1 of provisioning: the provider URL the customer is sent to.

use crate::OAuthError;
use junction_core::element::OAuthSpec;
use url::Url;

pub struct AuthorizationRequest<'a> {
    pub authorization_url: &'a str,
    pub client_id: &'a str,
    pub callback_url: &'a str,
    pub state: &'a str,
    /// Already joined with the element's separator (see [`join_scopes`]).
    pub scope: Option<&'a str>,
    /// Moves the authorization host when the element allows it (sandbox, My Domain).
    pub site_address: Option<&'a str>,
    /// An S256 PKCE code challenge, sent when the element takes PKCE.
    pub code_challenge: Option<&'a str>,
}

/// Normalises a scope list however the caller wrote it (`a,b`, `a b`, `a+b`) into the
/// element's separator.
pub fn join_scopes(spec: &OAuthSpec, raw: &str) -> String {
    raw.split(|c: char| c == ',' || c == '+' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(&spec.scope_separator)
}

/// Builds the authorization URL. The client secret is never part of it: a URL ends up in
/// browser history, proxy logs and referrers.
pub fn authorization_url(
    spec: &OAuthSpec,
    request: &AuthorizationRequest<'_>,
) -> Result<String, OAuthError> {
    let bad = |what: &str| OAuthError::BadUrl { what: what.into() };
    let mut url =
        Url::parse(request.authorization_url).map_err(|_| bad("oauth.authorization.url"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("oauth.authorization.url"));
    }
    if let (true, Some(site)) = (spec.site_address, request.site_address) {
        let site = site_address(spec, site)?;
        url.set_scheme(site.scheme())
            .map_err(|_| bad("siteAddress"))?;
        url.set_host(site.host_str())
            .map_err(|_| bad("siteAddress"))?;
        url.set_port(site.port()).map_err(|_| bad("siteAddress"))?;
    }
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("response_type", "code");
        query.append_pair("client_id", request.client_id);
        for name in spec.callback_parameter.names() {
            query.append_pair(name, request.callback_url);
        }
        if let Some(scope) = request.scope.filter(|s| !s.is_empty()) {
            query.append_pair("scope", scope);
        }
        for (name, value) in &spec.authorization_parameters {
            query.append_pair(name, value);
        }
        if let (true, Some(challenge)) = (spec.pkce, request.code_challenge) {
            query.append_pair("code_challenge", challenge);
            query.append_pair("code_challenge_method", "S256");
        }
        query.append_pair("state", request.state);
    }
    Ok(url.into())
}

/// The host a `siteAddress` moves the authorization page to: `https` only (the customer
/// types their password there), and one of the element's `allowedHosts` when it pins
/// any, so the page cannot be moved to a host the provider does not own.
fn site_address(spec: &OAuthSpec, raw: &str) -> Result<Url, OAuthError> {
    let refused = |why: &str| OAuthError::BadSiteAddress {
        why: why.to_owned(),
    };
    let site = raw.trim().trim_end_matches('/');
    let with_scheme = if site.contains("://") {
        site.to_owned()
    } else {
        format!("https://{site}")
    };
    let site = Url::parse(&with_scheme).map_err(|_| refused("it is not a URL"))?;
    if site.scheme() != "https" {
        return Err(refused("it must be an https URL"));
    }
    if !site.username().is_empty() || site.password().is_some() {
        return Err(refused("it must not carry credentials"));
    }
    let Some(url::Host::Domain(host)) = site.host() else {
        return Err(refused("it must name a host"));
    };
    let host = host.to_ascii_lowercase();
    if !spec.allows_host(&host) {
        return Err(refused(&format!(
            "its host must be one of {}",
            spec.allowed_hosts.join(", ")
        )));
    }
    Ok(site)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> OAuthSpec {
        serde_json::from_str(yaml).unwrap()
    }

    fn request<'a>(scope: Option<&'a str>, site: Option<&'a str>) -> AuthorizationRequest<'a> {
        AuthorizationRequest {
            authorization_url: "https://login.salesforce.com/services/oauth2/authorize",
            client_id: "client id",
            callback_url: "https://app.example.com/auth?x=1",
            state: "sfdc",
            scope,
            site_address: site,
            code_challenge: None,
        }
    }

    #[test]
    fn url_carries_the_standard_parameters_and_no_secret() {
        let url =
            authorization_url(&spec("{}"), &request(Some("full refresh_token"), None)).unwrap();
        assert_eq!(
            url,
            "https://login.salesforce.com/services/oauth2/authorize?response_type=code&client_id=client+id\
             &redirect_uri=https%3A%2F%2Fapp.example.com%2Fauth%3Fx%3D1&scope=full+refresh_token&state=sfdc"
        );
        assert!(!url.contains("secret"));
    }

    #[test]
    fn callback_parameter_name_comes_from_the_element() {
        let url = authorization_url(
            &spec(r#"{"callbackParameter":"callbackUrl"}"#),
            &request(None, None),
        )
        .unwrap();
        assert!(url.contains("&callbackUrl=https"), "{url}");
        assert!(!url.contains("redirect_uri"));
        let both = authorization_url(
            &spec(r#"{"callbackParameter":["redirect_uri","callbackUrl"]}"#),
            &request(None, None),
        )
        .unwrap();
        let pairs: Vec<(String, String)> = url::Url::parse(&both)
            .unwrap()
            .query_pairs()
            .into_owned()
            .filter(|(_, v)| v.starts_with("https://app.example.com"))
            .collect();
        assert_eq!(
            pairs,
            [
                (
                    "redirect_uri".to_owned(),
                    "https://app.example.com/auth?x=1".to_owned()
                ),
                (
                    "callbackUrl".to_owned(),
                    "https://app.example.com/auth?x=1".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_callback_parameter_list_may_not_be_empty() {
        for bad in [r#"{"callbackParameter":[]}"#, r#"{"callbackParameter":""}"#] {
            assert!(serde_json::from_str::<OAuthSpec>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn authorization_parameters_of_the_element_ride_along() {
        let google =
            spec(r#"{"authorizationParameters":{"access_type":"offline","prompt":"consent"}}"#);
        let url = authorization_url(&google, &request(None, None)).unwrap();
        let query: std::collections::HashMap<String, String> = Url::parse(&url)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        assert_eq!(query["access_type"], "offline", "{url}");
        assert_eq!(query["prompt"], "consent", "{url}");
        assert_eq!(query["client_id"], "client id");
    }

    #[test]
    fn site_address_moves_the_host_only_where_the_element_allows_it() {
        let allowed = spec(r#"{"siteAddress":true}"#);
        let url = authorization_url(&allowed, &request(None, Some("test.salesforce.com"))).unwrap();
        assert!(
            url.starts_with("https://test.salesforce.com/services/oauth2/authorize?"),
            "{url}"
        );
        let url =
            authorization_url(&spec("{}"), &request(None, Some("test.salesforce.com"))).unwrap();
        assert!(url.starts_with("https://login.salesforce.com/"), "{url}");
    }

    #[test]
    fn site_address_is_https_on_a_listed_host_only() {
        let hosts =
            spec(r#"{"siteAddress":true,"allowedHosts":["*.salesforce.com","login.example"]}"#);
        for good in [
            "acme.my.salesforce.com",
            "https://test.salesforce.com/",
            "login.example",
        ] {
            assert!(
                authorization_url(&hosts, &request(None, Some(good))).is_ok(),
                "{good}"
            );
        }
        for bad in [
            "salesforce.com",
            "evilsalesforce.com",
            "test.salesforce.com.evil.example",
            "http://test.salesforce.com",
            "https://u:p@test.salesforce.com",
            "https://10.0.0.1",
            "x.login.example",
        ] {
            let err = authorization_url(&hosts, &request(None, Some(bad))).unwrap_err();
            assert!(matches!(err, OAuthError::BadSiteAddress { .. }), "{bad}");
        }
        // Without a list, any https host, still never plain http.
        let any = spec(r#"{"siteAddress":true}"#);
        assert!(authorization_url(&any, &request(None, Some("other.example"))).is_ok());
        assert!(authorization_url(&any, &request(None, Some("http://other.example"))).is_err());
    }

    #[test]
    fn scopes_are_rejoined_with_the_element_separator() {
        let comma = spec(r#"{"scopeSeparator":","}"#);
        assert_eq!(join_scopes(&comma, "a b+c,d"), "a,b,c,d");
        assert_eq!(
            join_scopes(&spec("{}"), "full,refresh_token"),
            "full refresh_token"
        );
    }
}

//! The `Authorization` header: `User <secret>, Organization <secret>[, Element <token>]`.

use crate::{ServiceError, Services};
use junction_core::{AccountId, InstanceId, Secret, UserId};
use junction_store::{Principal, TokenPrincipal};

/// The secrets a header presented, in whatever order it listed them.
#[derive(Debug, Default)]
pub struct PresentedSecrets {
    pub user: Option<Secret>,
    pub organization: Option<Secret>,
    pub element: Option<Secret>,
}

/// Who is calling.
#[derive(Debug, Clone, Copy)]
pub enum Caller {
    /// A user of an organization: platform calls, any instance of their account.
    User(Principal),
    /// Only an Element token: that one instance.
    Instance(TokenPrincipal),
}

impl Caller {
    pub fn account_id(&self) -> AccountId {
        match self {
            Self::User(p) => p.account_id,
            Self::Instance(t) => t.account_id,
        }
    }

    pub fn user_id(&self) -> UserId {
        match self {
            Self::User(p) => p.user_id,
            Self::Instance(t) => t.user_id,
        }
    }

    /// Element-token callers see only their own instance.
    pub fn only_instance(&self) -> Option<InstanceId> {
        match self {
            Self::User(_) => None,
            Self::Instance(t) => Some(t.instance_id),
        }
    }
}

/// Splits the header into its `Scheme value` pairs; schemes are case-insensitive and the
/// order is free.
pub fn parse_authorization(header: &str) -> Result<PresentedSecrets, ServiceError> {
    let mut out = PresentedSecrets::default();
    for part in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (scheme, value) = part
            .split_once(char::is_whitespace)
            .map(|(s, v)| (s, v.trim()))
            .ok_or_else(|| {
                unauthorized("each part of the Authorization header must be '<Scheme> <value>'")
            })?;
        if value.is_empty() {
            return Err(unauthorized(&format!("the {scheme} value is empty")));
        }
        let (slot, name) = if scheme.eq_ignore_ascii_case("user") {
            (&mut out.user, "User")
        } else if scheme.eq_ignore_ascii_case("organization") {
            (&mut out.organization, "Organization")
        } else if scheme.eq_ignore_ascii_case("element") {
            (&mut out.element, "Element")
        } else {
            return Err(unauthorized(
                "unknown Authorization scheme: expected User, Organization and Element",
            ));
        };
        if let Some(next) = value
            .split_whitespace()
            .skip(1)
            .find(|word| SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(word)))
        {
            return Err(unauthorized(&format!(
                "the {name} value runs into '{next}': separate the parts with a comma, \
                 as in 'User <secret>, Organization <secret>'"
            )));
        }
        // Keeping either copy would let a header carry a guess next to a known secret;
        // no client has a reason to send a scheme twice.
        if slot.is_some() {
            return Err(unauthorized(&format!(
                "the {name} scheme appears more than once in the Authorization header"
            )));
        }
        *slot = Some(Secret::new(value));
    }
    Ok(out)
}

const SCHEMES: [&str; 3] = ["User", "Organization", "Element"];

/// Whether a disabled instance's Element token still proves its instance. A disabled
/// instance refuses calls to its provider and every change, but what it offers (its API
/// documentation) is still told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disabled {
    Refused,
    Admitted,
}

fn unauthorized(message: &str) -> ServiceError {
    ServiceError::Unauthorized(message.to_owned())
}

impl Services {
    /// Proves the header. User and Organization secrets together authenticate a user (an
    /// Element token alongside them is ignored on platform calls); an Element token alone
    /// authenticates its instance.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Caller, ServiceError> {
        self.authenticate_checked(header, Disabled::Refused).await
    }

    pub(crate) async fn authenticate_checked(
        &self,
        header: Option<&str>,
        disabled: Disabled,
    ) -> Result<Caller, ServiceError> {
        let header = header.ok_or_else(|| {
            unauthorized(
                "missing Authorization header: send 'User <secret>, Organization <secret>'",
            )
        })?;
        let presented = parse_authorization(header)?;
        match (&presented.user, &presented.organization, &presented.element) {
            (Some(user), Some(org), _) => self
                .store
                .authenticate_user(user, org)
                .await?
                .map(Caller::User)
                .ok_or_else(|| unauthorized("the User and Organization secrets do not match")),
            (_, _, Some(token)) => {
                let principal = self
                    .store
                    .authenticate_element_token(token)
                    .await?
                    .ok_or_else(|| unauthorized("the Element token is not valid"))?;
                if principal.disabled && disabled == Disabled::Refused {
                    return Err(ServiceError::Forbidden(
                        "this instance is disabled".to_owned(),
                    ));
                }
                Ok(Caller::Instance(principal))
            }
            (Some(_), None, None) => Err(unauthorized(
                "the Organization secret is missing: send 'User <secret>, Organization <secret>'",
            )),
            _ => Err(unauthorized(
                "the User secret is missing: send 'User <secret>, Organization <secret>'",
            )),
        }
    }
}

impl Services {
    /// Authenticates a call to a route that addresses "the Element token's instance" (the
    /// `/instances/…` twins without an id). With an Element token in the header, alone or
    /// beside the User and Organization secrets of its account, the caller is that
    /// instance, exactly as with the token alone; without one, whoever the secrets prove
    /// (such a caller then names no instance).
    pub async fn authenticate_addressed(
        &self,
        header: Option<&str>,
    ) -> Result<Caller, ServiceError> {
        self.authenticate_addressed_checked(header, Disabled::Refused)
            .await
    }

    pub(crate) async fn authenticate_addressed_checked(
        &self,
        header: Option<&str>,
        disabled: Disabled,
    ) -> Result<Caller, ServiceError> {
        match header.map(parse_authorization).transpose()? {
            Some(presented) if presented.element.is_some() => {
                self.instance_of(&presented, disabled).await
            }
            _ => self.authenticate_checked(header, disabled).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_found_in_any_order_and_case() {
        let p = parse_authorization("Element tok, organization o-sec,User u-sec").unwrap();
        assert_eq!(p.user.unwrap().expose(), "u-sec");
        assert_eq!(p.organization.unwrap().expose(), "o-sec");
        assert_eq!(p.element.unwrap().expose(), "tok");
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert!(parse_authorization("Bearer abc").is_err());
        assert!(parse_authorization("User").is_err());
    }

    #[test]
    fn a_scheme_given_twice_is_refused() {
        let err = parse_authorization("User bad, user good, Organization o").unwrap_err();
        assert!(err.to_string().contains("more than once"), "{err}");
    }

    #[test]
    fn a_missing_comma_gets_a_hint() {
        let err = parse_authorization("User abc Organization def").unwrap_err();
        assert!(err.to_string().contains("comma"), "{err}");
    }
}

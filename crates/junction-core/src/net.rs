//! The outbound address policy: which IP addresses Junction may call.
//!
//! Instance configuration can point token and API URLs anywhere, so without a policy a
//! tenant could make Junction call the cloud metadata service or an internal admin port
//! (SSRF). Public addresses are always allowed; loopback and private ranges only when the
//! operator opts in (local development, tests); link-local and metadata addresses never.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Allow loopback and private (RFC 1918, CGNAT, unique-local) destinations.
    pub allow_private: bool,
}

/// Why an address was refused; its `Display` is meant for API error messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyViolation {
    pub address: IpAddr,
    pub class: AddressClass,
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.class {
            AddressClass::Loopback | AddressClass::Private => write!(
                f,
                "the outbound address policy refused {} ({} address); set JUNCTION_OUTBOUND_ALLOW_PRIVATE=true to allow loopback and private addresses",
                self.address, self.class
            ),
            _ => write!(
                f,
                "the outbound address policy refused {} ({} address); such addresses are never called",
                self.address, self.class
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    Private,
    /// Link-local, which includes the cloud metadata endpoints.
    LinkLocal,
    Metadata,
    Unspecified,
    Multicast,
    Reserved,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Public => "public",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::Metadata => "cloud metadata",
            Self::Unspecified => "unspecified",
            Self::Multicast => "multicast",
            Self::Reserved => "reserved",
        })
    }
}

impl OutboundPolicy {
    pub fn check(&self, address: IpAddr) -> Result<(), PolicyViolation> {
        let class = classify(address);
        let allowed = match class {
            AddressClass::Public => true,
            AddressClass::Loopback | AddressClass::Private => self.allow_private,
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(PolicyViolation { address, class })
        }
    }
}

pub fn classify(address: IpAddr) -> AddressClass {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_link_local() {
        if ip == Ipv4Addr::new(169, 254, 169, 254) {
            AddressClass::Metadata
        } else {
            AddressClass::LinkLocal
        }
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        AddressClass::Private
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if ip.is_broadcast() || a >= 240 || ip.is_documentation() || (a == 192 && b == 0) {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let first = ip.segments()[0];
    // AWS publishes its IPv6 instance metadata service inside the unique-local range.
    let aws_metadata = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip == aws_metadata {
        AddressClass::Metadata
    } else if (first & 0xffc0) == 0xfe80 {
        AddressClass::LinkLocal
    } else if (first & 0xfe00) == 0xfc00 {
        AddressClass::Private
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_addresses_are_always_allowed() {
        let strict = OutboundPolicy::default();
        assert!(strict.check(ip("93.184.216.34")).is_ok());
        assert!(strict.check(ip("2606:4700::1111")).is_ok());
    }

    #[test]
    fn loopback_and_private_need_the_opt_in() {
        let strict = OutboundPolicy::default();
        let open = OutboundPolicy {
            allow_private: true,
        };
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "100.64.0.1",
            "::1",
            "fd12::1",
        ] {
            let err = strict.check(ip(a)).unwrap_err();
            assert!(
                err.to_string().contains("JUNCTION_OUTBOUND_ALLOW_PRIVATE"),
                "{a}"
            );
            assert!(open.check(ip(a)).is_ok(), "{a}");
        }
    }

    #[test]
    fn metadata_and_link_local_are_refused_even_with_the_opt_in() {
        let open = OutboundPolicy {
            allow_private: true,
        };
        for a in [
            "169.254.169.254",
            "169.254.1.1",
            "fe80::1",
            "fd00:ec2::254",
            "0.0.0.0",
            "::ffff:169.254.169.254",
            "224.0.0.1",
        ] {
            let err = open.check(ip(a)).unwrap_err();
            assert!(err.to_string().contains("never called"), "{a}: {err}");
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_is_judged_as_ipv4() {
        assert_eq!(classify(ip("::ffff:127.0.0.1")), AddressClass::Loopback);
    }
}

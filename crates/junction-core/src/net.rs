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
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Whether `ip` lies in `prefix`/`bits`.
fn in_v4(ip: Ipv4Addr, prefix: [u8; 4], bits: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(prefix)) & mask
}

fn in_v6(ip: Ipv6Addr, prefix: [u16; 8], bits: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(prefix)) & mask
}

/// IPv4 ranges of the IANA special-purpose registry that are not globally reachable and
/// have no class of their own below (RFC 6890 and its updates).
const RESERVED_V4: &[([u8; 4], u32)] = &[
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
    ([192, 88, 99, 0], 24),  // deprecated 6to4 relay anycast
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
    ([240, 0, 0, 0], 4),     // reserved, and the limited broadcast address
];

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    if in_v4(ip, [0, 0, 0, 0], 8) {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip == Ipv4Addr::new(169, 254, 169, 254) {
        AddressClass::Metadata
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_private() || in_v4(ip, [100, 64, 0, 0], 10) {
        AddressClass::Private
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if RESERVED_V4.iter().any(|(p, bits)| in_v4(ip, *p, *bits)) {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// IPv6 ranges of the IANA special-purpose registry that are not globally reachable and
/// have no class of their own below.
const RESERVED_V6: &[([u16; 8], u32)] = &[
    ([0x0100, 0, 0, 0, 0, 0, 0, 0], 64),      // discard-only
    ([0x0064, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // local-use NAT64: its IPv4 side is unknown
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),      // Teredo: hides an IPv4 address
    ([0x2001, 0x0002, 0, 0, 0, 0, 0, 0], 48), // benchmarking
    ([0x2001, 0x0010, 0, 0, 0, 0, 0, 0], 28), // deprecated ORCHID
    ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32), // documentation
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),      // documentation
    ([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),      // segment routing SIDs
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),      // deprecated site-local
];

/// The IPv4 address an IPv6 address carries and that a translator or tunnel may deliver
/// to: IPv4-mapped and IPv4-compatible (`::/96`), IPv4-translated (`::ffff:0:0:0/96`),
/// NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    // Truncation keeps exactly the low 32 bits, where these prefixes put the address.
    let low = Ipv4Addr::from(bits as u32);
    if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96)
        || in_v6(ip, [0, 0, 0, 0, 0, 0, 0, 0], 96)
        || in_v6(ip, [0, 0, 0, 0, 0xffff, 0, 0, 0], 96)
        || in_v6(ip, [0x0064, 0xff9b, 0, 0, 0, 0, 0, 0], 96)
    {
        return Some(low);
    }
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    // AWS publishes its IPv6 instance metadata service inside the unique-local range.
    let aws_metadata = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if let Some(v4) = embedded_v4(ip) {
        match classify_v4(v4) {
            // `::a.b.c.d` is deprecated and never a public destination of its own.
            AddressClass::Public if in_v6(ip, [0; 8], 96) => AddressClass::Reserved,
            class => class,
        }
    } else if ip == aws_metadata {
        AddressClass::Metadata
    } else if in_v6(ip, [0xfe80, 0, 0, 0, 0, 0, 0, 0], 10) {
        AddressClass::LinkLocal
    } else if in_v6(ip, [0xfc00, 0, 0, 0, 0, 0, 0, 0], 7) {
        AddressClass::Private
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if RESERVED_V6.iter().any(|(p, bits)| in_v6(ip, *p, *bits)) {
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

    #[test]
    fn ipv4_inside_ipv6_is_judged_by_the_ipv4_rules() {
        for (address, class) in [
            ("64:ff9b::127.0.0.1", AddressClass::Loopback),
            ("64:ff9b::a9fe:a9fe", AddressClass::Metadata),
            ("64:ff9b::10.0.0.1", AddressClass::Private),
            ("64:ff9b::93.184.216.34", AddressClass::Public),
            ("2002:7f00:1::", AddressClass::Loopback),
            ("2002:a9fe:a9fe::1", AddressClass::Metadata),
            ("2002:c0a8:101::1", AddressClass::Private),
            ("2002:5db8:d822::1", AddressClass::Public),
            ("::ffff:0:127.0.0.1", AddressClass::Loopback),
            ("::ffff:0:169.254.169.254", AddressClass::Metadata),
            ("::127.0.0.1", AddressClass::Loopback),
            ("::10.1.2.3", AddressClass::Private),
            ("::93.184.216.34", AddressClass::Reserved),
        ] {
            assert_eq!(classify(ip(address)), class, "{address}");
        }
    }

    #[test]
    fn special_purpose_ranges_that_are_not_global_are_never_called() {
        let open = OutboundPolicy {
            allow_private: true,
        };
        for a in [
            "198.18.0.1",
            "198.19.255.254",
            "192.0.0.8",
            "192.88.99.1",
            "203.0.113.9",
            "255.255.255.255",
            "fec0::1",
            "100::1",
            "2001::1",
            "2001:2::1",
            "64:ff9b:1::a00:1",
            "3fff::1",
        ] {
            assert!(open.check(ip(a)).is_err(), "{a}");
        }
        for a in [
            "198.20.0.1",
            "192.0.3.1",
            "2001:4860::8888",
            "64:ff9b::808:808",
        ] {
            assert!(open.check(ip(a)).is_ok(), "{a}");
        }
    }
}

//! Which IP addresses a plugin's connections may reach, decided on the address a connection
//! would really go to (after DNS), not on the name in the URL.
//!
//! An allowlisted name can resolve to anything: `api.example.com` may be pointed at
//! `127.0.0.1` or at a cloud's metadata service (`169.254.169.254`). [`NetPolicy::check`]
//! refuses every special-purpose address (loopback, private, link-local, ...) unless the
//! operator granted a network containing it. The check is on a parsed [`IpAddr`], so however a
//! URL spells an address (decimal, hex, octal, IPv4-mapped IPv6) the same address is judged.
//!
//! ```
//! use apiary_host::{Cidr, NetPolicy};
//! use std::net::IpAddr;
//!
//! let ip: IpAddr = "127.0.0.1".parse().unwrap();
//! let err = NetPolicy::default().check(ip).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "127.0.0.1 is a loopback address; grant it with --allow-net 127.0.0.0/8 (or allow_net in the operator file)"
//! );
//! let granted = NetPolicy::new(vec!["127.0.0.0/8".parse::<Cidr>().unwrap()]);
//! assert!(granted.check(ip).is_ok());
//! assert!(NetPolicy::default().check("93.184.215.14".parse().unwrap()).is_ok());
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// An IP network in CIDR notation (`10.0.0.0/8`, `::1/128`); a bare address means just that
/// address (`/32` or `/128`). A thin wrapper over the `ipnet` crate's `IpNet` that also reads
/// bare addresses and refuses host bits, which usually mean a typo.
///
/// ```
/// use apiary_host::Cidr;
///
/// let net: Cidr = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
/// assert!("10.0.0.1/8".parse::<Cidr>().is_err(), "host bits set");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(IpNet);

/// Why a network is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid network `{text}`: {reason}")]
pub struct CidrError {
    text: String,
    reason: String,
}

impl Cidr {
    /// The network of `address` with the first `prefix_len` bits fixed.
    ///
    /// # Errors
    /// [`CidrError`] when the prefix is longer than the address or `address` has bits set
    /// past it.
    pub fn new(address: IpAddr, prefix_len: u8) -> Result<Self, CidrError> {
        let error = |reason: String| CidrError {
            text: format!("{address}/{prefix_len}"),
            reason,
        };
        let net = IpNet::new(address, prefix_len).map_err(|_| {
            let max = if address.is_ipv4() { 32 } else { 128 };
            error(format!("the prefix length must be at most {max}"))
        })?;
        if net.trunc() != net {
            return Err(error(format!(
                "bits are set after the prefix; the network is {}",
                net.trunc()
            )));
        }
        Ok(Self(net))
    }

    /// Builds a network in a `const`, for tables of reserved blocks.
    const fn reserved(address: IpAddr, prefix_len: u8) -> Self {
        Self(IpNet::new_assert(address, prefix_len))
    }

    /// Whether `ip` is in this network (an IPv4 network never contains an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| CidrError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        // Rust's parser accepts only the plain dotted-decimal and RFC 4291 forms (no octal
        // `010.0.0.1`, no `0x7f.1`), so a grant means exactly what it looks like.
        let address: IpAddr = address
            .parse()
            .map_err(|_| error("expected an IP address or network, e.g. 127.0.0.0/8, 10.1.2.3 or ::1/128"))?;
        let prefix_len = match prefix {
            None if address.is_ipv4() => 32,
            None => 128,
            Some(prefix) => prefix
                .parse::<u8>()
                .map_err(|_| error("the prefix length after `/` must be a number, e.g. /8"))?,
        };
        Self::new(address, prefix_len).map_err(|e| CidrError {
            text: text.to_string(),
            ..e
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// What kind of special-purpose address a connection was refused for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressKind {
    /// `0.0.0.0` or `::`, which connects to the local host on most systems.
    Unspecified,
    /// `0.0.0.0/8`, "this network".
    ThisNetwork,
    /// `127.0.0.0/8` or `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` (RFC 1918).
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598).
    SharedAddressSpace,
    /// `169.254.0.0/16` (cloud metadata services live here) or `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`, IPv6 unique local addresses.
    UniqueLocal,
    /// `224.0.0.0/4` or `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
}

impl AddressKind {
    /// The kind as a phrase, e.g. `"a loopback address"`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "an unspecified address",
            Self::ThisNetwork => "a \"this network\" address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::SharedAddressSpace => "a carrier-grade NAT address",
            Self::LinkLocal => "a link-local address",
            Self::UniqueLocal => "a unique local address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
        }
    }
}

/// Special-purpose blocks refused unless granted; the first match names the kind, so the
/// single addresses come before the blocks that contain them.
const RESERVED: &[(Cidr, AddressKind)] = &[
    v4([0, 0, 0, 0], 32, AddressKind::Unspecified),
    v4([0, 0, 0, 0], 8, AddressKind::ThisNetwork),
    v4([10, 0, 0, 0], 8, AddressKind::Private),
    v4([100, 64, 0, 0], 10, AddressKind::SharedAddressSpace),
    v4([127, 0, 0, 0], 8, AddressKind::Loopback),
    v4([169, 254, 0, 0], 16, AddressKind::LinkLocal),
    v4([172, 16, 0, 0], 12, AddressKind::Private),
    v4([192, 168, 0, 0], 16, AddressKind::Private),
    v4([224, 0, 0, 0], 4, AddressKind::Multicast),
    v4([255, 255, 255, 255], 32, AddressKind::Broadcast),
    v6(Ipv6Addr::UNSPECIFIED, 128, AddressKind::Unspecified),
    v6(Ipv6Addr::LOCALHOST, 128, AddressKind::Loopback),
    v6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, AddressKind::UniqueLocal),
    v6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, AddressKind::LinkLocal),
    v6(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, AddressKind::Multicast),
];

const fn v4(octets: [u8; 4], prefix_len: u8, kind: AddressKind) -> (Cidr, AddressKind) {
    let [a, b, c, d] = octets;
    (Cidr::reserved(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), prefix_len), kind)
}

const fn v6(address: Ipv6Addr, prefix_len: u8, kind: AddressKind) -> (Cidr, AddressKind) {
    (Cidr::reserved(IpAddr::V6(address), prefix_len), kind)
}

/// The special-purpose block `ip` is in, and its kind; `None` for a public address.
fn reserved_block(ip: IpAddr) -> Option<(Cidr, AddressKind)> {
    RESERVED.iter().find(|(cidr, _)| cidr.contains(ip)).copied()
}

/// The IPv4 address an IPv6 address stands for, when it embeds one that the network would
/// reach: IPv4-mapped (`::ffff:a.b.c.d`, which a dual-stack socket connects to over IPv4),
/// IPv4-compatible (`::a.b.c.d`, deprecated) and the NAT64 well-known prefix (`64:ff9b::/96`,
/// which a NAT64 gateway forwards to the IPv4 address).
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let [a, b] = [s[6], s[7]];
    let low = Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8);
    // `::` and `::1` are IPv6's own unspecified and loopback addresses, not IPv4-compatible ones.
    let compatible = s[..6] == [0; 6] && ip != Ipv6Addr::UNSPECIFIED && ip != Ipv6Addr::LOCALHOST;
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    (compatible || nat64).then_some(low)
}

/// The address a connection to `ip` really reaches, for judging it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// A connection refused because of the address it would go to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{address}{} is {}; grant it with --allow-net {grant} (or allow_net in the operator file)",
    via(*address, *canonical),
    kind.describe()
)]
pub struct ForbiddenAddress {
    /// The address as resolved or written.
    pub address: IpAddr,
    /// The address judged: the embedded IPv4 address of a mapped form, else `address`.
    pub canonical: IpAddr,
    /// Why it is special.
    pub kind: AddressKind,
    /// The block to grant to allow it.
    pub grant: Cidr,
}

fn via(address: IpAddr, canonical: IpAddr) -> String {
    if address == canonical {
        String::new()
    } else {
        format!(" (IPv4 {canonical})")
    }
}

/// The networks a plugin's connections may reach beyond public addresses. The default grants
/// nothing special: every loopback, private, link-local, multicast, ... address is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NetPolicy {
    /// Networks granted by the operator (`--allow-net`, `allow_net`).
    pub allowed: Vec<Cidr>,
}

impl NetPolicy {
    /// A policy granting `allowed`, sorted and without repeats, so that equal grants are equal
    /// policies (and share a connection pool).
    pub fn new(mut allowed: Vec<Cidr>) -> Self {
        allowed.sort();
        allowed.dedup();
        Self { allowed }
    }

    /// Whether a connection to `ip` is allowed: a public address, or one in a granted network.
    /// A mapped IPv6 form is judged by the IPv4 address it stands for.
    ///
    /// # Errors
    /// [`ForbiddenAddress`] naming the address, its kind and the grant that would allow it.
    pub fn check(&self, ip: IpAddr) -> Result<(), ForbiddenAddress> {
        let canonical = canonical(ip);
        let Some((grant, kind)) = reserved_block(canonical) else {
            return Ok(());
        };
        if self
            .allowed
            .iter()
            .any(|net| net.contains(canonical) || net.contains(ip))
        {
            return Ok(());
        }
        Err(ForbiddenAddress {
            address: ip,
            canonical,
            kind,
            grant,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn kind(text: &str) -> Option<AddressKind> {
        NetPolicy::default().check(ip(text)).err().map(|e| e.kind)
    }

    #[test]
    fn every_special_block_is_refused_by_default() {
        use AddressKind::*;
        for (address, expected) in [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", ThisNetwork),
            ("0.255.255.255", ThisNetwork),
            ("127.0.0.1", Loopback),
            ("127.255.255.255", Loopback),
            ("127.1.2.3", Loopback),
            ("10.0.0.0", Private),
            ("10.255.255.255", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.0.1", Private),
            ("192.168.255.255", Private),
            ("100.64.0.0", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("169.254.169.254", LinkLocal),
            ("169.254.0.0", LinkLocal),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("255.255.255.255", Broadcast),
            ("::", Unspecified),
            ("::1", Loopback),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("fe80::1", LinkLocal),
            ("febf:ffff::1", LinkLocal),
            ("ff02::1", Multicast),
        ] {
            assert_eq!(kind(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn public_addresses_and_the_edges_next_to_blocks_are_allowed() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "1.0.0.0",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450::2",
            "fbff:ffff::1",
            "fec0::1",
            "feff::1",
        ] {
            assert_eq!(kind(address), None, "{address}");
        }
    }

    #[test]
    fn mapped_compatible_and_nat64_forms_are_judged_by_their_ipv4_address() {
        for (address, v4) in [
            ("::ffff:127.0.0.1", "127.0.0.1"),
            ("::ffff:7f00:1", "127.0.0.1"),
            ("::ffff:169.254.169.254", "169.254.169.254"),
            ("::ffff:10.0.0.1", "10.0.0.1"),
            ("::ffff:0.0.0.0", "0.0.0.0"),
            ("::127.0.0.1", "127.0.0.1"),
            ("::2", "0.0.0.2"),
            ("::192.168.1.1", "192.168.1.1"),
            ("64:ff9b::127.0.0.1", "127.0.0.1"),
            ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ] {
            let err = NetPolicy::default().check(ip(address)).unwrap_err();
            assert_eq!(err.canonical, ip(v4), "{address}");
            assert_eq!(err.address, ip(address));
        }
        assert!(NetPolicy::default().check(ip("::ffff:8.8.8.8")).is_ok());
        let err = NetPolicy::default().check(ip("::ffff:127.0.0.1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "::ffff:127.0.0.1 (IPv4 127.0.0.1) is a loopback address; grant it with --allow-net 127.0.0.0/8 \
             (or allow_net in the operator file)"
        );
    }

    #[test]
    fn the_check_is_on_the_parsed_address_whatever_its_spelling() {
        // A resolver may return 127.0.0.1 for `2130706433`, `0x7f.1` or `0177.0.0.1`; all
        // reach the check as the one `IpAddr`, so spelling cannot slip past it.
        let spellings = [
            IpAddr::V4(Ipv4Addr::from(2_130_706_433_u32)),
            IpAddr::V4(Ipv4Addr::from(0x7f00_0001_u32)),
            IpAddr::V4(Ipv4Addr::from([0o177, 0, 0, 1])),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        ];
        for address in spellings {
            assert_eq!(address, ip("127.0.0.1"));
            assert_eq!(
                NetPolicy::default().check(address).unwrap_err().kind,
                AddressKind::Loopback
            );
        }
        assert!("0177.0.0.1".parse::<Cidr>().is_err(), "grants take no octal");
    }

    #[test]
    fn a_granted_network_allows_exactly_its_addresses() {
        let policy = NetPolicy::new(vec![cidr("127.0.0.0/8"), cidr("::1"), cidr("10.1.0.0/16")]);
        for address in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1", "10.1.255.1"] {
            assert!(policy.check(ip(address)).is_ok(), "{address}");
        }
        for address in ["10.2.0.1", "169.254.169.254", "192.168.0.1", "0.0.0.0", "::"] {
            assert!(policy.check(ip(address)).is_err(), "{address}");
        }
        let metadata = NetPolicy::new(vec![cidr("169.254.169.254")]);
        assert!(metadata.check(ip("169.254.169.254")).is_ok());
        assert!(metadata.check(ip("169.254.169.253")).is_err());
    }

    #[test]
    fn the_error_names_the_address_its_kind_and_the_grant() {
        let text = |address: &str| NetPolicy::default().check(ip(address)).unwrap_err().to_string();
        assert_eq!(
            text("127.0.0.1"),
            "127.0.0.1 is a loopback address; grant it with --allow-net 127.0.0.0/8 (or allow_net in the operator file)"
        );
        assert!(
            text("169.254.169.254")
                .starts_with("169.254.169.254 is a link-local address; grant it with --allow-net 169.254.0.0/16"),
            "{}",
            text("169.254.169.254")
        );
        assert!(text("172.20.0.1").contains("a private address; grant it with --allow-net 172.16.0.0/12"));
        assert!(text("::1").contains("--allow-net ::1/128"));
    }

    #[test]
    fn equal_grants_are_equal_policies() {
        let a = NetPolicy::new(vec![cidr("::1"), cidr("127.0.0.0/8"), cidr("::1")]);
        let b = NetPolicy::new(vec![cidr("127.0.0.0/8"), cidr("::1/128")]);
        assert_eq!(a, b);
        assert_ne!(a, NetPolicy::default());
    }

    #[test]
    fn networks_parse_with_clear_errors() {
        assert_eq!(cidr("127.0.0.1"), cidr("127.0.0.1/32"));
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert!(cidr("0.0.0.0/0").contains(ip("10.0.0.1")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")), "families never mix");
        for (text, reason) in [
            ("", "expected an IP address or network"),
            ("localhost", "expected an IP address or network"),
            ("127.0.0.0/", "the prefix length after `/` must be a number"),
            ("127.0.0.0/x", "the prefix length after `/` must be a number"),
            ("127.0.0.0/33", "the prefix length must be at most 32"),
            ("::/129", "the prefix length must be at most 128"),
            ("10.0.0.1/8", "bits are set after the prefix; the network is 10.0.0.0/8"),
            ("fe80::1%eth0", "expected an IP address or network"),
        ] {
            let err = text.parse::<Cidr>().unwrap_err().to_string();
            assert!(err.starts_with(&format!("invalid network `{text}`: {reason}")), "{err}");
        }
    }
}

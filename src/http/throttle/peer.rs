//! Who the peer is, for throttling and for the security log: the TCP peer,
//! unless that is one of `http.trusted_proxies` — then the right-most
//! address of `X-Forwarded-For` that no trusted proxy is at.
//!
//! Every proxy appends the address it was connected from, so the list is
//! only as honest as the hop that wrote each entry: walking it from the
//! right and stopping at the first address that is not a trusted proxy
//! takes the last address a trusted hop vouched for, and whatever a client
//! wrote itself further left is never believed. With no trusted proxies
//! (the default) the header is ignored altogether.

use axum::http::HeaderValue;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The peer of a request that came over TCP from `tcp_peer` carrying
    /// these `X-Forwarded-For` header values (in the order received).
    pub fn resolve<'a>(&self, tcp_peer: IpAddr, forwarded_for: impl Iterator<Item = &'a HeaderValue>) -> IpAddr {
        let mut peer = tcp_peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let values: Vec<&HeaderValue> = forwarded_for.collect();
        let hops = values.iter().rev().flat_map(|value| value.to_str().unwrap_or("?").rsplit(','));
        for hop in hops {
            // An entry that is no address was not written by a trusted hop
            // that works: believe nothing left of it.
            let Some(address) = parse_hop(hop) else {
                return peer;
            };
            peer = address.to_canonical();
            if !self.trusts(peer) {
                return peer;
            }
        }
        // Every hop is a trusted proxy: the left-most is the best we know.
        peer
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port, IPv6 in
/// brackets or bare.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
}

/// What failures from `peer` are counted under: an IPv4 address, or the
/// /64 an IPv6 address is in — one host usually holds a whole /64, so
/// counting per address would give it 2⁶⁴ fresh starts.
pub fn throttle_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|text| text.parse().unwrap()).collect())
    }

    fn resolve(proxies: &TrustedProxies, tcp_peer: &str, headers: &[&str]) -> String {
        let values: Vec<HeaderValue> = headers.iter().map(|h| HeaderValue::from_str(h).unwrap()).collect();
        proxies.resolve(tcp_peer.parse().unwrap(), values.iter()).to_string()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        assert_eq!(resolve(&TrustedProxies::default(), "203.0.113.9", &["198.51.100.1"]), "203.0.113.9");
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_address() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(resolve(&trusted, "203.0.113.9", &["198.51.100.1"]), "203.0.113.9");
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_peer() {
        let trusted = proxies(&["10.0.0.0/8", "192.0.2.1/32"]);
        // The client wrote "1.1.1.1" itself; the trusted hops vouch for 198.51.100.1.
        assert_eq!(resolve(&trusted, "10.0.0.5", &["1.1.1.1, 198.51.100.1, 192.0.2.1"]), "198.51.100.1");
        // Several headers are one list, in order.
        assert_eq!(resolve(&trusted, "10.0.0.5", &["1.1.1.1", "198.51.100.1", "10.2.2.2"]), "198.51.100.1");
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        let trusted = proxies(&["10.0.0.0/8", "2001:db8::/32"]);
        assert_eq!(resolve(&trusted, "10.0.0.5", &["198.51.100.1:4711"]), "198.51.100.1");
        assert_eq!(resolve(&trusted, "10.0.0.5", &["[2001:db9::7]:443"]), "2001:db9::7");
        assert_eq!(resolve(&trusted, "10.0.0.5", &["[2001:db9::7]"]), "2001:db9::7");
        assert_eq!(resolve(&trusted, "::ffff:10.0.0.5", &["198.51.100.1"]), "198.51.100.1", "an IPv4-mapped proxy is trusted");
    }

    #[test]
    fn garbage_or_a_missing_header_leaves_the_last_trusted_hop() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(resolve(&trusted, "10.0.0.5", &["not-an-address, 10.0.0.9"]), "10.0.0.9");
        assert_eq!(resolve(&trusted, "10.0.0.5", &[]), "10.0.0.5");
        assert_eq!(resolve(&trusted, "10.0.0.5", &["10.0.0.7, 10.0.0.6"]), "10.0.0.7", "all trusted: the left-most");
    }

    #[test]
    fn ipv6_peers_are_counted_per_64() {
        assert_eq!(throttle_key("2001:db8:1:2:aaaa::1".parse().unwrap()).to_string(), "2001:db8:1:2::");
        assert_eq!(throttle_key("::ffff:192.0.2.1".parse().unwrap()).to_string(), "192.0.2.1");
        assert_eq!(throttle_key("192.0.2.1".parse().unwrap()).to_string(), "192.0.2.1");
    }
}

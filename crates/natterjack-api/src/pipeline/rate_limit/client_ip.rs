//! Which address a request comes from, for rate limiting and audit.

use http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// The client address: the TCP peer, unless the peer is a configured trusted proxy, in which
/// case `X-Forwarded-For` is read from the right and the first hop that is not itself a
/// trusted proxy is the client. The left-most entry is never trusted as such: anyone can
/// put anything there. An entry that does not parse ends the walk at the last trusted hop.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = limit_key_canonical(peer);
    if !is_trusted(&peer) {
        return peer;
    }
    let Ok(lines) = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str())
        .collect::<Result<Vec<_>, _>>()
    else {
        // A line that is not plain text could hide the hop our proxy appended: trust none.
        return peer;
    };
    let hops: Vec<&str> = lines
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>().map(limit_key_canonical) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// IPv4-mapped IPv6 addresses as plain IPv4, so one client has one identity.
fn limit_key_canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                "x-forwarded-for",
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().filter_map(|n| n.parse().ok()).collect()
    }

    #[test]
    fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
        let got = client_ip(
            ip("198.51.100.7"),
            &xff(&["203.0.113.9"]),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(got, ip("198.51.100.7"));
    }

    #[test]
    fn the_right_most_untrusted_hop_behind_trusted_proxies_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        // spoofed, real client, inner proxy — as appended by each hop.
        let h = xff(&["1.2.3.4, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn a_malformed_hop_stops_the_walk_at_the_last_trusted_address() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = xff(&["203.0.113.9, garbage, 10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.2"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_forwarded_line_that_is_not_plain_text_makes_the_whole_header_untrusted() {
        let trusted = nets(&["10.0.0.0/8"]);
        let mut h = xff(&["203.0.113.9"]);
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"198.51.100.1\xff").unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.1"));
    }
}

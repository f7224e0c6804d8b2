//! Which address a request came from. The safe default is the TCP peer (axum's
//! [`ConnectInfo`](axum::extract::ConnectInfo), or with the `tonic` feature tonic's
//! `TcpConnectInfo`); forwarded headers are read only when a source is
//! configured, and then only past proxies you trust, because any client can send them.
//!
//! `Forwarded` (RFC 7239) is parsed here rather than with a crate: the ones published split the
//! header on commas inside quoted strings and parse it whole from the left, where a client
//! writes what it likes (see `docs/decisions`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A hop longer than this is garbage: no address, even with a port or RFC 7239 parameters,
/// comes near it.
const MAX_HOP_BYTES: usize = 256;
/// How many hops are read from the right before giving up: no real chain of trusted proxies is
/// this long.
const MAX_HOPS: usize = 32;

/// Where the client address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientIpSource {
    /// The TCP peer address from `ConnectInfo`. Serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()` for it to be known; under tonic's
    /// server, enable the `tonic` feature and it is read from tonic's `TcpConnectInfo`.
    #[default]
    Peer,
    /// `X-Forwarded-For`, walked from the right past trusted proxies.
    XForwardedFor,
    /// RFC 7239 `Forwarded` (`for=`), walked from the right past trusted proxies.
    Forwarded,
}

/// How the layer finds the client address: a [`ClientIpSource`] and the proxies you trust.
///
/// With a forwarded-header source, the header is believed only when the peer itself is a trusted
/// proxy; then the chain is walked from the right (the hop nearest to you) and the first address
/// that is not a trusted proxy is the client. When the walk meets a hop that is missing,
/// malformed, oversized or not UTF-8 before it finds that address, or has read 32 trusted hops,
/// the peer address is recorded. Whatever lies left of the client's address is never read:
/// only the client wrote it, so junk there cannot hide the address your proxies saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIpConfig {
    source: ClientIpSource,
    trusted: Vec<IpNet>,
    /// `trusted` as (network, mask) pairs, so a hop is checked with a mask and a comparison.
    trusted_v4: Vec<(u32, u32)>,
    trusted_v6: Vec<(u128, u128)>,
}

impl ClientIpConfig {
    /// The default: the peer address, no forwarded headers.
    pub fn peer() -> Self {
        Self::default()
    }

    /// Reads `source`, believing it only from the `trusted` proxy networks.
    ///
    /// # Warning
    /// Trusting a network that clients can send from (for example `0.0.0.0/0`) lets anyone
    /// choose the address recorded in the audit log.
    pub fn forwarded(source: ClientIpSource, trusted: impl IntoIterator<Item = IpNet>) -> Self {
        let trusted: Vec<IpNet> = trusted.into_iter().collect();
        let mut trusted_v4 = Vec::new();
        let mut trusted_v6 = Vec::new();
        for net in &trusted {
            match net {
                IpNet::V4(net) => {
                    trusted_v4.push((u32::from(net.network()), u32::from(net.netmask())));
                }
                IpNet::V6(net) => {
                    trusted_v6.push((u128::from(net.network()), u128::from(net.netmask())));
                }
            }
        }
        ClientIpConfig {
            source,
            trusted,
            trusted_v4,
            trusted_v6,
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => {
                let ip = u32::from(ip);
                self.trusted_v4.iter().any(|&(net, mask)| ip & mask == net)
            }
            IpAddr::V6(ip) => {
                let ip = u128::from(ip);
                self.trusted_v6.iter().any(|&(net, mask)| ip & mask == net)
            }
        }
    }

    /// The client address of a request with these headers and extensions.
    pub fn client_ip(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        match self.header() {
            Some(header) => self.client_ip_from(headers.get_all(header).iter(), extensions),
            None => self.client_ip_from(std::iter::empty(), extensions),
        }
    }

    /// The header the source reads, if it reads one.
    pub(crate) fn header(&self) -> Option<&'static HeaderName> {
        match self.source {
            ClientIpSource::Peer => None,
            ClientIpSource::XForwardedFor => Some(&X_FORWARDED_FOR),
            ClientIpSource::Forwarded => Some(&http::header::FORWARDED),
        }
    }

    /// [`client_ip`](Self::client_ip) with the lines of [`header`](Self::header) in the order
    /// the request holds them, for a caller that has found them already.
    pub(crate) fn client_ip_from<'a>(
        &self,
        lines: impl DoubleEndedIterator<Item = &'a HeaderValue>,
        extensions: &Extensions,
    ) -> Option<IpAddr> {
        let peer = peer(extensions);
        if self.source == ClientIpSource::Peer {
            return peer;
        }
        let peer_ip = peer?;
        if !self.is_trusted(peer_ip) {
            return Some(peer_ip);
        }
        let forwarded = self.source == ClientIpSource::Forwarded;
        let mut farthest_trusted = None;
        let mut walked = 0;
        // Hops from the right: the last line's last element first.
        for line in lines.rev() {
            // A line of visible ASCII (nearly all) is checked once, and its hops are slices of
            // it; another line's hops are checked one by one, so junk left of the client's
            // address cannot spoil the address.
            let text = line.to_str().ok();
            let bytes = line.as_bytes();
            for (start, end) in HopsFromRight::new(bytes, forwarded) {
                if walked == MAX_HOPS {
                    return Some(peer_ip);
                }
                walked += 1;
                let hop = match text {
                    _ if end - start > MAX_HOP_BYTES => None,
                    Some(text) => text.get(start..end),
                    None => std::str::from_utf8(&bytes[start..end]).ok(),
                };
                let Some(ip) = hop.and_then(|hop| parse_hop(hop, forwarded)) else {
                    return Some(peer_ip);
                };
                if !self.is_trusted(ip) {
                    return Some(ip);
                }
                farthest_trusted = Some(ip);
            }
        }
        if walked == MAX_HOPS {
            return Some(peer_ip);
        }
        // Every hop is a trusted proxy: the farthest one is as near the client as the chain
        // goes.
        Some(farthest_trusted.unwrap_or(peer_ip))
    }
}

/// The TCP peer's address: axum's `ConnectInfo`, else (feature `tonic`) tonic's
/// `TcpConnectInfo`. Inlined: on axum's path it is one look-up, as it was before it had a
/// fallback.
#[inline(always)]
fn peer(extensions: &Extensions) -> Option<IpAddr> {
    match extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(info) => Some(info.0.ip().to_canonical()),
        None => other_peer(extensions),
    }
}

/// The peer a server other than axum's names: out of line, so axum's requests do not carry it.
#[cold]
#[inline(never)]
fn other_peer(extensions: &Extensions) -> Option<IpAddr> {
    #[cfg(feature = "tonic")]
    if let Some(addr) = extensions
        .get::<tonic::transport::server::TcpConnectInfo>()
        .and_then(|info| info.remote_addr())
    {
        return Some(addr.ip().to_canonical());
    }
    let _ = extensions;
    None
}

/// The byte ranges of the comma-separated elements of one header line, right to left. With
/// `quoted`, a comma inside a quoted string (`by="a,b"` in `Forwarded`) does not separate
/// elements.
struct HopsFromRight<'a> {
    line: &'a [u8],
    /// Where the elements not yet returned end; `None` once the first was returned.
    end: Option<usize>,
    quoted: bool,
}

impl<'a> HopsFromRight<'a> {
    fn new(line: &'a [u8], quoted: bool) -> Self {
        HopsFromRight {
            line,
            end: Some(line.len()),
            quoted,
        }
    }
}

impl Iterator for HopsFromRight<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let end = self.end?;
        if !self.quoted {
            let comma = self.line[..end].iter().rposition(|&byte| byte == b',');
            self.end = comma;
            return Some((comma.map_or(0, |i| i + 1), end));
        }
        let mut in_quotes = false;
        for (i, byte) in self.line[..end].iter().enumerate().rev() {
            match byte {
                b'"' if self.quoted => in_quotes = !in_quotes,
                b',' if !in_quotes => {
                    self.end = Some(i);
                    return Some((i + 1, end));
                }
                _ => {}
            }
        }
        self.end = None;
        Some((0, end))
    }
}

/// The address of one hop: an `X-Forwarded-For` element, or the `for=` of a `Forwarded`
/// element; `None` when it is not one. Spaces and tabs around it do not count.
fn parse_hop(hop: &str, forwarded: bool) -> Option<IpAddr> {
    let text = hop.trim_ascii();
    if !forwarded {
        return parse_node(text);
    }
    let value = text.split(';').find_map(|pair| {
        let (key, value) = pair.trim_ascii().split_once('=')?;
        key.trim_ascii()
            .eq_ignore_ascii_case("for")
            .then_some(value.trim_ascii())
    })?;
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    parse_node(value)
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80`.
/// `unknown` and obfuscated identifiers are not addresses.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Some(ip) = dotted_quad(node.as_bytes()) {
        return Some(IpAddr::V4(ip));
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

/// `text` as a dotted-quad IPv4 address (`203.0.113.7`), the usual hop, read the way
/// `Ipv4Addr`'s parser reads one; `None` for anything else, which the full parser then reads.
/// Hand-written because it is on the request path: a walk of two hops cost 1,870 instructions
/// with `IpAddr::from_str` alone, about 700 with this in front of it.
fn dotted_quad(text: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split(|&byte| byte == b'.');
    for octet in &mut octets {
        let digit = |byte: u8| byte - b'0';
        // One to three digits, no leading zero (`01` is refused, as `Ipv4Addr` refuses it).
        *octet = match *parts.next()? {
            [a @ b'0'..=b'9'] => digit(a),
            [a @ b'1'..=b'9', b @ b'0'..=b'9'] => digit(a) * 10 + digit(b),
            [a @ b'1'..=b'2', b @ b'0'..=b'9', c @ b'0'..=b'9'] => {
                let value = u16::from(digit(a)) * 100 + u16::from(digit(b)) * 10;
                u8::try_from(value + u16::from(digit(c))).ok()?
            }
            _ => return None,
        };
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ext(peer: &str) -> Extensions {
        let mut e = Extensions::new();
        e.insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        e
    }

    fn headers(name: &str, values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn proxies() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]
    }

    #[test]
    fn the_default_is_the_peer_and_ignores_forwarded_headers() {
        let h = headers("x-forwarded-for", &[b"6.6.6.6"]);
        assert_eq!(
            ClientIpConfig::peer().client_ip(&h, &ext("192.0.2.1:5000")),
            ip("192.0.2.1")
        );
        assert_eq!(
            ClientIpConfig::peer().client_ip(&h, &Extensions::new()),
            None
        );
    }

    #[test]
    fn a_spoofed_header_from_an_untrusted_peer_yields_the_peer() {
        let h = headers("x-forwarded-for", &[b"6.6.6.6"]);
        let no_trust = ClientIpConfig::forwarded(ClientIpSource::XForwardedFor, []);
        assert_eq!(
            no_trust.client_ip(&h, &ext("192.0.2.1:5000")),
            ip("192.0.2.1")
        );
        let trust = ClientIpConfig::forwarded(ClientIpSource::XForwardedFor, proxies());
        assert_eq!(trust.client_ip(&h, &ext("192.0.2.1:5000")), ip("192.0.2.1"));
    }

    #[test]
    fn the_chain_is_walked_from_the_right_past_trusted_proxies() {
        let cfg = ClientIpConfig::forwarded(ClientIpSource::XForwardedFor, proxies());
        // The client claims 6.6.6.6, the real client is 203.0.113.7, then two of our proxies.
        let h = headers("x-forwarded-for", &[b"6.6.6.6, 203.0.113.7", b"10.1.1.1"]);
        assert_eq!(cfg.client_ip(&h, &ext("10.9.9.9:443")), ip("203.0.113.7"));
        let all_trusted = headers("x-forwarded-for", &[b"10.2.2.2, 10.1.1.1"]);
        assert_eq!(
            cfg.client_ip(&all_trusted, &ext("10.9.9.9:443")),
            ip("10.2.2.2")
        );
        let ports = headers("x-forwarded-for", &[b"[2001:db8::5]:8080, 10.1.1.1:99"]);
        assert_eq!(
            cfg.client_ip(&ports, &ext("[fd00::1]:443")),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn rfc_7239_forwarded_is_understood() {
        let cfg = ClientIpConfig::forwarded(ClientIpSource::Forwarded, proxies());
        let h = headers("forwarded", &[b"for=6.6.6.6, For=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.2;by=10.0.0.3"]);
        assert_eq!(
            cfg.client_ip(&h, &ext("10.0.0.1:1")),
            ip("2001:db8:cafe::17")
        );
        let unknown = headers("forwarded", &[b"for=unknown"]);
        assert_eq!(cfg.client_ip(&unknown, &ext("10.0.0.1:1")), ip("10.0.0.1"));
        let no_for = headers("forwarded", &[b"proto=https"]);
        assert_eq!(cfg.client_ip(&no_for, &ext("10.0.0.1:1")), ip("10.0.0.1"));
    }

    #[test]
    fn junk_left_of_the_client_cannot_hide_it() {
        // The client writes whatever it likes; your proxies append the address they saw.
        let xff = ClientIpConfig::forwarded(ClientIpSource::XForwardedFor, proxies());
        let peer = ext("10.0.0.1:1");
        let many = format!("{}, 203.0.113.7", vec!["junk"; 40].join(","));
        let huge = format!("{}, 203.0.113.7", "x".repeat(100_000));
        for client_wrote in [b"x".to_vec(), b"1.2.3.4, , ".to_vec(), b"\xff\xfe".to_vec()] {
            let mut value = client_wrote.clone();
            value.extend_from_slice(b", 203.0.113.7");
            let h = headers("x-forwarded-for", &[&value]);
            assert_eq!(xff.client_ip(&h, &peer), ip("203.0.113.7"), "{value:?}");
            // The same with the client's header on a line of its own.
            let h = headers("x-forwarded-for", &[&client_wrote, b"203.0.113.7"]);
            assert_eq!(xff.client_ip(&h, &peer), ip("203.0.113.7"), "{value:?}");
        }
        for value in [many, huge] {
            let h = headers("x-forwarded-for", &[value.as_bytes()]);
            assert_eq!(xff.client_ip(&h, &peer), ip("203.0.113.7"));
        }
        let fwd = ClientIpConfig::forwarded(ClientIpSource::Forwarded, proxies());
        let h = headers("forwarded", &[b"proto=http, for=203.0.113.7;proto=https"]);
        assert_eq!(fwd.client_ip(&h, &peer), ip("203.0.113.7"));
        let h = headers("forwarded", &[b"for=\"[::1, for=203.0.113.7, for=10.0.0.2"]);
        assert_eq!(fwd.client_ip(&h, &peer), ip("203.0.113.7"));
        // A comma inside a quoted value does not split the element.
        let h = headers("forwarded", &[b"for=203.0.113.7;by=\"a,b\""]);
        assert_eq!(fwd.client_ip(&h, &peer), ip("203.0.113.7"));
        let h = headers(
            "forwarded",
            &[b"for=198.51.100.1, for=203.0.113.7;by=\"x,y\", for=10.0.0.2"],
        );
        assert_eq!(fwd.client_ip(&h, &peer), ip("203.0.113.7"));
    }

    #[test]
    fn dotted_quads_read_exactly_as_the_standard_parser_reads_them() {
        let mut cases: Vec<String> = [
            "0.0.0.0",
            "255.255.255.255",
            "1.2.3.4",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.00",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "",
            "1.2.3.4 ",
            "1.2.3.4:80",
            "1.2.3.a",
            "1000.1.1.1",
            "0.0.0.00",
            "10.0.0.2",
            "203.0.113.7",
            "1.2.3.999",
            "+1.2.3.4",
            "1.2.3.-4",
            "::1",
            "[::1]",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Every text of up to three octets' worth of digits and dots around a known address.
        let pieces = [
            "", "0", "1", "9", "00", "25", "255", "256", "300", "099", ".",
        ];
        for a in pieces {
            for b in pieces {
                cases.push(format!("{a}.1.{b}.7"));
                cases.push(format!("10.{a}{b}.0.1"));
            }
        }
        for case in cases {
            assert_eq!(
                dotted_quad(case.as_bytes()),
                case.parse::<Ipv4Addr>().ok(),
                "{case:?}"
            );
        }
    }

    #[test]
    fn a_chain_of_32_trusted_hops_is_given_up_on() {
        let cfg = ClientIpConfig::forwarded(ClientIpSource::XForwardedFor, proxies());
        let peer = ext("10.0.0.1:1");
        let chain = |n: usize| (1..=n).map(|i| format!("10.1.1.{i}")).collect::<Vec<_>>();
        // 31 trusted hops: the farthest is as near the client as the chain goes.
        let h = headers("x-forwarded-for", &[chain(31).join(", ").as_bytes()]);
        assert_eq!(cfg.client_ip(&h, &peer), ip("10.1.1.1"));
        // 32 (on one line or on several): the walk stops and records the peer.
        let h = headers("x-forwarded-for", &[chain(32).join(", ").as_bytes()]);
        assert_eq!(cfg.client_ip(&h, &peer), ip("10.0.0.1"));
        let lines = chain(32);
        let (left, right) = lines.split_at(16);
        let h = headers(
            "x-forwarded-for",
            &[left.join(",").as_bytes(), right.join(",").as_bytes()],
        );
        assert_eq!(cfg.client_ip(&h, &peer), ip("10.0.0.1"));
    }

    #[test]
    fn garbage_falls_back_to_the_peer() {
        let cfg = ClientIpConfig::forwarded(ClientIpSource::XForwardedFor, proxies());
        let peer = ext("10.0.0.1:1");
        let long = "1.1.1.1,".repeat(1000);
        let trusted_only = vec!["10.1.1.1"; 40].join(",");
        let cases: Vec<Vec<u8>> = vec![
            b"not-an-ip".to_vec(),
            b"203.0.113.7, , 10.1.1.1".to_vec(),
            b"203.0.113.7, garbage, 10.1.1.1".to_vec(),
            b"\xff\xfe".to_vec(),
            b"203.0.113.7, \xff, 10.1.1.1".to_vec(),
            long.into_bytes(),
            trusted_only.into_bytes(),
            format!("{}, 10.1.1.1", "9".repeat(300)).into_bytes(),
            b"999.1.1.1".to_vec(),
            b"[::1".to_vec(),
            b",".to_vec(),
            b"".to_vec(),
        ];
        for case in cases {
            let h = headers("x-forwarded-for", &[&case]);
            assert_eq!(
                cfg.client_ip(&h, &peer),
                ip("10.0.0.1"),
                "{:?}",
                String::from_utf8_lossy(&case)
            );
        }
        let v4_mapped = ext("[::ffff:192.0.2.9]:80");
        assert_eq!(
            ClientIpConfig::peer().client_ip(&HeaderMap::new(), &v4_mapped),
            ip("192.0.2.9")
        );
    }
}

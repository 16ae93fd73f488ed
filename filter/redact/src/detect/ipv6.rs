//! IPv6 addresses (full, compressed, with an embedded IPv4 tail), found from each `:`.

use std::net::Ipv6Addr;

use super::{is_word_byte, Candidate, Found};

fn v6_byte(c: u8) -> bool {
    c.is_ascii_hexdigit() || c == b':' || c == b'.'
}

pub(crate) fn scan(text: &str, out: &mut Vec<Candidate>) {
    let b = text.as_bytes();
    let mut next = 0;
    for colon in memchr::memchr_iter(b':', b) {
        if colon < next {
            continue;
        }
        let mut s = colon;
        while s > 0 && colon - s < 45 && v6_byte(b[s - 1]) {
            s -= 1;
        }
        let mut e = colon + 1;
        while e < b.len() && e - s < 45 && v6_byte(b[e]) {
            e += 1;
        }
        next = e;
        while e > colon && b[e - 1] == b'.' {
            e -= 1;
        }
        while s < colon && b[s] == b'.' {
            s += 1;
        }
        if (s > 0 && is_word_byte(b[s - 1])) || (e < b.len() && is_word_byte(b[e])) {
            continue;
        }
        let cand = &text[s..e];
        if plausible(cand) && cand.parse::<Ipv6Addr>().is_ok() {
            out.push(Candidate::new(s, e, Found::Ip));
        }
    }
}

/// `[::2]` slices, `a::b` paths and `10:30:00` times parse or nearly parse as IPv6: ask for at
/// least two hex groups with a digit somewhere, or the loopback `::1`.
fn plausible(s: &str) -> bool {
    if s == "::1" {
        return true;
    }
    let groups = s.split(':').filter(|g| !g.is_empty()).count();
    groups >= 2 && s.len() >= 6 && s.bytes().any(|c| c.is_ascii_digit())
}

//! Email addresses, found from each `@`.

use super::{Candidate, Found};

const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 253;
/// "icon@2x.png" is an image name, not an address.
const FILE_TLDS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "pdf",
];

fn local_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-' | b'\'')
}

fn domain_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

pub(crate) fn scan(text: &str, out: &mut Vec<Candidate>) {
    let b = text.as_bytes();
    for at in memchr::memchr_iter(b'@', b) {
        let mut s = at;
        while s > 0 && at - s < MAX_LOCAL && local_byte(b[s - 1]) {
            s -= 1;
        }
        // Punctuation cannot open the local part ("'john@x.com'", "-a@b.co").
        while s < at && matches!(b[s], b'.' | b'\'' | b'-' | b'+') {
            s += 1;
        }
        let mut e = at + 1;
        while e < b.len() && e - at <= MAX_DOMAIN && domain_byte(b[e]) {
            e += 1;
        }
        while e > at + 1 && matches!(b[e - 1], b'.' | b'-') {
            e -= 1;
        }
        if s == at || e <= at + 1 || b[at - 1] == b'.' {
            continue;
        }
        if valid_domain(&text[at + 1..e]) {
            out.push(Candidate::new(s, e, Found::Email));
        }
    }
}

fn valid_domain(domain: &str) -> bool {
    let mut labels = domain.split('.');
    let Some(tld) = domain.rsplit('.').next() else {
        return false;
    };
    let dots = domain.bytes().filter(|&c| c == b'.').count();
    dots >= 1
        && tld.len() >= 2
        && tld.bytes().all(|c| c.is_ascii_alphabetic())
        && !FILE_TLDS.iter().any(|f| tld.eq_ignore_ascii_case(f))
        && labels
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-') && l.len() <= 63)
}

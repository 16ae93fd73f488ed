//! IBANs: the country's registered length and the ISO 7064 mod-97 check.

use super::is_word_byte;

/// IBAN lengths per country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&[u8; 2], u8)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// An IBAN starting at byte `start` (two capitals, two digits, the BBAN, optionally grouped by
/// four with single spaces): returns its end if the length and the mod-97 check hold.
pub(crate) fn iban_at(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    if start > 0 && is_word_byte(b[start - 1]) {
        return None;
    }
    let cc = b.get(start..start + 2)?;
    let expected = IBAN_LENGTHS
        .iter()
        .find(|(code, _)| code.as_slice() == cc)
        .map(|(_, len)| usize::from(*len))?;
    let mut chars = [0u8; 34];
    let mut count = 0;
    let mut i = start;
    while count < expected {
        let c = *b.get(i)?;
        if c.is_ascii_uppercase() || c.is_ascii_digit() {
            chars[count] = c;
            count += 1;
            i += 1;
        } else if c == b' ' && count.is_multiple_of(4) && count > 0 {
            i += 1;
        } else {
            return None;
        }
    }
    if i < b.len() && is_word_byte(b[i]) {
        return None;
    }
    if !chars[2].is_ascii_digit() || !chars[3].is_ascii_digit() {
        return None;
    }
    // Move the first four characters to the end, letters become 10..35, remainder mod 97 == 1.
    let mut rem: u32 = 0;
    for &c in chars[4..count].iter().chain(chars[..4].iter()) {
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            rem = (rem * 100 + u32::from(c - b'A') + 10) % 97;
        }
    }
    (rem == 1).then_some(i)
}

//! Word-at-a-time skipping to the next byte of interest: most of a prompt is lower-case prose
//! that no detector needs to look at byte by byte.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Some byte of `x` (all below 0x80) lies strictly between `m` and `n`.
const fn has_between(x: u64, m: u64, n: u64) -> bool {
    let low = x & (ONES * 127);
    ((ONES * (127 + n)).wrapping_sub(low) & !x & low.wrapping_add(ONES * (127 - m)) & HIGH) != 0
}

fn word(b: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = b.get(i..i + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

fn skip(b: &[u8], mut i: usize, hit: impl Fn(u64) -> bool, is: impl Fn(u8) -> bool) -> usize {
    while let Some(w) = word(b, i) {
        if hit(w) {
            if let Some(k) = b[i..i + 8].iter().position(|&c| is(c)) {
                return i + k;
            }
        }
        i += 8;
    }
    b[i.min(b.len())..]
        .iter()
        .position(|&c| is(c))
        .map_or(b.len(), |k| i + k)
}

/// Some byte of `x` may be an ASCII digit: XOR with `0` maps the digits, and only them, to
/// bytes below 10, and the has-less-than test never misses one (it may report a byte after a
/// borrow, which the byte-wise check then rejects). Cheaper than `has_between`.
const fn may_have_digit(x: u64) -> bool {
    let t = x ^ (ONES * 0x30);
    (t.wrapping_sub(ONES * 10) & !t & HIGH) != 0
}

/// The next ASCII digit at or after `i` (or `b.len()`).
pub(crate) fn next_digit(b: &[u8], i: usize) -> usize {
    skip(b, i, may_have_digit, |c| c.is_ascii_digit())
}

/// The next ASCII capital or non-ASCII byte at or after `i` (or `b.len()`).
pub(crate) fn next_capital(b: &[u8], i: usize) -> usize {
    skip(
        b,
        i,
        |w| w & HIGH != 0 || has_between(w, 0x40, 0x5B),
        |c| c.is_ascii_uppercase() || c >= 0x80,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_same_byte_as_a_plain_scan() {
        let text = "plain lower case text, then 7 and Then é and more words here 0";
        let b = text.as_bytes();
        for i in 0..=b.len() {
            let d = b[i..]
                .iter()
                .position(u8::is_ascii_digit)
                .map_or(b.len(), |k| i + k);
            assert_eq!(next_digit(b, i), d, "digit from {i}");
            let c = b[i..]
                .iter()
                .position(|&c| c.is_ascii_uppercase() || c >= 0x80)
                .map_or(b.len(), |k| i + k);
            assert_eq!(next_capital(b, i), c, "capital from {i}");
        }
    }

    /// Every byte value, alone and next to every other (borrows between bytes), in a word.
    #[test]
    fn no_byte_value_is_missed_or_mistaken() {
        let plain = |b: &[u8]| b.iter().position(u8::is_ascii_digit).unwrap_or(b.len());
        for c1 in 0..=255u8 {
            for c2 in 0..=255u8 {
                let mut b = [b'a'; 20];
                b[3] = c1;
                b[4] = c2;
                assert_eq!(next_digit(&b, 0), plain(&b), "{c1:#x} {c2:#x}");
            }
        }
    }
}

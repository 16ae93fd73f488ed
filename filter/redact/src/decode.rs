//! Encoded forms of a text decoded for detection: percent escapes (`jane.doe%40corp.com`) and
//! JSON backslash escapes (`\u0040`, `\n` in JSON pasted as text), with the position of every
//! decoded byte in the original so a finding masks the whole encoded range it came from.

/// A text with its escapes decoded.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub(crate) text: String,
    /// For each byte of `text` (and one past its end), where it starts in the original.
    origin: Vec<usize>,
}

impl Decoded {
    /// The original byte offset of decoded offset `at` (a character boundary of `text`).
    pub(crate) fn origin(&self, at: usize) -> usize {
        self.origin.get(at).copied().unwrap_or(usize::MAX)
    }
}

/// `text` with its escapes decoded; `None` when it holds none (the common case costs one
/// `memchr2`). `+` is not read as a space: phone numbers keep their meaning. Escapes that do
/// not decode to valid UTF-8 (`%FF`, a lone surrogate) stay as written.
pub(crate) fn decode(text: &str) -> Option<Decoded> {
    let b = text.as_bytes();
    let first = memchr::memchr2(b'%', b'\\', b)?;
    let mut out = String::with_capacity(text.len());
    let mut origin = Vec::with_capacity(text.len() + 1);
    out.push_str(&text[..first]);
    origin.extend(0..first);
    let mut decoded_any = false;
    let mut i = first;
    while let Some(c) = text[i..].chars().next() {
        let escape = match c {
            '%' => percent_run(b, i),
            '\\' => json_escape(b, i),
            _ => None,
        };
        match escape {
            Some((end, decoded)) => {
                origin.extend(std::iter::repeat_n(i, decoded.len()));
                out.push_str(&decoded);
                decoded_any = true;
                i = end;
            }
            None => {
                out.push(c);
                origin.extend(i..i + c.len_utf8());
                i += c.len_utf8();
            }
        }
    }
    origin.push(b.len());
    decoded_any.then_some(Decoded { text: out, origin })
}

/// The run of `%XX` escapes at `at`, decoded up to its longest valid UTF-8 prefix.
fn percent_run(b: &[u8], at: usize) -> Option<(usize, String)> {
    let mut bytes = Vec::new();
    let mut j = at;
    while b.get(j) == Some(&b'%') {
        let (Some(hi), Some(lo)) = (hex(b.get(j + 1)), hex(b.get(j + 2))) else {
            break;
        };
        bytes.push(hi << 4 | lo);
        j += 3;
    }
    let valid = match std::str::from_utf8(&bytes) {
        Ok(_) => bytes.len(),
        Err(err) => err.valid_up_to(),
    };
    bytes.truncate(valid);
    let decoded = String::from_utf8(bytes).ok().filter(|s| !s.is_empty())?;
    Some((at + 3 * valid, decoded))
}

/// The JSON escape at `at` (`\n`, `\"`, `\u0040`, a surrogate pair).
fn json_escape(b: &[u8], at: usize) -> Option<(usize, String)> {
    let simple = match b.get(at + 1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => return unicode_escape(b, at),
        _ => return None,
    };
    Some((at + 2, simple.to_string()))
}

fn unicode_escape(b: &[u8], at: usize) -> Option<(usize, String)> {
    let unit = |from: usize| -> Option<u32> {
        if b.get(from..from + 2)? != b"\\u" {
            return None;
        }
        (from + 2..from + 6).try_fold(0u32, |acc, k| Some(acc << 4 | u32::from(hex(b.get(k))?)))
    };
    let high = unit(at)?;
    if (0xD800..0xDC00).contains(&high) {
        let low = unit(at + 6).filter(|low| (0xDC00..0xE000).contains(low))?;
        let c = char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?;
        return Some((at + 12, c.to_string()));
    }
    Some((at + 6, char::from_u32(high)?.to_string()))
}

fn hex(b: Option<&u8>) -> Option<u8> {
    let c = *b?;
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_and_maps_back() {
        let text = "mail jane.doe%40corp.com or x\\u0040y.io\\nend";
        let d = decode(text).unwrap();
        assert_eq!(d.text, "mail jane.doe@corp.com or x@y.io\nend");
        let at = d.text.find('@').unwrap();
        assert_eq!(&text[d.origin(at)..d.origin(at + 1)], "%40");
        assert_eq!(d.origin(d.text.len()), text.len());
        let nl = d.text.find('\n').unwrap();
        assert_eq!(&text[d.origin(nl)..d.origin(nl + 1)], "\\n");
    }

    #[test]
    fn leaves_what_is_not_an_escape() {
        assert!(decode("50% off, C:\\Users\\x, 100%").is_none());
        assert!(decode("plain").is_none());
        assert_eq!(decode("%C3%A9t%C3%A9 %FF").unwrap().text, "été %FF");
        assert_eq!(decode("\\ud83d\\ude00 \\ud83d").unwrap().text, "😀 \\ud83d");
    }
}

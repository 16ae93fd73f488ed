//! What each built-in detector checks before it reports a value, and the words near a value
//! that decide it, for `modelgate redact --explain`. The cue lists are the detectors' own, so
//! the explanation cannot drift from what runs.

use super::lexicon::CUES;
use super::numeric::{BANK_CONTEXT, NOT_SSN_CONTEXT, PHONE_CONTEXT, SSN_CONTEXT};
use super::secret::KEYWORDS;
use crate::entity::EntityType;

/// How a built-in type is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detection {
    /// The shapes accepted and the validators a candidate must pass.
    pub checks: &'static str,
    /// Words before a value that make it count (for the shapes that need one, see `checks`).
    pub cues: &'static [&'static str],
    /// Words right before a value that make it something else.
    pub negative_cues: &'static [&'static str],
}

impl Detection {
    /// How `entity` is found; `None` for a policy's own patterns and deny-lists.
    pub fn of(entity: &EntityType) -> Option<Detection> {
        let (checks, cues, negative_cues): (_, &'static [&'static str], &'static [&'static str]) =
            match entity {
                EntityType::EmailAddress => (
                    "local@domain with a dotted domain and a letter top-level domain; image and \
                     document names (icon@2x.png) are not addresses",
                    &[],
                    &[],
                ),
                EntityType::UsSsn => (
                    "AAA-GG-SSSS with dashes or spaces, or 9 bare digits after a cue; area 000 \
                     and 666, group 00 and serial 0000 are impossible and never reported",
                    SSN_CONTEXT,
                    NOT_SSN_CONTEXT,
                ),
                EntityType::UsItin => (
                    "an SSN shape with area 900-999 and an ITIN group (50-65, 70-88, 90-92, \
                     94-99); other 9xx numbers are reported as US_SSN",
                    SSN_CONTEXT,
                    NOT_SSN_CONTEXT,
                ),
                EntityType::CreditCard => (
                    "13-19 digits, bare or in groups of 3+ separated by spaces or dashes, with a \
                     card issuer prefix and a valid Luhn check digit",
                    &[],
                    &[],
                ),
                EntityType::PhoneNumber => (
                    "US NXX-NXX-XXXX layouts ((415) 555-0132, 415-555-0132, 1 415 555 0132), \
                     international +E.164 (8-15 digits); unformatted or national layouts only \
                     after a cue",
                    PHONE_CONTEXT,
                    &[],
                ),
                EntityType::IbanCode => (
                    "country code, the country's registered length and the ISO 7064 mod-97 \
                     check",
                    &[],
                    &[],
                ),
                EntityType::UsBankNumber => (
                    "8-17 digits, bare or grouped by spaces or dashes, only after a cue",
                    BANK_CONTEXT,
                    &[],
                ),
                EntityType::IpAddress => (
                    "IPv4 dotted quads (octets 0-255, no leading zeros) and IPv6 addresses",
                    &[],
                    &[],
                ),
                EntityType::Secret => (
                    "provider key formats (AWS AKIA…, GitHub ghp_/github_pat_, sk-…, Slack \
                     xox…), PEM private keys, JWTs; any random-looking token of 16-512 \
                     characters after a cue",
                    KEYWORDS,
                    &[],
                ),
                EntityType::Person => (
                    "capitalised words from the embedded first-name and surname lists: a first \
                     name followed by a surname, or a listed name after a title (Dr., Mrs, …) or a \
                     cue (lower case too after phrases like \"my name is\"); names that are also common \
                     words need a cue",
                    CUES,
                    &[],
                ),
                EntityType::Custom(_) => return None,
            };
        Some(Detection {
            checks,
            cues,
            negative_cues,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_type_is_described_and_custom_ones_are_not() {
        for entity in EntityType::BUILTIN {
            let detection = Detection::of(&entity).unwrap();
            assert!(!detection.checks.is_empty(), "{entity}");
        }
        assert!(Detection::of(&EntityType::Custom("TICKET".into())).is_none());
        let ssn = Detection::of(&EntityType::UsSsn).unwrap();
        assert!(ssn.cues.contains(&"ssn") && ssn.negative_cues.contains(&"order"));
    }
}

//! The tokens one worker has verified, so that a token seen again costs about what a key
//! lookup does: found by their length and last bytes, accepted only when byte-identical to
//! the token verified, and bounded in number and in bytes.
//!
//! Why a hit is as safe as verifying again: the probe (length and last [`TAIL_BYTES`] bytes)
//! only says where to look; an entry is used only when the presented token equals, byte for
//! byte, header, payload and signature, the token this worker verified. A token with a
//! verified token's signature and another payload (or header) lands on that entry and is
//! not equal to it, so it misses, is verified, and fails; the genuine entry stays. Only
//! verified tokens are ever inserted, so a client can probe entries but never add one.
//! Why not a digest of the token, as before: a collision-resistant hash must read every byte
//! with a lot of arithmetic (SHA-256 of an 800-byte token cost more than the key lookup it
//! was meant to match, more so in wasm, which has no SHA instructions); comparing the bytes
//! reads each once. The comparison is written without an early exit, so that its time does
//! not say how much of a guessed token matched.

use std::collections::HashMap;
use std::rc::Rc;

use modelgate_proto::v1::UserPolicy;

use super::VerifiedToken;

/// Verified tokens kept per worker.
pub const MAX_CACHED_TOKENS: usize = 10_000;
/// Bytes of tokens kept per worker. An entry also holds what was taken from its token (user
/// and groups, fewer bytes than the token), its teams' ids and a user policy, so a worker's cache stays
/// within about twice this, whatever size of token the filter is configured to accept.
/// 16 MiB keeps the whole [`MAX_CACHED_TOKENS`] for tokens up to about 1.6 KB (Entra and
/// Okta access tokens are 1–2 KB); past either bound, expired entries go, then all.
pub const MAX_CACHED_TOKEN_BYTES: usize = 16 << 20;
/// Bytes at the end of a token that place it in the map: the end of its signature, which
/// differs between any two tokens an IdP signed (16 base64url characters are 96 bits).
const TAIL_BYTES: usize = 16;

/// Where a token is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Probe {
    len: usize,
    tail: [u8; TAIL_BYTES],
}

impl Probe {
    fn of(token: &str) -> Self {
        let bytes = token.as_bytes();
        let tail_of = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
        let mut tail = [0; TAIL_BYTES];
        tail[..tail_of.len()].copy_from_slice(tail_of);
        Self {
            len: bytes.len(),
            tail,
        }
    }
}

/// One verified token, and what was resolved from it.
#[derive(Debug)]
pub(super) struct Entry {
    /// The token exactly as verified.
    text: Box<str>,
    pub(super) token: Rc<VerifiedToken>,
    /// The issuer entry that verified it: a new JWKS, audience or claim setting re-verifies.
    pub(super) fingerprint: [u8; 32],
    /// The user's policy when the snapshot lists none (the issuer's default limits).
    pub(super) first_seen: Rc<UserPolicy>,
    /// The ids of the teams its groups map to, and the snapshot version they were mapped in
    /// (teams and their groups change with any snapshot, not only with the issuer's entry).
    pub(super) teams: (u64, Rc<[String]>),
}

impl Entry {
    pub(super) fn new(
        text: &str,
        token: Rc<VerifiedToken>,
        fingerprint: [u8; 32],
        first_seen: Rc<UserPolicy>,
        teams: (u64, Rc<[String]>),
    ) -> Self {
        Self {
            text: text.into(),
            token,
            fingerprint,
            first_seen,
            teams,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct TokenCache {
    entries: HashMap<Probe, Entry>,
    /// The sum of the entries' token lengths.
    bytes: usize,
}

impl TokenCache {
    /// The entry of exactly `token`, if this worker verified it.
    pub(super) fn get_mut(&mut self, token: &str) -> Option<&mut Entry> {
        self.entries
            .get_mut(&Probe::of(token))
            .filter(|entry| same_bytes(entry.text.as_bytes(), token.as_bytes()))
    }

    /// Forgets `token` (expired, or its issuer changed), if it is the one cached.
    pub(super) fn remove(&mut self, token: &str) {
        let probe = Probe::of(token);
        let cached = self.entries.get(&probe);
        if cached.is_some_and(|entry| same_bytes(entry.text.as_bytes(), token.as_bytes())) {
            if let Some(entry) = self.entries.remove(&probe) {
                self.bytes -= entry.text.len();
            }
        }
    }

    /// Keeps `entry`, first making room within both bounds: the tokens expired at `now_s`
    /// go, and if that is not enough, all. A token larger than the byte bound is not kept.
    pub(super) fn insert(&mut self, entry: Entry, now_s: u64) {
        let len = entry.text.len();
        if len > MAX_CACHED_TOKEN_BYTES {
            return;
        }
        let fits = |cache: &Self| {
            cache.entries.len() < MAX_CACHED_TOKENS
                && cache.bytes.saturating_add(len) <= MAX_CACHED_TOKEN_BYTES
        };
        if !fits(self) {
            self.entries
                .retain(|_, cached| cached.token.expires_at_s >= now_s);
            self.bytes = self.entries.values().map(|cached| cached.text.len()).sum();
            if !fits(self) {
                self.entries.clear();
                self.bytes = 0;
            }
        }
        if let Some(replaced) = self.entries.insert(Probe::of(&entry.text), entry) {
            self.bytes -= replaced.text.len();
        }
        self.bytes += len;
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Whether `a` and `b` are the same bytes, reading all of them whatever the first difference.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y))) == 0
}

#[cfg(test)]
mod tests;

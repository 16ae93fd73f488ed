//! Sliding windows over fixed-width time buckets.
//!
//! A [`Window`] counts units (requests, tokens, in-flight slots) per bucket of
//! [`WindowSpec::bucket_ms`]; `counts[0]` is the newest bucket, `counts[i]` the one `i` buckets
//! older. A window of `W` ms kept as `W / bucket_ms + 1` buckets counts, at any time `t`, every
//! unit admitted in `[t - W, t]` (the oldest bucket starts at or before `t - W`). So an
//! admission that sees `total + need <= limit` guarantees that no interval of length `W` ever
//! holds more than `limit` admitted units; the price is that a unit stays counted for between
//! `W` and `W + bucket_ms`. Unlike a fixed window there is no boundary at which a whole second
//! `limit` becomes available, and unlike the two-window weighted estimate it never
//! over-admits.
//!
//! Clocks: time moves the window forward only. A clock that steps back by less than the
//! window's span keeps counting in the newest bucket (nothing expires early); one that steps
//! back further relabels the buckets to the new time, keeping every count for the rest of its
//! life, and bumps `epoch` so refunds aimed at the old labels are dropped instead of landing
//! in the wrong bucket. Every sum saturates, so no count wraps.

/// Bucket width and how many buckets a window keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub bucket_ms: u64,
    /// Buckets kept, the newest included: `window_ms / bucket_ms + 1`.
    pub buckets: usize,
}

impl WindowSpec {
    /// RPM and TPM: 60 s in 1 s buckets (a unit is counted for 60 to 61 s).
    pub const MINUTE: Self = Self {
        bucket_ms: 1_000,
        buckets: 61,
    };

    /// The bucket that contains `now_ms`; times before the epoch fall in bucket 0.
    pub fn bucket_of(&self, now_ms: i64) -> u64 {
        u64::try_from(now_ms).unwrap_or(0) / self.bucket_ms.max(1)
    }

    /// When `bucket` stops being counted (the start of bucket `bucket + buckets`).
    fn expiry_ms(&self, bucket: u64) -> u64 {
        bucket
            .saturating_add(self.buckets as u64)
            .saturating_mul(self.bucket_ms)
    }

    fn span(&self) -> u64 {
        self.buckets as u64
    }
}

/// Where a reservation landed, so that exactly it can be taken back later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub bucket: u64,
    pub epoch: u32,
}

/// Per-bucket counts of one window; encoded as is into shared data (trailing zero buckets are
/// trimmed, so an idle window costs a few bytes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Window {
    /// Index of the newest bucket (`counts[0]`).
    #[prost(uint64, tag = "1")]
    pub newest: u64,
    /// Bumped when a backwards clock jump relabels the buckets.
    #[prost(uint32, tag = "2")]
    pub epoch: u32,
    /// `counts[i]` is bucket `newest - i`; missing entries are zero.
    #[prost(uint64, repeated, tag = "3")]
    pub counts: Vec<u64>,
}

impl Window {
    /// Moves the window to `now_ms` (see the module docs for clocks that go back).
    pub fn advance(&mut self, spec: WindowSpec, now_ms: i64) {
        let now = spec.bucket_of(now_ms);
        if now > self.newest {
            let steps = now - self.newest;
            if steps >= spec.span() {
                self.counts.clear();
            } else {
                // `steps < buckets`, a usize.
                let steps = steps as usize;
                self.counts.splice(0..0, std::iter::repeat_n(0, steps));
            }
            self.newest = now;
        } else if self.newest - now >= spec.span() {
            self.newest = now;
            self.epoch = self.epoch.wrapping_add(1);
        }
        self.counts.truncate(spec.buckets);
        self.trim();
    }

    /// Units counted now (call [`Window::advance`] first).
    pub fn total(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |sum, count| sum.saturating_add(*count))
    }

    /// Adds `amount` to the newest bucket.
    pub fn add(&mut self, amount: u64) -> Slot {
        match self.counts.first_mut() {
            Some(newest) => *newest = newest.saturating_add(amount),
            None if amount > 0 => self.counts.push(amount),
            None => {}
        }
        self.slot()
    }

    /// Where an [`Window::add`] would land now.
    pub fn slot(&self) -> Slot {
        Slot {
            bucket: self.newest,
            epoch: self.epoch,
        }
    }

    /// Takes back up to `amount` from the bucket of `slot`, if that bucket is still counted
    /// under the same labels; what already expired needs no refund.
    pub fn remove(&mut self, slot: Slot, amount: u64) {
        if slot.epoch != self.epoch || slot.bucket > self.newest {
            return;
        }
        let Ok(age) = usize::try_from(self.newest - slot.bucket) else {
            return;
        };
        if let Some(count) = self.counts.get_mut(age) {
            *count = count.saturating_sub(amount);
        }
        self.trim();
    }

    /// Milliseconds from `now_ms` until `need` more units fit under `limit`; 0 if they fit
    /// now, `None` if they never can (`need > limit`).
    pub fn wait_ms(&self, spec: WindowSpec, now_ms: i64, limit: u64, need: u64) -> Option<u64> {
        let room = limit.checked_sub(need)?;
        let mut counted = self.total();
        if counted <= room {
            return Some(0);
        }
        // Oldest buckets expire first.
        for (age, count) in self.counts.iter().enumerate().rev() {
            counted = counted.saturating_sub(*count);
            if *count > 0 && counted <= room {
                let bucket = self.newest.saturating_sub(age as u64);
                return Some(until(spec.expiry_ms(bucket), now_ms));
            }
        }
        Some(until(spec.expiry_ms(self.newest), now_ms))
    }

    /// Milliseconds from `now_ms` until nothing counted now is counted any more.
    pub fn reset_ms(&self, spec: WindowSpec, now_ms: i64) -> u64 {
        match self.counts.iter().position(|count| *count > 0) {
            Some(age) => until(
                spec.expiry_ms(self.newest.saturating_sub(age as u64)),
                now_ms,
            ),
            None => 0,
        }
    }

    fn trim(&mut self) {
        while self.counts.last() == Some(&0) {
            self.counts.pop();
        }
    }
}

fn until(at_ms: u64, now_ms: i64) -> u64 {
    at_ms.saturating_sub(u64::try_from(now_ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: WindowSpec = WindowSpec::MINUTE;
    const T0: i64 = 1_700_000_000_000;

    fn at(now_ms: i64) -> Window {
        let mut window = Window::default();
        window.advance(SPEC, now_ms);
        window
    }

    #[test]
    fn counts_everything_within_the_last_minute() {
        let mut window = at(T0);
        window.add(3);
        for offset in [1, 999, 30_000, 59_999, 60_000] {
            let mut later = window.clone();
            later.advance(SPEC, T0 + offset);
            assert_eq!(later.total(), 3, "{offset} ms later");
        }
    }

    #[test]
    fn forgets_a_unit_between_60_and_61_seconds_after_it() {
        // T0 is on a bucket boundary: the unit is counted for exactly 61 s.
        let mut window = at(T0);
        window.add(1);
        let mut later = window.clone();
        later.advance(SPEC, T0 + 60_999);
        assert_eq!(later.total(), 1);
        later.advance(SPEC, T0 + 61_000);
        assert_eq!(later.total(), 0);

        // Admitted at the end of its bucket: counted for just over 60 s.
        let mut window = at(T0 + 999);
        window.add(1);
        window.advance(SPEC, T0 + 60_999);
        assert_eq!(window.total(), 1, "60 s after it");
        window.advance(SPEC, T0 + 61_000);
        assert_eq!(window.total(), 0);
    }

    /// The fixed-window leak: `limit` at the end of one minute and `limit` again at the start
    /// of the next. A sliding window refuses the second batch.
    #[test]
    fn no_interval_of_a_minute_ever_holds_more_than_the_limit() {
        let limit = 5;
        let mut window = Window::default();
        let mut admitted: Vec<i64> = Vec::new();
        // One attempt every 250 ms for five minutes, with a burst around each boundary.
        let mut attempts: Vec<i64> = (0..1_200).map(|i| T0 + i * 250).collect();
        for minute in 1..5 {
            attempts.extend((0..20).map(|i| T0 + minute * 60_000 - 10 + i));
        }
        attempts.sort_unstable();
        for now in attempts {
            window.advance(SPEC, now);
            if window.total() < limit {
                window.add(1);
                admitted.push(now);
            }
        }
        for (i, start) in admitted.iter().enumerate() {
            let within = admitted[i..]
                .iter()
                .take_while(|t| **t < start + 60_000)
                .count();
            assert!(
                within <= limit as usize,
                "{within} within a minute of {start}"
            );
        }
        // Not starved either: about one admission batch per 61 s.
        assert!(admitted.len() >= 4 * limit as usize, "{}", admitted.len());
    }

    #[test]
    fn a_clock_that_steps_back_a_little_expires_nothing_early() {
        let mut window = at(T0 + 5_000);
        window.add(2);
        window.advance(SPEC, T0 + 4_000);
        assert_eq!(window.newest, SPEC.bucket_of(T0 + 5_000), "clamped");
        window.add(1);
        assert_eq!(window.total(), 3);
        window.advance(SPEC, T0 + 65_999);
        assert_eq!(window.total(), 3);
        window.advance(SPEC, T0 + 66_000);
        assert_eq!(window.total(), 0);
    }

    #[test]
    fn a_clock_that_steps_back_far_keeps_counts_for_their_remaining_life() {
        let mut window = at(T0);
        let slot = window.add(4);
        window.advance(SPEC, T0 - 3_600_000);
        assert_eq!(window.total(), 4, "an hour back: still counted");
        assert_eq!(window.epoch, 1);
        window.advance(SPEC, T0 - 3_600_000 + 60_000);
        assert_eq!(window.total(), 4);
        window.advance(SPEC, T0 - 3_600_000 + 61_000);
        assert_eq!(
            window.total(),
            0,
            "then forgotten on the new clock, not an hour later"
        );
        // A refund aimed at the old labels cannot land in a relabelled bucket.
        let mut again = at(T0);
        again.add(4);
        again.advance(SPEC, T0 - 3_600_000);
        again.add(1);
        again.remove(slot, 4);
        assert_eq!(again.total(), 5);
    }

    #[test]
    fn a_clock_that_jumps_forward_clears_everything() {
        let mut window = at(T0);
        window.add(7);
        window.advance(SPEC, T0 + 86_400_000);
        assert_eq!(window.total(), 0);
        assert!(window.counts.is_empty());
    }

    #[test]
    fn clocks_at_the_ends_of_the_range_neither_panic_nor_wrap() {
        let mut window = at(i64::MAX);
        window.add(u64::MAX);
        window.add(u64::MAX);
        assert_eq!(window.total(), u64::MAX);
        assert_eq!(
            window.wait_ms(SPEC, i64::MAX, u64::MAX, 1),
            Some(61_000 - 807)
        );
        window.advance(SPEC, i64::MIN);
        assert_eq!(window.total(), u64::MAX, "relabelled, not forgotten");
        assert_eq!(window.newest, 0);
        let mut early = at(-5);
        early.add(1);
        assert_eq!(early.newest, 0);
        assert_eq!(early.reset_ms(SPEC, -5), 61_000);
    }

    #[test]
    fn refunds_go_back_to_their_own_bucket_while_it_is_counted() {
        let mut window = at(T0);
        let slot = window.add(100);
        window.advance(SPEC, T0 + 10_000);
        window.add(5);
        window.remove(slot, 40);
        assert_eq!(window.total(), 65);
        window.remove(slot, 1_000);
        assert_eq!(window.total(), 5, "never below zero");
        window.advance(SPEC, T0 + 61_000);
        window.remove(slot, 1);
        assert_eq!(window.total(), 5, "an expired bucket needs no refund");
        let future = Slot {
            bucket: window.newest + 1,
            epoch: 0,
        };
        window.remove(future, 5);
        assert_eq!(window.total(), 5);
    }

    #[test]
    fn waits_until_enough_old_units_expire() {
        let mut window = at(T0);
        window.add(2);
        window.advance(SPEC, T0 + 20_000);
        window.add(1);
        window.advance(SPEC, T0 + 30_000);
        assert_eq!(window.wait_ms(SPEC, T0 + 30_000, 3, 1), Some(31_000));
        assert_eq!(window.wait_ms(SPEC, T0 + 30_000, 3, 3), Some(51_000));
        assert_eq!(window.wait_ms(SPEC, T0 + 30_000, 5, 2), Some(0));
        assert_eq!(window.wait_ms(SPEC, T0 + 30_000, 3, 4), None);
        assert_eq!(window.reset_ms(SPEC, T0 + 30_000), 51_000);
        assert_eq!(Window::default().reset_ms(SPEC, T0), 0);
    }

    #[test]
    fn idle_windows_encode_small() {
        use prost::Message;
        let mut window = at(T0);
        window.add(3);
        window.advance(SPEC, T0 + 59_000);
        window.add(1);
        let busy = window.encode_to_vec();
        assert!(busy.len() < 80, "{} bytes", busy.len());
        window.advance(SPEC, T0 + 200_000);
        assert!(window.encode_to_vec().len() <= 8);
        assert_eq!(Window::decode(busy.as_slice()).unwrap().total(), 4);
    }
}

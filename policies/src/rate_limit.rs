//! A local token-bucket rate limiter with the semantics of Envoy's
//! `local_ratelimit` filter: the bucket starts full with `max_tokens`, every
//! `fill_interval` it gains `tokens_per_fill` tokens (never more than
//! `max_tokens`), and each request takes one token or is refused.
//!
//! Lock-free: the whole state (fill count and tokens) is one `AtomicU64`
//! updated by compare-and-swap, so it can be shared by every worker thread.
//! Refills are computed lazily from a [`Clock`], so tests step time by hand.
//! (`governor` was considered: it implements GCRA, which refills one token
//! at a time, not `tokens_per_fill` at once per interval as Envoy does.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::PolicyConfigErrors;
use crate::limits::{HumanValue, duration};

/// Shortest fill interval, as in Envoy.
pub const MIN_FILL_INTERVAL: Duration = Duration::from_millis(50);

/// A monotonic time source.
pub trait Clock: Send + Sync {
    /// Time elapsed since an arbitrary, fixed origin; never goes backwards.
    fn now(&self) -> Duration;
}

/// The real clock: [`Instant`] since the clock was made.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl Default for MonotonicClock {
    fn default() -> MonotonicClock {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
}

/// A request refused because the workload's rate limit is exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("local rate limit exceeded; retry later or raise rate_limit.max_tokens / tokens_per_fill")]
pub struct RateLimited;

/// The bucket's parameters, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens in a full bucket (and at start).
    pub max_tokens: u32,
    /// Tokens added every `fill_interval`.
    pub tokens_per_fill: u32,
    /// Time between fills, at least [`MIN_FILL_INTERVAL`].
    pub fill_interval: Duration,
}

/// A token-bucket limiter shared by all threads serving one workload.
#[derive(Debug)]
pub struct LocalRateLimit<C: Clock = MonotonicClock> {
    bucket: TokenBucket,
    interval_nanos: u128,
    clock: C,
    origin: Duration,
    /// High 32 bits: fill count (wrapping) last applied; low 32 bits: tokens.
    state: AtomicU64,
}

fn pack(fills: u32, tokens: u32) -> u64 {
    (u64::from(fills) << 32) | u64::from(tokens)
}

fn unpack(state: u64) -> (u32, u32) {
    ((state >> 32) as u32, state as u32)
}

impl LocalRateLimit<MonotonicClock> {
    /// A full bucket on the real clock.
    pub fn new(bucket: TokenBucket) -> LocalRateLimit<MonotonicClock> {
        LocalRateLimit::with_clock(bucket, MonotonicClock::default())
    }

    /// Validates raw configuration, reporting every bad entry under `rate_limit`.
    pub fn from_config(config: &RateLimitConfig) -> Result<LocalRateLimit, PolicyConfigErrors> {
        let mut errors = PolicyConfigErrors::default();
        let bucket = config.compile("rate_limit", &mut errors);
        match bucket {
            Some(bucket) if errors.is_empty() => Ok(LocalRateLimit::new(bucket)),
            _ => Err(errors),
        }
    }
}

impl<C: Clock> LocalRateLimit<C> {
    /// A full bucket on the given clock.
    pub fn with_clock(bucket: TokenBucket, clock: C) -> LocalRateLimit<C> {
        let origin = clock.now();
        LocalRateLimit {
            interval_nanos: bucket.fill_interval.as_nanos().max(1),
            bucket,
            clock,
            origin,
            state: AtomicU64::new(pack(0, bucket.max_tokens)),
        }
    }

    /// The bucket's parameters.
    pub fn bucket(&self) -> TokenBucket {
        self.bucket
    }

    /// Takes one token, or refuses the request when the bucket is empty.
    pub fn try_acquire(&self) -> Result<(), RateLimited> {
        let now = self.current_fill();
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let (fills, tokens) = self.refill(current, now);
            let Some(left) = tokens.checked_sub(1) else {
                return Err(RateLimited);
            };
            match self.state.compare_exchange_weak(
                current,
                pack(fills, left),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    /// Tokens available now (for metrics and the admin endpoint).
    pub fn available(&self) -> u32 {
        self.refill(self.state.load(Ordering::Acquire), self.current_fill())
            .1
    }

    /// Time until the next fill.
    pub fn until_next_fill(&self) -> Duration {
        let elapsed = self.clock.now().saturating_sub(self.origin).as_nanos();
        let into_interval = elapsed % self.interval_nanos;
        Duration::from_nanos(u64::try_from(self.interval_nanos - into_interval).unwrap_or(u64::MAX))
    }

    /// The number of whole fill intervals since creation, wrapping at 2^32
    /// (at the 50 ms minimum interval that is over six years).
    fn current_fill(&self) -> u32 {
        let elapsed = self.clock.now().saturating_sub(self.origin).as_nanos();
        (elapsed / self.interval_nanos) as u32
    }

    /// Applies the fills between the state's and `now`. A thread that read
    /// the clock before another updated the state sees `now` behind the
    /// state; that is no fill, not a wrap-around.
    fn refill(&self, state: u64, now: u32) -> (u32, u32) {
        let (seen, tokens) = unpack(state);
        let elapsed = now.wrapping_sub(seen);
        if elapsed == 0 || elapsed > u32::MAX / 2 {
            return (seen, tokens);
        }
        let added = u64::from(elapsed) * u64::from(self.bucket.tokens_per_fill);
        let tokens = (u64::from(tokens) + added).min(u64::from(self.bucket.max_tokens));
        (now, tokens as u32)
    }
}

/// The `rate_limit` section of a workload policy, as written:
/// `{ max_tokens: 100, tokens_per_fill: 100, fill_interval: "1s" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Tokens in a full bucket, at least 1.
    pub max_tokens: i64,
    /// Tokens added per fill; defaults to 1 as in Envoy.
    #[serde(default)]
    pub tokens_per_fill: Option<i64>,
    /// Time between fills, at least 50ms, for example `"1s"`.
    pub fill_interval: HumanValue,
}

impl RateLimitConfig {
    pub(crate) fn compile(
        &self,
        path: &str,
        errors: &mut PolicyConfigErrors,
    ) -> Option<TokenBucket> {
        let count = |key: &str, n: i64, errors: &mut PolicyConfigErrors| match u32::try_from(n) {
            Ok(n) if n > 0 => Some(n),
            _ => {
                errors.push(
                    format!("{path}.{key}"),
                    format!("{n} is not a positive token count (1-4294967295)"),
                );
                None
            }
        };
        let max_tokens = count("max_tokens", self.max_tokens, errors);
        let tokens_per_fill = count("tokens_per_fill", self.tokens_per_fill.unwrap_or(1), errors);
        let at = format!("{path}.fill_interval");
        let fill_interval = duration(Some(&self.fill_interval), &at, errors);
        let fill_interval = match fill_interval {
            Some(d) if d < MIN_FILL_INTERVAL => {
                errors.push(
                    at,
                    format!(
                        "{} is shorter than the 50ms minimum",
                        humantime::format_duration(d)
                    ),
                );
                None
            }
            other => other,
        };
        Some(TokenBucket {
            max_tokens: max_tokens?,
            tokens_per_fill: tokens_per_fill?,
            fill_interval: fill_interval?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(max_tokens: u32, tokens_per_fill: u32, ms: u64) -> TokenBucket {
        TokenBucket {
            max_tokens,
            tokens_per_fill,
            fill_interval: Duration::from_millis(ms),
        }
    }

    fn limiter(b: TokenBucket) -> (Arc<ManualClock>, LocalRateLimit<Arc<ManualClock>>) {
        let clock = Arc::new(ManualClock::default());
        (clock.clone(), LocalRateLimit::with_clock(b, clock))
    }

    fn take(l: &LocalRateLimit<Arc<ManualClock>>, n: u32) -> u32 {
        (0..n).filter(|_| l.try_acquire().is_ok()).count() as u32
    }

    #[test]
    fn bucket_starts_full() {
        let (_, l) = limiter(bucket(3, 1, 1000));
        assert_eq!(l.available(), 3);
        assert_eq!(take(&l, 5), 3);
        assert_eq!(l.try_acquire(), Err(RateLimited));
    }

    #[test]
    fn fill_adds_tokens_per_fill_once_per_interval() {
        let (clock, l) = limiter(bucket(10, 4, 1000));
        assert_eq!(take(&l, 10), 10);
        clock.advance(Duration::from_millis(999));
        assert_eq!(take(&l, 1), 0, "no fill before the interval ends");
        clock.advance(Duration::from_millis(1));
        assert_eq!(take(&l, 10), 4, "tokens_per_fill at once");
    }

    #[test]
    fn fills_never_exceed_max_tokens() {
        let (clock, l) = limiter(bucket(5, 3, 100));
        assert_eq!(take(&l, 5), 5);
        clock.advance(Duration::from_secs(60));
        assert_eq!(l.available(), 5);
        assert_eq!(take(&l, 10), 5);
    }

    #[test]
    fn several_missed_intervals_add_several_fills() {
        let (clock, l) = limiter(bucket(100, 2, 100));
        assert_eq!(take(&l, 100), 100);
        clock.advance(Duration::from_millis(350));
        assert_eq!(take(&l, 100), 6);
        clock.advance(Duration::from_millis(50));
        assert_eq!(
            take(&l, 100),
            2,
            "fills are aligned to the interval, not to the last request"
        );
    }

    #[test]
    fn limiter_is_shared_across_threads() {
        let (_, l) = limiter(bucket(1000, 1, 1000));
        let l = Arc::new(l);
        let taken: u32 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4).map(|_| s.spawn(|| take(&l, 400))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(taken, 1000);
    }

    #[test]
    fn rate_limit_config_matches_envoy_fields_and_defaults() {
        let c: RateLimitConfig =
            serde_yaml::from_str("{ max_tokens: 10, fill_interval: 1s }").expect("yaml");
        let b = c
            .compile("rate_limit", &mut PolicyConfigErrors::default())
            .expect("valid");
        assert_eq!(b, bucket(10, 1, 1000));
    }

    #[test]
    fn every_bad_rate_limit_entry_is_reported() {
        let c: RateLimitConfig =
            serde_yaml::from_str("{ max_tokens: 0, tokens_per_fill: -1, fill_interval: 10ms }")
                .expect("yaml");
        let mut errors = PolicyConfigErrors::default();
        assert!(c.compile("rate_limit", &mut errors).is_none());
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "rate_limit.max_tokens",
                "rate_limit.tokens_per_fill",
                "rate_limit.fill_interval"
            ]
        );
    }

    #[test]
    fn real_clock_limiter_builds_from_config() {
        let c: RateLimitConfig =
            serde_yaml::from_str("{ max_tokens: 2, tokens_per_fill: 2, fill_interval: 1h }")
                .expect("yaml");
        let l = LocalRateLimit::from_config(&c).expect("valid");
        assert!(l.try_acquire().is_ok() && l.try_acquire().is_ok());
        assert_eq!(l.try_acquire(), Err(RateLimited));
    }
}

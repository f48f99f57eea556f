//! Abuse limits of the server: a token bucket per API token (`--rate-limit
//! N/min`) and the input size caps for prompts. Owns the arithmetic only;
//! the HTTP answers (429 with Retry-After, 413) are made in the handlers.
//! Keys are token hashes, never tokens.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests allowed per token: `N/s`, `N/min` (or plain `N`), `N/h`; `off` disables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Bucket size: this many requests may come at once.
    pub burst: u32,
    /// Refill rate, requests per second.
    pub per_second: f64,
}

impl RateLimit {
    pub fn per_minute(n: u32) -> Self {
        RateLimit { burst: n, per_second: n as f64 / 60.0 }
    }
}

/// `--rate-limit` values: `Some(limit)`, or `None` for `off`.
pub fn parse_rate_limit(s: &str) -> Result<Option<RateLimit>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let (n, unit) = s.split_once('/').unwrap_or((s, "min"));
    let n = u32::from_str(n.trim()).map_err(|_| format!("`{s}`: expected N/min, N/s, N/h or off (N a whole number)"))?;
    if n == 0 {
        return Err(format!("`{s}`: the rate must be at least 1 (use `off` to disable the limit)"));
    }
    let secs = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        u => return Err(format!("`{s}`: unknown unit `{u}` (s, min or h)")),
    };
    Ok(Some(RateLimit { burst: n, per_second: n as f64 / secs }))
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// One token bucket per key (a token's SHA-256).
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter { limit, buckets: Mutex::new(HashMap::new()) }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// How long until `key`'s bucket holds a request again, when it is empty
    /// now (takes nothing).
    pub fn blocked(&self, key: &str, now: Instant) -> Option<Duration> {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.get(key)?;
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        let tokens = (b.tokens + elapsed * self.limit.per_second).min(self.limit.burst as f64);
        (tokens < 1.0).then(|| Duration::from_secs_f64((1.0 - tokens) / self.limit.per_second))
    }

    /// Takes one request from `key`'s bucket at `now`; when it is empty,
    /// how long until one is available.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let cap = self.limit.burst as f64;
        let b = buckets.entry(key.to_string()).or_insert(Bucket { tokens: cap, last: now });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.limit.per_second).min(cap);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.limit.per_second))
        }
    }
}

/// Failed authentications allowed per client IP: 10 at once, then one every
/// 6 seconds; past that every request from the IP is 429 until the bucket
/// refills (a right token too, so guessing learns nothing while blocked).
pub const AUTH_FAILURES: RateLimit = RateLimit { burst: 10, per_second: 1.0 / 6.0 };

/// Input size caps for prompts (characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptLimits {
    /// The question: the last user message of a chat, a thread message, a search query.
    pub max_prompt_chars: usize,
    /// All messages of one chat request together.
    pub max_messages_chars: usize,
}

impl Default for PromptLimits {
    fn default() -> Self {
        PromptLimits { max_prompt_chars: tresor_assistant::text::MAX_QUESTION_CHARS, max_messages_chars: 32_000 }
    }
}

/// Which cap a prompt broke.
#[derive(Debug, PartialEq, Eq)]
pub enum TooLarge {
    Prompt { chars: usize, max: usize },
    Messages { chars: usize, max: usize },
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TooLarge::Prompt { chars, max } => {
                write!(f, "the prompt has {chars} characters; the limit is {max} (ask a shorter question or upload the text as a document)")
            }
            TooLarge::Messages { chars, max } => {
                write!(f, "the messages have {chars} characters together; the limit is {max} (send fewer or shorter earlier turns)")
            }
        }
    }
}

impl PromptLimits {
    /// Checks the question and all messages (question included).
    pub fn check<'a>(&self, question: &str, all: impl IntoIterator<Item = &'a str>) -> Result<(), TooLarge> {
        let chars = question.chars().count();
        if chars > self.max_prompt_chars {
            return Err(TooLarge::Prompt { chars, max: self.max_prompt_chars });
        }
        let total: usize = all.into_iter().map(|m| m.chars().count()).sum();
        if total > self.max_messages_chars {
            return Err(TooLarge::Messages { chars: total, max: self.max_messages_chars });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_values() {
        assert_eq!(parse_rate_limit("60/min").unwrap(), Some(RateLimit { burst: 60, per_second: 1.0 }));
        assert_eq!(parse_rate_limit("60").unwrap(), Some(RateLimit { burst: 60, per_second: 1.0 }));
        assert_eq!(parse_rate_limit("2/s").unwrap(), Some(RateLimit { burst: 2, per_second: 2.0 }));
        assert_eq!(parse_rate_limit("3600/h").unwrap(), Some(RateLimit { burst: 3600, per_second: 1.0 }));
        assert_eq!(parse_rate_limit("off").unwrap(), None);
        for bad in ["0/min", "-1/min", "x/min", "5/day", "", "1.5/min"] {
            assert!(parse_rate_limit(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_bucket_per_key_allows_the_burst_then_refills() {
        let l = RateLimiter::new(RateLimit::per_minute(3));
        let t0 = Instant::now();
        for _ in 0..3 {
            l.check("a", t0).unwrap();
        }
        let wait = l.check("a", t0).unwrap_err();
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20), "{wait:?}");
        // another token has its own bucket
        l.check("b", t0).unwrap();
        // 20 s later one request is back, not two
        let t1 = t0 + Duration::from_secs(20);
        l.check("a", t1).unwrap();
        assert!(l.check("a", t1).is_err());
        // never more than the burst, however long the pause
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            l.check("a", t2).unwrap();
        }
        assert!(l.check("a", t2).is_err());
    }

    #[test]
    fn prompt_caps_count_characters() {
        let p = PromptLimits { max_prompt_chars: 5, max_messages_chars: 8 };
        assert!(p.check("äöüßé", ["äöüßé"]).is_ok(), "five umlauts are five characters, not ten bytes");
        assert_eq!(p.check("abcdef", ["abcdef"]), Err(TooLarge::Prompt { chars: 6, max: 5 }));
        assert_eq!(p.check("abc", ["abcdef", "abc"]), Err(TooLarge::Messages { chars: 9, max: 8 }));
    }
}

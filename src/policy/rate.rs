//! Requests per client: a token bucket per client address (`api.rate_limit_per_second`,
//! `api.rate_limit_burst`). Time is an argument; the table of clients is bounded, so a flood of
//! source addresses cannot grow it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Clients tracked at once; when full, buckets that have refilled completely are forgotten first
/// (they carry no state), then the least recently seen.
pub const MAX_CLIENTS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admit {
    Yes,
    /// Refused; a token is due after this long (`Retry-After`).
    No {
        retry_after: Duration,
    },
}

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    clients: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    /// `per_second == 0` admits everything.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            clients: HashMap::new(),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.at = now;
    }

    pub fn handle_request(&mut self, now: Instant, client: IpAddr) -> Admit {
        if self.per_second <= 0.0 {
            return Admit::Yes;
        }
        if !self.clients.contains_key(&client) && self.clients.len() >= MAX_CLIENTS {
            self.evict(now);
        }
        let mut b = self.clients.get(&client).copied().unwrap_or(Bucket {
            tokens: self.burst,
            at: now,
        });
        self.refill(&mut b, now);
        let admit = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Admit::Yes
        } else {
            let wait = (1.0 - b.tokens) / self.per_second;
            Admit::No {
                retry_after: Duration::from_secs_f64(wait.max(0.001)),
            }
        };
        self.clients.insert(client, b);
        admit
    }

    fn evict(&mut self, now: Instant) {
        let full_after = Duration::from_secs_f64(self.burst / self.per_second);
        self.clients
            .retain(|_, b| now.saturating_duration_since(b.at) < full_after);
        if self.clients.len() >= MAX_CLIENTS {
            if let Some(oldest) = self.clients.iter().min_by_key(|(_, b)| b.at).map(|(ip, _)| *ip) {
                self.clients.remove(&oldest);
            }
        }
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10, 5);
        for _ in 0..5 {
            assert_eq!(r.handle_request(t0, ip(1)), Admit::Yes);
        }
        let Admit::No { retry_after } = r.handle_request(t0, ip(1)) else {
            panic!("the sixth request at once is refused");
        };
        assert!((retry_after.as_secs_f64() - 0.1).abs() < 1e-6, "{retry_after:?}");
        assert_eq!(
            r.handle_request(t0, ip(2)),
            Admit::Yes,
            "other clients have their own bucket"
        );
        assert_eq!(
            r.handle_request(t0 + Duration::from_millis(100), ip(1)),
            Admit::Yes
        );
        assert!(matches!(
            r.handle_request(t0 + Duration::from_millis(100), ip(1)),
            Admit::No { .. }
        ));
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(
                r.handle_request(later, ip(1)),
                Admit::Yes,
                "refills up to the burst only"
            );
        }
        assert!(matches!(r.handle_request(later, ip(1)), Admit::No { .. }));
    }

    #[test]
    fn zero_means_no_limit() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(0, 1);
        for _ in 0..10_000 {
            assert_eq!(r.handle_request(t0, ip(1)), Admit::Yes);
        }
        assert_eq!(r.clients(), 0);
    }

    #[test]
    fn the_client_table_is_bounded() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1, 10);
        for n in 0..(MAX_CLIENTS as u32 + 200) {
            let _ = r.handle_request(t0 + Duration::from_micros(u64::from(n)), ip(n));
            assert!(r.clients() <= MAX_CLIENTS);
        }
        // A client that is still being limited keeps its bucket while fresh ones come and go.
        let mut r = RateLimiter::new(1, 1);
        assert_eq!(r.handle_request(t0, ip(7)), Admit::Yes);
        assert!(matches!(r.handle_request(t0, ip(7)), Admit::No { .. }));
    }
}

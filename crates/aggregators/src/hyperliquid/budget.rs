//! Client-side request-weight budget: Hyperliquid allows 1200 weight per minute per IP on
//! `/info`. Every request reserves its documented weight before it is sent; items-based extra
//! weight (fills, trades, candles) is charged after the response is counted.
//!
//! The accounting ([`WeightWindow`]) is pure and driven by the caller's clock; [`WeightBudget`]
//! wraps it for concurrent async use.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// Documented weight of an info request type (rate-limits page, 2026-07).
pub fn request_weight(request_type: &str) -> u32 {
    match request_type {
        "l2Book"
        | "allMids"
        | "clearinghouseState"
        | "orderStatus"
        | "spotClearinghouseState"
        | "exchangeStatus" => 2,
        "userRole" => 60,
        _ => 20,
    }
}

/// Extra weight charged for `items` returned by an items-priced request type.
pub fn items_weight(request_type: &str, items: usize) -> u32 {
    let per = match request_type {
        "recentTrades"
        | "historicalOrders"
        | "userFills"
        | "userFillsByTime"
        | "fundingHistory"
        | "userFunding"
        | "nonUserFundingUpdates"
        | "twapHistory"
        | "userTwapSliceFills"
        | "userTwapSliceFillsByTime"
        | "delegatorHistory"
        | "delegatorRewards"
        | "validatorStats" => 20,
        "candleSnapshot" => 60,
        _ => return 0,
    };
    u32::try_from(items / per).unwrap_or(u32::MAX)
}

/// Sliding one-minute window of spent weight.
#[derive(Debug, Clone)]
pub struct WeightWindow {
    capacity: u32,
    window_ms: i64,
    spent: VecDeque<(i64, u32)>,
    total: u32,
}

impl WeightWindow {
    /// A window of `capacity` weight per `window_ms`.
    pub fn new(capacity: u32, window_ms: i64) -> Self {
        Self {
            capacity,
            window_ms,
            spent: VecDeque::new(),
            total: 0,
        }
    }

    fn expire(&mut self, now_ms: i64) {
        while let Some(&(t, w)) = self.spent.front() {
            if now_ms - t >= self.window_ms {
                self.spent.pop_front();
                self.total -= w;
            } else {
                break;
            }
        }
    }

    /// Weight spent within the window ending at `now_ms`.
    pub fn used(&mut self, now_ms: i64) -> u32 {
        self.expire(now_ms);
        self.total
    }

    /// Reserves `weight` at `now_ms` if it fits; otherwise returns how long to wait (ms).
    pub fn try_reserve(&mut self, weight: u32, now_ms: i64) -> Result<(), i64> {
        self.expire(now_ms);
        let weight = weight.min(self.capacity);
        if self.total + weight <= self.capacity {
            self.spent.push_back((now_ms, weight));
            self.total += weight;
            return Ok(());
        }
        // Wait until enough old entries expire.
        let mut freed = 0u32;
        for &(t, w) in &self.spent {
            freed += w;
            if self.total - freed + weight <= self.capacity {
                return Err((t + self.window_ms - now_ms).max(1));
            }
        }
        Err(self.window_ms)
    }

    /// Charges `weight` unconditionally (items-based weight known only after the response).
    pub fn charge(&mut self, weight: u32, now_ms: i64) {
        if weight == 0 {
            return;
        }
        self.expire(now_ms);
        self.spent.push_back((now_ms, weight));
        self.total = self.total.saturating_add(weight);
    }
}

/// Thread-safe budget with async waiting, using the monotonic clock.
#[derive(Debug)]
pub struct WeightBudget {
    window: Mutex<WeightWindow>,
    start: tokio::time::Instant,
    max_wait: Duration,
}

impl WeightBudget {
    /// Hyperliquid's limit: 1200 per minute. `max_wait` bounds how long a request may queue.
    pub fn hyperliquid(max_wait: Duration) -> Self {
        Self::new(1200, 60_000, max_wait)
    }

    /// A budget of `capacity` per `window_ms`.
    pub fn new(capacity: u32, window_ms: i64, max_wait: Duration) -> Self {
        Self {
            window: Mutex::new(WeightWindow::new(capacity, window_ms)),
            start: tokio::time::Instant::now(),
            max_wait,
        }
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WeightWindow> {
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until `weight` fits, then reserves it. Fails with the wait time when that would
    /// exceed `max_wait`.
    pub async fn acquire(&self, weight: u32) -> Result<(), u64> {
        let deadline = tokio::time::Instant::now() + self.max_wait;
        loop {
            let r = self.lock().try_reserve(weight, self.now_ms());
            match r {
                Ok(()) => return Ok(()),
                Err(wait_ms) => {
                    let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(1));
                    if tokio::time::Instant::now() + wait > deadline {
                        return Err(u64::try_from(wait_ms).unwrap_or(0));
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Charges extra weight after the fact.
    pub fn charge(&self, weight: u32) {
        let now = self.now_ms();
        self.lock().charge(weight, now);
    }

    /// Weight used in the last window.
    pub fn used(&self) -> u32 {
        let now = self.now_ms();
        self.lock().used(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_weights() {
        assert_eq!(request_weight("allMids"), 2);
        assert_eq!(request_weight("clearinghouseState"), 2);
        assert_eq!(request_weight("metaAndAssetCtxs"), 20);
        assert_eq!(request_weight("userRole"), 60);
        assert_eq!(items_weight("userFills", 500), 25);
        assert_eq!(items_weight("candleSnapshot", 120), 2);
        assert_eq!(items_weight("allMids", 500), 0);
    }

    #[test]
    fn window_refuses_then_frees_after_a_minute() {
        let mut w = WeightWindow::new(1200, 60_000);
        for i in 0..60 {
            assert!(w.try_reserve(20, i * 1000).is_ok());
        }
        assert_eq!(w.used(59_000), 1200);
        // The first reservation (t=0) frees at t=60 000.
        assert_eq!(w.try_reserve(20, 59_500), Err(500));
        assert!(w.try_reserve(20, 60_000).is_ok());
    }

    proptest! {
        #[test]
        fn never_exceeds_capacity_in_any_window(reqs in proptest::collection::vec((0i64..5_000, 1u32..80), 1..400)) {
            let mut w = WeightWindow::new(1200, 60_000);
            let mut now = 0;
            let mut granted: Vec<(i64, u32)> = Vec::new();
            for (dt, weight) in reqs {
                now += dt;
                if w.try_reserve(weight, now).is_ok() {
                    granted.push((now, weight));
                }
                let in_window: u32 = granted.iter().filter(|(t, _)| now - t < 60_000).map(|(_, w)| w).sum();
                prop_assert!(in_window <= 1200);
            }
        }
    }
}

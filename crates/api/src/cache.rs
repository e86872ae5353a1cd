//! A micro-cache for read endpoints: identical requests within [`TTL`] (and with no new
//! security event since) share one computed body, and concurrent misses of the same key wait
//! for a single computation instead of each querying the database (no thundering herd when a
//! thousand dashboards refresh at once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use tokio::sync::OnceCell;

/// The default time a body is reused. Live changes reach clients over `/ws`; a new security
/// event invalidates at once.
pub const TTL: Duration = Duration::from_secs(1);
const MAX_KEYS: usize = 512;

type Cell = Arc<OnceCell<Bytes>>;

/// Bodies by request key.
#[derive(Debug)]
pub struct ResponseCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, i64, Cell)>>,
}

impl Default for ResponseCache {
    fn default() -> Self {
        Self::new(TTL)
    }
}

impl ResponseCache {
    /// A cache reusing bodies for `ttl`; zero disables it.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    /// The body for `key` at event sequence `seq`, computing it with `make` at most once per
    /// TTL.
    pub async fn get_or_compute<E, F, Fut>(&self, key: &str, seq: i64, make: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Bytes, E>>,
    {
        if self.ttl.is_zero() {
            return make().await;
        }
        let ttl = self.ttl;
        let cell = {
            let Ok(mut m) = self.entries.lock() else {
                return make().await;
            };
            let fresh = m
                .get(key)
                .filter(|(at, s, _)| at.elapsed() < ttl && *s == seq)
                .map(|(_, _, c)| c.clone());
            match fresh {
                Some(c) => c,
                None => {
                    if m.len() >= MAX_KEYS {
                        m.retain(|_, (at, _, _)| at.elapsed() < ttl);
                        if m.len() >= MAX_KEYS {
                            m.clear();
                        }
                    }
                    let c: Cell = Arc::default();
                    m.insert(key.to_owned(), (Instant::now(), seq, c.clone()));
                    c
                }
            }
        };
        cell.get_or_try_init(make).await.cloned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn body(calls: &AtomicUsize, text: &'static str) -> Result<Bytes, ()> {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(Bytes::from_static(text.as_bytes()))
    }

    #[tokio::test]
    async fn concurrent_misses_compute_once_and_new_events_invalidate() {
        let cache = Arc::new(ResponseCache::new(Duration::from_secs(60)));
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_compute("/a?", 7, || body(&calls, "one"))
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "one");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "single flight");
        // Another key is computed separately; a new event sequence recomputes.
        let b = cache.get_or_compute("/b?", 7, || body(&calls, "b")).await;
        assert_eq!(b.unwrap(), "b");
        let a = cache.get_or_compute("/a?", 8, || body(&calls, "two")).await;
        assert_eq!(a.unwrap(), "two");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn expiry_errors_and_zero_ttl_are_not_reused() {
        let calls = AtomicUsize::new(0);
        let cache = ResponseCache::new(Duration::from_millis(30));
        cache
            .get_or_compute("k", 1, || body(&calls, "x"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        cache
            .get_or_compute("k", 1, || body(&calls, "x"))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "expired after the TTL");

        let failed: Result<Bytes, &str> =
            cache.get_or_compute("e", 1, || async { Err("db") }).await;
        assert_eq!(failed, Err("db"));
        let again = cache.get_or_compute("e", 1, || body(&calls, "ok")).await;
        assert_eq!(again.unwrap(), "ok", "a failure is not cached");

        let off = ResponseCache::new(Duration::ZERO);
        for _ in 0..3 {
            off.get_or_compute("k", 1, || body(&calls, "x"))
                .await
                .unwrap();
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            6,
            "zero TTL disables the cache"
        );
    }

    #[tokio::test]
    async fn the_key_table_is_bounded() {
        let cache = ResponseCache::new(Duration::from_secs(60));
        for i in 0..(MAX_KEYS * 3) {
            cache
                .get_or_compute(&format!("/k?{i}"), 1, || async {
                    Ok::<_, ()>(Bytes::new())
                })
                .await
                .unwrap();
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_KEYS);
    }
}

//! Supervised background tasks: a feed task that panics or returns while the source is still
//! running is reported and restarted with backoff, never silently gone.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::hyperliquid::ws::Backoff;

/// Why a supervised task stopped on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// It panicked; the panic message.
    Panicked(String),
    /// It returned although nobody asked it to stop.
    Returned,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Panicked(m) => write!(f, "panicked: {m}"),
            Self::Returned => f.write_str("stopped unexpectedly"),
        }
    }
}

/// A task that ran at least this long before stopping restarts from the first backoff step.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = e.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Runs `make()` as a task until `cancel` fires. Whenever the task stops on its own (panic or
/// return), `report(name, exit, restart_in)` is called, a `kamiyo_task_restarts` counter is
/// incremented and a fresh task is started after a backoff delay (reset after a healthy run of
/// a minute). Returns when `cancel` fires (the running task is aborted if it does not return
/// by itself).
pub async fn supervise<F, Fut, R>(
    name: &'static str,
    cancel: CancellationToken,
    backoff: Backoff,
    mut report: R,
    mut make: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
    R: FnMut(&'static str, &Exit, Duration),
{
    let mut attempt = 0u32;
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::from_os_rng();
    loop {
        let started = Instant::now();
        let mut task = tokio::spawn(make());
        let exit = tokio::select! {
            () = cancel.cancelled() => {
                // Give the task a moment to see the token and return by itself.
                if tokio::time::timeout(Duration::from_secs(1), &mut task).await.is_err() {
                    task.abort();
                }
                return;
            }
            r = &mut task => match r {
                Ok(()) => Exit::Returned,
                Err(e) if e.is_panic() => Exit::Panicked(panic_message(&*e.into_panic())),
                Err(_) => Exit::Returned,
            },
        };
        if cancel.is_cancelled() {
            return;
        }
        if started.elapsed() >= HEALTHY_RUN {
            attempt = 0;
        }
        let delay = backoff.delay(attempt, &mut rng);
        attempt = attempt.saturating_add(1);
        tracing::error!(task = name, exit = %exit, restart_in_ms = delay.as_millis() as u64, "supervised task stopped; restarting");
        crate::metrics::task_restarted(name);
        report(name, &exit, delay);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_reported_and_restarted_until_cancelled() {
        let runs = Arc::new(AtomicU32::new(0));
        let reports: Arc<Mutex<Vec<(String, Exit)>>> = Arc::default();
        let cancel = CancellationToken::new();
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(20),
        };
        let (r2, rep2, c2) = (runs.clone(), reports.clone(), cancel.clone());
        let sup = tokio::spawn(supervise(
            "feed",
            cancel.clone(),
            backoff,
            move |name, exit, _| rep2.lock().unwrap().push((name.to_owned(), exit.clone())),
            move || {
                let n = r2.fetch_add(1, Ordering::SeqCst);
                let c = c2.clone();
                async move {
                    match n {
                        0 => panic!("decoder bug"),
                        1 => {} // returns although not cancelled
                        _ => c.cancelled().await,
                    }
                }
            },
        ));
        while runs.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cancel.cancel();
        sup.await.unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "restarted twice, then kept running"
        );
        let reports = reports.lock().unwrap().clone();
        assert_eq!(
            reports,
            vec![
                ("feed".to_owned(), Exit::Panicked("decoder bug".to_owned())),
                ("feed".to_owned(), Exit::Returned),
            ]
        );
    }

    #[tokio::test]
    async fn cancellation_is_not_a_crash() {
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        let reports = Arc::new(AtomicU32::new(0));
        let r2 = reports.clone();
        let sup = tokio::spawn(supervise(
            "poller",
            cancel.clone(),
            Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(10),
            },
            move |_, _, _| {
                r2.fetch_add(1, Ordering::SeqCst);
            },
            move || {
                let c = c2.clone();
                async move { c.cancelled().await }
            },
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
        cancel.cancel();
        sup.await.unwrap();
        assert_eq!(reports.load(Ordering::SeqCst), 0);
    }
}

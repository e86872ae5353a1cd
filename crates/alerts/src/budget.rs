//! Rate budgets per destination: any number of sliding windows ("5 per 2 s and 30 per minute"
//! for a Discord webhook), plus a pause set by the destination's own 429 `Retry-After`.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// One window: at most `count` sends in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Sends allowed.
    pub count: u32,
    /// Window length.
    pub window: Duration,
}

impl FromStr for Window {
    type Err = String;

    /// `5/2s`, `30/1m`, `20/60s`, `1000/1h`.
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("expected COUNT/DURATION such as \"5/2s\" or \"30/1m\", got {s:?}");
        let (n, d) = s.trim().split_once('/').ok_or_else(err)?;
        let count: u32 = n.trim().parse().map_err(|_| err())?;
        let d = d.trim();
        let split = d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len());
        let (num, unit) = d.split_at(split);
        let num: u64 = if num.is_empty() {
            1
        } else {
            num.parse().map_err(|_| err())?
        };
        let secs = match unit {
            "s" => num,
            "m" => num * 60,
            "h" => num * 3600,
            _ => return Err(err()),
        };
        if count == 0 || secs == 0 {
            return Err(format!("{s:?}: count and duration must be positive"));
        }
        Ok(Self {
            count,
            window: Duration::from_secs(secs),
        })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.count, self.window.as_secs())
    }
}

/// The state of one destination's budget.
#[derive(Debug, Clone)]
pub struct Budget {
    windows: Vec<Window>,
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl Budget {
    /// A budget with these windows (none: unlimited, still honouring 429 pauses).
    pub fn new(windows: Vec<Window>) -> Self {
        Self {
            windows,
            sent: VecDeque::new(),
            paused_until: None,
        }
    }

    /// The windows.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// How long to wait from `now` before the next send fits every window (zero: send now).
    pub fn wait(&mut self, now: Instant) -> Duration {
        let longest = self.windows.iter().map(|w| w.window).max();
        if let Some(l) = longest {
            while self
                .sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= l)
            {
                self.sent.pop_front();
            }
        }
        let mut wait = self
            .paused_until
            .map_or(Duration::ZERO, |p| p.saturating_duration_since(now));
        for w in &self.windows {
            let in_window = self
                .sent
                .iter()
                .rev()
                .take_while(|t| now.duration_since(**t) < w.window)
                .count();
            if in_window >= w.count as usize {
                // The oldest send that must leave the window before another fits.
                let idx = self.sent.len() - w.count as usize;
                if let Some(t) = self.sent.get(idx) {
                    wait = wait.max((*t + w.window).saturating_duration_since(now));
                }
            }
        }
        wait
    }

    /// Records a send at `now`.
    pub fn record(&mut self, now: Instant) {
        self.sent.push_back(now);
        let cap = self.windows.iter().map(|w| w.count).max().unwrap_or(0) as usize;
        while self.sent.len() > cap {
            self.sent.pop_front();
        }
    }

    /// The destination said to wait `d` (429 `Retry-After`).
    pub fn pause(&mut self, now: Instant, d: Duration) {
        let until = now + d;
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
    }
}

/// Defaults per channel kind, from the vendors' documented limits: Discord webhooks 5 per 2 s
/// and 30 per minute; Telegram about 1 per second in a chat and 20 per minute in a group;
/// Slack incoming webhooks 1 per second; a generic webhook (your own receiver) 50 per second;
/// e-mail 10 per second.
pub fn defaults(kind: &str, telegram_group: bool) -> Vec<Window> {
    let w = |count, secs| Window {
        count,
        window: Duration::from_secs(secs),
    };
    match kind {
        "discord" => vec![w(5, 2), w(30, 60)],
        "telegram" if telegram_group => vec![w(1, 1), w(20, 60)],
        "telegram" => vec![w(1, 1)],
        "slack" => vec![w(1, 1)],
        "webhook" => vec![w(50, 1)],
        // PagerDuty: 120 events per minute per integration key.
        "pagerduty" => vec![w(120, 60)],
        _ => vec![w(10, 1)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse() {
        assert_eq!(
            "5/2s".parse::<Window>(),
            Ok(Window {
                count: 5,
                window: Duration::from_secs(2)
            })
        );
        assert_eq!(
            "30/1m".parse::<Window>().map(|w| w.window),
            Ok(Duration::from_secs(60))
        );
        assert!("0/1s".parse::<Window>().is_err());
        assert!("5/2x".parse::<Window>().is_err());
        assert!("five".parse::<Window>().is_err());
    }

    #[test]
    fn discord_budget_allows_5_per_2s_and_30_per_minute() {
        let mut b = Budget::new(defaults("discord", false));
        let t0 = Instant::now();
        let mut now = t0;
        let mut times = Vec::new();
        for _ in 0..40 {
            now += b.wait(now);
            b.record(now);
            times.push(now.duration_since(t0));
        }
        // Never more than 5 in any 2 s, nor 30 in any 60 s.
        for (i, t) in times.iter().enumerate() {
            let in2 = times[i..]
                .iter()
                .filter(|u| **u - *t < Duration::from_secs(2))
                .count();
            let in60 = times[i..]
                .iter()
                .filter(|u| **u - *t < Duration::from_secs(60))
                .count();
            assert!(in2 <= 5 && in60 <= 30, "{i}: {in2} {in60}");
        }
        // The first five go at once; the 6th waits 2 s; the 31st waits for the minute.
        assert_eq!(times[4], Duration::ZERO);
        assert_eq!(times[5], Duration::from_secs(2));
        assert_eq!(times[30], Duration::from_secs(60));
    }

    #[test]
    fn a_429_pause_is_honoured() {
        let mut b = Budget::new(Vec::new());
        let now = Instant::now();
        assert_eq!(b.wait(now), Duration::ZERO);
        b.pause(now, Duration::from_millis(1500));
        assert_eq!(b.wait(now), Duration::from_millis(1500));
        assert_eq!(b.wait(now + Duration::from_secs(2)), Duration::ZERO);
    }
}

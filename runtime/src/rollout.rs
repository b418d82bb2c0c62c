//! Staged canary rollouts: a release gets a growing share of traffic, step by step, and after
//! each step its requests are compared with the stable release's over the same window. It is
//! promoted when every step passes, and rolled back at once when one fails, with the reason
//! recorded. The state is written to the state directory after every change, so a restarted
//! `vitrine up` resumes the rollout where it was.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Latency buckets: upper bounds 50 µs × 1.2^i, up to ~100 s.
const BUCKETS: usize = 80;

fn bucket_bound_ms(i: usize) -> f64 {
    0.05 * 1.2f64.powi(i as i32)
}

/// Requests, server errors and latencies of one release since the window opened.
#[derive(Debug, Clone, Default)]
struct Window {
    requests: u64,
    errors: u64,
    latency: Vec<u64>,
    /// Business metrics reported by the guests: (sum, count) by name.
    metrics: BTreeMap<String, (f64, u64)>,
}

impl Window {
    fn summary(&self) -> WindowSummary {
        let mut p99_ms = 0.0;
        let wanted = (self.requests as f64 * 0.99).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= wanted && *n > 0 {
                p99_ms = bucket_bound_ms(i);
                break;
            }
        }
        WindowSummary {
            metrics: (self.metrics.iter())
                .map(|(name, (sum, n))| (name.clone(), *sum / *n as f64))
                .collect(),
            requests: self.requests,
            errors: self.errors,
            success_rate: match self.requests {
                0 => 1.0,
                n => 1.0 - self.errors as f64 / n as f64,
            },
            p99_ms,
        }
    }
}

/// Per-release request windows, recorded by the HTTP trigger.
#[derive(Debug, Default)]
pub struct ReleaseStats(Mutex<HashMap<String, Window>>);

impl ReleaseStats {
    /// Records a request to `release` answered with `status` after `elapsed`.
    pub fn record(&self, release: &str, status: u16, elapsed: Duration) {
        let mut windows = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let window = match windows.get_mut(release) {
            Some(window) => window,
            None => windows.entry(release.to_string()).or_default(),
        };
        window.requests += 1;
        window.errors += u64::from(status >= 500);
        if window.latency.is_empty() {
            window.latency = vec![0; BUCKETS];
        }
        let ms = elapsed.as_secs_f64() * 1e3;
        let i = (0..BUCKETS)
            .find(|i| ms <= bucket_bound_ms(*i))
            .unwrap_or(BUCKETS - 1);
        window.latency[i] += 1;
    }

    /// Records a business metric a guest of `release` reported.
    pub fn record_metric(&self, release: &str, name: &str, value: f64) {
        let mut windows = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let window = match windows.get_mut(release) {
            Some(window) => window,
            None => windows.entry(release.to_string()).or_default(),
        };
        let (sum, n) = window.metrics.entry(name.to_string()).or_default();
        *sum += value;
        *n += 1;
    }

    /// The window of `release` so far.
    pub fn peek(&self, release: &str) -> WindowSummary {
        let windows = self.0.lock().unwrap_or_else(|e| e.into_inner());
        windows.get(release).cloned().unwrap_or_default().summary()
    }

    /// Closes the windows of `releases` (their summaries) and opens new ones.
    pub fn take(&self, releases: &[&str]) -> Vec<WindowSummary> {
        let mut windows = self.0.lock().unwrap_or_else(|e| e.into_inner());
        releases
            .iter()
            .map(|r| windows.remove(*r).unwrap_or_default().summary())
            .collect()
    }
}

/// A window's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowSummary {
    /// Requests answered.
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
    /// 1 − errors / requests (1 without requests).
    pub success_rate: f64,
    /// 99th percentile latency, ms (a bucket's upper bound; 0 without requests).
    pub p99_ms: f64,
    /// Business metrics: the mean of the values reported, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
}

/// What a step must show to pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Analysis {
    /// Requests the canary must have answered before it is judged (the step waits longer).
    pub min_requests: u64,
    /// The canary's lowest success rate (non-5xx share).
    pub min_success_rate: f64,
    /// The canary's p99 may be at most this times the stable release's…
    pub max_p99_ratio: f64,
    /// …plus this many milliseconds (latencies of a few ms are noisy).
    pub p99_slack_ms: f64,
    /// Business metrics (by name) whose canary mean may differ from the stable release's by
    /// at most this much; judged when both releases reported the metric in the window.
    pub max_metric_drift: BTreeMap<String, f64>,
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            min_requests: 50,
            min_success_rate: 0.99,
            max_p99_ratio: 1.5,
            p99_slack_ms: 5.0,
            max_metric_drift: BTreeMap::new(),
        }
    }
}

impl Analysis {
    /// Checks the thresholds make sense; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.min_success_rate) {
            return Err(format!(
                "min_success_rate {} is not within 0..1",
                self.min_success_rate
            ));
        }
        if !(self.max_p99_ratio.is_finite() && self.max_p99_ratio >= 1.0) {
            return Err(format!(
                "max_p99_ratio {} must be at least 1",
                self.max_p99_ratio
            ));
        }
        if !(self.p99_slack_ms.is_finite() && self.p99_slack_ms >= 0.0) {
            return Err(format!(
                "p99_slack_ms {} must be 0 or more",
                self.p99_slack_ms
            ));
        }
        if let Some((name, bound)) =
            (self.max_metric_drift.iter()).find(|(_, b)| !(b.is_finite() && **b >= 0.0))
        {
            return Err(format!("max_metric_drift.{name} {bound} must be 0 or more"));
        }
        Ok(())
    }

    /// `Ok` with what passed, or `Err` with why the canary fails against the stable release.
    pub fn judge(&self, canary: &WindowSummary, stable: &WindowSummary) -> Result<String, String> {
        if canary.success_rate < self.min_success_rate {
            return Err(format!(
                "success rate {:.2}% < {:.2}% ({} of {} requests failed)",
                canary.success_rate * 100.0,
                self.min_success_rate * 100.0,
                canary.errors,
                canary.requests
            ));
        }
        let limit = stable.p99_ms * self.max_p99_ratio + self.p99_slack_ms;
        if stable.requests > 0 && canary.p99_ms > limit {
            return Err(format!(
                "p99 {:.1} ms > {:.1} ms ({} × stable {:.1} ms + {} ms)",
                canary.p99_ms, limit, self.max_p99_ratio, stable.p99_ms, self.p99_slack_ms
            ));
        }
        for (name, bound) in &self.max_metric_drift {
            let (Some(c), Some(s)) = (canary.metrics.get(name), stable.metrics.get(name)) else {
                continue;
            };
            if (c - s).abs() > *bound {
                return Err(format!(
                    "{name} {c:.4} drifts from stable {s:.4} by more than {bound}"
                ));
            }
        }
        Ok(format!(
            "success rate {:.2}%, p99 {:.1} ms (stable {:.1} ms)",
            canary.success_rate * 100.0,
            canary.p99_ms,
            stable.p99_ms
        ))
    }
}

/// A rollout as asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The canary release (label or digest).
    pub release: String,
    /// Its weight at each step, percent, increasing, ending at 100.
    pub steps: Vec<u32>,
    /// How long each step lasts before it is judged, ms.
    pub interval_ms: u64,
    /// What each step must show.
    #[serde(default)]
    pub analysis: Analysis,
}

impl Plan {
    /// Checks the plan; the error names the problem.
    pub fn check(&self) -> Result<(), String> {
        if self.steps.is_empty() || self.steps.last() != Some(&100) {
            return Err("steps must end at 100".into());
        }
        if self.steps.windows(2).any(|w| w[0] >= w[1]) || self.steps[0] == 0 {
            return Err(format!("steps {:?} must increase from above 0", self.steps));
        }
        if self.interval_ms < 10 {
            return Err(format!("interval {} ms is under 10 ms", self.interval_ms));
        }
        self.analysis.check()
    }
}

/// Where a rollout is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum Status {
    /// Stepping.
    Running,
    /// Every step passed: the canary is the stable release.
    Promoted,
    /// A step failed, or the canary could not be served: traffic is back on the stable
    /// release.
    RolledBack(String),
    /// Stopped on request: traffic is back on the stable release.
    Aborted,
}

/// One step's judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// When (RFC 3339).
    pub at: String,
    /// The canary's weight during the step.
    pub weight: u32,
    /// Whether it passed.
    pub passed: bool,
    /// Why.
    pub reason: String,
    /// The canary's window.
    pub canary: WindowSummary,
    /// The stable release's window.
    pub stable: WindowSummary,
}

/// A rollout's state, as stored and as `GET /admin/rollout` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    /// What was asked.
    pub plan: Plan,
    /// The release the canary is compared with (and falls back to).
    pub stable: String,
    /// The step in force (index into `plan.steps`).
    pub step: usize,
    /// Where it is.
    pub status: Status,
    /// When it started (RFC 3339).
    pub started: String,
    /// The judgements so far, oldest first.
    pub history: Vec<Verdict>,
}

impl RolloutState {
    /// The canary's weight now.
    pub fn weight(&self) -> u32 {
        match &self.status {
            Status::Running => self.plan.steps[self.step],
            Status::Promoted => 100,
            Status::RolledBack(_) | Status::Aborted => 0,
        }
    }
}

/// Parses a duration like `60s`, `500ms`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 60s, 500ms or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("`{text}` is not a duration like 60s, 500ms or 2m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(requests: u64, errors: u64, latency_ms: f64) -> WindowSummary {
        let stats = ReleaseStats::default();
        for n in 0..requests {
            let status = if n < errors { 500 } else { 200 };
            stats.record("r", status, Duration::from_secs_f64(latency_ms / 1e3));
        }
        stats.take(&["r"]).remove(0)
    }

    #[test]
    fn windows_count_errors_and_the_99th_percentile() {
        let w = window(1000, 10, 20.0);
        assert_eq!((w.requests, w.errors), (1000, 10));
        assert!((w.success_rate - 0.99).abs() < 1e-9);
        assert!(w.p99_ms >= 20.0 && w.p99_ms < 24.1, "{}", w.p99_ms);
        // One slow request in a hundred is the p99; in a thousand it is not.
        let stats = ReleaseStats::default();
        for n in 0..1000 {
            let ms = if n % 100 == 0 { 500.0 } else { 2.0 };
            stats.record("r", 200, Duration::from_secs_f64(ms / 1e3));
        }
        assert!(stats.peek("r").p99_ms < 3.0);
        assert_eq!(
            stats.take(&["r", "none"])[1],
            WindowSummary {
                success_rate: 1.0,
                ..Default::default()
            }
        );
    }

    #[test]
    fn judgements_name_what_failed() {
        let analysis = Analysis::default();
        let stable = window(1000, 0, 10.0);
        assert!(analysis.judge(&window(100, 0, 10.0), &stable).is_ok());
        let e = analysis.judge(&window(100, 10, 10.0), &stable).unwrap_err();
        assert!(e.starts_with("success rate 90.00% < 99.00%"), "{e}");
        let e = analysis.judge(&window(100, 0, 60.0), &stable).unwrap_err();
        assert!(e.starts_with("p99 "), "{e}");
        // Business metrics: the decline rate may drift by 0.05.
        let analysis = Analysis {
            max_metric_drift: BTreeMap::from([("declined".to_string(), 0.05)]),
            ..Analysis::default()
        };
        let rates = |declined: u32| {
            let stats = ReleaseStats::default();
            for n in 0..100 {
                stats.record("r", 200, Duration::from_millis(1));
                stats.record_metric("r", "declined", f64::from(u32::from(n < declined)));
            }
            stats.take(&["r"]).remove(0)
        };
        assert!(analysis.judge(&rates(12), &rates(10)).is_ok());
        let e = analysis.judge(&rates(30), &rates(10)).unwrap_err();
        assert!(
            e.starts_with("declined 0.3000 drifts from stable 0.1000"),
            "{e}"
        );
        // Not reported by the canary: not judged.
        assert!(analysis.judge(&window(100, 0, 1.0), &rates(10)).is_ok());
    }

    #[test]
    fn plans_and_durations_are_checked() {
        let plan = |steps: Vec<u32>| Plan {
            release: "v2".into(),
            steps,
            interval_ms: 1000,
            analysis: Analysis::default(),
        };
        assert!(plan(vec![1, 5, 25, 50, 100]).check().is_ok());
        assert!(plan(vec![1, 50]).check().is_err());
        assert!(plan(vec![5, 5, 100]).check().is_err());
        assert!(plan(vec![0, 100]).check().is_err());
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
    }
}

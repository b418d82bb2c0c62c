//! Off-policy evaluation: how much reward a *target* policy would have earned, estimated from
//! decisions a *logging* policy made, each logged with the probability (propensity) it had of
//! choosing the action it chose.
//!
//! - **IPS** (inverse propensity scoring): the mean of `w·r`, where `w = π(a|x) / p` is the
//!   target policy's probability of the logged action over the logged propensity. Unbiased;
//!   high variance when weights are large.
//! - **SNIPS** (self-normalized IPS): `Σ w·r / Σ w`. Slightly biased, much steadier.
//! - **DR** (doubly robust): a reward model `q̂(x, a)` (ridge regression per action on the
//!   context features, fitted on one half of the rows and applied to the other, both ways)
//!   plus an IPS correction of its error: the mean of `Σₐ π(a|x)·q̂(x,a) + w·(r − q̂(x,a))`.
//!   Unbiased if either the propensities or the model are right.
//!
//! Each comes with a 95% interval: the 2.5th and 97.5th percentiles of the estimate over
//! bootstrap resamples of the rows (the reward model's predictions held fixed). The
//! effective sample size `(Σ w)² / Σ w²` says how many rows the estimate really rests on.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Propensities below this make the weights, and the estimates, fragile.
pub const TINY_PROPENSITY: f64 = 0.01;

/// Ridge penalty of the reward model.
const RIDGE: f64 = 1.0;

/// One logged decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    /// The context's features.
    pub features: Vec<f64>,
    /// The action taken (an index into the actions).
    pub action: usize,
    /// The reward observed.
    pub reward: f64,
    /// The logging policy's probability of that action (0 < p ≤ 1).
    pub propensity: f64,
}

/// The policy whose value is estimated.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// Every action with equal probability.
    Uniform,
    /// Always this action.
    Always(usize),
    /// The policy that logged the data (a sanity check: its estimate is the logged mean).
    Logging,
    /// The action the reward model (fitted on all rows) rates best for the context.
    Greedy,
}

/// Why an evaluation cannot be made.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OpeError {
    /// No usable rows.
    #[error("no logged decisions to evaluate")]
    Empty,
    /// A row does not fit the others.
    #[error("row {row}: {problem}")]
    BadRow {
        /// The row (0-based).
        row: usize,
        /// What is wrong.
        problem: String,
    },
    /// The policy names an action that does not exist.
    #[error("the policy's action {0} is not one of the {1} actions")]
    NoSuchAction(usize, usize),
}

/// An estimate with its 95% bootstrap interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The point estimate.
    pub value: f64,
    /// 2.5th percentile over the bootstrap resamples.
    pub low: f64,
    /// 97.5th percentile.
    pub high: f64,
}

/// The evaluation of one policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Rows evaluated.
    pub rows: usize,
    /// The mean logged reward (the logging policy's value).
    pub logged_mean: f64,
    /// Inverse propensity scoring.
    pub ips: Estimate,
    /// Self-normalized IPS.
    pub snips: Estimate,
    /// Doubly robust.
    pub dr: Estimate,
    /// `(Σ w)² / Σ w²`.
    pub effective_sample_size: f64,
    /// Rows whose propensity is below [`TINY_PROPENSITY`].
    pub tiny_propensities: usize,
}

/// Evaluates `policy` over `actions` actions on `logs`, with `resamples` bootstrap resamples
/// drawn from `seed`.
pub fn evaluate(
    logs: &[Logged],
    actions: usize,
    policy: &Policy,
    resamples: usize,
    seed: u64,
) -> Result<Evaluation, OpeError> {
    let Some(first) = logs.first() else {
        return Err(OpeError::Empty);
    };
    let dims = first.features.len();
    for (row, l) in logs.iter().enumerate() {
        let bad = |problem: String| OpeError::BadRow { row, problem };
        if l.features.len() != dims {
            return Err(bad(format!("{} features, not {dims}", l.features.len())));
        }
        if l.action >= actions {
            return Err(bad(format!("action {} of {actions}", l.action)));
        }
        if !(l.propensity > 0.0 && l.propensity <= 1.0) {
            return Err(bad(format!("propensity {} is not in (0, 1]", l.propensity)));
        }
        if !l.reward.is_finite() || l.features.iter().any(|f| !f.is_finite()) {
            return Err(bad("a reward or feature is not a finite number".into()));
        }
    }
    if let Policy::Always(a) = policy {
        if *a >= actions {
            return Err(OpeError::NoSuchAction(*a, actions));
        }
    }
    // Cross-fitted predictions for DR; a model on all rows for the greedy policy.
    let half = logs.len() / 2;
    let (first_half, second_half) = logs.split_at(half);
    let model_a = RewardModel::fit(second_half, actions, dims);
    let model_b = RewardModel::fit(first_half, actions, dims);
    let everything = RewardModel::fit(logs, actions, dims);
    let target = |l: &Logged| -> Vec<f64> {
        match policy {
            Policy::Uniform => vec![1.0 / actions as f64; actions],
            Policy::Always(a) => (0..actions).map(|b| f64::from(u8::from(b == *a))).collect(),
            Policy::Logging => (0..actions)
                .map(|b| if b == l.action { l.propensity } else { 0.0 })
                .collect(),
            Policy::Greedy => {
                let best = everything.best(&l.features);
                (0..actions)
                    .map(|b| f64::from(u8::from(b == best)))
                    .collect()
            }
        }
    };
    // Per row: weight, w·r, and the DR term.
    let terms: Vec<(f64, f64, f64)> = logs
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let probabilities = target(l);
            let w = probabilities[l.action] / l.propensity;
            let model = if i < half { &model_a } else { &model_b };
            let dr = match policy {
                // The logging policy's full distribution is not logged: its direct term is
                // the model at the logged action, which the correction cancels.
                Policy::Logging => l.reward,
                _ => {
                    let direct: f64 = (0..actions)
                        .map(|a| probabilities[a] * model.predict(a, &l.features))
                        .sum();
                    direct + w * (l.reward - model.predict(l.action, &l.features))
                }
            };
            (w, w * l.reward, dr)
        })
        .collect();
    let estimates = |rows: &mut dyn Iterator<Item = &(f64, f64, f64)>| {
        let (mut n, mut sw, mut swr, mut sdr) = (0.0, 0.0, 0.0, 0.0);
        for (w, wr, dr) in rows {
            n += 1.0;
            sw += w;
            swr += wr;
            sdr += dr;
        }
        let snips = if sw > 0.0 { swr / sw } else { 0.0 };
        [swr / n, snips, sdr / n]
    };
    let point = estimates(&mut terms.iter());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut samples: [Vec<f64>; 3] = Default::default();
    for _ in 0..resamples {
        let mut draw = (0..terms.len()).map(|_| &terms[rng.random_range(0..terms.len())]);
        for (k, value) in estimates(&mut draw).into_iter().enumerate() {
            samples[k].push(value);
        }
    }
    let interval = |k: usize| {
        let mut s = samples[k].clone();
        s.sort_by(f64::total_cmp);
        let at = |q: f64| match s.len() {
            0 => point[k],
            n => s[((n - 1) as f64 * q).round() as usize],
        };
        Estimate {
            value: point[k],
            low: at(0.025),
            high: at(0.975),
        }
    };
    let (sw, sw2) = terms
        .iter()
        .fold((0.0, 0.0), |(a, b), (w, _, _)| (a + w, b + w * w));
    Ok(Evaluation {
        rows: logs.len(),
        logged_mean: logs.iter().map(|l| l.reward).sum::<f64>() / logs.len() as f64,
        ips: interval(0),
        snips: interval(1),
        dr: interval(2),
        effective_sample_size: if sw2 > 0.0 { sw * sw / sw2 } else { 0.0 },
        tiny_propensities: logs
            .iter()
            .filter(|l| l.propensity < TINY_PROPENSITY)
            .count(),
    })
}

/// Ridge regression of the reward on the features (and an intercept), one per action.
struct RewardModel {
    /// Coefficients per action: intercept first.
    coefficients: Vec<Vec<f64>>,
}

impl RewardModel {
    fn fit(logs: &[Logged], actions: usize, dims: usize) -> Self {
        let k = dims + 1;
        let coefficients = (0..actions)
            .map(|a| {
                // Normal equations (XᵀX + λI) β = Xᵀy, the intercept unpenalized.
                let mut xtx = vec![vec![0.0; k]; k];
                let mut xty = vec![0.0; k];
                for l in logs.iter().filter(|l| l.action == a) {
                    let x: Vec<f64> = std::iter::once(1.0)
                        .chain(l.features.iter().copied())
                        .collect();
                    for i in 0..k {
                        xty[i] += x[i] * l.reward;
                        for j in 0..k {
                            xtx[i][j] += x[i] * x[j];
                        }
                    }
                }
                for (i, row) in xtx.iter_mut().enumerate().skip(1) {
                    row[i] += RIDGE;
                }
                // An action never taken: predict nothing (0) rather than fail.
                xtx[0][0] += 1e-9;
                solve(xtx, xty)
            })
            .collect();
        Self { coefficients }
    }

    fn predict(&self, action: usize, features: &[f64]) -> f64 {
        let beta = &self.coefficients[action];
        beta[0]
            + features
                .iter()
                .zip(&beta[1..])
                .map(|(x, b)| x * b)
                .sum::<f64>()
    }

    /// The action with the highest predicted reward (the lowest index on ties).
    fn best(&self, features: &[f64]) -> usize {
        (0..self.coefficients.len())
            .map(|a| (a, self.predict(a, features)))
            .fold((0, f64::NEG_INFINITY), |best, (a, v)| {
                if v > best.1 {
                    (a, v)
                } else {
                    best
                }
            })
            .0
    }
}

/// Solves the symmetric positive definite system `m x = v` (Gaussian elimination with
/// partial pivoting; the systems are a handful of unknowns).
fn solve(mut m: Vec<Vec<f64>>, mut v: Vec<f64>) -> Vec<f64> {
    let n = v.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|a, b| m[*a][col].abs().total_cmp(&m[*b][col].abs()))
            .unwrap_or(col);
        m.swap(col, pivot);
        v.swap(col, pivot);
        let p = m[col][col];
        if p.abs() < 1e-12 {
            continue;
        }
        let (upper, lower) = m.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for (k, row) in lower.iter_mut().enumerate() {
            let f = row[col] / p;
            for (c, value) in row.iter_mut().enumerate().skip(col) {
                *value -= f * pivot_row[c];
            }
            v[col + 1 + k] -= f * v[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let rest: f64 = (row + 1..n).map(|c| m[row][c] * x[c]).sum();
        x[row] = if m[row][row].abs() < 1e-12 {
            0.0
        } else {
            (v[row] - rest) / m[row][row]
        };
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context-dependent problem with a known answer: one binary feature; three actions
    /// whose conversion rates depend on it; a logging policy that favours action 0.
    fn simulate(n: usize, seed: u64) -> Vec<Logged> {
        let rates = [[0.05, 0.02], [0.02, 0.10], [0.04, 0.04]];
        let logging = [0.6, 0.2, 0.2];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let x = usize::from(rng.random_bool(0.5));
                let u: f64 = rng.random();
                let action = if u < logging[0] {
                    0
                } else if u < logging[0] + logging[1] {
                    1
                } else {
                    2
                };
                let reward = f64::from(u8::from(rng.random_bool(rates[action][x])));
                Logged {
                    features: vec![x as f64],
                    action,
                    reward,
                    propensity: logging[action],
                }
            })
            .collect()
    }

    /// The true values: always action 1, (0.02 + 0.10) / 2; greedy (action 0 when x = 0,
    /// 1 when x = 1), (0.05 + 0.10) / 2; uniform, the mean of the six rates.
    const TRUTHS: [(Policy, f64); 3] = [
        (Policy::Always(1), 0.06),
        (Policy::Greedy, 0.075),
        (Policy::Uniform, 0.045),
    ];

    #[test]
    fn estimates_are_unbiased_over_simulations() {
        for (policy, truth) in TRUTHS {
            let mut means = [0.0; 3];
            for seed in 1..=8 {
                let e = evaluate(&simulate(40_000, seed), 3, &policy, 0, 1).unwrap();
                for (k, est) in [e.ips, e.snips, e.dr].iter().enumerate() {
                    means[k] += est.value / 8.0;
                }
            }
            // One simulation's standard error is ≤ 0.003; eight of them, ≤ 0.0011.
            for mean in means {
                assert!(
                    (mean - truth).abs() < 0.0035,
                    "{policy:?}: {mean} vs {truth}"
                );
            }
        }
    }

    #[test]
    fn intervals_cover_the_true_value() {
        let logs = simulate(40_000, 1);
        for (policy, truth) in TRUTHS {
            let e = evaluate(&logs, 3, &policy, 300, 1).unwrap();
            for (name, est) in [("IPS", &e.ips), ("SNIPS", &e.snips), ("DR", &e.dr)] {
                assert!(
                    est.low <= truth && truth <= est.high && est.high - est.low < 0.03,
                    "{policy:?} {name}: {est:?} vs {truth}"
                );
            }
        }
    }

    #[test]
    fn the_logging_policy_reproduces_the_logged_mean() {
        let logs = simulate(5_000, 3);
        let e = evaluate(&logs, 3, &Policy::Logging, 200, 1).unwrap();
        for est in [&e.ips, &e.snips, &e.dr] {
            assert!(
                (est.value - e.logged_mean).abs() < 1e-12,
                "{est:?} vs {}",
                e.logged_mean
            );
            assert!(est.low <= e.logged_mean && e.logged_mean <= est.high);
        }
        assert!((e.effective_sample_size - 5_000.0).abs() < 1e-6);
        // Always 1 rests on the fifth of rows that took it.
        let e = evaluate(&logs, 3, &Policy::Always(1), 10, 1).unwrap();
        assert!(
            (e.effective_sample_size / 5_000.0 - 0.2).abs() < 0.03,
            "{}",
            e.effective_sample_size
        );
    }

    #[test]
    fn bad_rows_and_policies_are_named() {
        let mut logs = simulate(10, 1);
        assert_eq!(
            evaluate(&[], 3, &Policy::Uniform, 10, 1),
            Err(OpeError::Empty)
        );
        assert_eq!(
            evaluate(&logs, 3, &Policy::Always(5), 10, 1),
            Err(OpeError::NoSuchAction(5, 3))
        );
        logs[4].propensity = 0.0;
        let e = evaluate(&logs, 3, &Policy::Uniform, 10, 1).unwrap_err();
        assert!(e.to_string().starts_with("row 4: propensity 0"), "{e}");
        logs[4].propensity = 0.5;
        logs[6].features.push(1.0);
        let e = evaluate(&logs, 3, &Policy::Uniform, 10, 1).unwrap_err();
        assert_eq!(e.to_string(), "row 6: 2 features, not 1");
    }
}

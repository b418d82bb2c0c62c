//! Learning policies: which arm to show, learned from rewards.
//!
//! - [`Policy::Uniform`]: every arm alike (exploration, and the baseline).
//! - [`Policy::Thompson`]: Beta–Bernoulli Thompson sampling per arm. Each arm's conversion
//!   rate has a Beta(1 + conversions, 1 + misses) posterior; a decision draws one rate per arm
//!   and shows the highest.
//! - [`Policy::LinUcb`]: one ridge regression of the reward on the context features per arm,
//!   with its inverse covariance kept up to date (Sherman–Morrison, `O(d²)` per update). A
//!   decision shows the arm with the highest `θ̂·x + α·√(xᵀA⁻¹x)`.
//!
//! The state is plain data (serde), so a host can keep it in a database and update it in a
//! transaction; [`Policy::to_bytes`] is its compact form for that.

use rand::Rng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

/// Exploration weight of LinUCB's confidence bonus.
pub const LINUCB_ALPHA: f64 = 0.5;

/// A policy and what it has learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Every arm with the same probability.
    Uniform {
        /// How many arms.
        arms: usize,
    },
    /// Beta–Bernoulli Thompson sampling.
    Thompson {
        /// Conversions + 1, per arm.
        alpha: Vec<f64>,
        /// Misses + 1, per arm.
        beta: Vec<f64>,
    },
    /// LinUCB over `dims` context features.
    LinUcb {
        /// `A⁻¹` per arm (`dims × dims`, row-major), `A = I + Σ x xᵀ`.
        a_inverse: Vec<Vec<f64>>,
        /// `b = Σ r x` per arm.
        b: Vec<Vec<f64>>,
        /// Context features.
        dims: usize,
    },
}

impl Policy {
    /// Uniform over `arms`.
    pub fn uniform(arms: usize) -> Self {
        Self::Uniform { arms }
    }

    /// Thompson sampling over `arms`, nothing learned yet.
    pub fn thompson(arms: usize) -> Self {
        Self::Thompson {
            alpha: vec![1.0; arms],
            beta: vec![1.0; arms],
        }
    }

    /// LinUCB over `arms` with `dims` features, nothing learned yet.
    pub fn linucb(arms: usize, dims: usize) -> Self {
        let identity: Vec<f64> = (0..dims * dims)
            .map(|i| f64::from(u8::from(i % (dims + 1) == 0)))
            .collect();
        Self::LinUcb {
            a_inverse: vec![identity; arms],
            b: vec![vec![0.0; dims]; arms],
            dims,
        }
    }

    /// How many arms.
    pub fn arms(&self) -> usize {
        match self {
            Self::Uniform { arms } => *arms,
            Self::Thompson { alpha, .. } => alpha.len(),
            Self::LinUcb { b, .. } => b.len(),
        }
    }

    /// The arm to show for context `x`.
    pub fn choose(&self, x: &[f64], rng: &mut impl Rng) -> usize {
        match self {
            Self::Uniform { arms } => rng.random_range(0..*arms),
            Self::Thompson { alpha, beta } => argmax(
                alpha
                    .iter()
                    .zip(beta)
                    .map(|(a, b)| Beta::new(*a, *b).map_or(0.0, |d| d.sample(rng))),
            ),
            Self::LinUcb { a_inverse, b, dims } => argmax((0..b.len()).map(|arm| {
                let ai = &a_inverse[arm];
                let theta: Vec<f64> = (0..*dims)
                    .map(|i| (0..*dims).map(|j| ai[i * dims + j] * b[arm][j]).sum())
                    .collect();
                let mean: f64 = theta.iter().zip(x).map(|(t, x)| t * x).sum();
                let spread: f64 = (0..*dims)
                    .map(|i| x[i] * (0..*dims).map(|j| ai[i * dims + j] * x[j]).sum::<f64>())
                    .sum();
                mean + LINUCB_ALPHA * spread.max(0.0).sqrt()
            })),
        }
    }

    /// Learns that `arm`, shown for context `x`, earned `reward` (1 a conversion, 0 none):
    /// [`Self::shown`], then [`Self::rewarded`].
    pub fn update(&mut self, arm: usize, x: &[f64], reward: f64) {
        self.shown(arm, x, 1);
        self.rewarded(arm, x, reward);
    }

    /// Learns that `arm` was shown `times` times for context `x`: counted as earning nothing
    /// until [`Self::rewarded`] says otherwise (feedback arrives later, or never).
    pub fn shown(&mut self, arm: usize, x: &[f64], times: u64) {
        let k = times as f64;
        match self {
            Self::Uniform { .. } => {}
            Self::Thompson { beta, .. } => beta[arm] += k,
            Self::LinUcb {
                a_inverse, dims, ..
            } => {
                let n = *dims;
                let ai = &mut a_inverse[arm];
                // Sherman–Morrison: (A + k x xᵀ)⁻¹ = A⁻¹ − k (A⁻¹x)(A⁻¹x)ᵀ / (1 + k xᵀA⁻¹x).
                let u: Vec<f64> = (0..n)
                    .map(|i| (0..n).map(|j| ai[i * n + j] * x[j]).sum())
                    .collect();
                let denominator = 1.0 + k * x.iter().zip(&u).map(|(x, u)| x * u).sum::<f64>();
                for i in 0..n {
                    for j in 0..n {
                        ai[i * n + j] -= k * u[i] * u[j] / denominator;
                    }
                }
            }
        }
    }

    /// Learns that `arm`, already [`Self::shown`] for context `x`, earned `reward` (clamped to
    /// 0..=1 for Thompson sampling).
    pub fn rewarded(&mut self, arm: usize, x: &[f64], reward: f64) {
        match self {
            Self::Uniform { .. } => {}
            Self::Thompson { alpha, beta } => {
                let r = reward.clamp(0.0, 1.0);
                alpha[arm] += r;
                beta[arm] = (beta[arm] - r).max(1.0);
            }
            Self::LinUcb { b, .. } => {
                for (bi, xi) in b[arm].iter_mut().zip(x) {
                    *bi += reward * xi;
                }
            }
        }
    }
}

impl Policy {
    /// Each arm's probability of being shown for context `x`, as logged for off-policy
    /// evaluation: exact for uniform and LinUCB (which is deterministic), estimated from
    /// `draws` posterior draws for Thompson sampling; then mixed with the uniform
    /// distribution, so that no arm is below `epsilon / arms` (the exploration floor).
    pub fn probabilities(
        &self,
        x: &[f64],
        epsilon: f64,
        draws: usize,
        rng: &mut impl Rng,
    ) -> Vec<f64> {
        let arms = self.arms();
        let mut p = vec![0.0; arms];
        match self {
            Self::Uniform { .. } => p.iter_mut().for_each(|p| *p = 1.0 / arms as f64),
            Self::Thompson { alpha, beta } => {
                // The posteriors once, then `draws` samples of each (what `choose` does per
                // draw, without rebuilding the distributions).
                let posteriors: Vec<Option<Beta<f64>>> = (alpha.iter().zip(beta))
                    .map(|(a, b)| Beta::new(*a, *b).ok())
                    .collect();
                let draws = draws.max(1);
                for _ in 0..draws {
                    let arm = argmax(
                        (posteriors.iter()).map(|d| d.as_ref().map_or(0.0, |d| d.sample(rng))),
                    );
                    p[arm] += 1.0 / draws as f64;
                }
            }
            Self::LinUcb { .. } => p[self.choose(x, rng)] = 1.0,
        }
        let epsilon = epsilon.clamp(0.0, 1.0);
        p.iter()
            .map(|p| (1.0 - epsilon) * p + epsilon / arms as f64)
            .collect()
    }
}

/// Stored bytes that are not a policy.
#[derive(Debug, thiserror::Error)]
#[error("not a stored policy: {0}")]
pub struct NotAPolicy(#[from] postcard::Error);

impl Policy {
    /// The state in a compact binary form ([postcard](https://docs.rs/postcard): the numbers
    /// as 8-byte floats), which a decision reads in microseconds where JSON took a tenth of a
    /// millisecond for a LinUCB state.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// A state from [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, NotAPolicy> {
        Ok(postcard::from_bytes(bytes)?)
    }

    /// Each arm's probability of being shown whatever the context, for the policies whose
    /// choice does not depend on it (uniform, Thompson sampling): [`Self::probabilities`]
    /// with no context. None for LinUCB.
    pub fn context_free_probabilities(
        &self,
        epsilon: f64,
        draws: usize,
        rng: &mut impl Rng,
    ) -> Option<Vec<f64>> {
        match self {
            Self::LinUcb { .. } => None,
            _ => Some(self.probabilities(&[], epsilon, draws, rng)),
        }
    }
}

/// Draws an index from `probabilities` (which sum to 1).
pub fn draw(probabilities: &[f64], rng: &mut impl Rng) -> usize {
    let mut u: f64 = rng.random();
    for (i, p) in probabilities.iter().enumerate() {
        if u < *p {
            return i;
        }
        u -= p;
    }
    probabilities.len().saturating_sub(1)
}

/// The index of the largest value (the first on ties).
fn argmax(values: impl Iterator<Item = f64>) -> usize {
    values
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn thompson_finds_the_best_arm() {
        let rates = [0.02, 0.10, 0.05];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut policy = Policy::thompson(3);
        let mut shown = [0; 3];
        for t in 0..5_000 {
            let arm = policy.choose(&[], &mut rng);
            let reward = f64::from(u8::from(rng.random_bool(rates[arm])));
            policy.update(arm, &[], reward);
            if t >= 4_000 {
                shown[arm] += 1;
            }
        }
        assert!(shown[1] > 800, "{shown:?}");
    }

    #[test]
    fn linucb_keeps_the_inverse_of_its_ridge_statistics() {
        let mut policy = Policy::linucb(1, 2);
        let xs = [[1.0, 0.0], [1.0, 1.0], [0.5, 2.0]];
        for x in xs {
            policy.update(0, &x, 1.0);
        }
        let Policy::LinUcb { a_inverse, .. } = &policy else {
            unreachable!()
        };
        // A = I + Σ x xᵀ; A · A⁻¹ = I.
        let mut a = [[1.0, 0.0], [0.0, 1.0]];
        for x in xs {
            for (row, xi) in a.iter_mut().zip(x) {
                for (cell, xj) in row.iter_mut().zip(x) {
                    *cell += xi * xj;
                }
            }
        }
        for (i, row) in a.iter().enumerate() {
            for j in 0..2 {
                let product: f64 = (0..2).map(|k| row[k] * a_inverse[0][k * 2 + j]).sum();
                assert!(
                    (product - f64::from(u8::from(i == j))).abs() < 1e-9,
                    "{i},{j}: {product}"
                );
            }
        }
    }

    #[test]
    fn a_context_shown_k_times_at_once_is_learned_as_k_times_one_by_one() {
        let (x, mut once, mut one_by_one) =
            ([1.0, 0.3, -0.7], Policy::linucb(2, 3), Policy::linucb(2, 3));
        once.shown(1, &x, 5);
        (0..5).for_each(|_| one_by_one.shown(1, &x, 1));
        let (Policy::LinUcb { a_inverse: a, .. }, Policy::LinUcb { a_inverse: b, .. }) =
            (&once, &one_by_one)
        else {
            unreachable!()
        };
        assert!(a
            .iter()
            .flatten()
            .zip(b.iter().flatten())
            .all(|(a, b)| (a - b).abs() < 1e-12));
        // Arm 1 learned (its A⁻¹ moved from the identity), arm 0 did not.
        assert!(a[1][0] < 0.5, "{a:?}");
        assert_eq!(a[0][0], 1.0);
    }

    #[test]
    fn probabilities_keep_the_exploration_floor() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut policy = Policy::thompson(4);
        for _ in 0..200 {
            policy.update(2, &[], 1.0);
            policy.update(0, &[], 0.0);
        }
        let p = policy.probabilities(&[], 0.2, 500, &mut rng);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(p.iter().all(|p| *p >= 0.05 - 1e-12), "{p:?}");
        assert!(p[2] > 0.8, "{p:?}");
        let mut counts = [0; 4];
        for _ in 0..10_000 {
            counts[draw(&p, &mut rng)] += 1;
        }
        assert!(
            (f64::from(counts[2]) / 10_000.0 - p[2]).abs() < 0.02,
            "{counts:?} {p:?}"
        );
    }

    #[test]
    fn policies_survive_a_round_trip_through_their_bytes() {
        let mut policy = Policy::linucb(2, 3);
        policy.update(1, &[1.0, 0.1, 1.0], 1.0);
        let bytes = policy.to_bytes();
        // The variant, then two arms of 9 + 3 floats, and the dimensions.
        assert!(
            bytes.len() >= 2 * 12 * 8 && bytes.len() < 2 * 12 * 8 + 16,
            "{}",
            bytes.len()
        );
        assert_eq!(Policy::from_bytes(&bytes).unwrap(), policy);
        assert!(Policy::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    }
}

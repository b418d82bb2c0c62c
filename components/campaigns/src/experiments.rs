//! Experiments: sticky assignment of shoppers to variants ([`assign`]), and the statistics of
//! a report — a variant against the control with 95% intervals: Welch's t for means
//! ([`welch`]), the delta method for relative uplift and ratio metrics ([`ratio`]), a
//! bootstrap for heavy-tailed ones like revenue ([`bootstrap`]); CUPED variance reduction
//! with a pre-period covariate ([`cuped`]; for ratio metrics [`ratio_cuped`]); the
//! sample-ratio-mismatch check ([`srm_p_value`]).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};

/// The variant (index into `weights`) of `shopper` in the experiment salted `salt`: the
/// FNV-1a hash of `salt`, a zero byte and the shopper id, mixed by MurmurHash3's finalizer
/// (FNV-1a's low bits barely change with the salt), reduced to the total weight; the same on
/// every instance and after restarts. `None` when the weights sum to 0.
pub fn assign(salt: &str, shopper: &str, weights: &[u32]) -> Option<usize> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in salt.bytes().chain([0]).chain(shopper.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    let mut point = hash % total;
    weights.iter().position(|w| {
        let w = u64::from(*w);
        if point < w {
            true
        } else {
            point -= w;
            false
        }
    })
}

/// An estimate with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    /// The point estimate.
    pub value: f64,
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

impl Interval {
    fn around(value: f64, half_width: f64) -> Self {
        Self {
            value,
            low: value - half_width,
            high: value + half_width,
        }
    }

    /// Whether the interval holds 0: no difference is shown.
    pub fn covers_zero(&self) -> bool {
        self.low <= 0.0 && self.high >= 0.0
    }
}

/// A variant against the control on one metric.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Comparison {
    /// The control's value (a mean, or a ratio of sums).
    pub control: f64,
    /// The variant's.
    pub variant: f64,
    /// Variant − control.
    pub absolute: Interval,
    /// Variant / control − 1; `None` when the control's value is 0.
    pub relative: Option<Interval>,
}

/// 97.5th percentile of the standard normal.
fn z() -> f64 {
    Normal::standard().inverse_cdf(0.975)
}

fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// The relative uplift `b/a − 1` of two independent estimates with variances `va`, `vb`,
/// by the delta method.
fn relative(a: f64, va: f64, b: f64, vb: f64) -> Option<Interval> {
    (a != 0.0).then(|| {
        let var = vb / (a * a) + b * b * va / a.powi(4);
        Interval::around(b / a - 1.0, z() * var.sqrt())
    })
}

/// Difference of means with Welch's t interval (unequal variances, Welch–Satterthwaite
/// degrees of freedom); the relative uplift by the delta method. `None` with fewer than 2
/// units in a group.
pub fn welch(control: &[f64], variant: &[f64]) -> Option<Comparison> {
    if control.len() < 2 || variant.len() < 2 {
        return None;
    }
    let (m0, v0) = mean_var(control);
    let (m1, v1) = mean_var(variant);
    let (s0, s1) = (v0 / control.len() as f64, v1 / variant.len() as f64);
    let se = (s0 + s1).sqrt();
    let half = if se == 0.0 {
        0.0
    } else {
        let df = (s0 + s1).powi(2)
            / (s0 * s0 / (control.len() - 1) as f64 + s1 * s1 / (variant.len() - 1) as f64);
        let t = StudentsT::new(0.0, 1.0, df).map_or(z(), |t| t.inverse_cdf(0.975));
        t * se
    };
    Some(Comparison {
        control: m0,
        variant: m1,
        absolute: Interval::around(m1 - m0, half),
        relative: relative(m0, s0, m1, s1),
    })
}

/// A ratio metric (Σ numerator / Σ denominator per group: events per session) with the
/// delta-method variance of each group's ratio; normal intervals. `None` with fewer than 2
/// units in a group or no denominator.
pub fn ratio(control: &[(f64, f64)], variant: &[(f64, f64)]) -> Option<Comparison> {
    let group = |units: &[(f64, f64)]| -> Option<(f64, f64)> {
        if units.len() < 2 {
            return None;
        }
        let n = units.len() as f64;
        let (ys, xs): (Vec<f64>, Vec<f64>) = units.iter().copied().unzip();
        let ((my, vy), (mx, vx)) = (mean_var(&ys), mean_var(&xs));
        if mx == 0.0 {
            return None;
        }
        let cov = units.iter().map(|(y, x)| (y - my) * (x - mx)).sum::<f64>() / (n - 1.0);
        let r = my / mx;
        let var = (vy - 2.0 * r * cov + r * r * vx) / (mx * mx * n);
        Some((r, var.max(0.0)))
    };
    let ((r0, v0), (r1, v1)) = (group(control)?, group(variant)?);
    Some(Comparison {
        control: r0,
        variant: r1,
        absolute: Interval::around(r1 - r0, z() * (v0 + v1).sqrt()),
        relative: relative(r0, v0, r1, v1),
    })
}

/// Difference of means and relative uplift with percentile intervals over `resamples`
/// bootstrap resamples of each group (seeded): for heavy-tailed metrics such as revenue.
pub fn bootstrap(
    control: &[f64],
    variant: &[f64],
    resamples: usize,
    seed: u64,
) -> Option<Comparison> {
    if control.len() < 2 || variant.len() < 2 || resamples < 10 {
        return None;
    }
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (m0, m1) = (mean(control), mean(variant));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut resample = |xs: &[f64]| {
        (0..xs.len())
            .map(|_| xs[rng.random_range(0..xs.len())])
            .sum::<f64>()
            / xs.len() as f64
    };
    let (mut diffs, mut ratios) = (Vec::new(), Vec::new());
    for _ in 0..resamples {
        let (a, b) = (resample(control), resample(variant));
        diffs.push(b - a);
        if a != 0.0 {
            ratios.push(b / a - 1.0);
        }
    }
    let interval = |value: f64, mut xs: Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
        Interval {
            value,
            low: at(0.025),
            high: at(0.975),
        }
    };
    let relative =
        (m0 != 0.0 && ratios.len() * 2 >= resamples).then(|| interval(m1 / m0 - 1.0, ratios));
    Some(Comparison {
        control: m0,
        variant: m1,
        absolute: interval(m1 - m0, diffs),
        relative,
    })
}

/// CUPED: `y − θ·(x − x̄)` with `θ = cov(x, y) / var(x)` over all units (every variant
/// together, so the adjustment is the same for each), and the share of `y`'s variance it
/// removes. Unchanged (and 0) when `x` does not vary.
pub fn cuped(y: &[f64], x: &[f64]) -> (Vec<f64>, f64) {
    if y.len() < 2 || y.len() != x.len() {
        return (y.to_vec(), 0.0);
    }
    let ((my, vy), (mx, vx)) = (mean_var(y), mean_var(x));
    if vx == 0.0 || vy == 0.0 {
        return (y.to_vec(), 0.0);
    }
    let n = y.len() as f64;
    let cov = y
        .iter()
        .zip(x)
        .map(|(a, b)| (a - my) * (b - mx))
        .sum::<f64>()
        / (n - 1.0);
    let theta = cov / vx;
    let adjusted: Vec<f64> = y.iter().zip(x).map(|(a, b)| a - theta * (b - mx)).collect();
    let (_, va) = mean_var(&adjusted);
    (adjusted, 1.0 - va / vy)
}

/// CUPED for a ratio metric ([`ratio`]), by linearization (Deng, Knoblich and Lu, 2018): each
/// unit's `(y − r·x) / x̄` — with its group's ratio `r` and mean denominator `x̄`, so that the
/// group mean's variance is the delta method's — adjusted by [`cuped`] with the same for the
/// pre-period (`control_pre`, `variant_pre`: one pair per unit, in the same order; the ratio
/// of all units). Each group's ratio moves by its mean adjustment. Returns the adjusted
/// comparison and the share of the variance removed; `None` like [`ratio`], or when the
/// pre-period has no denominator.
pub fn ratio_cuped(
    control: &[(f64, f64)],
    variant: &[(f64, f64)],
    control_pre: &[(f64, f64)],
    variant_pre: &[(f64, f64)],
) -> Option<(Comparison, f64)> {
    if control_pre.len() != control.len() || variant_pre.len() != variant.len() {
        return None;
    }
    // The ratio and the mean denominator of `units`.
    let ratio_of = |units: &[(f64, f64)]| -> Option<(f64, f64)> {
        let (sy, sx) = (units.iter()).fold((0.0, 0.0), |(a, b), (y, x)| (a + y, b + x));
        (units.len() >= 2 && sx > 0.0).then(|| (sy / sx, sx / units.len() as f64))
    };
    let linear = |units: &[(f64, f64)], (r, mx): (f64, f64)| -> Vec<f64> {
        units.iter().map(|(y, x)| (y - r * x) / mx).collect()
    };
    let (g0, g1) = (ratio_of(control)?, ratio_of(variant)?);
    let pre: Vec<(f64, f64)> = control_pre.iter().chain(variant_pre).copied().collect();
    let (l0, l1) = (linear(control, g0), linear(variant, g1));
    let all: Vec<f64> = l0.iter().chain(&l1).copied().collect();
    let (adjusted, _) = cuped(&all, &linear(&pre, ratio_of(&pre)?));
    let (a0, a1) = adjusted.split_at(control.len());
    // The adjusted ratio and its variance, and the plain variance.
    let group = |(r, _): (f64, f64), adjusted: &[f64], plain: &[f64]| {
        let (shift, var) = mean_var(adjusted);
        let n = adjusted.len() as f64;
        (r + shift, var / n, mean_var(plain).1 / n)
    };
    let ((r0, v0, p0), (r1, v1, p1)) = (group(g0, a0, &l0), group(g1, a1, &l1));
    let comparison = Comparison {
        control: r0,
        variant: r1,
        absolute: Interval::around(r1 - r0, z() * (v0 + v1).sqrt()),
        relative: relative(r0, v0, r1, v1),
    };
    let reduction = if p0 + p1 > 0.0 {
        1.0 - (v0 + v1) / (p0 + p1)
    } else {
        0.0
    };
    Some((comparison, reduction))
}

/// The p-value of Pearson's χ² test that `counts` (exposed units per variant) follow
/// `weights`: a small value (below 0.001, say) means the split is broken — a sample ratio
/// mismatch — and the comparisons should not be trusted.
pub fn srm_p_value(counts: &[u64], weights: &[u32]) -> Option<f64> {
    let n: u64 = counts.iter().sum();
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if counts.len() != weights.len() || counts.len() < 2 || n == 0 || total == 0 {
        return None;
    }
    let chi2: f64 = counts
        .iter()
        .zip(weights)
        .filter(|(_, w)| **w > 0)
        .map(|(c, w)| {
            let expected = n as f64 * f64::from(*w) / total as f64;
            (*c as f64 - expected).powi(2) / expected
        })
        .sum();
    let df = (weights.iter().filter(|w| **w > 0).count() - 1) as f64;
    let distribution = ChiSquared::new(df.max(1.0)).ok()?;
    Some(1.0 - distribution.cdf(chi2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_sticky_and_follows_the_weights() {
        let weights = [50, 30, 20];
        let mut counts = [0u32; 3];
        for i in 0..30_000 {
            let shopper = format!("s{i}");
            let v = assign("exp-1", &shopper, &weights).unwrap();
            assert_eq!(assign("exp-1", &shopper, &weights), Some(v));
            counts[v] += 1;
        }
        for (count, w) in counts.iter().zip(weights) {
            let share = f64::from(*count) / 30_000.0;
            assert!((share - f64::from(w) / 100.0).abs() < 0.015, "{counts:?}");
        }
        // Another salt shuffles shoppers independently.
        let moved = (0..1000)
            .filter(|i| {
                let s = format!("s{i}");
                assign("exp-1", &s, &[1, 1]) != assign("exp-2", &s, &[1, 1])
            })
            .count();
        assert!((400..600).contains(&moved), "{moved}");
        assert_eq!(assign("e", "s", &[0, 0]), None);
        assert_eq!(assign("e", "s", &[0, 3]), Some(1));
    }

    #[test]
    fn welch_matches_a_hand_computation() {
        // Means 2 and 4, variances 0.5 and 2.5 (n = 5 each): Welch's df ≈ 5.5.
        let a = [1.0, 2.0, 2.0, 2.0, 3.0]; // mean 2, var 0.5
        let b = [2.0, 3.0, 4.0, 5.0, 6.0]; // mean 4, var 2.5
        let c = welch(&a, &b).unwrap();
        let (s0, s1) = (0.5 / 5.0, 2.5 / 5.0);
        let df = (s0 + s1) * (s0 + s1) / (s0 * s0 / 4.0 + s1 * s1 / 4.0);
        let t = StudentsT::new(0.0, 1.0, df).unwrap().inverse_cdf(0.975);
        assert!((c.absolute.value - 2.0).abs() < 1e-12);
        assert!((c.absolute.high - (2.0 + t * (s0 + s1).sqrt())).abs() < 1e-12);
        assert!(t > 2.4 && t < 2.6, "t with 5.5 df is about 2.5: {t}");
        assert!((c.relative.unwrap().value - 1.0).abs() < 1e-12);
        assert!(!c.absolute.covers_zero());
        assert!(welch(&a, &[1.0]).is_none());
    }

    #[test]
    fn intervals_cover_the_truth_about_95_percent_of_the_time() {
        // 400 experiments with no effect: the interval should hold 0 in about 95% of them.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut covered = [0; 3];
        for run in 0..400 {
            let draw = |rng: &mut ChaCha8Rng| -> Vec<f64> {
                (0..300)
                    .map(|_| f64::from(u8::from(rng.random::<f64>() < 0.1)))
                    .collect()
            };
            let (a, b) = (draw(&mut rng), draw(&mut rng));
            covered[0] += usize::from(welch(&a, &b).unwrap().absolute.covers_zero());
            covered[1] += usize::from(bootstrap(&a, &b, 200, run).unwrap().absolute.covers_zero());
            let pairs = |xs: &[f64]| -> Vec<(f64, f64)> { xs.iter().map(|x| (*x, 1.0)).collect() };
            covered[2] += usize::from(
                ratio(&pairs(&a), &pairs(&b))
                    .unwrap()
                    .absolute
                    .covers_zero(),
            );
        }
        for c in covered {
            assert!((365..=395).contains(&c), "coverage {c}/400: {covered:?}");
        }
    }

    #[test]
    fn cuped_removes_the_variance_the_pre_period_explains() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x: Vec<f64> = (0..2000).map(|_| rng.random::<f64>() * 10.0).collect();
        let y: Vec<f64> = x.iter().map(|x| 2.0 * x + rng.random::<f64>()).collect();
        let (adjusted, reduction) = cuped(&y, &x);
        // y's variance is 4·var(x) + var(noise) = 4·8.33 + 0.083: nearly all explained.
        assert!(reduction > 0.99, "{reduction}");
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            (mean(&adjusted) - mean(&y)).abs() < 1e-9,
            "the mean is kept"
        );
        let unrelated: Vec<f64> = (0..2000).map(|_| rng.random::<f64>()).collect();
        assert!(cuped(&y, &unrelated).1 < 0.01);
        assert_eq!(cuped(&y, &vec![1.0; 2000]), (y.clone(), 0.0));
    }

    #[test]
    fn cuped_narrows_a_ratio_metric_its_pre_period_explains() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // Each shopper has a habit (events per session) that both periods share; the variant
        // has 5% more events.
        let mut shopper = |lift: f64| {
            let habit = 1.0 + rng.random::<f64>() * 9.0;
            let mut period = |lift: f64| {
                let sessions = f64::from(1 + rng.random_range(0..5u32));
                (
                    sessions * habit * lift * (0.9 + 0.2 * rng.random::<f64>()),
                    sessions,
                )
            };
            (period(lift), period(1.0))
        };
        let (control, control_pre): (Vec<_>, Vec<_>) = (0..2000).map(|_| shopper(1.0)).unzip();
        let (variant, variant_pre): (Vec<_>, Vec<_>) = (0..2000).map(|_| shopper(1.05)).unzip();
        let plain = ratio(&control, &variant).unwrap();
        let (adjusted, reduction) =
            ratio_cuped(&control, &variant, &control_pre, &variant_pre).unwrap();
        assert!(reduction > 0.5, "{reduction}");
        let half = |c: &Comparison| (c.absolute.high - c.absolute.low) / 2.0;
        assert!(
            half(&adjusted) < half(&plain) * 0.8,
            "{adjusted:?} {plain:?}"
        );
        // Both estimate the same difference.
        assert!(
            (adjusted.absolute.value - plain.absolute.value).abs() < half(&plain),
            "{adjusted:?} {plain:?}"
        );
        let relative = adjusted.relative.unwrap();
        assert!(relative.low < 0.05 && 0.05 < relative.high, "{relative:?}");
        // A pre-period unrelated to the shoppers explains nothing.
        let shuffled: Vec<(f64, f64)> = variant_pre.iter().rev().copied().collect();
        let unrelated = ratio_cuped(
            &control,
            &variant,
            &control_pre.iter().rev().copied().collect::<Vec<_>>(),
            &shuffled,
        );
        assert!(unrelated.unwrap().1 < 0.05);
    }

    #[test]
    fn a_broken_split_is_a_sample_ratio_mismatch() {
        let fine = srm_p_value(&[5_030, 4_970], &[1, 1]).unwrap();
        assert!(fine > 0.5, "{fine}");
        let broken = srm_p_value(&[5_300, 4_700], &[1, 1]).unwrap();
        assert!(broken < 1e-6, "{broken}");
        // χ² = 4 with 1 df: p = 0.0455.
        let p = srm_p_value(&[60, 40], &[1, 1]).unwrap();
        assert!((p - 0.0455).abs() < 1e-3, "{p}");
        assert!(srm_p_value(&[10], &[1]).is_none());
    }
}

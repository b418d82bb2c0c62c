//! Evaluation metrics for rare-event scoring: PR-AUC (average precision), ROC-AUC, F1 at a
//! threshold, the threshold that maximises F1, and recall per group (typology).

use std::collections::BTreeMap;

/// Scores sorted from highest to lowest, with their labels.
fn ranked(scores: &[f32], labels: &[bool]) -> Vec<(f32, bool)> {
    let mut pairs: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    pairs
}

/// Average precision: the area under the precision–recall curve, stepwise, with tied scores
/// taken together. 0 when there are no positives.
pub fn pr_auc(scores: &[f32], labels: &[bool]) -> f64 {
    let positives = labels.iter().filter(|l| **l).count();
    if positives == 0 {
        return 0.0;
    }
    let pairs = ranked(scores, labels);
    let (mut tp, mut seen, mut area, mut i) = (0usize, 0usize, 0.0, 0);
    while i < pairs.len() {
        let mut j = i;
        let mut new_tp = 0;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            new_tp += pairs[j].1 as usize;
            j += 1;
        }
        tp += new_tp;
        seen += j - i;
        area += (new_tp as f64 / positives as f64) * (tp as f64 / seen as f64);
        i = j;
    }
    area
}

/// The probability that a random positive scores above a random negative (ties count half).
/// 0.5 when either class is missing.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> f64 {
    let positives = labels.iter().filter(|l| **l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return 0.5;
    }
    // Rank-sum (Mann–Whitney U) with average ranks for ties, ascending.
    let mut pairs = ranked(scores, labels);
    pairs.reverse();
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < pairs.len() {
        let mut j = i;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            j += 1;
        }
        let average_rank = (i + j + 1) as f64 / 2.0;
        rank_sum += average_rank * pairs[i..j].iter().filter(|p| p.1).count() as f64;
        i = j;
    }
    let u = rank_sum - (positives * (positives + 1)) as f64 / 2.0;
    u / (positives as f64 * negatives as f64)
}

/// Precision, recall and F1 when scores at or above `threshold` are flagged.
pub fn f1_at(scores: &[f32], labels: &[bool], threshold: f32) -> (f64, f64, f64) {
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for (s, l) in scores.iter().zip(labels) {
        match (*s >= threshold, *l) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
            _ => {}
        }
    }
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    (precision, recall, f1)
}

/// The threshold (one of the scores) with the highest F1, and that F1.
pub fn best_f1_threshold(scores: &[f32], labels: &[bool]) -> (f32, f64) {
    let positives = labels.iter().filter(|l| **l).count() as f64;
    let pairs = ranked(scores, labels);
    let (mut best, mut best_f1, mut tp, mut i) = (f32::INFINITY, 0.0, 0.0, 0);
    while i < pairs.len() {
        let mut j = i;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            tp += pairs[j].1 as u8 as f64;
            j += 1;
        }
        let flagged = j as f64;
        let f1 = if positives > 0.0 {
            2.0 * tp / (flagged + positives)
        } else {
            0.0
        };
        if f1 > best_f1 {
            (best, best_f1) = (pairs[i].0, f1);
        }
        i = j;
    }
    (best, best_f1)
}

/// Platt scaling: the `(a, b)` for which σ(a·logit + b) best matches `labels` in log loss,
/// with Platt's smoothed targets ((positives + 1) / (positives + 2) and 1 / (negatives + 2)),
/// so that a cleanly separated set does not push the slope to infinity. Newton's method from
/// the identity `(1, 0)`, which is also the answer when a class is missing or the fit would
/// invert the ranking.
pub fn platt_scaling(logits: &[f32], labels: &[bool]) -> (f32, f32) {
    let positives = labels.iter().filter(|l| **l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return (1.0, 0.0);
    }
    let (high, low) = (
        (positives + 1.0) / (positives + 2.0),
        1.0 / (negatives + 2.0),
    );
    let loss = |a: f64, b: f64| -> f64 {
        (logits.iter().zip(labels))
            .map(|(z, l)| {
                let t = if *l { high } else { low };
                let x = a * f64::from(*z) + b;
                // log(1 + e^x) - t·x, computed without overflow.
                x.max(0.0) + (-x.abs()).exp().ln_1p() - t * x
            })
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 0.0f64);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
        for (z, l) in logits.iter().zip(labels) {
            let z = f64::from(*z);
            let p = 1.0 / (1.0 + (-(a * z + b)).exp());
            let d = p - if *l { high } else { low };
            let w = p * (1.0 - p);
            (ga, gb) = (ga + d * z, gb + d);
            (haa, hab, hbb) = (haa + w * z * z, hab + w * z, hbb + w);
        }
        let det = haa * hbb - hab * hab;
        if det <= 0.0 {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        // Halve the step until the loss does not rise (Newton can overshoot far from the
        // optimum).
        let mut step = 1.0;
        while step > 1e-6 && loss(a - step * da, b - step * db) > current {
            step /= 2.0;
        }
        (a, b) = (a - step * da, b - step * db);
        let next = loss(a, b);
        let done = current - next < 1e-10;
        current = next;
        if done {
            break;
        }
    }
    match a.is_finite() && b.is_finite() && a > 0.0 {
        true => (a as f32, b as f32),
        false => (1.0, 0.0),
    }
}

/// Recall per group among the positives: `groups[i]` names the group of item `i`.
pub fn recall_by_group(
    scores: &[f32],
    labels: &[bool],
    groups: &[&str],
    threshold: f32,
) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for ((s, l), g) in scores.iter().zip(labels).zip(groups) {
        if *l {
            let entry = out.entry(g.to_string()).or_default();
            entry.1 += 1;
            entry.0 += (*s >= threshold) as usize;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_random_and_inverted_rankings() {
        let labels = [true, true, false, false, false];
        let perfect = [0.9, 0.8, 0.3, 0.2, 0.1];
        assert_eq!(pr_auc(&perfect, &labels), 1.0);
        assert_eq!(roc_auc(&perfect, &labels), 1.0);
        let inverted = [0.1, 0.2, 0.7, 0.8, 0.9];
        assert_eq!(roc_auc(&inverted, &labels), 0.0);
        let tied = [0.5; 5];
        assert_eq!(roc_auc(&tied, &labels), 0.5);
        assert!(
            (pr_auc(&tied, &labels) - 0.4).abs() < 1e-12,
            "all tied: precision = prevalence"
        );
    }

    #[test]
    fn hand_computed_values() {
        // Ranking P N P N N: AP = (1/2)(1/1) + (1/2)(2/3) = 5/6. AUC: the first positive beats
        // 3 negatives, the second beats 2, out of 2 × 3 pairs → 5/6.
        let labels = [true, false, true, false, false];
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5];
        assert!((pr_auc(&scores, &labels) - 5.0 / 6.0).abs() < 1e-12);
        assert!((roc_auc(&scores, &labels) - 5.0 / 6.0).abs() < 1e-12);
        let (p, r, f) = f1_at(&scores, &labels, 0.7);
        assert!((p - 2.0 / 3.0).abs() < 1e-12 && r == 1.0 && (f - 0.8).abs() < 1e-12);
        // F1 by threshold: 0.9 → 2/3, 0.8 → 1/2, 0.7 → 4/5, 0.6 → 2/3, 0.5 → 4/7.
        let (threshold, f1) = best_f1_threshold(&scores, &labels);
        assert_eq!(threshold, 0.7);
        assert!((f1 - 0.8).abs() < 1e-12);
        let groups = ["cycle", "", "fan_in", "", ""];
        let recall = recall_by_group(&scores, &labels, &groups, 0.8);
        assert_eq!(recall["cycle"], (1, 1));
        assert_eq!(recall["fan_in"], (0, 1));
    }

    #[test]
    fn platt_scaling_recovers_the_calibration_of_shifted_logits() {
        // Labels drawn with probability σ(0.5·z − 2): the fit must find about (0.5, −2).
        let mut state = 7u64;
        let mut uniform = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut logits, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let z = uniform() * 16.0 - 8.0;
            let p = 1.0 / (1.0 + (-(0.5 * z - 2.0)).exp());
            logits.push(z as f32);
            labels.push(uniform() < p);
        }
        let (a, b) = platt_scaling(&logits, &labels);
        assert!((a - 0.5).abs() < 0.05 && (b + 2.0).abs() < 0.15, "{a} {b}");
        // One class only, or a ranking that the fit would invert: the identity.
        assert_eq!(platt_scaling(&[1.0, 2.0], &[true, true]), (1.0, 0.0));
        assert_eq!(
            platt_scaling(&[3.0, 2.0, -1.0, -2.0], &[false, false, true, true]),
            (1.0, 0.0)
        );
        // Perfectly separated: a finite slope thanks to the smoothed targets.
        let (a, _) = platt_scaling(&[-4.0, -3.0, 3.0, 4.0], &[false, false, true, true]);
        assert!(a.is_finite() && a > 0.0);
    }
}

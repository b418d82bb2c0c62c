//! The held-out evaluation and its baseline: better than chance on a generated bank, and
//! reproducible.

use vitrine_fraud::baseline::LogisticRegression;
use vitrine_fraud::eval::evaluate;
use vitrine_fraud::features::{transaction_features, FEATURES};
use vitrine_fraud::{generate, GenerateConfig};

#[test]
fn the_baseline_beats_chance_on_held_out_time() {
    let bank = generate(&GenerateConfig::new(3000, 11), |_| {}).unwrap();
    let report = evaluate(&bank.accounts, &bank.transactions, 0.7).unwrap();
    assert_eq!(
        report.train_rows + report.test_rows,
        bank.transactions.len()
    );
    assert!(
        report.test_positives > 20,
        "{} positives held out",
        report.test_positives
    );
    let prevalence = report.test_positives as f64 / report.test_rows as f64;
    let m = &report.models[0];
    assert!(
        m.pr_auc > 20.0 * prevalence,
        "PR-AUC {} vs prevalence {prevalence}",
        m.pr_auc
    );
    assert!(m.roc_auc > 0.9, "ROC-AUC {}", m.roc_auc);
    assert!(m.f1 > 0.1 && m.threshold.is_finite());
    let caught: usize = m.recall_by_typology.values().map(|(hit, _)| hit).sum();
    let total: usize = m.recall_by_typology.values().map(|(_, all)| all).sum();
    assert_eq!(total, report.test_positives);
    assert!((m.recall - caught as f64 / total as f64).abs() < 1e-9);
}

#[test]
fn features_never_look_ahead_and_training_is_reproducible() {
    let bank = generate(&GenerateConfig::new(400, 2), |_| {}).unwrap();
    let all = transaction_features(&bank.transactions, &bank.accounts);
    // A prefix of the history gives the same features for the prefix: nothing from the future.
    let half = bank.transactions.len() / 2;
    let prefix = transaction_features(&bank.transactions[..half], &bank.accounts);
    assert_eq!(prefix, all[..half * FEATURES.len()]);
    let labels: Vec<bool> = bank.transactions.iter().map(|t| t.is_fraud == 1).collect();
    let a = LogisticRegression::train(&all, &labels, FEATURES.len()).unwrap();
    let b = LogisticRegression::train(&all, &labels, FEATURES.len()).unwrap();
    assert_eq!(a, b);
}

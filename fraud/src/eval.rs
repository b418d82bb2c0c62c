//! Held-out evaluation on a time split: train on the earliest transactions, score the rest,
//! report PR-AUC, ROC-AUC, F1 at the threshold chosen on the training part, and recall per
//! typology, for transactions and for accounts.

use std::collections::BTreeMap;

use crate::baseline::LogisticRegression;
use crate::features::{transaction_features, FEATURES};
use crate::metrics::{best_f1_threshold, f1_at, pr_auc, recall_by_group, roc_auc};
use crate::schema::{Account, Transaction};

/// One model's held-out results.
#[derive(Debug, Clone)]
pub struct ModelReport {
    /// Model name.
    pub model: String,
    /// Transaction-level PR-AUC.
    pub pr_auc: f64,
    /// Transaction-level ROC-AUC.
    pub roc_auc: f64,
    /// F1 at `threshold`.
    pub f1: f64,
    /// Precision at `threshold`.
    pub precision: f64,
    /// Recall at `threshold`.
    pub recall: f64,
    /// Threshold chosen on the training part.
    pub threshold: f32,
    /// (caught, total) fraud transactions per typology.
    pub recall_by_typology: BTreeMap<String, (usize, usize)>,
    /// Account-level PR-AUC (account score: the highest score of its held-out transactions).
    pub account_pr_auc: f64,
}

/// The evaluation of every model on one split.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// Transactions used for training.
    pub train_rows: usize,
    /// Held-out transactions.
    pub test_rows: usize,
    /// Fraud among the held-out transactions.
    pub test_positives: usize,
    /// One report per model.
    pub models: Vec<ModelReport>,
}

/// Trains on the first `train_share` of the transactions (by time) and evaluates on the rest.
pub fn evaluate(
    accounts: &[Account],
    transactions: &[Transaction],
    train_share: f64,
) -> candle_core::Result<EvalReport> {
    let x = transaction_features(transactions, accounts);
    let labels: Vec<bool> = transactions.iter().map(|t| t.is_fraud == 1).collect();
    let split = ((transactions.len() as f64) * train_share) as usize;
    let width = FEATURES.len();
    let (x_train, x_test) = x.split_at(split * width);
    let (y_train, y_test) = labels.split_at(split);
    let test = &transactions[split..];

    let baseline = LogisticRegression::train(x_train, y_train, width)?;
    let (threshold, _) = best_f1_threshold(&baseline.score(x_train), y_train);
    let scores = baseline.score(x_test);
    let (precision, recall, f1) = f1_at(&scores, y_test, threshold);
    let typologies: Vec<&str> = test.iter().map(|t| t.typology.as_str()).collect();

    let laundering: BTreeMap<&str, bool> = accounts
        .iter()
        .map(|a| (a.account_id.as_str(), a.is_laundering == 1))
        .collect();
    let mut account_scores: BTreeMap<&str, f32> = BTreeMap::new();
    for (t, s) in test.iter().zip(&scores) {
        for id in [t.source.as_str(), t.target.as_str()] {
            if laundering.contains_key(id) {
                let best = account_scores.entry(id).or_insert(0.0);
                *best = best.max(*s);
            }
        }
    }
    let (a_scores, a_labels): (Vec<f32>, Vec<bool>) = account_scores
        .iter()
        .map(|(id, s)| (*s, laundering[id]))
        .unzip();

    Ok(EvalReport {
        train_rows: split,
        test_rows: test.len(),
        test_positives: y_test.iter().filter(|l| **l).count(),
        models: vec![ModelReport {
            model: "baseline (logistic regression)".into(),
            pr_auc: pr_auc(&scores, y_test),
            roc_auc: roc_auc(&scores, y_test),
            f1,
            precision,
            recall,
            threshold,
            recall_by_typology: recall_by_group(&scores, y_test, &typologies, threshold),
            account_pr_auc: pr_auc(&a_scores, &a_labels),
        }],
    })
}

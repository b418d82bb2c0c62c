//! Held-out evaluation, every model on the same rows: on a time split (fit on the earliest
//! transactions, choose each model's threshold on the next slice, report on the rest) or
//! across banks (fit on one, report on another). Reported: PR-AUC, ROC-AUC, F1 at the chosen threshold and recall per typology for
//! transactions, and PR-AUC for laundering accounts.

use std::collections::BTreeMap;

use crate::baseline::LogisticRegression;
use crate::boosted::BoostedTrees;
use crate::features::FEATURE_COUNT;
use crate::gnn::{GnnConfig, GnnError};
use crate::metrics::{best_f1_threshold, f1_at, pr_auc, recall_by_group, roc_auc};
use crate::schema::{Account, Transaction};
use crate::training::{score_rows, train, Prepared, TrainOptions};

/// Share of the training part (its latest transactions) kept aside to choose thresholds.
const VALIDATION_SHARE: f64 = 0.2;

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
    /// Threshold chosen on the validation slice.
    pub threshold: f32,
    /// (caught, total) fraud transactions per typology.
    pub recall_by_typology: BTreeMap<String, (usize, usize)>,
    /// Account-level PR-AUC (an account's score: its highest risk over its held-out
    /// transactions).
    pub account_pr_auc: f64,
    /// Seconds spent training and scoring.
    pub seconds: f64,
}

/// The evaluation of every model on one split.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// Transactions used for fitting.
    pub fit_rows: usize,
    /// Transactions used to choose thresholds.
    pub validation_rows: usize,
    /// Held-out transactions.
    pub test_rows: usize,
    /// Fraud among the held-out transactions.
    pub test_positives: usize,
    /// One report per model: the logistic-regression baseline, boosted trees over the
    /// tabular features and graph aggregates, the same network without the graph (an MLP
    /// over the tabular features), and the GNN.
    pub models: Vec<ModelReport>,
}

/// Trains on the first `train_share` of the transactions (by time) and evaluates on the rest.
/// `gnn` sets the GNN's training; `progress` gets a line per step.
pub fn evaluate(
    accounts: &[Account],
    transactions: &[Transaction],
    train_share: f64,
    gnn: &TrainOptions,
    progress: impl FnMut(&str),
) -> Result<EvalReport, GnnError> {
    let data = Prepared::new(transactions, accounts);
    let split = ((transactions.len() as f64) * train_share) as usize;
    let fit = ((split as f64) * (1.0 - VALIDATION_SHARE)) as usize;
    let part = |rows| Part {
        data: &data,
        rows,
        transactions,
        accounts,
    };
    compare(
        part(0..fit),
        part(fit..split),
        part(split..transactions.len()),
        gnn,
        progress,
    )
}

/// Trains on one bank (its latest transactions kept to choose thresholds) and evaluates on
/// all of another: whether the models generalize to data they were not fitted to. Each bank
/// has its own graph and feature state.
pub fn evaluate_across(
    train: (&[Account], &[Transaction]),
    test: (&[Account], &[Transaction]),
    gnn: &TrainOptions,
    progress: impl FnMut(&str),
) -> Result<EvalReport, GnnError> {
    let (fit_data, test_data) = (
        Prepared::new(train.1, train.0),
        Prepared::new(test.1, test.0),
    );
    let fit = ((train.1.len() as f64) * (1.0 - VALIDATION_SHARE)) as usize;
    let fit_part = |rows| Part {
        data: &fit_data,
        rows,
        transactions: train.1,
        accounts: train.0,
    };
    let test_part = Part {
        data: &test_data,
        rows: 0..test.1.len(),
        transactions: test.1,
        accounts: test.0,
    };
    compare(
        fit_part(0..fit),
        fit_part(fit..train.1.len()),
        test_part,
        gnn,
        progress,
    )
}

/// Rows of one prepared bank, with the records they came from.
struct Part<'a> {
    data: &'a Prepared,
    rows: std::ops::Range<usize>,
    transactions: &'a [Transaction],
    accounts: &'a [Account],
}

impl Part<'_> {
    /// Whether each row is fraud.
    fn labels(&self) -> Vec<bool> {
        self.data.labels[self.rows.clone()]
            .iter()
            .map(|l| l.fraud)
            .collect()
    }

    /// The rows' tabular features, row-major.
    fn features(&self) -> &[f32] {
        self.data.features[self.rows.clone()].as_flattened()
    }
}

/// Fits every model on `fit`, chooses thresholds on `validation`, reports on `test`.
fn compare(
    fit: Part,
    validation: Part,
    test: Part,
    gnn: &TrainOptions,
    mut progress: impl FnMut(&str),
) -> Result<EvalReport, GnnError> {
    let fit_labels = fit.labels();
    if !fit_labels.iter().any(|l| *l) {
        return Err(crate::training::nothing_to_learn(fit.data, fit.rows));
    }
    let (validation_labels, test_labels) = (validation.labels(), test.labels());
    let held_out = &test.transactions[test.rows.clone()];
    // Fraud without a typology label (other people's data often has none) is one group.
    let typologies: Vec<&str> = held_out
        .iter()
        .map(|t| match t.typology.as_str() {
            "" => "no typology label",
            typology => typology,
        })
        .collect();
    let laundering: BTreeMap<&str, bool> = test
        .accounts
        .iter()
        .map(|a| (a.account_id.as_str(), a.is_laundering == 1))
        .collect();
    let report = |model: String,
                  validation_scores: &[f32],
                  scores: &[f32],
                  end_risks: &[[f32; 2]],
                  seconds: f64| {
        let (threshold, _) = best_f1_threshold(validation_scores, &validation_labels);
        let y = &test_labels;
        let (precision, recall, f1) = f1_at(scores, y, threshold);
        let mut account_scores: BTreeMap<&str, f32> = BTreeMap::new();
        for (t, risks) in held_out.iter().zip(end_risks) {
            for (id, risk) in [(t.source.as_str(), risks[0]), (t.target.as_str(), risks[1])] {
                if laundering.contains_key(id) {
                    let best = account_scores.entry(id).or_insert(0.0);
                    *best = best.max(risk);
                }
            }
        }
        let (a_scores, a_labels): (Vec<f32>, Vec<bool>) = account_scores
            .iter()
            .map(|(id, s)| (*s, laundering[id]))
            .unzip();
        ModelReport {
            model,
            pr_auc: pr_auc(scores, y),
            roc_auc: roc_auc(scores, y),
            f1,
            precision,
            recall,
            threshold,
            recall_by_typology: recall_by_group(scores, y, &typologies, threshold),
            account_pr_auc: pr_auc(&a_scores, &a_labels),
            seconds,
        }
    };
    let mut models = Vec::new();

    progress("training the logistic-regression baseline");
    let started = std::time::Instant::now();
    let baseline = LogisticRegression::train(fit.features(), &fit_labels, FEATURE_COUNT)?;
    let validation_scores = baseline.score(validation.features());
    let scores = baseline.score(test.features());
    let ends: Vec<[f32; 2]> = scores.iter().map(|s| [*s, *s]).collect();
    models.push(report(
        "logistic regression (tabular)".into(),
        &validation_scores,
        &scores,
        &ends,
        started.elapsed().as_secs_f64(),
    ));

    progress("training the boosted trees");
    let started = std::time::Instant::now();
    let trees = BoostedTrees::train(fit.data, fit.rows.clone())
        .map_err(|e| GnnError::Config(e.to_string()))?;
    let validation_scores = trees.score(validation.data, validation.rows.clone());
    let scores = trees.score(test.data, test.rows.clone());
    let ends: Vec<[f32; 2]> = scores.iter().map(|s| [*s, *s]).collect();
    models.push(report(
        "boosted trees (graph aggregates)".into(),
        &validation_scores,
        &scores,
        &ends,
        started.elapsed().as_secs_f64(),
    ));

    let no_graph = TrainOptions {
        config: GnnConfig {
            fanouts: Vec::new(),
            ..gnn.config.clone()
        },
        ..gnn.clone()
    };
    for (name, options) in [
        ("MLP (tabular, no graph)".to_string(), &no_graph),
        (
            format!("GNN ({}-hop graph + tabular)", gnn.config.fanouts.len()),
            gnn,
        ),
    ] {
        progress(&format!("training the {name}"));
        let started = std::time::Instant::now();
        let (model, _) = train(fit.data, fit.rows.clone(), options, &mut progress)?;
        let validation_scores: Vec<f32> =
            score_rows(&model, validation.data, validation.rows.clone())?
                .iter()
                .map(|s| s[0])
                .collect();
        let scored = score_rows(&model, test.data, test.rows.clone())?;
        let scores: Vec<f32> = scored.iter().map(|s| s[0]).collect();
        let ends: Vec<[f32; 2]> = scored.iter().map(|s| [s[1], s[2]]).collect();
        models.push(report(
            name,
            &validation_scores,
            &scores,
            &ends,
            started.elapsed().as_secs_f64(),
        ));
    }

    Ok(EvalReport {
        fit_rows: fit.rows.len(),
        validation_rows: validation.rows.len(),
        test_rows: test.rows.len(),
        test_positives: test_labels.iter().filter(|l| **l).count(),
        models,
    })
}

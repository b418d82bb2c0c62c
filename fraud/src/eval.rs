//! Held-out evaluation, every model on the same rows, at two levels:
//!
//! - transactions (fraud and laundering labels of transfers): on a time split (fit on the
//!   earliest transactions, choose each model's threshold on the next slice, report on the
//!   rest) or across banks (fit on one, report on another);
//! - accounts (laundering labels of accounts, node classification over the bank's
//!   heterogeneous graph, [`crate::accounts`]): within a bank on disjoint sets of accounts, or
//!   across banks.
//!
//! Reported: PR-AUC, ROC-AUC, F1 at the chosen threshold and recall per typology.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::account_gnn::{AccountGnn, AccountOptions};
use crate::accounts::{AccountGraph, ACCOUNT_FEATURES};
use crate::baseline::LogisticRegression;
use crate::boosted::BoostedTrees;
use crate::features::FEATURE_COUNT;
use crate::gnn::{GnnConfig, GnnError};
use crate::metrics::{best_f1_threshold, f1_at, pr_auc, recall_by_group, roc_auc};
use crate::schema::{Account, Transaction};
use crate::training::{score_rows, train, Prepared, TrainOptions};

/// Share of the training part (its latest transactions) kept aside to choose thresholds.
const VALIDATION_SHARE: f64 = 0.2;

/// How well one model's scores rank and separate the held-out items.
#[derive(Debug, Clone)]
pub struct Quality {
    /// PR-AUC (average precision).
    pub pr_auc: f64,
    /// ROC-AUC.
    pub roc_auc: f64,
    /// F1 at `threshold`.
    pub f1: f64,
    /// Precision at `threshold`.
    pub precision: f64,
    /// Recall at `threshold`.
    pub recall: f64,
    /// Threshold chosen on the validation items (best F1 there).
    pub threshold: f32,
    /// (caught, total) positives per typology.
    pub recall_by_typology: BTreeMap<String, (usize, usize)>,
}

impl Quality {
    /// The threshold with the best F1 on `validation` (scores, labels), and everything else
    /// measured on `test`, whose positives are grouped by `groups`.
    fn measure(validation: (&[f32], &[bool]), test: (&[f32], &[bool]), groups: &[&str]) -> Self {
        let (threshold, _) = best_f1_threshold(validation.0, validation.1);
        let (scores, labels) = test;
        let (precision, recall, f1) = f1_at(scores, labels, threshold);
        Self {
            pr_auc: pr_auc(scores, labels),
            roc_auc: roc_auc(scores, labels),
            f1,
            precision,
            recall,
            threshold,
            recall_by_typology: recall_by_group(scores, labels, groups, threshold),
        }
    }
}

/// One transaction model's held-out results.
#[derive(Debug, Clone)]
pub struct ModelReport {
    /// Model name.
    pub model: String,
    /// Transaction level.
    pub quality: Quality,
    /// Account-level PR-AUC (an account's score: its highest risk over its held-out
    /// transactions).
    pub account_pr_auc: f64,
    /// Seconds spent training and scoring.
    pub seconds: f64,
}

/// The evaluation of every transaction model on one split.
#[derive(Debug, Clone)]
pub struct TransactionEval {
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

/// One account model's held-out results.
#[derive(Debug, Clone)]
pub struct AccountReport {
    /// Model name.
    pub model: String,
    /// Laundering accounts, grouped by their typology label.
    pub quality: Quality,
    /// Seconds spent training and scoring.
    pub seconds: f64,
}

/// The evaluation of every account model.
#[derive(Debug, Clone)]
pub struct AccountEval {
    /// Accounts used for fitting.
    pub fit_accounts: usize,
    /// Accounts used to choose thresholds.
    pub validation_accounts: usize,
    /// Held-out accounts.
    pub test_accounts: usize,
    /// Laundering accounts among them.
    pub test_positives: usize,
    /// Logistic regression, boosted trees (account features and neighbour means), MLP and
    /// GNN over the account graph.
    pub models: Vec<AccountReport>,
}

/// The evaluation at both levels; a level the labels do not allow is skipped, with why.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// Transaction level, when the training transactions carry fraud labels.
    pub transactions: Option<TransactionEval>,
    /// Account level, when training accounts are labelled as laundering.
    pub accounts: Option<AccountEval>,
    /// Why a level was skipped.
    pub skipped: Vec<String>,
}

/// How the models are trained.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The transaction GNN and MLP; `None` leaves the transaction level out.
    pub transactions: Option<TrainOptions>,
    /// The account GNN and MLP (its seed also splits the accounts of one bank); `None` leaves
    /// the account level out.
    pub accounts: Option<AccountOptions>,
}

/// Within one bank. Transactions: trains on the first `train_share` (by time) and evaluates
/// on the rest. Accounts: a seeded `train_share` of the active accounts for training (its last
/// fifth to choose thresholds), the rest held out, all in the bank's one graph.
/// `progress` gets a line per step.
pub fn evaluate(
    accounts: &[Account],
    transactions: &[Transaction],
    train_share: f64,
    options: &EvalOptions,
    mut progress: impl FnMut(&str),
) -> Result<EvalReport, GnnError> {
    let mut skipped = Vec::new();
    let mut transaction_level = None;
    if let Some(gnn) = &options.transactions {
        let data = Prepared::new(transactions, accounts);
        let split = ((transactions.len() as f64) * train_share) as usize;
        let fit = ((split as f64) * (1.0 - VALIDATION_SHARE)) as usize;
        let part = |rows| Part {
            data: &data,
            rows,
            transactions,
            accounts,
        };
        transaction_level = level(
            compare(
                part(0..fit),
                part(fit..split),
                part(split..transactions.len()),
                gnn,
                &mut progress,
            ),
            &mut skipped,
        )?;
    }
    let mut account_level = None;
    if let Some(account_options) = &options.accounts {
        progress("building the account graph");
        let graph = AccountGraph::new(transactions, accounts);
        let [fit, validation, held_out] = split_accounts(&graph, account_options.seed, train_share);
        account_level = level(
            compare_accounts(
                (&graph, &fit, &validation),
                (&graph, &held_out),
                account_options,
                &mut progress,
            ),
            &mut skipped,
        )?;
    }
    report(transaction_level, account_level, skipped)
}

/// Trains on one bank (its latest transactions, and a seeded fifth of its accounts, kept to
/// choose thresholds) and evaluates on all of another: whether the models generalize to data
/// they were not fitted to. Each bank has its own graphs and feature state.
pub fn evaluate_across(
    train: (&[Account], &[Transaction]),
    test: (&[Account], &[Transaction]),
    options: &EvalOptions,
    mut progress: impl FnMut(&str),
) -> Result<EvalReport, GnnError> {
    let mut skipped = Vec::new();
    let mut transaction_level = None;
    if let Some(gnn) = &options.transactions {
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
        transaction_level = level(
            compare(
                fit_part(0..fit),
                fit_part(fit..train.1.len()),
                test_part,
                gnn,
                &mut progress,
            ),
            &mut skipped,
        )?;
    }
    let mut account_level = None;
    if let Some(account_options) = &options.accounts {
        progress("building the account graphs");
        let (fit_graph, test_graph) = (
            AccountGraph::new(train.1, train.0),
            AccountGraph::new(test.1, test.0),
        );
        let [fit, validation, _] = split_accounts(&fit_graph, account_options.seed, 1.0);
        account_level = level(
            compare_accounts(
                (&fit_graph, &fit, &validation),
                (&test_graph, &test_graph.active_accounts()),
                account_options,
                &mut progress,
            ),
            &mut skipped,
        )?;
    }
    report(transaction_level, account_level, skipped)
}

/// The active accounts of `graph` in a `seed`ed order, split into training (the first
/// `train_share`, less its last [`VALIDATION_SHARE`]), validation (that last share) and the
/// rest, held out.
pub(crate) fn split_accounts(graph: &AccountGraph, seed: u64, train_share: f64) -> [Vec<usize>; 3] {
    let mut active = graph.active_accounts();
    active.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let split = ((active.len() as f64) * train_share) as usize;
    let fit = ((split as f64) * (1.0 - VALIDATION_SHARE)) as usize;
    let held_out = active.split_off(split);
    let validation = active.split_off(fit);
    [active, validation, held_out]
}

/// A level's result, `None` (its reason in `skipped`) when its labels are missing.
fn level<T>(result: Result<T, Missing>, skipped: &mut Vec<String>) -> Result<Option<T>, GnnError> {
    match result {
        Ok(t) => Ok(Some(t)),
        Err(Missing::Labels(why)) => {
            skipped.push(why);
            Ok(None)
        }
        Err(Missing::Failed(e)) => Err(e),
    }
}

/// The report, or the reasons when neither level could be evaluated.
fn report(
    transactions: Option<TransactionEval>,
    accounts: Option<AccountEval>,
    skipped: Vec<String>,
) -> Result<EvalReport, GnnError> {
    if transactions.is_none() && accounts.is_none() {
        return Err(GnnError::Config(skipped.join("; ")));
    }
    Ok(EvalReport {
        transactions,
        accounts,
        skipped,
    })
}

/// Why a level was not evaluated.
enum Missing {
    /// Its labels are missing from the training data (the reason).
    Labels(String),
    /// Training or scoring failed.
    Failed(GnnError),
}

impl<E: Into<GnnError>> From<E> for Missing {
    fn from(e: E) -> Self {
        Missing::Failed(e.into())
    }
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

/// Fits every transaction model on `fit`, chooses thresholds on `validation`, reports on
/// `test`.
fn compare(
    fit: Part,
    validation: Part,
    test: Part,
    gnn: &TrainOptions,
    mut progress: impl FnMut(&str),
) -> Result<TransactionEval, Missing> {
    let fit_labels = fit.labels();
    if !fit_labels.iter().any(|l| *l) {
        let why = crate::training::nothing_to_learn(fit.data, fit.rows);
        return Err(Missing::Labels(format!("transaction level skipped: {why}")));
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
            quality: Quality::measure(
                (validation_scores, &validation_labels),
                (scores, &test_labels),
                &typologies,
            ),
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

    Ok(TransactionEval {
        fit_rows: fit.rows.len(),
        validation_rows: validation.rows.len(),
        test_rows: test.rows.len(),
        test_positives: test_labels.iter().filter(|l| **l).count(),
        models,
    })
}

/// Fits every account model on accounts `fit.1` of graph `fit.0` (choosing thresholds on
/// `fit.2`) and reports on accounts `test.1` of graph `test.0`.
fn compare_accounts(
    fit: (&AccountGraph, &[usize], &[usize]),
    test: (&AccountGraph, &[usize]),
    options: &AccountOptions,
    mut progress: impl FnMut(&str),
) -> Result<AccountEval, Missing> {
    let (graph, fit_rows, validation_rows) = fit;
    progress(&format!(
        "account graph: {} nodes, {} edges",
        graph.node_count(),
        graph.edge_count()
    ));
    let labels = |graph: &AccountGraph, rows: &[usize]| -> Vec<bool> {
        rows.iter().map(|i| graph.laundering[*i]).collect()
    };
    let fit_labels = labels(graph, fit_rows);
    if !fit_labels.iter().any(|l| *l) {
        return Err(Missing::Labels(
            "account level skipped: no training account is labelled as laundering \
             (is_laundering = 1 in accounts.csv)"
                .into(),
        ));
    }
    let (validation_labels, test_labels) = (labels(graph, validation_rows), labels(test.0, test.1));
    let groups: Vec<&str> = (test.1.iter())
        .map(|i| match test.0.typologies[*i].as_str() {
            "" => "no typology label",
            typology => typology,
        })
        .collect();
    let report =
        |model: &str, validation_scores: &[f32], scores: &[f32], seconds: f64| AccountReport {
            model: model.into(),
            quality: Quality::measure(
                (validation_scores, &validation_labels),
                (scores, &test_labels),
                &groups,
            ),
            seconds,
        };
    let pick =
        |scores: &[f32], rows: &[usize]| -> Vec<f32> { rows.iter().map(|i| scores[*i]).collect() };
    let mut models = Vec::new();

    progress("accounts: training the logistic-regression baseline");
    let started = std::time::Instant::now();
    let tabular = |graph: &AccountGraph, rows: &[usize]| -> Vec<f32> {
        (rows.iter())
            .flat_map(|i| graph.account_features(*i).to_vec())
            .collect()
    };
    let lr = LogisticRegression::train(
        &tabular(graph, fit_rows),
        &fit_labels,
        ACCOUNT_FEATURES.len(),
    )?;
    models.push(report(
        "logistic regression (account features)",
        &lr.score(&tabular(graph, validation_rows)),
        &lr.score(&tabular(test.0, test.1)),
        started.elapsed().as_secs_f64(),
    ));

    progress("accounts: training the boosted trees");
    let started = std::time::Instant::now();
    let width = 2 * ACCOUNT_FEATURES.len();
    let (fit_means, test_means) = (graph.neighbour_means(), test.0.neighbour_means());
    // Column-major: each account's features, then the mean features of its counterparts.
    let matrix = |graph: &AccountGraph, means: &[f32], rows: &[usize]| -> Vec<f64> {
        let f = ACCOUNT_FEATURES.len();
        let mut out = vec![0.0; rows.len() * width];
        for (r, i) in rows.iter().enumerate() {
            let own = graph.account_features(*i).iter();
            for (c, v) in own.chain(&means[i * f..(i + 1) * f]).enumerate() {
                out[c * rows.len() + r] = f64::from(*v);
            }
        }
        out
    };
    let trees = BoostedTrees::fit(&matrix(graph, &fit_means, fit_rows), width, &fit_labels)
        .map_err(|e| GnnError::Config(e.to_string()))?;
    models.push(report(
        "boosted trees (+ neighbour means)",
        &trees.predict(&matrix(graph, &fit_means, validation_rows), width),
        &trees.predict(&matrix(test.0, &test_means, test.1), width),
        started.elapsed().as_secs_f64(),
    ));

    let mlp = AccountOptions {
        layers: 0,
        ..options.clone()
    };
    for (name, options) in [
        ("MLP (account features)".to_string(), &mlp),
        (
            format!("GNN ({} layers, heterogeneous)", options.layers),
            options,
        ),
    ] {
        progress(&format!("accounts: training the {name}"));
        let started = std::time::Instant::now();
        let model = AccountGnn::train(graph, fit_rows, validation_rows, options, &mut progress)?;
        let own = model.score(graph)?;
        let scores = match std::ptr::eq(graph, test.0) {
            true => pick(&own, test.1),
            false => pick(&model.score(test.0)?, test.1),
        };
        models.push(report(
            &name,
            &pick(&own, validation_rows),
            &scores,
            started.elapsed().as_secs_f64(),
        ));
    }
    Ok(AccountEval {
        fit_accounts: fit_rows.len(),
        validation_accounts: validation_rows.len(),
        test_accounts: test.1.len(),
        test_positives: test_labels.iter().filter(|l| **l).count(),
        models,
    })
}

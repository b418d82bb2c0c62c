//! The held-out evaluation: every model beats chance on a generated bank, features never look
//! ahead, and training is reproducible from its seed.

use std::collections::HashSet;

use vitrine_fraud::account_gnn::{AccountGnn, AccountOptions};
use vitrine_fraud::accounts::AccountGraph;
use vitrine_fraud::baseline::LogisticRegression;
use vitrine_fraud::eval::{evaluate, AccountEval, EvalOptions, Quality};
use vitrine_fraud::features::{transaction_features, FEATURES};
use vitrine_fraud::metrics::pr_auc;
use vitrine_fraud::schema::Transaction;
// Every test runs candle's element-wise operations on one thread: the tests of this file run
// side by side on the 2 cores, and candle's pool of spinning workers, shared by all of them,
// made them 3× slower (see docs/benchmarks.md, contention).
use vitrine_fraud::training::one_element_wise_thread;
use vitrine_fraud::training::{score_rows, train, Prepared, TrainOptions};
use vitrine_fraud::{generate, GenerateConfig};

fn quick(seed: u64) -> EvalOptions {
    one_element_wise_thread();
    EvalOptions {
        transactions: Some(TrainOptions {
            epochs: 6,
            ..TrainOptions::new(seed)
        }),
        accounts: Some(AccountOptions {
            epochs: 60,
            ..AccountOptions::new(seed)
        }),
    }
}

/// The recall per typology covers every held-out positive, and the caught ones give the
/// recall.
fn recall_adds_up(quality: &Quality, positives: usize) {
    let caught: usize = quality
        .recall_by_typology
        .values()
        .map(|(hit, _)| hit)
        .sum();
    let total: usize = quality
        .recall_by_typology
        .values()
        .map(|(_, all)| all)
        .sum();
    assert_eq!(total, positives);
    assert!((quality.recall - caught as f64 / total as f64).abs() < 1e-9);
}

/// The accounts that took part in a transaction.
fn active_accounts(transactions: &[Transaction]) -> HashSet<&str> {
    (transactions.iter())
        .flat_map(|t| [t.source.as_str(), t.target.as_str()])
        .filter(|id| !id.starts_with('M'))
        .collect()
}

/// Every account model ranks the held-out laundering accounts well above their prevalence,
/// and the recall per typology adds up.
fn accounts_beat_chance(report: &AccountEval, factor: f64) {
    assert_eq!(
        report.models.len(),
        4,
        "baseline, boosted trees, MLP and GNN"
    );
    assert!(
        report.test_positives >= 10,
        "{} held out",
        report.test_positives
    );
    let prevalence = report.test_positives as f64 / report.test_accounts as f64;
    for m in &report.models {
        assert!(
            m.quality.pr_auc > factor * prevalence,
            "{}: account PR-AUC {} vs prevalence {prevalence}",
            m.model,
            m.quality.pr_auc
        );
        recall_adds_up(&m.quality, report.test_positives);
    }
}

#[test]
fn every_model_beats_chance_on_held_out_time() {
    let bank = generate(&GenerateConfig::new(3000, 11), |_| {}).unwrap();
    let report = evaluate(&bank.accounts, &bank.transactions, 0.7, &quick(1), |_| {}).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let accounts = report.accounts.unwrap();
    // Held out and fitted: the accounts that took part in a transaction, each once.
    let active = active_accounts(&bank.transactions);
    assert_eq!(
        accounts.fit_accounts + accounts.validation_accounts + accounts.test_accounts,
        active.len()
    );
    accounts_beat_chance(&accounts, 5.0);
    let report = report.transactions.unwrap();
    assert_eq!(
        report.fit_rows + report.validation_rows + report.test_rows,
        bank.transactions.len()
    );
    assert!(
        report.test_positives > 20,
        "{} positives held out",
        report.test_positives
    );
    let prevalence = report.test_positives as f64 / report.test_rows as f64;
    assert_eq!(
        report.models.len(),
        4,
        "baseline, boosted trees, MLP and GNN"
    );
    for m in &report.models {
        assert!(
            m.quality.pr_auc > 20.0 * prevalence,
            "{}: PR-AUC {} vs prevalence {prevalence}",
            m.model,
            m.quality.pr_auc
        );
        assert!(
            m.quality.roc_auc > 0.9,
            "{}: ROC-AUC {}",
            m.model,
            m.quality.roc_auc
        );
        assert!(
            m.quality.f1 > 0.1 && m.quality.threshold.is_finite(),
            "{}: F1 {}",
            m.model,
            m.quality.f1
        );
        recall_adds_up(&m.quality, report.test_positives);
        assert!(m.account_pr_auc > 0.0 && m.account_pr_auc <= 1.0);
    }
}

#[test]
fn features_never_look_ahead_and_the_baseline_is_reproducible() {
    one_element_wise_thread();
    let bank = generate(&GenerateConfig::new(400, 2), |_| {}).unwrap();
    let all = transaction_features(&bank.transactions);
    // A prefix of the history gives the same features for the prefix: nothing from the future.
    let half = bank.transactions.len() / 2;
    let prefix = transaction_features(&bank.transactions[..half]);
    assert_eq!(prefix, all[..half * FEATURES.len()]);
    let labels: Vec<bool> = bank.transactions.iter().map(|t| t.is_fraud == 1).collect();
    let a = LogisticRegression::train(&all, &labels, FEATURES.len()).unwrap();
    let b = LogisticRegression::train(&all, &labels, FEATURES.len()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn gnn_training_is_reproducible_from_its_seed_and_survives_a_save() {
    one_element_wise_thread();
    let bank = generate(&GenerateConfig::new(800, 5), |_| {}).unwrap();
    let data = Prepared::new(&bank.transactions, &bank.accounts);
    let rows = 0..data.events.len() * 7 / 10;
    let options = TrainOptions {
        epochs: 2,
        ..TrainOptions::new(42)
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (run, seed) in [(0, 42), (1, 42), (2, 43)] {
        let options = TrainOptions {
            seed,
            ..options.clone()
        };
        let (model, varmap) = train(&data, rows.clone(), &options, |_| {}).unwrap();
        let path = dir.path().join(format!("{run}.safetensors"));
        model.save(&varmap, &path).unwrap();
        files.push(std::fs::read(&path).unwrap());
        if run == 0 {
            // The saved model scores exactly like the one in memory.
            let held_out = rows.end..data.events.len();
            let loaded = vitrine_fraud::gnn::FraudGnn::load(&path).unwrap();
            assert_eq!(
                score_rows(&model, &data, held_out.clone()).unwrap(),
                score_rows(&loaded, &data, held_out).unwrap()
            );
        }
    }
    assert!(files[0] == files[1], "same seed, different weights");
    assert!(
        files[0] != files[2],
        "a different seed must change the weights"
    );
}

/// The boosted trees learn the fraud in the training rows, and their aggregates see only what
/// came before each row: scoring the first half alone, and as part of all rows, agrees.
#[test]
fn boosted_trees_learn_and_never_look_ahead() {
    let bank = generate(&GenerateConfig::new(1000, 4), |_| {}).unwrap();
    let data = Prepared::new(&bank.transactions, &bank.accounts);
    let n = data.events.len();
    let trees = vitrine_fraud::boosted::BoostedTrees::train(&data, 0..n * 7 / 10).unwrap();
    let held_out = n * 7 / 10..n;
    let scores = trees.score(&data, held_out.clone());
    let labels: Vec<bool> = data.labels[held_out].iter().map(|l| l.fraud).collect();
    let prevalence = labels.iter().filter(|l| **l).count() as f64 / labels.len() as f64;
    let pr_auc = vitrine_fraud::metrics::pr_auc(&scores, &labels);
    assert!(
        pr_auc > 10.0 * prevalence,
        "PR-AUC {pr_auc}, prevalence {prevalence}"
    );
    // The first rows score the same whether or not the later rows are in the graph.
    let first = Prepared::new(&bank.transactions[..n / 2], &bank.accounts);
    assert_eq!(trees.score(&first, 0..n / 2), trees.score(&data, 0..n / 2));
}

/// Trained on one bank and measured on another (different seed: other accounts, other
/// patterns): every row of the second is held out, and the models still beat chance there.
#[test]
fn models_trained_on_one_bank_are_measured_on_another() {
    let a = generate(&GenerateConfig::new(1500, 21), |_| {}).unwrap();
    let b = generate(&GenerateConfig::new(1500, 22), |_| {}).unwrap();
    let mut options = quick(1);
    if let Some(t) = &mut options.transactions {
        t.epochs = 3;
    }
    let report = vitrine_fraud::eval::evaluate_across(
        (&a.accounts, &a.transactions),
        (&b.accounts, &b.transactions),
        &options,
        |_| {},
    )
    .unwrap();
    let accounts = report.accounts.unwrap();
    let active = active_accounts(&b.transactions);
    assert_eq!(accounts.test_accounts, active.len());
    let laundering = (b.accounts.iter())
        .filter(|a| a.is_laundering == 1 && active.contains(a.account_id.as_str()))
        .count();
    assert_eq!(accounts.test_positives, laundering);
    accounts_beat_chance(&accounts, 5.0);
    let report = report.transactions.unwrap();
    assert_eq!(
        report.fit_rows + report.validation_rows,
        a.transactions.len()
    );
    assert_eq!(report.test_rows, b.transactions.len());
    let positives = b.transactions.iter().filter(|t| t.is_fraud == 1).count();
    assert_eq!(report.test_positives, positives);
    let prevalence = positives as f64 / b.transactions.len() as f64;
    assert_eq!(report.models.len(), 4);
    for m in &report.models {
        assert!(
            m.quality.pr_auc > 5.0 * prevalence,
            "{}: PR-AUC {} vs prevalence {prevalence}",
            m.model,
            m.quality.pr_auc
        );
    }
}

/// Data that labels only accounts (many AML data sets) is evaluated at account level; the
/// transaction level is skipped with why, and data with no label at all is refused.
#[test]
fn account_labels_alone_are_enough_for_the_account_level() {
    let mut bank = generate(&GenerateConfig::new(1500, 23), |_| {}).unwrap();
    for t in &mut bank.transactions {
        (t.is_fraud, t.typology) = (0, String::new());
    }
    let report = evaluate(&bank.accounts, &bank.transactions, 0.7, &quick(1), |_| {}).unwrap();
    assert!(report.transactions.is_none());
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0].contains("transaction level skipped")
            && report.skipped[0].contains("--derive-transaction-labels"),
        "{}",
        report.skipped[0]
    );
    accounts_beat_chance(&report.accounts.unwrap(), 3.0);
    for a in &mut bank.accounts {
        a.is_laundering = 0;
    }
    let Err(e) = evaluate(&bank.accounts, &bank.transactions, 0.7, &quick(1), |_| {}) else {
        panic!("nothing to learn from");
    };
    assert!(e.to_string().contains("account level skipped"), "{e}");
}

/// The account model trained on a whole bank ranks its laundering accounts, keeps a threshold
/// chosen on its validation accounts, scores the same after a save and after training again
/// from the same seed; a file of another shape is refused by name.
#[test]
fn the_account_model_trains_on_a_bank_and_survives_a_save() {
    one_element_wise_thread();
    let bank = generate(&GenerateConfig::new(1500, 23), |_| {}).unwrap();
    let options = AccountOptions {
        epochs: 60,
        ..AccountOptions::new(3)
    };
    let graph = AccountGraph::new(&bank.transactions, &bank.accounts);
    let model = AccountGnn::train_bank(&graph, &options, |_| {}).unwrap();
    assert!(model.threshold() > 0.0 && model.threshold() < 1.0);
    let scores = model.score(&graph).unwrap();
    let active = graph.active_accounts();
    let picked: Vec<f32> = active.iter().map(|i| scores[*i]).collect();
    let labels: Vec<bool> = active.iter().map(|i| graph.laundering[*i]).collect();
    let positives = labels.iter().filter(|l| **l).count() as f64;
    assert!(pr_auc(&picked, &labels) > 5.0 * positives / labels.len() as f64);
    // Calibrated: the probabilities add up to about the number of laundering accounts
    // (training weighs them up to 50×, which uncalibrated outputs would show).
    let expected: f64 = picked.iter().map(|p| f64::from(*p)).sum();
    assert!(
        expected > 0.5 * positives && expected < 2.0 * positives,
        "probabilities add up to {expected:.1} for {positives} laundering accounts"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.safetensors");
    model.save(&path).unwrap();
    let loaded = AccountGnn::load(&path).unwrap();
    assert_eq!(loaded.threshold(), model.threshold());
    assert_eq!(loaded.score(&graph).unwrap(), scores);
    // Dropout masks come from the seed too: the same seed trains the same model.
    let again = AccountGnn::train_bank(&graph, &options, |_| {}).unwrap();
    assert_eq!(
        again.score(&graph).unwrap(),
        scores,
        "same seed, other model"
    );

    // The transaction model's file is not an account model.
    let data = Prepared::new(&bank.transactions, &bank.accounts);
    let (gnn, varmap) = train(
        &data,
        0..data.events.len() / 2,
        &TrainOptions {
            epochs: 1,
            ..TrainOptions::new(1)
        },
        |_| {},
    )
    .unwrap();
    let other = dir.path().join("weights.safetensors");
    gnn.save(&varmap, &other).unwrap();
    let Err(e) = AccountGnn::load(&other) else {
        panic!("a transaction model loaded as an account model");
    };
    assert!(e.to_string().contains("config.shape"), "{e}");
}

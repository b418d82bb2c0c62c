//! `vitrine fraud train`, `score` and `replay` as a user runs them: a reproducible model
//! installed into a repository, scores as CSV, and signed deliveries to a served webhook.

use std::path::Path;

use crate::commands::{http_post, up_with, vitrine};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The header of `account_scores.csv`.
const ACCOUNT_COLUMNS: [&str; 6] = [
    "account_id",
    "risk",
    "transactions",
    "pattern",
    "laundering_risk",
    "laundering",
];

fn run(args: &[&str]) -> String {
    let output = vitrine().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "vitrine {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A generated bank of 300 accounts in `dir`, with `extra` arguments.
fn generate(dir: &Path, seed: u64, extra: &[&str]) {
    let seed = seed.to_string();
    let mut args = vec!["fraud", "generate", "--accounts", "300", "--seed", &seed];
    args.extend(extra);
    args.extend(["--out", path(dir)]);
    run(&args);
}

/// `vitrine fraud score` with `model`, `data`, `out` and `extra` arguments.
fn score(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut command = vitrine();
    command.args(["fraud", "score", "--model"]).arg(model);
    command.arg("--data").arg(data).arg("--out").arg(out);
    command.args(extra).output().unwrap()
}

/// Runs a command that must fail; its error output.
fn fail(args: &[&str]) -> String {
    let output = vitrine().args(args).output().unwrap();
    assert!(!output.status.success(), "vitrine {args:?} succeeded");
    String::from_utf8(output.stderr).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The rows of a CSV file, split on commas (the columns checked here hold none).
fn csv_rows(file: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn train_is_reproducible_score_writes_csv_and_replay_gets_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let bank = dir.path().join("bank");
    generate(&bank, 4, &[]);

    // The same seed twice: the same weights, byte for byte; a second run is the next version.
    let (a, b) = (dir.path().join("repo-a"), dir.path().join("repo-b"));
    for repo in [&a, &b, &a] {
        let out = run(&[
            "fraud",
            "train",
            "--data",
            path(&bank),
            "--out",
            path(repo),
            "--seed",
            "9",
            "--epochs",
            "1",
            "--account-steps",
            "20",
        ]);
        assert!(
            out.contains("trained the transaction and account models")
                && out.contains("installed as"),
            "{out}"
        );
    }
    for file in ["model.safetensors", "accounts.safetensors"] {
        let weights = |repo: &Path, v: u32| {
            std::fs::read(repo.join(format!("fraud-gnn/{v}/{file}"))).unwrap()
        };
        assert!(
            weights(&a, 1) == weights(&b, 1),
            "same seed, different weights in {file}"
        );
        assert!(weights(&a, 2) == weights(&a, 1));
    }
    assert!(
        a.join("fraud-gnn/config.toml").exists() && a.join("fraud-gnn/1/history.sqlite").exists()
    );

    // Scores: one row per transaction, probabilities, and one row per account seen.
    let scores = dir.path().join("scores");
    let output = score(&a.join("fraud-gnn"), &bank, &scores, &[]);
    assert!(output.status.success());
    let transactions = csv_rows(&bank.join("transactions.csv"));
    let scored = csv_rows(&scores.join("transaction_scores.csv"));
    // The model's training bank again, with its history: the same ids, earlier times.
    let refused = score(
        &a.join("fraud-gnn"),
        &bank,
        &dir.path().join("refused"),
        &["--history"],
    );
    assert!(!refused.status.success());
    let refused = String::from_utf8_lossy(&refused.stderr);
    assert!(
        refused.contains("another bank whose ids collide") && refused.contains("without --history"),
        "{refused}"
    );
    assert_eq!(
        scored[0][..5],
        [
            "transaction_id",
            "fraud_score",
            "source_risk",
            "target_risk",
            "typology"
        ]
    );
    assert_eq!(scored.len(), transactions.len());
    for row in &scored[1..] {
        let p: f64 = row[1].parse().unwrap();
        assert!((0.0..=1.0).contains(&p), "{row:?}");
    }
    assert_eq!(scored[1][0], transactions[1][0]);
    let accounts = csv_rows(&scores.join("account_scores.csv"));
    assert_eq!(accounts[0], ACCOUNT_COLUMNS);
    assert!(accounts.len() > 100 && accounts[1..].iter().all(|r| r[0].starts_with('A')));
    // Both models answer for every account: the transaction model's highest risk, the
    // account model's probability and whether it reaches the model's threshold.
    for row in &accounts[1..] {
        let risk: f64 = row[1].parse().unwrap();
        let laundering: f64 = row[4].parse().unwrap();
        assert!((0.0..=1.0).contains(&risk) && (0.0..=1.0).contains(&laundering));
        assert!(row[5] == "0" || row[5] == "1", "{row:?}");
    }

    // Replay the end of the bank to a served webhook, signed with the configured secret.
    let manifest = dir.path().join("spin.toml");
    std::fs::write(&manifest, vitrine_tests::webhook_manifest(SECRET)).unwrap();
    let state = dir.path().join("state");
    let (mut child, addr) = up_with(
        &["--models", path(&a), "--state-dir", path(&state)],
        &manifest,
    );
    let url = format!("http://{addr}/webhooks/transactions");
    let replay = |limit: &str, secret: &str| {
        run(&[
            "fraud",
            "replay",
            "--url",
            &url,
            "--data",
            path(&bank),
            "--from",
            "0.95",
            "--limit",
            limit,
            "--secret",
            secret,
        ])
    };
    let out = replay("20", SECRET);
    assert!(out.contains("20 requests; status 200: 20"), "{out}");
    // A wrong secret gets nothing decided.
    let out = replay("3", "whsec_d3Jvbmctc2VjcmV0LWtleQ==");
    assert!(out.contains("status 401: 3"), "{out}");
    let forged = http_post(&addr, "/webhooks/transactions", "{}");
    assert!(forged.contains(" 401 "), "{forged}");
    child.kill().unwrap();
    child.wait().unwrap();
    // The worker kept its live graph in the state directory.
    assert!(state.join("graphs/fraud-gnn.sqlite").exists());
}

/// Data that labels only accounts (no transaction labels, no typologies): training fits the
/// account model alone and scoring answers per account; the transaction model is refused
/// naming the flag that helps, and trains with it; scoring (without the model's history
/// unless asked) names no typology it never saw; a served transaction model is not replaced
/// by an account model alone.
#[test]
fn account_only_labels_train_the_account_model_or_derived_transaction_labels() {
    let dir = tempfile::tempdir().unwrap();
    let bank = dir.path().join("bank");
    generate(&bank, 5, &[]);
    // Drop the transaction labels and typologies.
    let file = bank.join("transactions.csv");
    let mut reader = csv::Reader::from_path(&file).unwrap();
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (fraud, typology) = (column("is_fraud"), column("typology"));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let mut writer = csv::Writer::from_path(&file).unwrap();
    writer.write_record(&header).unwrap();
    for row in &rows {
        let fields = row.iter().enumerate().map(|(i, f)| match i {
            i if i == fraud => "0",
            i if i == typology => "",
            _ => f,
        });
        writer.write_record(fields).unwrap();
    }
    writer.flush().unwrap();

    let repo = dir.path().join("repo");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "fraud",
            "train",
            "--data",
            path(&bank),
            "--out",
            path(&repo),
            "--epochs",
            "1",
            "--account-steps",
            "30",
        ];
        args.extend(extra);
        let output = vitrine().args(&args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (
            output.status.success(),
            text(&output.stdout),
            text(&output.stderr),
        )
    };
    let (ok, out, err) = train(&[]);
    assert!(
        ok && out.contains("trained the account model of fraud-gnn"),
        "{out}{err}"
    );
    assert!(err.contains("transaction model skipped"), "{err}");
    assert!(!repo.join("fraud-gnn/1/model.safetensors").exists());

    let scores = dir.path().join("account-scores");
    let output = score(&repo.join("fraud-gnn"), &bank, &scores, &[]);
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    let flagged: usize = (printed.split("the account model flags ").nth(1))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no flag count in {printed}"));
    assert!(!scores.join("transaction_scores.csv").exists());
    let accounts = csv_rows(&scores.join("account_scores.csv"));
    assert_eq!(accounts[0], ACCOUNT_COLUMNS);
    let rows = csv_rows(&bank.join("accounts.csv"));
    let flag = rows[0].iter().position(|c| c == "is_laundering").unwrap();
    let laundering: std::collections::HashSet<&String> = (rows[1..].iter())
        .filter(|r| r[flag] == "1")
        .map(|r| &r[0])
        .collect();
    assert!(!laundering.is_empty());
    // No transaction model: its cells are empty. The laundering accounts rank above the rest
    // on average.
    let mut sums = [(0.0, 0); 2];
    for row in &accounts[1..] {
        assert!(row[1].is_empty() && row[3].is_empty(), "{row:?}");
        let p: f64 = row[4].parse().unwrap();
        let sum = &mut sums[usize::from(laundering.contains(&row[0]))];
        *sum = (sum.0 + p, sum.1 + 1);
    }
    assert!(
        sums[1].0 / sums[1].1 as f64 > sums[0].0 / sums[0].1 as f64,
        "{sums:?}"
    );
    assert_eq!(
        accounts[1..].iter().filter(|r| r[5] == "1").count(),
        flagged
    );

    let (ok, _, refused) = train(&["--level", "transactions"]);
    assert!(
        !ok && refused.contains("no transaction is labelled")
            && refused.contains("--derive-transaction-labels"),
        "{refused}"
    );
    let (ok, out, err) = train(&["--derive-transaction-labels"]);
    assert!(
        ok && out.contains("transaction and account models"),
        "{out}{err}"
    );

    let scores = dir.path().join("scores");
    let output = score(&repo.join("fraud-gnn"), &bank, &scores, &[]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("state: none"), "{stderr}");
    let scored = csv_rows(&scores.join("transaction_scores.csv"));
    assert!(
        scored[1..].iter().all(|r| r[4] == "unknown"),
        "typologies named: {:?}",
        &scored[1..4]
    );

    // The folder now serves a transaction model: an account model alone goes elsewhere.
    let (ok, _, refused) = train(&["--level", "accounts"]);
    assert!(!ok && refused.contains("--name"), "{refused}");
    let (ok, out, err) = train(&["--level", "accounts", "--name", "fraud-accounts"]);
    assert!(ok && out.contains("fraud-accounts/1"), "{out}{err}");
}

/// `vitrine fraud eval` across banks prints both levels, trains on two banks given as
/// repeated `--train` (kept apart), holds out every active account of the third, and refuses
/// an unknown generator profile.
#[test]
fn eval_across_banks_prints_transaction_and_account_levels() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    generate(&a, 31, &[]);
    generate(&b, 32, &[]);
    generate(&c, 33, &["--profile", "blended"]);
    let out = run(&[
        "fraud",
        "eval",
        "--train",
        path(&a),
        "--train",
        path(&b),
        "--test",
        path(&c),
        "--epochs",
        "1",
        "--account-steps",
        "20",
    ]);
    let active: std::collections::HashSet<String> = csv_rows(&c.join("transactions.csv"))[1..]
        .iter()
        .flat_map(|r| [r[2].clone(), r[3].clone()])
        .filter(|id| !id.starts_with('M'))
        .collect();
    assert!(out.contains("transactions, across banks"), "{out}");
    assert!(
        out.contains("accounts, across banks")
            && out.contains(&format!("{} held out", active.len())),
        "{} active accounts in the test bank:\n{out}",
        active.len()
    );
    for model in [
        "logistic regression (account features)",
        "boosted trees (+ neighbour means)",
        "MLP (account features)",
        "GNN (2 layers, heterogeneous)",
    ] {
        assert!(out.contains(model), "{model}: {out}");
    }
    // Two banks of about 300 accounts each train: more than one bank's worth of accounts.
    let fit: usize = out
        .lines()
        .find(|l| l.starts_with("accounts, across banks"))
        .and_then(|l| l.split(": ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap();
    assert!(fit > 300, "{fit} accounts to fit from two banks");
    let accounts_only = run(&[
        "fraud",
        "eval",
        "--data",
        path(&c),
        "--level",
        "accounts",
        "--account-steps",
        "10",
    ]);
    assert!(
        accounts_only.contains("accounts, within one bank")
            && !accounts_only.contains("transactions,"),
        "{accounts_only}"
    );
    let refused = fail(&["fraud", "generate", "--profile", "lumpy", "--out", path(&a)]);
    assert!(
        refused.contains("structuring") && refused.contains("blended"),
        "{refused}"
    );
    let refused = fail(&["fraud", "eval", "--data", path(&c), "--account-steps", "0"]);
    assert!(
        refused.contains("--account-steps must be at least 1"),
        "{refused}"
    );
}

//! `vitrine shoppers simulate` and `vitrine lookbook eval` as a user runs them against a
//! served shop: the table with the lookbook and both baselines, every look valid, and the same
//! figures whatever the number of lookbook requests in flight.

use vitrine_tests::{TestApp, ADMIN_TOKEN};

use crate::commands::{output, vitrine};

/// Runs `vitrine` with `args`; returns (success, stdout, stderr).
async fn run(args: Vec<String>) -> (bool, String, String) {
    let mut cmd = vitrine();
    cmd.args(args)
        .env("VITRINE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_BACKTRACE", "0");
    output(cmd).await
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[tokio::test]
async fn simulated_shoppers_are_evaluated_against_the_baselines() -> anyhow::Result<()> {
    let app = TestApp::start(&vitrine_tests::shop_manifest("")).await?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("sim");
    let out = out.to_str().unwrap();
    let (ok, stdout, stderr) = run(args(&[
        "shoppers",
        "simulate",
        "--shoppers",
        "40",
        "--seed",
        "3",
        "--days",
        "60",
        "--end",
        "2026-11-30",
        "--url",
        &app.url,
        "--out",
        out,
    ]))
    .await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("40 shoppers"), "{stdout}");

    let details = dir.path().join("details.jsonl");
    let details = details.to_str().unwrap();
    let eval = |parallel: &str| {
        run(args(&[
            "lookbook",
            "eval",
            "--data",
            out,
            "--url",
            &app.url,
            "--parallel",
            parallel,
            "--details",
            details,
        ]))
    };
    let (ok, table, stderr) = eval("1").await;
    assert!(ok, "{table}\n{stderr}");
    for row in [
        "colour variety:",
        "| lookbook |",
        "| popularity |",
        "| random |",
        "NDCG@10 lookbook / popularity:",
    ] {
        assert!(table.contains(row), "{row} missing:\n{table}");
    }
    let shoppers: usize = table
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(shoppers >= 10, "{table}");
    // One line per shopper, with their held-out products and the lookbook's ranking.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(details)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), shoppers);
    assert!(lines
        .iter()
        .all(|l| !l["held"].as_array().unwrap().is_empty()
            && l["lookbook"].as_array().unwrap().len() >= 3));
    // Every look obeys the rules: "outfit validity: N of N looks (100.0%".
    let validity = table
        .lines()
        .find(|l| l.starts_with("outfit validity:"))
        .unwrap_or_default();
    let counts: Vec<&str> = validity.split_whitespace().collect();
    assert!(
        counts.len() > 4 && counts[2] == counts[4] && counts[2] != "0",
        "{validity}"
    );
    // Lookbook requests in flight at once change nothing in the figures.
    let (ok, again, stderr) = eval("4").await;
    assert!(ok, "{stderr}");
    assert_eq!(again, table);
    Ok(())
}

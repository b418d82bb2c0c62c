//! Live scoring is idempotent by transaction key: a repeated key gets the first outcome back
//! and never adds a second edge, across restarts and in graphs written before keys existed.

use std::path::Path;

use vitrine_fraud::graph::Event;
use vitrine_fraud::scorer::Scorer;
use vitrine_fraud::training::{train, Prepared, TrainOptions};
use vitrine_fraud::{generate, GenerateConfig};

/// A small trained model saved in `dir`, and the bank's events after its history.
fn model(dir: &Path) -> (std::path::PathBuf, Vec<Event>) {
    let bank = generate(&GenerateConfig::new(300, 3), |_| {}).unwrap();
    let data = Prepared::new(&bank.transactions, &bank.accounts);
    let cut = data.events.len() * 8 / 10;
    let options = TrainOptions {
        epochs: 1,
        ..TrainOptions::new(7)
    };
    let (model, varmap) = train(&data, 0..cut, &options, |_| {}).unwrap();
    let weights = dir.join("model.safetensors");
    model.save(&varmap, &weights).unwrap();
    (weights, data.events[cut..].to_vec())
}

#[test]
fn a_key_is_scored_once_even_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (weights, live) = model(dir.path());
    let graph = dir.path().join("live.sqlite");
    let mut scorer = Scorer::open(&weights, None, Some(&graph)).unwrap();
    let (a, b, c) = (&live[0], &live[1], &live[2]);

    // One batch: a keyed, b unkeyed, a's key again (another event under the same id is
    // still the first one), c keyed.
    let first = scorer
        .score(
            &[
                (Some("tx-a".into()), a.clone()),
                (None, b.clone()),
                (Some("tx-a".into()), c.clone()),
                (Some("tx-c".into()), c.clone()),
            ],
            3,
        )
        .unwrap();
    assert_eq!(first.len(), 4);
    assert_eq!(first[2], first[0], "a repeated key in one batch");
    assert_eq!(scorer.transactions(), 3);

    // A retry in a later batch: same outcome, no new edge.
    let again = scorer
        .score(
            &[
                (Some("tx-c".into()), c.clone()),
                (Some("tx-a".into()), a.clone()),
            ],
            3,
        )
        .unwrap();
    assert_eq!(again, [first[3].clone(), first[0].clone()]);
    assert_eq!(scorer.transactions(), 3);
    // Unkeyed events are added every time.
    scorer.score(&[(None, b.clone())], 3).unwrap();
    assert_eq!(scorer.transactions(), 4);
    drop(scorer);

    // After a restart the keys are still known.
    let mut reopened = Scorer::open(&weights, None, Some(&graph)).unwrap();
    assert_eq!(reopened.transactions(), 4);
    let after = reopened
        .score(&[(Some("tx-a".into()), a.clone())], 3)
        .unwrap();
    assert_eq!(after[0], first[0]);
    assert_eq!(reopened.transactions(), 4);
}

#[test]
fn a_graph_written_before_keys_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let (weights, live) = model(dir.path());
    let graph = dir.path().join("old.sqlite");
    {
        let conn = rusqlite::Connection::open(&graph).unwrap();
        conn.execute_batch(
            "CREATE TABLE edges (
                id INTEGER PRIMARY KEY, source TEXT NOT NULL, target TEXT NOT NULL,
                time INTEGER NOT NULL, amount REAL NOT NULL, channel INTEGER NOT NULL,
                device TEXT NOT NULL DEFAULT '');",
        )
        .unwrap();
        let e = &live[0];
        conn.execute(
            "INSERT INTO edges (source, target, time, amount, channel, device) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            (&e.source, &e.target, e.time, e.amount, e.channel, &e.device),
        )
        .unwrap();
    }
    let mut scorer = Scorer::open(&weights, None, Some(&graph)).unwrap();
    assert_eq!(scorer.transactions(), 1);
    let first = scorer
        .score(&[(Some("tx-1".into()), live[1].clone())], 2)
        .unwrap();
    let again = scorer
        .score(&[(Some("tx-1".into()), live[1].clone())], 2)
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(scorer.transactions(), 2);
}

//! The `fraud-gnn` model in the worker: scores and explanations over the inference protocol,
//! a live graph that survives a restart, and rows refused with the reason.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use vitrine_fraud::account_gnn::{AccountGnn, AccountOptions};
use vitrine_fraud::accounts::AccountGraph;
use vitrine_fraud::graph::Event;
use vitrine_fraud::training::{train, Prepared, TrainOptions};
use vitrine_fraud::{generate, GenerateConfig};
use vitrine_worker::models::fraud_gnn::{install, weights_load, TEXT_BYTES};
use vitrine_worker::Worker;

/// A small model trained on the first half of a generated bank; returns the other half.
fn trained_repository(root: &Path) -> Vec<Event> {
    let (mut events, half, _) = trained_models(root, None);
    events.split_off(half)
}

/// A small model trained on the first half of a generated bank, with an account model trained
/// for `account_steps` on that half's accounts when given. Returns the bank's events, where the
/// second half starts, and the account model.
fn trained_models(
    root: &Path,
    account_steps: Option<usize>,
) -> (Vec<Event>, usize, Option<AccountGnn>) {
    let bank = generate(&GenerateConfig::new(300, 4), |_| {}).unwrap();
    let data = Prepared::new(&bank.transactions, &bank.accounts);
    let half = data.events.len() / 2;
    let options = TrainOptions {
        epochs: 1,
        ..TrainOptions::new(3)
    };
    let (model, varmap) = train(&data, 0..half, &options, |_| {}).unwrap();
    let accounts = account_steps.map(|epochs| {
        let graph = AccountGraph::from_events(&data.events[..half], &bank.accounts);
        let options = AccountOptions {
            epochs,
            ..AccountOptions::new(1)
        };
        AccountGnn::train_bank(&graph, &options, |_| {}).unwrap()
    });
    install(
        root,
        "fraud-gnn",
        Some((&model, &varmap)),
        accounts.as_ref(),
        &data.events[..half],
    )
    .unwrap();
    (data.events, half, accounts)
}

async fn serve(models: &Path, state: Option<&Path>) -> (String, Arc<Worker>) {
    common::serve(models, state, Duration::from_secs(3600)).await
}

/// A request for `events` without transaction ids.
fn request(events: &[Event]) -> Value {
    request_with(events, &vec![""; events.len()], 4)
}

/// A request for `events` with transaction ids `keys`, in `[id_rows, 64]` ids (3: a model
/// installed before transaction ids, which takes none).
fn request_with(events: &[Event], keys: &[&str], id_rows: usize) -> Value {
    let mut ids = Vec::new();
    let mut values = Vec::new();
    for (e, key) in events.iter().zip(keys) {
        let texts = [e.source.as_str(), &e.target, &e.device, key];
        for text in &texts[..id_rows] {
            let mut bytes = text.as_bytes().to_vec();
            bytes.resize(TEXT_BYTES, 0);
            ids.extend(bytes);
        }
        values.extend([e.time as f64, e.amount, e.channel as f64]);
    }
    json!({ "inputs": [
        { "name": "ids", "shape": [events.len(), id_rows, TEXT_BYTES], "datatype": "UINT8", "data": ids },
        { "name": "event", "shape": [events.len(), 3], "datatype": "FP64", "data": values },
    ]})
}

async fn infer(url: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}/v2/models/fraud-gnn/infer"))
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn output<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {answer}"))
}

fn scores(answer: &Value) -> Vec<f64> {
    output(answer, "scores")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_explain_and_the_live_graph_survives_a_restart() {
    let models = tempfile::tempdir().unwrap();
    let live = trained_repository(models.path());
    let (first, next) = (&live[..40], &live[40..41]);

    // A worker with a state directory scores the first transactions, then stops.
    let state = tempfile::tempdir().unwrap();
    {
        let (url, _worker) = serve(models.path(), Some(state.path())).await;
        let (status, answer) = infer(&url, &request(first)).await;
        assert_eq!(status, 200, "{answer}");
        let s = scores(&answer);
        assert_eq!(s.len(), 3 * first.len());
        assert!(s.iter().all(|p| (0.0..=1.0).contains(p)));
        let explanation = output(&answer, "explanation");
        assert_eq!(explanation["shape"], json!([first.len(), 6, TEXT_BYTES]));
        let bytes: Vec<u8> = explanation["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        let line = |row: usize, line: usize| {
            let start = (row * 6 + line) * TEXT_BYTES;
            let text = &bytes[start..start + TEXT_BYTES];
            String::from_utf8(text.iter().copied().take_while(|b| *b != 0).collect()).unwrap()
        };
        assert!(vitrine_fraud::schema::TYPOLOGIES.contains(&line(0, 0).as_str()));
        assert!(
            line(0, 1).starts_with("feature ") || line(0, 1).starts_with("neighbour "),
            "{}",
            line(0, 1)
        );
    }
    assert!(state.path().join("graphs/fraud-gnn.sqlite").exists());

    // Restarted on the same state, the worker scores the next transaction exactly as a worker
    // that saw the same transactions without a restart, and unlike one that never saw them.
    let (restarted, _a) = serve(models.path(), Some(state.path())).await;
    let (fresh, _b) = serve(models.path(), None).await;
    let (status, _) = infer(&fresh, &request(first)).await;
    assert_eq!(status, 200);
    let (unaware, _c) = serve(models.path(), None).await;
    let after_restart = scores(&infer(&restarted, &request(next)).await.1);
    let without_restart = scores(&infer(&fresh, &request(next)).await.1);
    let without_history = scores(&infer(&unaware, &request(next)).await.1);
    assert_eq!(after_restart, without_restart);
    assert_ne!(
        after_restart, without_history,
        "the 40 transactions made no difference"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_refused_with_the_reason_and_leave_the_graph_alone() {
    let models = tempfile::tempdir().unwrap();
    let live = trained_repository(models.path());
    let (url, _worker) = serve(models.path(), None).await;
    let mut no_source = live[0].clone();
    no_source.source.clear();
    let mut bad_channel = live[0].clone();
    bad_channel.channel = 99;
    let mut negative = live[0].clone();
    negative.amount = -5.0;
    for (case, event, says) in [
        ("no source", no_source, "source"),
        ("bad channel", bad_channel, "channel"),
        ("negative amount", negative, "amount"),
    ] {
        let (status, answer) = infer(&url, &request(&[live[1].clone(), event])).await;
        assert_eq!(status, 400, "{case}: {answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(
            message.contains("row 1") && message.contains(says),
            "{case}: {message}"
        );
    }
    // The refused batches added nothing: scores match a worker that never saw them.
    let (clean, _w) = serve(models.path(), None).await;
    let here = scores(&infer(&url, &request(&live[1..3])).await.1);
    let there = scores(&infer(&clean, &request(&live[1..3])).await.1);
    assert_eq!(here, there);
}

/// Transactions in the live graph file of a worker's state directory.
fn edges_on_disk(state: &Path) -> i64 {
    rusqlite::Connection::open(state.join("graphs/fraud-gnn.sqlite"))
        .unwrap()
        .query_row("SELECT count(*) FROM edges", [], |row| row.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_id_is_scored_once_however_often_it_arrives() {
    let models = tempfile::tempdir().unwrap();
    let live = trained_repository(models.path());
    let state = tempfile::tempdir().unwrap();
    let (url, _worker) = serve(models.path(), Some(state.path())).await;
    let before = {
        infer(&url, &request(&live[..1])).await;
        edges_on_disk(state.path())
    };

    // Twelve concurrent deliveries of one transaction, then a retry: one edge, one answer.
    let body = request_with(&live[1..2], &["tx-1"], 4);
    let mut deliveries = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (url, body) = (url.clone(), body.clone());
        deliveries.spawn(async move { infer(&url, &body).await });
    }
    let answers = deliveries.join_all().await;
    let first = scores(&answers[0].1);
    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(scores(answer), first);
    }
    assert_eq!(scores(&infer(&url, &body).await.1), first);
    assert_eq!(edges_on_disk(state.path()), before + 1);

    // A restarted worker still knows the id; a new id is added.
    drop(url);
    let (restarted, _w) = serve(models.path(), Some(state.path())).await;
    assert_eq!(scores(&infer(&restarted, &body).await.1), first);
    assert_eq!(edges_on_disk(state.path()), before + 1);
    let other = request_with(&live[2..3], &["tx-2"], 4);
    assert_eq!(infer(&restarted, &other).await.0, 200);
    assert_eq!(edges_on_disk(state.path()), before + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_installed_before_transaction_ids_still_serves() {
    let models = tempfile::tempdir().unwrap();
    let live = trained_repository(models.path());
    let config = models.path().join("fraud-gnn/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("dims = [4, 64]"));
    std::fs::write(&config, text.replace("dims = [4, 64]", "dims = [3, 64]")).unwrap();
    let (url, _worker) = serve(models.path(), None).await;
    let (status, answer) = infer(&url, &request_with(&live[..2], &["", ""], 3)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(scores(&answer).len(), 6);
    let (status, _) = infer(&url, &request(&live[..2])).await;
    assert_eq!(status, 400, "four id rows against a three-row model");
}

/// A version holding only the account-level model is not served (the webhook needs the
/// transaction model): the model is unavailable and the repository index says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_with_the_account_model_alone_is_unavailable_with_the_reason() {
    let models = tempfile::tempdir().unwrap();
    let bank = generate(&GenerateConfig::new(300, 4), |_| {}).unwrap();
    let options = AccountOptions {
        epochs: 2,
        ..AccountOptions::new(1)
    };
    let events: Vec<Event> = bank
        .transactions
        .iter()
        .map(Event::from_transaction)
        .collect();
    let graph = AccountGraph::from_events(&events, &bank.accounts);
    let accounts = AccountGnn::train_bank(&graph, &options, |_| {}).unwrap();
    install(models.path(), "fraud-gnn", None, Some(&accounts), &events).unwrap();
    let (url, _worker) = serve(models.path(), None).await;
    let index = common::repository_index(&url).await;
    let entry = &index[0];
    assert_eq!(entry["name"], "fraud-gnn");
    assert_eq!(entry["state"], "UNAVAILABLE", "{entry}");
    let reason = entry["reason"].as_str().unwrap();
    assert!(
        reason.contains("only the account-level model") && reason.contains("transaction model"),
        "{reason}"
    );
    let response = reqwest::Client::new()
        .post(format!("{url}/v2/models/fraud-gnn/infer"))
        .json(&request(&events[..1]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
}

/// An account model trained on features this build no longer computes (one trained before a
/// feature was added) leaves the model unavailable with the reason, and the check that decides
/// whether the built-in model must be trained again sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_model_of_other_features_is_unavailable_with_the_reason() {
    let models = tempfile::tempdir().unwrap();
    trained_models(models.path(), Some(2));
    let model_dir = models.path().join("fraud-gnn");
    assert!(weights_load(&model_dir));
    let file = model_dir.join("1").join("accounts.safetensors");
    let device = candle_core::Device::Cpu;
    let mut tensors = candle_core::safetensors::load(&file, &device).unwrap();
    for name in ["scaling.mean", "scaling.std"] {
        let narrower = tensors[name].narrow(0, 0, 20).unwrap();
        tensors.insert(name.to_string(), narrower);
    }
    candle_core::safetensors::save(&tensors, &file).unwrap();
    assert!(!weights_load(&model_dir));
    let (url, _worker) = serve(models.path(), None).await;
    let entry = &common::repository_index(&url).await[0];
    assert_eq!(entry["state"], "UNAVAILABLE", "{entry}");
    let reason = entry["reason"].as_str().unwrap();
    assert!(
        reason.contains("trained on 20 account features"),
        "{reason}"
    );
}

/// Scores `events` in requests the model's batch size takes.
async fn infer_in_batches(url: &str, events: &[Event]) {
    for chunk in events.chunks(64) {
        let (status, answer) = infer(url, &request(chunk)).await;
        assert_eq!(status, 200, "{answer}");
    }
}

/// With an account model in the version, the risks the worker answers are that model's
/// laundering probabilities over its live graph: as loaded, after a restart (which rescores
/// everything the state directory kept), and after the background rescoring has caught up
/// with new transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_model_gives_the_risks_over_the_live_graph() {
    let models = tempfile::tempdir().unwrap();
    let (events, half, accounts) = trained_models(models.path(), Some(20));
    let accounts = accounts.unwrap();
    let (history, live) = events.split_at(half);
    let config = models.path().join("fraud-gnn/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("account_refresh_seconds = 10"));
    let set_refresh = |seconds: &str| {
        let new = text.replace(
            "account_refresh_seconds = 10",
            &format!("account_refresh_seconds = {seconds}"),
        );
        std::fs::write(&config, new).unwrap();
    };
    // The account model's probability for `account` over the history and `sent`.
    let expected = |sent: &[Event], account: &str| -> f64 {
        let all: Vec<Event> = history.iter().chain(sent).cloned().collect();
        let graph = AccountGraph::from_events(&all, &[]);
        let at = graph.accounts.iter().position(|a| a == account).unwrap();
        f64::from(accounts.score(&graph).unwrap()[at])
    };
    let source_risk = |answer: &Value| scores(answer)[1];
    // The first transfer between two accounts from `from` on.
    let transfer = |from: usize| {
        from + live[from..]
            .iter()
            .position(|e| !e.target.starts_with('M') && e.source != e.target)
            .unwrap()
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-5;
    let mut sent: Vec<Event> = Vec::new();

    // As loaded: the history's accounts; no rescoring within the test (an hour apart).
    set_refresh("3600");
    let state = tempfile::tempdir().unwrap();
    let first = transfer(0);
    {
        let (url, _worker) = serve(models.path(), Some(state.path())).await;
        let (status, answer) = infer(&url, &request(&live[first..first + 1])).await;
        assert_eq!(status, 200, "{answer}");
        let risk = source_risk(&answer);
        assert!(close(risk, expected(&sent, &live[first].source)), "{risk}");
        let target = scores(&answer)[2];
        assert!(
            close(target, expected(&sent, &live[first].target)),
            "{target}"
        );
        sent.push(live[first].clone());
        let rest: Vec<Event> = (live[..100].iter().enumerate())
            .filter(|(i, _)| *i != first)
            .map(|(_, e)| e.clone())
            .collect();
        infer_in_batches(&url, &rest).await;
        sent.extend(rest);
    }
    // After a restart: everything kept in the state directory, rescored when loaded.
    let next = transfer(100);
    {
        let (url, _worker) = serve(models.path(), Some(state.path())).await;
        let (status, answer) = infer(&url, &request(&live[next..next + 1])).await;
        assert_eq!(status, 200, "{answer}");
        let risk = source_risk(&answer);
        let now = expected(&sent, &live[next].source);
        assert!(close(risk, now), "{risk} against {now}");
        sent.push(live[next].clone());
    }
    // Rescored in the background once transactions arrive (at most every 0.2 s here).
    set_refresh("0.2");
    let (url, _worker) = serve(models.path(), Some(state.path())).await;
    let more: Vec<Event> = (live[100..250].iter().enumerate())
        .filter(|(i, _)| 100 + *i != next)
        .map(|(_, e)| e.clone())
        .collect();
    // A transfer whose source took part in the new transactions.
    let last = (250..live.len())
        .find(|i| {
            let e = &live[*i];
            !e.target.starts_with('M')
                && more
                    .iter()
                    .any(|m| m.source == e.source || m.target == e.source)
        })
        .unwrap();
    let before = expected(&sent, &live[last].source);
    infer_in_batches(&url, &more).await;
    sent.extend(more);
    let after = expected(&sent, &live[last].source);
    assert!(
        !close(before, after),
        "the new transactions must change the account's risk"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, answer) = infer(&url, &request(&live[last..last + 1])).await;
    assert_eq!(status, 200, "{answer}");
    let risk = source_risk(&answer);
    assert!(
        close(risk, after),
        "{risk}: rescored {after}, as loaded {before}"
    );

    // A refresh interval that is not a number of seconds: unavailable, and the index says why.
    set_refresh("-1");
    let (url, _worker) = serve(models.path(), Some(state.path())).await;
    let index = common::repository_index(&url).await;
    assert_eq!(index[0]["state"], "UNAVAILABLE", "{index}");
    let reason = index[0]["reason"].as_str().unwrap();
    assert!(reason.contains("account_refresh_seconds"), "{reason}");
}

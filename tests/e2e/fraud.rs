//! The transaction webhook end to end (runtime → `fraud-webhook` → `wasi:nn` → worker running
//! `fraud-gnn` with its live graph): Standard Webhooks signatures, replays and idempotency
//! without side effects, payload errors, decisions on generated typologies, and AML alerts.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};
use vitrine_fraud::schema::Transaction;
use vitrine_runtime::nn_pool::{PoolOptions, WorkerPool};
use vitrine_tests::{
    get_alerts, live_transactions, test_models, transaction_delivery, webhook_manifest, TestApp,
    TestWorker,
};

const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW_SECRET: &str = "whsec_bmV3LXNpZ25pbmcta2V5LWZvci10ZXN0cw==";

/// Both secrets configured, as during a rotation.
fn app_manifest() -> String {
    webhook_manifest(&format!("{NEW_SECRET} {OLD_SECRET}"))
}

async fn start() -> anyhow::Result<(TestWorker, TestApp)> {
    let worker = TestWorker::start(&test_models()).await?;
    let pool = Arc::new(WorkerPool::new(
        std::slice::from_ref(&worker.url),
        PoolOptions::default(),
    )?);
    let app = TestApp::start_with(&app_manifest(), |c| c.nn_pool = Some(pool)).await?;
    Ok((worker, app))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn body(t: &Transaction) -> String {
    transaction_delivery(t)
}

/// Posts a delivery with explicit headers (`None` leaves a header out).
async fn deliver(
    app: &TestApp,
    id: Option<&str>,
    timestamp: Option<i64>,
    signature: Option<&str>,
    body: &str,
) -> anyhow::Result<(u16, Value)> {
    let mut request = reqwest::Client::new()
        .post(format!("{}/webhooks/transactions", app.url))
        .body(body.to_string());
    if let Some(id) = id {
        request = request.header("webhook-id", id);
    }
    if let Some(ts) = timestamp {
        request = request.header("webhook-timestamp", ts.to_string());
    }
    if let Some(sig) = signature {
        request = request.header("webhook-signature", sig);
    }
    let response = request.send().await?;
    Ok((response.status().as_u16(), response.json().await?))
}

/// A correctly signed delivery.
async fn signed(app: &TestApp, id: &str, secret: &str, body: &str) -> anyhow::Result<(u16, Value)> {
    let ts = now();
    let signature = vitrine_webhooks::sign(secret, id, ts, body.as_bytes())?;
    deliver(app, Some(id), Some(ts), Some(&signature), body).await
}

/// Inference calls the runtime made to `fraud-gnn`.
async fn scorings(app: &TestApp) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{}/metrics", app.admin_url))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("vitrine_nn_calls_total{") && l.contains("fraud-gnn"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// The value of the exported series `name` with `labels` (as the exposition writes them).
async fn exported(app: &TestApp, name: &str, labels: &str) -> anyhow::Result<Option<f64>> {
    let text = reqwest::get(format!("{}/metrics", app.admin_url))
        .await?
        .text()
        .await?;
    let series = format!("{name}{labels} ");
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok()))
}

fn live() -> Vec<Transaction> {
    live_transactions()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_signed_deliveries_are_scored_and_each_only_once() -> anyhow::Result<()> {
    let (_worker, app) = start().await?;
    // A fresh database: no alerts yet (the tables are created on first use).
    let (status, alerts) = get_alerts(&app.url, "").await?;
    assert_eq!(status, 200, "{alerts}");
    assert_eq!(alerts["count"], 0);
    let live = live();
    let tx = &live[0];
    let payload = body(tx);
    let ts = now();
    let good = vitrine_webhooks::sign(NEW_SECRET, "msg_1", ts, payload.as_bytes())?;

    // Forgeries: each a 401 naming the problem, before anything is scored or stored.
    let wrong_secret = vitrine_webhooks::sign(
        "whsec_d3Jvbmctc2VjcmV0LWtleQ==",
        "msg_1",
        ts,
        payload.as_bytes(),
    )?;
    let tampered = payload.replace(&format!("{}", tx.amount), "0.01");
    assert_ne!(tampered, payload);
    let stale = now() - 301;
    let stale_sig = vitrine_webhooks::sign(NEW_SECRET, "msg_1", stale, payload.as_bytes())?;
    let future = now() + 400;
    let future_sig = vitrine_webhooks::sign(NEW_SECRET, "msg_1", future, payload.as_bytes())?;
    // (case, webhook-id, webhook-timestamp, webhook-signature, body, what the error says)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<i64>,
        Option<&'a str>,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "wrong secret",
            Some("msg_1"),
            Some(ts),
            Some(&wrong_secret),
            &payload,
            "signature",
        ),
        (
            "tampered body",
            Some("msg_1"),
            Some(ts),
            Some(&good),
            &tampered,
            "signature",
        ),
        (
            "other id",
            Some("msg_2"),
            Some(ts),
            Some(&good),
            &payload,
            "signature",
        ),
        (
            "expired",
            Some("msg_1"),
            Some(stale),
            Some(&stale_sig),
            &payload,
            "too old",
        ),
        (
            "from the future",
            Some("msg_1"),
            Some(future),
            Some(&future_sig),
            &payload,
            "too new",
        ),
        (
            "no signature",
            Some("msg_1"),
            Some(ts),
            None,
            &payload,
            "webhook-signature",
        ),
        ("no id", None, Some(ts), Some(&good), &payload, "webhook-id"),
        (
            "no timestamp",
            Some("msg_1"),
            None,
            Some(&good),
            &payload,
            "webhook-timestamp",
        ),
    ];
    for (case, id, ts, sig, body, says) in cases {
        let (status, answer) = deliver(&app, id, ts, sig, body).await?;
        assert_eq!(status, 401, "{case}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{case}: {message}");
    }
    assert_eq!(
        scorings(&app).await?,
        0,
        "a forged delivery reached the model"
    );

    // The genuine delivery: a decision with score, thresholds and reasons.
    let (status, first) = deliver(&app, Some("msg_1"), Some(ts), Some(&good), &payload).await?;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["transaction_id"], tx.transaction_id.as_str());
    assert!(["approve", "review", "decline"].contains(&first["decision"].as_str().unwrap()));
    let score = first["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score));
    assert_eq!(
        first["thresholds"],
        json!({ "review": 0.5, "decline": 0.9 })
    );
    let reasons = first["reasons"].as_array().unwrap();
    assert!(!reasons.is_empty(), "{first}");
    assert!(reasons
        .iter()
        .all(|r| ["feature", "neighbour"].contains(&r["kind"].as_str().unwrap())));
    assert_eq!(first["duplicate"], false);
    assert_eq!(scorings(&app).await?, 1);
    // The decision's business metric, exported for a cluster's canary analysis.
    let declined = f64::from(u8::from(first["decision"] == "decline"));
    let labels = r#"{name="fraud_declined",release="local"}"#;
    let reports = exported(&app, "vitrine_business_metric_reports_total", labels).await?;
    let sum = exported(&app, "vitrine_business_metric_sum_total", labels).await?;
    assert_eq!((reports, sum), (Some(1.0), Some(declined)));

    // A replay of the delivery, and the same transaction in a new delivery: the recorded
    // decision again, marked as a duplicate, and not scored again.
    let (status, replay) = deliver(&app, Some("msg_1"), Some(ts), Some(&good), &payload).await?;
    assert_eq!(status, 200);
    let (status, again) = signed(&app, "msg_3", NEW_SECRET, &payload).await?;
    assert_eq!(status, 200);
    for answer in [&replay, &again] {
        assert_eq!(answer["duplicate"], true);
        assert_eq!(answer["decision"], first["decision"]);
        assert_eq!(answer["score"], first["score"]);
    }
    // The same transaction id with other details is a conflict.
    let (status, conflict) = signed(&app, "msg_4", NEW_SECRET, &tampered).await?;
    assert_eq!(status, 409, "{conflict}");
    // Bad payloads, correctly signed: 400 naming the field.
    let mut no_amount: Value = serde_json::from_str(&payload)?;
    no_amount["data"]["transaction_id"] = json!("T-other");
    no_amount["data"].as_object_mut().unwrap().remove("amount");
    let (status, bad) = signed(&app, "msg_5", NEW_SECRET, &no_amount.to_string()).await?;
    assert_eq!(status, 400);
    assert!(
        bad["error"].as_str().unwrap().contains("data.amount"),
        "{bad}"
    );
    let (status, _) = signed(&app, "msg_6", NEW_SECRET, "{not json").await?;
    assert_eq!(status, 400);
    assert_eq!(
        scorings(&app).await?,
        1,
        "only the genuine delivery was scored"
    );

    // The old secret still signs during the rotation.
    let (status, rotated) = signed(&app, "msg_7", OLD_SECRET, &body(&live[1])).await?;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["duplicate"], false);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_python_library_signs_deliveries_we_accept() -> anyhow::Result<()> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let payload = body(&live()[2]);
    let ts = now();
    // Standard Webhooks' own Python package (installed by .ci/run).
    let script = format!(
        "import datetime, sys\nfrom standardwebhooks.webhooks import Webhook\n\
         body = sys.stdin.read()\n\
         print(Webhook('{OLD_SECRET}').sign('msg_py', datetime.datetime.fromtimestamp({ts}, tz=datetime.timezone.utc), body))"
    );
    let mut child = std::process::Command::new(&python)
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    use std::io::Write;
    child.stdin.take().unwrap().write_all(payload.as_bytes())?;
    let output = child.wait_with_output()?;
    assert!(
        output.status.success(),
        "this test needs `{python} -m pip install standardwebhooks` (.ci/run does it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let signature = String::from_utf8(output.stdout)?.trim().to_string();
    assert_eq!(
        signature,
        vitrine_webhooks::sign(OLD_SECRET, "msg_py", ts, payload.as_bytes())?
    );
    let (_worker, app) = start().await?;
    let (status, answer) =
        deliver(&app, Some("msg_py"), Some(ts), Some(&signature), &payload).await?;
    assert_eq!(status, 200, "{answer}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_typologies_are_flagged_end_to_end() -> anyhow::Result<()> {
    let (_worker, app) = start().await?;
    let live = live();
    // Every live transaction of the accounts behind the live fraud, plus those of a sample of
    // other accounts, in time order: each account's own history stays complete.
    let fraud_accounts: HashSet<&str> = live
        .iter()
        .filter(|t| t.is_fraud == 1)
        .map(|t| t.source.as_str())
        .collect();
    let fraud_sources = fraud_accounts.len();
    let mut accounts = fraud_accounts.clone();
    accounts.extend(live.iter().step_by(97).map(|t| t.source.as_str()).take(40));
    let sent: Vec<&Transaction> = live
        .iter()
        .filter(|t| accounts.contains(t.source.as_str()))
        .collect();
    assert!(
        fraud_sources >= 5,
        "{fraud_sources} fraud sources in the live part"
    );
    let (mut fraud, mut normal) = (Vec::new(), Vec::new());
    for (i, t) in sent.iter().enumerate() {
        let (status, answer) = signed(&app, &format!("msg_{i}"), NEW_SECRET, &body(t)).await?;
        assert_eq!(status, 200, "{}: {answer}", t.transaction_id);
        let flagged = answer["decision"] != "approve";
        let score = answer["score"].as_f64().unwrap();
        if t.is_fraud == 1 {
            fraud.push((score, flagged, answer));
        } else if !fraud_accounts.contains(t.source.as_str()) {
            // Normal transactions of accounts with no fraud (those of fraud accounts, e.g.
            // mules' everyday payments, are neither side of the comparison).
            normal.push((score, flagged));
        }
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    let fraud_mean = mean(&fraud.iter().map(|f| f.0).collect::<Vec<_>>());
    let normal_mean = mean(&normal.iter().map(|n| n.0).collect::<Vec<_>>());
    let caught = fraud.iter().filter(|f| f.1).count();
    let false_alarms = normal.iter().filter(|n| n.1).count();
    eprintln!(
        "{} fraud (mean score {fraud_mean:.3}, {caught} flagged), {} normal (mean {normal_mean:.3}, {false_alarms} flagged)",
        fraud.len(),
        normal.len()
    );
    assert!(
        fraud_mean > 5.0 * normal_mean,
        "{fraud_mean} vs {normal_mean}"
    );
    assert!(
        caught * 2 >= fraud.len(),
        "{caught} of {} fraud flagged",
        fraud.len()
    );
    assert!(
        false_alarms * 20 <= normal.len(),
        "{false_alarms} of {} normal flagged",
        normal.len()
    );
    // A flagged transaction names a typology and the reasons behind it.
    let (_, _, answer) = fraud.iter().find(|f| f.1).unwrap();
    assert!(
        answer["pattern"].as_str().is_some_and(|p| !p.is_empty()),
        "{answer}"
    );
    assert!(!answer["reasons"].as_array().unwrap().is_empty());

    // AML alerts: accounts over the threshold, riskiest first, mostly laundering accounts
    // (the built-in account model's risks), a pattern only where a transaction was flagged.
    let (status, alerts) = get_alerts(&app.url, "?limit=1000").await?;
    assert_eq!(status, 200, "{alerts}");
    let list = alerts["alerts"].as_array().unwrap();
    assert!(
        !list.is_empty(),
        "no AML alert after {} fraud transactions",
        fraud.len()
    );
    let risks: Vec<f64> = list.iter().map(|a| a["risk"].as_f64().unwrap()).collect();
    assert!(risks.windows(2).all(|w| w[0] >= w[1]) && risks.iter().all(|r| *r >= 0.7));
    let laundering: HashSet<String> = vitrine_worker::train::fraud_bank(7)?
        .accounts
        .into_iter()
        .filter(|a| a.is_laundering == 1)
        .map(|a| a.account_id)
        .collect();
    let true_alerts = list
        .iter()
        .filter(|a| laundering.contains(a["account_id"].as_str().unwrap()))
        .count();
    eprintln!(
        "{true_alerts} of {} alerts are laundering accounts",
        list.len()
    );
    assert!(true_alerts * 5 >= list.len() * 4, "{alerts}");
    assert!(list
        .iter()
        .all(|a| a["pattern"].is_null() || a["pattern"].as_str().is_some_and(|p| !p.is_empty())));
    let (status, _) = get_alerts(&app.url, "?limit=0").await?;
    assert_eq!(status, 400);

    // Compliance data needs the bearer token: none, a wrong one, or one of another length
    // is a 401 that names the scheme, with no alert in the body.
    let alerts_url = format!("{}/api/aml/alerts", app.url);
    for token in [None, Some("wrong-token-of-the-same-len"), Some("x")] {
        let mut request = reqwest::Client::new().get(&alerts_url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        assert_eq!(response.status(), 401, "{token:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = response.json().await?;
        assert!(body.get("alerts").is_none(), "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("bearer")
                || body["error"].as_str().unwrap().contains("Bearer"),
            "{body}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_copies_are_scored_once_and_a_reused_webhook_id_is_refused() -> anyhow::Result<()>
{
    let (_worker, app) = start().await?;
    let app = Arc::new(app);
    let live = live();
    let payload = body(&live[0]);
    // Twelve copies at once, as a sender retrying on a short timeout would send them.
    let copies: Vec<_> = (0..12)
        .map(|i| {
            let (app, payload) = (app.clone(), payload.clone());
            tokio::spawn(
                async move { signed(&app, &format!("copy_{i}"), NEW_SECRET, &payload).await },
            )
        })
        .collect();
    let mut answers = Vec::new();
    for copy in copies {
        let (status, answer) = copy.await??;
        assert_eq!(status, 200, "{answer}");
        answers.push(answer);
    }
    assert_eq!(
        scorings(&app).await?,
        1,
        "the transaction was scored more than once"
    );
    let firsts = answers.iter().filter(|a| a["duplicate"] == false).count();
    assert_eq!(firsts, 1, "{answers:?}");
    assert!(answers
        .iter()
        .all(|a| a["score"] == answers[0]["score"] && a["decision"] == answers[0]["decision"]));

    // A webhook id already used for another transaction: 409, and that transaction is neither
    // answered with the first one's decision nor scored.
    let (status, reused) = signed(&app, "copy_0", NEW_SECRET, &body(&live[1])).await?;
    assert_eq!(status, 409, "{reused}");
    let message = reused["error"].as_str().unwrap();
    assert!(
        message.contains("copy_0") && message.contains(&live[0].transaction_id),
        "{message}"
    );
    assert_eq!(scorings(&app).await?, 1);
    // With its own id it is scored.
    let (status, own) = signed(&app, "own_id", NEW_SECRET, &body(&live[1])).await?;
    assert_eq!((status, &own["duplicate"]), (200, &json!(false)), "{own}");
    assert_eq!(scorings(&app).await?, 2);
    Ok(())
}

/// Scores `t` with the worker directly, as the function does, with its transaction id when
/// `keyed`: fraud probability, source risk, target risk.
async fn score_directly(
    worker: &TestWorker,
    t: &Transaction,
    keyed: bool,
) -> anyhow::Result<Vec<f64>> {
    let event = vitrine_fraud::graph::Event::from_transaction(t);
    let key = if keyed { t.transaction_id.as_str() } else { "" };
    let mut ids = Vec::new();
    for text in [event.source.as_str(), &event.target, &event.device, key] {
        let mut bytes = text.as_bytes().to_vec();
        bytes.resize(64, 0);
        ids.extend(bytes);
    }
    let body = json!({ "inputs": [
        { "name": "ids", "shape": [1, 4, 64], "datatype": "UINT8", "data": ids },
        { "name": "event", "shape": [1, 3], "datatype": "FP64",
          "data": [event.time as f64, event.amount, event.channel as f64] },
    ]});
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/v2/models/fraud-gnn/infer", worker.url))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let scores = answer["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == "scores"))
        .and_then(|o| o["data"].as_array())
        .ok_or_else(|| anyhow::anyhow!("no scores in {answer}"))?;
    Ok(scores.iter().filter_map(Value::as_f64).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_the_graph_already_holds_is_not_added_again() -> anyhow::Result<()> {
    // A crash after the worker added the transaction but before the function recorded its
    // decision: the retried delivery must get that first outcome, not a second edge.
    let (worker, app) = start().await?;
    let live = live();
    let tx = &live[3];
    let first = score_directly(&worker, tx, true).await?;
    let (status, answer) = signed(&app, "after_crash", NEW_SECRET, &body(tx)).await?;
    assert_eq!(status, 200, "{answer}");
    let round = |v: f64| (v * 1e6).round() / 1e6;
    let answered = [
        &answer["score"],
        &answer["source_risk"],
        &answer["target_risk"],
    ]
    .map(|v| v.as_f64().unwrap());
    assert_eq!(
        answered,
        [round(first[0]), round(first[1]), round(first[2])],
        "{answer}"
    );
    // Scored again without its id, the transaction would meet itself in the features: a
    // different outcome, so the equality above is the saved outcome, not chance.
    let rescored = score_directly(&worker, tx, false).await?;
    assert_ne!(rescored, first);
    Ok(())
}

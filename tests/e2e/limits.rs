//! Per-request limits: a guest that loops forever gets 504 within its deadline, one that
//! exhausts memory or traps gets 500, an oversized body gets 413 — and other requests keep
//! succeeding meanwhile.

use std::time::{Duration, Instant};

use vitrine_tests::{get_json, manifest, TestApp};

const LIMITED: &str = r#"
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "PROBE"
[component.probe.tool.vitrine]
request_timeout_ms = 1000
memory_limit_mb = 32
max_request_body_bytes = 1000
"#;

/// Keeps fetching a healthy endpoint until `stop`, returning (succeeded, failed, slowest).
async fn healthy_traffic(
    url: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (u32, u32, Duration) {
    let (mut ok, mut failed, mut slowest) = (0, 0, Duration::ZERO);
    while !*stop.borrow() {
        let started = Instant::now();
        match get_json(&url).await {
            Ok((200, _)) => ok += 1,
            _ => failed += 1,
        }
        slowest = slowest.max(started.elapsed());
    }
    (ok, failed, slowest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_guests_fail_alone() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(LIMITED)).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let traffic = tokio::spawn(healthy_traffic(format!("{}/echo", app.url), stop_rx));

    // As many runaway guests as the runtime has worker threads: they must not starve others.
    let started = Instant::now();
    let loops: Vec<_> = (0..2)
        .map(|_| tokio::spawn(reqwest::get(format!("{}/loop", app.url))))
        .collect();
    for looping in loops {
        let looping = looping.await??;
        assert_eq!(looping.status(), 504);
        assert!(looping.text().await?.contains("did not answer within"));
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );

    let bomb = reqwest::get(format!("{}/memory", app.url)).await?;
    assert_eq!(bomb.status(), 500);
    assert!(bomb.text().await?.contains("memory limit of 32 MiB"));

    let trap = reqwest::get(format!("{}/trap", app.url)).await?;
    assert_eq!(trap.status(), 500);
    assert!(trap.text().await?.contains("failed"));

    stop_tx.send(true)?;
    let (ok, failed, slowest) = traffic.await?;
    assert_eq!(failed, 0, "healthy requests failed while others misbehaved");
    assert!(
        slowest < Duration::from_millis(500),
        "a healthy request waited {slowest:?}"
    );
    assert!(ok > 5, "only {ok} healthy requests completed");
    assert_eq!(get_json(&format!("{}/echo", app.url)).await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn oversized_bodies_get_413() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(LIMITED)).await?;
    let client = reqwest::Client::new();
    let small = client
        .post(format!("{}/echo", app.url))
        .body(vec![b'x'; 1000])
        .send()
        .await?;
    assert_eq!(small.status(), 200);
    assert_eq!(
        small.json::<serde_json::Value>().await?["body_length"],
        1000
    );

    // Declared too large.
    let declared = client
        .post(format!("{}/echo", app.url))
        .body(vec![b'x'; 1001])
        .send()
        .await?;
    assert_eq!(declared.status(), 413);

    // Streamed without a length, and too large.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..3).map(|_| Ok(vec![b'y'; 600])).collect();
    let streamed = client
        .post(format!("{}/echo", app.url))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await?;
    assert_eq!(streamed.status(), 413);
    Ok(())
}

#[tokio::test]
async fn a_full_instance_pool_answers_503_and_recovers() -> anyhow::Result<()> {
    let app = TestApp::start_with(&manifest(LIMITED), |c| c.max_instances = 2).await?;
    let slow: Vec<_> = (0..4)
        .map(|_| tokio::spawn(reqwest::get(format!("{}/sleep?ms=500", app.url))))
        .collect();
    let mut statuses = Vec::new();
    for request in slow {
        let response = request.await??;
        if response.status() == 503 {
            assert_eq!(response.headers()["retry-after"], "1");
        }
        statuses.push(response.status().as_u16());
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 200, 503, 503],
        "two instances at once, the rest refused"
    );
    assert_eq!(get_json(&format!("{}/echo", app.url)).await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn a_statement_past_the_deadline_is_interrupted_and_releases_its_lock() -> anyhow::Result<()>
{
    let app = TestApp::start(&manifest(
        r#"
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "PROBE"
sqlite_databases = ["default"]
[component.probe.tool.vitrine]
request_timeout_ms = 500
"#,
    ))
    .await?;
    let url = format!("{}/sqlite/default", app.url);
    let run = |sql: &str| {
        reqwest::Client::new()
            .post(&url)
            .json(&serde_json::json!({ "sql": sql, "params": [] }))
            .send()
    };
    assert_eq!(run("CREATE TABLE t (x INTEGER)").await?.status(), 200);

    // An endless write: it holds the database's write lock for as long as it runs.
    let started = Instant::now();
    let endless = run(
        "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
         SELECT x FROM c",
    )
    .await?;
    let status = endless.status().as_u16();
    let body = endless.text().await?;
    // Either the guest saw its statement interrupted (and said so) or the deadline answered.
    assert!(
        (status == 500 && body.contains("interrupted")) || status == 504,
        "{status}: {body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // The statement is gone: the lock is free at once and its rows were rolled back.
    let next = run("INSERT INTO t VALUES (7)").await?;
    assert_eq!(next.status(), 200, "{}", next.text().await?);
    let rows: serde_json::Value = run("SELECT count(*), max(x) FROM t").await?.json().await?;
    assert_eq!(rows["rows"], serde_json::json!([[1, 7]]));
    Ok(())
}

//! Spin host APIs as a guest sees them: key-value, SQLite, variables, outbound HTTP,
//! environment and files — with the manifest's access rules.

use serde_json::json;
use vitrine_tests::{get_json, manifest, TestApp};

async fn put(url: &str, body: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let response = reqwest::Client::new()
        .put(url)
        .body(body.to_string())
        .send()
        .await?;
    Ok((response.status().as_u16(), response.json().await?))
}

async fn post_json(url: &str, body: serde_json::Value) -> anyhow::Result<(u16, serde_json::Value)> {
    let response = reqwest::Client::new().post(url).json(&body).send().await?;
    Ok((response.status().as_u16(), response.json().await?))
}

const STORES: &str = r#"
[[trigger.http]]
route = "/a/..."
component = "a"
[[trigger.http]]
route = "/b/..."
component = "b"
[component.a]
source = "PROBE"
key_value_stores = ["default", "carts"]
sqlite_databases = ["default"]
[component.b]
source = "PROBE"
key_value_stores = ["carts"]
sqlite_databases = ["orders"]
"#;

/// The keys of a store, sorted (Redis lists them in no order).
async fn keys(url: &str) -> anyhow::Result<serde_json::Value> {
    let mut keys: Vec<String> = serde_json::from_value(get_json(url).await?.1["keys"].clone())?;
    keys.sort();
    Ok(json!(keys))
}

/// The key-value semantics and access rules every backend keeps, on `app` serving [`STORES`].
async fn check_key_value_semantics(app: &TestApp) -> anyhow::Result<()> {
    let a = format!("{}/a", app.url);
    let b = format!("{}/b", app.url);

    assert_eq!(
        get_json(&format!("{a}/kv/default/k1")).await?.1,
        json!({ "value": null, "exists": false })
    );
    assert_eq!(put(&format!("{a}/kv/default/k1"), "v1").await?.0, 200);
    assert_eq!(put(&format!("{a}/kv/default/k2"), "v2").await?.0, 200);
    assert_eq!(put(&format!("{a}/kv/default/k1"), "v1b").await?.0, 200);
    assert_eq!(
        get_json(&format!("{a}/kv/default/k1")).await?.1,
        json!({ "value": "v1b", "exists": true })
    );
    assert_eq!(keys(&format!("{a}/kv/default")).await?, json!(["k1", "k2"]));
    let deleted = reqwest::Client::new()
        .delete(format!("{a}/kv/default/k1"))
        .send()
        .await?;
    assert_eq!(deleted.status(), 200);
    assert_eq!(keys(&format!("{a}/kv/default")).await?, json!(["k2"]));

    // Stores are separate, and shared between the components that list them.
    put(&format!("{a}/kv/carts/c1"), "shared").await?;
    assert_eq!(
        get_json(&format!("{b}/kv/carts/c1")).await?.1["value"],
        "shared"
    );
    assert_eq!(keys(&format!("{b}/kv/carts")).await?, json!(["c1"]));

    // `b` does not list `default`: access-denied. Nobody names `nope`: access-denied too, as
    // in Spin (a label the component does not list is never looked up).
    let (status, body) = get_json(&format!("{b}/kv/default/k2")).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("Error::AccessDenied"))
    );
    let (status, body) = get_json(&format!("{a}/kv/nope/k")).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("Error::AccessDenied"))
    );
    Ok(())
}

#[tokio::test]
async fn key_value_semantics_and_access_rules() -> anyhow::Result<()> {
    check_key_value_semantics(&TestApp::start(&manifest(STORES)).await?).await
}

/// `redis-cli` against database `db` of the server on `port`.
fn redis_cli(port: u16, db: u32, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "-n", &db.to_string()])
        .args(args)
        .output()?;
    anyhow::ensure!(out.status.success(), "redis-cli {args:?} failed");
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// Stores on Redis (a runtime config's `type = "redis"`) keep the same semantics, each in its
/// own database, with the keys as they are (as Spin stores them); a Redis that dies makes
/// operations fail with an error (not hang) and the health endpoint say so, and one that comes
/// back is used again.
#[tokio::test]
async fn key_value_on_redis() -> anyhow::Result<()> {
    let mut redis = vitrine_tests::LoopbackService::redis()?;
    let port = redis.port;
    let app = TestApp::start_with(&manifest(STORES), |c| {
        for (label, db) in [("default", 0), ("carts", 1)] {
            let url = format!("redis://127.0.0.1:{port}/{db}");
            c.key_value_stores
                .insert(label.into(), vitrine_runtime::StoreBackend::Redis(url));
        }
    })
    .await?;
    check_key_value_semantics(&app).await?;
    assert_eq!(redis_cli(port, 0, &["GET", "k2"])?, "v2");
    assert_eq!(redis_cli(port, 1, &["GET", "c1"])?, "shared");
    // Nothing of it went to the embedded file.
    assert!(!app.state_dir.path().join(".vitrine/key_value.db").exists());
    let health = format!("{}/healthz", app.admin_url);
    let ready = || async {
        for _ in 0..100 {
            let response = reqwest::get(&health).await?;
            if response.status() == 200 {
                return anyhow::Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        anyhow::bail!(
            "never ready: {}",
            reqwest::get(&health).await?.text().await?
        )
    };
    ready().await?;

    redis.kill();
    let started = std::time::Instant::now();
    let (status, body) = get_json(&format!("{}/a/kv/default/k2", app.url)).await?;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("Error::Other"),
        "{body}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let response = reqwest::get(&health).await?;
    assert_eq!(response.status(), 503);
    let text = response.text().await?;
    assert!(
        text.contains("key-value store `") && text.contains(&format!("127.0.0.1:{port}")),
        "{text}"
    );

    // The data was in a Redis without persistence: it is gone, but the store works again.
    redis.restart()?;
    let mut answered = None;
    for _ in 0..100 {
        let (status, _) = put(&format!("{}/a/kv/default/back", app.url), "yes").await?;
        if status == 200 {
            answered = Some(status);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answered, Some(200), "the store never worked again");
    assert_eq!(redis_cli(port, 0, &["GET", "back"])?, "yes");
    ready().await?;
    Ok(())
}

/// A runtime config places stores and databases: a `spin` store or database with a `path`
/// lives in that file (kept across restarts), one without lives in memory (gone after one).
#[tokio::test]
async fn placed_stores_and_databases() -> anyhow::Result<()> {
    use vitrine_runtime::{DatabaseLocation, StoreBackend};
    let text = manifest(STORES);
    let state = tempfile::tempdir()?;
    let placed = tempfile::tempdir()?;
    let kv_file = placed.path().join("kv/carts.db");
    let db_file = placed.path().join("orders.db");
    let configure = |c: &mut vitrine_runtime::RuntimeConfig| {
        c.state_dir = state.path().to_path_buf();
        c.key_value_stores.insert(
            "carts".into(),
            StoreBackend::Embedded(DatabaseLocation::File(kv_file.clone())),
        );
        c.key_value_stores.insert(
            "default".into(),
            StoreBackend::Embedded(DatabaseLocation::Memory),
        );
        c.sqlite_databases
            .insert("orders".into(), DatabaseLocation::File(db_file.clone()));
        c.sqlite_databases
            .insert("default".into(), DatabaseLocation::Memory);
    };
    let app = TestApp::start_with(&text, configure).await?;
    check_key_value_semantics(&app).await?;
    let sql = |sql: &str| json!({ "sql": sql, "params": [] });
    for (url, statement) in [
        ("b/sqlite/orders", "CREATE TABLE o (id INTEGER)"),
        ("b/sqlite/orders", "INSERT INTO o VALUES (7)"),
        ("a/sqlite/default", "CREATE TABLE m (id INTEGER)"),
        ("a/sqlite/default", "INSERT INTO m VALUES (8)"),
    ] {
        let (status, body) = post_json(&format!("{}/{url}", app.url), sql(statement)).await?;
        assert_eq!(status, 200, "{statement}: {body}");
    }
    let (_, body) = post_json(
        &format!("{}/a/sqlite/default", app.url),
        sql("SELECT id FROM m"),
    )
    .await?;
    assert_eq!(body["rows"], json!([[8]]));
    assert!(kv_file.exists() && db_file.exists());
    assert!(!state.path().join("key_value.db").exists());
    assert!(!state.path().join("sqlite/orders.db").exists());
    app.stop().await?;

    let again = TestApp::start_with(&text, configure).await?;
    assert_eq!(
        get_json(&format!("{}/b/kv/carts/c1", again.url)).await?.1["value"],
        "shared"
    );
    assert_eq!(
        get_json(&format!("{}/a/kv/default/k2", again.url)).await?.1["exists"],
        false
    );
    let (_, body) = post_json(
        &format!("{}/b/sqlite/orders", again.url),
        sql("SELECT id FROM o"),
    )
    .await?;
    assert_eq!(body["rows"], json!([[7]]));
    let (status, body) = post_json(
        &format!("{}/a/sqlite/default", again.url),
        sql("SELECT id FROM m"),
    )
    .await?;
    assert_eq!(status, 500);
    assert!(
        body["error"].as_str().unwrap().contains("no such table"),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn key_value_survives_a_restart() -> anyhow::Result<()> {
    let text = manifest(STORES);
    let state = tempfile::tempdir()?;
    let use_state =
        |c: &mut vitrine_runtime::RuntimeConfig| c.state_dir = state.path().to_path_buf();
    let app = TestApp::start_with(&text, use_state).await?;
    put(&format!("{}/a/kv/default/kept", app.url), "yes").await?;
    app.stop().await?;
    let again = TestApp::start_with(&text, use_state).await?;
    assert_eq!(
        get_json(&format!("{}/a/kv/default/kept", again.url))
            .await?
            .1["value"],
        "yes"
    );
    Ok(())
}

#[tokio::test]
async fn sqlite_semantics_and_access_rules() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(STORES)).await?;
    let a = format!("{}/a/sqlite/default", app.url);
    let sql = |sql: &str, params: serde_json::Value| json!({ "sql": sql, "params": params });

    assert_eq!(
        post_json(
            &a,
            sql(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL)",
                json!([])
            )
        )
        .await?
        .0,
        200
    );
    post_json(
        &a,
        sql(
            "INSERT INTO t (name, score) VALUES (?, ?), (?, ?)",
            json!(["ann", 1.5, "bob", 7]),
        ),
    )
    .await?;
    let (status, body) = post_json(
        &a,
        sql(
            "SELECT id, name, score FROM t WHERE score > ? ORDER BY id",
            json!([1]),
        ),
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(body["columns"], json!(["id", "name", "score"]));
    assert_eq!(body["rows"], json!([[1, "ann", 1.5], [2, "bob", 7.0]]));

    // SQL errors come back as errors, not traps.
    let (status, body) = post_json(&a, sql("SELECT * FROM missing", json!([]))).await?;
    assert_eq!(status, 500);
    assert!(
        body["error"].as_str().unwrap().contains("no such table"),
        "{body}"
    );

    // `b` may open `orders` (its own file, empty) but not `default`, nor `x` (named by nobody).
    let b = format!("{}/b/sqlite", app.url);
    let (status, _) = post_json(
        &format!("{b}/orders"),
        sql("SELECT count(*) FROM sqlite_master", json!([])),
    )
    .await?;
    assert_eq!(status, 200);
    let (status, body) = post_json(&format!("{b}/default"), sql("SELECT 1", json!([]))).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("Error::AccessDenied"))
    );
    let (status, body) = post_json(&format!("{b}/x"), sql("SELECT 1", json!([]))).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("Error::AccessDenied"))
    );
    Ok(())
}

/// A long read returns every row, and inside a transaction it leaves the transaction's writes
/// in place (guards any change to how statements are run: interrupting a statement inside a
/// transaction can roll the transaction back).
#[tokio::test]
async fn long_reads_return_every_row_and_keep_the_transaction() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(STORES)).await?;
    let a = format!("{}/a/sqlite/default", app.url);
    // Hundreds of thousands of rows: tens of milliseconds.
    let slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400000) \
                SELECT count(*), sum(i) FROM n";
    let (status, body) = post_json(&a, json!({ "sql": slow, "params": [] })).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0], json!([400000, 80000200000i64]));
    let (status, body) = post_json(
        &a,
        json!({ "sql": [
            "CREATE TABLE IF NOT EXISTS kept (v INTEGER)",
            "BEGIN IMMEDIATE",
            "INSERT INTO kept VALUES (1)",
            slow,
            "INSERT INTO kept VALUES (2)",
            "COMMIT",
            "SELECT count(*), sum(v) FROM kept",
        ], "params": [] }),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0], json!([2, 3]), "{body}");
    Ok(())
}

#[tokio::test]
async fn variables_environment_and_files() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("static/sub"))?;
    std::fs::write(dir.path().join("static/sub/hello.txt"), "hi there")?;
    std::fs::write(dir.path().join("static/secret.key"), "nope")?;
    let static_dir = dir.path().join("static");
    let text = manifest(&format!(
        r#"
[variables]
greeting = {{ default = "hello" }}
api_token = {{ required = true, secret = true }}
from_env = {{ default = "unset" }}
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "PROBE"
environment = {{ SHOP_REGION = "eu-west" }}
files = [{{ source = "{}", destination = "/assets" }}]
[component.probe.variables]
message = "{{{{ greeting }}}}, world"
token = "{{{{ api_token }}}}"
env_value = "{{{{ from_env }}}}"
"#,
        static_dir.display()
    ));
    // A required variable without a value stops startup, naming the variable.
    let err = TestApp::start(&text)
        .await
        .err()
        .expect("startup must fail")
        .to_string();
    assert!(err.contains("api_token"), "{err}");

    // SPIN_VARIABLE_* is read from the process environment; this test is its only user.
    std::env::set_var("SPIN_VARIABLE_FROM_ENV", "from-the-environment");
    let app = TestApp::start_with(&text, |c| {
        c.variables.insert("api_token".into(), "s3cr3t".into());
    })
    .await?;
    assert_eq!(
        get_json(&format!("{}/var/message", app.url)).await?.1["value"],
        "hello, world"
    );
    assert_eq!(
        get_json(&format!("{}/var/token", app.url)).await?.1["value"],
        "s3cr3t"
    );
    assert_eq!(
        get_json(&format!("{}/var/env_value", app.url)).await?.1["value"],
        "from-the-environment"
    );
    // Only the component's own variables are visible.
    let (status, body) = get_json(&format!("{}/var/greeting", app.url)).await?;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("Undefined"),
        "{body}"
    );

    assert_eq!(
        get_json(&format!("{}/env/SHOP_REGION", app.url)).await?.1["value"],
        "eu-west"
    );
    let (status, body) = get_json(&format!("{}/file/assets/sub/hello.txt", app.url)).await?;
    assert_eq!((status, body["content"].as_str()), (200, Some("hi there")));
    // Nothing outside the mounts is visible.
    let (status, _) = get_json(&format!("{}/file/etc/passwd", app.url)).await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn outbound_http_obeys_the_allow_list() -> anyhow::Result<()> {
    // The upstream: another app on loopback.
    let upstream = TestApp::start(&manifest(
        "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n[component.hello]\nsource = \"HELLO\"\n",
    ))
    .await?;
    let upstream_port = upstream.url.rsplit(':').next().unwrap().to_string();
    let app = TestApp::start(&manifest(&format!(
        r#"
[variables]
upstream_port = {{ default = "{upstream_port}" }}
[[trigger.http]]
route = "/allowed/..."
component = "allowed"
[[trigger.http]]
route = "/closed/..."
component = "closed"
[component.allowed]
source = "PROBE"
allowed_outbound_hosts = ["http://127.0.0.1:{{{{ upstream_port }}}}", "http://self"]
[component.closed]
source = "PROBE"
allowed_outbound_hosts = ["https://example.com"]
"#
    )))
    .await?;
    let target = format!("{}/anything", upstream.url);

    let (status, body) = get_json(&format!("{}/allowed/outbound?url={target}", app.url)).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 200);
    assert_eq!(body["body"], "Hello, Vitrine!\n");

    // Refused: not in the list (other component, other port) — an error value, not a trap.
    let (status, body) = get_json(&format!("{}/closed/outbound?url={target}", app.url)).await?;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("denied"),
        "{body}"
    );
    let other_port = "http://127.0.0.1:1/x";
    let (status, _) = get_json(&format!("{}/allowed/outbound?url={other_port}", app.url)).await?;
    assert_eq!(status, 502);

    // `self`: a relative URL reaches this application.
    let (status, body) =
        get_json(&format!("{}/allowed/outbound?url=/closed/echo", app.url)).await?;
    assert_eq!(status, 200, "{body}");
    let inner: serde_json::Value = serde_json::from_str(body["body"].as_str().unwrap())?;
    assert_eq!(inner["headers"]["spin-matched-route"], "/closed/...");
    let (status, _) = get_json(&format!("{}/closed/outbound?url=/allowed/echo", app.url)).await?;
    assert_eq!(status, 502, "self is not in `closed`'s list");
    Ok(())
}

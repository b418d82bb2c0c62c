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

#[tokio::test]
async fn key_value_semantics_and_access_rules() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(STORES)).await?;
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
    assert_eq!(
        get_json(&format!("{a}/kv/default")).await?.1["keys"],
        json!(["k1", "k2"])
    );
    let deleted = reqwest::Client::new()
        .delete(format!("{a}/kv/default/k1"))
        .send()
        .await?;
    assert_eq!(deleted.status(), 200);
    assert_eq!(
        get_json(&format!("{a}/kv/default")).await?.1["keys"],
        json!(["k2"])
    );

    // Stores are separate, and shared between the components that list them.
    put(&format!("{a}/kv/carts/c1"), "shared").await?;
    assert_eq!(
        get_json(&format!("{b}/kv/carts/c1")).await?.1["value"],
        "shared"
    );
    assert_eq!(
        get_json(&format!("{b}/kv/carts")).await?.1["keys"],
        json!(["c1"])
    );

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

//! Functions → `wasi:nn` → inference worker, end to end: the classify function through the
//! runtime's native `wasi:nn` and through the `nn-remote` adapter composed as a dependency, and
//! the host's rules (`ai_models`, raw graph bytes, unknown models, bad tensors).

use std::sync::Arc;

use serde_json::{json, Value};
use vitrine_runtime::nn_pool::{PoolOptions, WorkerPool};
use vitrine_runtime::spin_app_dir::{self, RemoteNn};
use vitrine_tests::{guest, manifest, post_json, test_models, TestApp, TestWorker};

fn pool(worker: &TestWorker) -> Arc<WorkerPool> {
    Arc::new(WorkerPool::new(std::slice::from_ref(&worker.url), PoolOptions::default()).unwrap())
}

/// Two rows of session features.
fn features() -> Value {
    json!({ "features": [
        [0.3, -1.2, 0.8, 1.5, -0.4, 0.0, 2.1, -0.7, 0.9, 1.1, -1.8, 0.2, 0.6, -0.3, 1.4, -0.9],
        [-1.0, 0.5, -0.2, 0.1, 1.9, -1.3, 0.4, 0.7, -0.6, 0.0, 0.3, 1.2, -1.5, 0.8, -0.1, 0.5]
    ]})
}

const NATIVE: &str = r#"
[[trigger.http]]
route = "/api/classify/..."
component = "classify"
[component.classify]
source = "CLASSIFY"
ai_models = ["intent-mlp", "shapes-cnn"]
"#;

#[tokio::test]
async fn a_function_gets_the_workers_answer_through_native_wasi_nn() -> anyhow::Result<()> {
    let worker = TestWorker::start(&test_models()).await?;
    let app = TestApp::start_with(&manifest(NATIVE), |c| c.nn_pool = Some(pool(&worker))).await?;
    let (status, body) =
        post_json(&format!("{}/api/classify/intent", app.url), &features()).await?;
    assert_eq!(status, 200, "{body}");

    // The same rows straight to the worker over the inference protocol.
    let rows: Vec<f32> = features()["features"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    let direct = json!({ "inputs": [{ "name": "features", "shape": [2, 16], "datatype": "FP32", "data": rows }] });
    let (status, answer) = post_json(
        &format!("{}/v2/models/intent-mlp/infer", worker.url),
        &direct,
    )
    .await?;
    assert_eq!(status, 200, "{answer}");
    let expected: Vec<f64> = answer["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let labels = ["browse", "compare", "buy", "leave"];
    for (row, result) in body["results"].as_array().unwrap().iter().enumerate() {
        for (i, label) in labels.iter().enumerate() {
            let got = result["probabilities"][label].as_f64().unwrap();
            assert!(
                (got - expected[row * 4 + i]).abs() < 1e-6,
                "row {row} {label}: {got} vs {}",
                expected[row * 4 + i]
            );
        }
    }

    // The runtime's metrics count the call, by model and outcome.
    let metrics = reqwest::get(format!("{}/metrics", app.admin_url))
        .await?
        .text()
        .await?;
    for line in [
        "vitrine_nn_calls_total{model=\"intent-mlp\",outcome=\"ok\"} 1",
        "vitrine_nn_call_duration_seconds_count{model=\"intent-mlp\",outcome=\"ok\"} 1",
        "vitrine_nn_retries_total 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert!(
        metrics.contains(&format!(
            "vitrine_nn_worker_healthy{{worker=\"{}\"}} 1",
            worker.url
        )),
        "{metrics}"
    );

    // Bad input is the function's 400, never a worker call.
    let (status, body) = post_json(
        &format!("{}/api/classify/intent", app.url),
        &json!({ "features": [1, 2] }),
    )
    .await?;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the model takes 16"),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn the_nn_remote_adapter_gives_the_same_answer_as_native_wasi_nn() -> anyhow::Result<()> {
    let worker = TestWorker::start(&test_models()).await?;
    let native =
        TestApp::start_with(&manifest(NATIVE), |c| c.nn_pool = Some(pool(&worker))).await?;
    let composed = format!(
        r#"
[[trigger.http]]
route = "/api/classify/..."
component = "classify"
[component.classify]
source = "CLASSIFY"
environment = {{ VITRINE_NN_URL = "{url}" }}
allowed_outbound_hosts = ["{url}"]
dependencies_inherit_configuration = true
[component.classify.dependencies]
"wasi:nn" = {{ path = "NN_REMOTE" }}
"#,
        url = worker.url
    );
    // No pool: the composed component must not need the host's wasi:nn at all.
    let remote = TestApp::start(&manifest(&composed)).await?;
    let image: Vec<f32> = (0..784)
        .map(|i| {
            if (i % 28 > 8 && i % 28 < 20) && (i / 28 > 8 && i / 28 < 20) {
                0.9
            } else {
                0.05
            }
        })
        .collect();
    for (path, body) in [("intent", features()), ("shape", json!({ "image": image }))] {
        let a = post_json(&format!("{}/api/classify/{path}", native.url), &body).await?;
        let b = post_json(&format!("{}/api/classify/{path}", remote.url), &body).await?;
        assert_eq!(a.0, 200, "{}", a.1);
        assert_eq!(a, b, "native and adapter answers differ for {path}");
    }
    // A square is recognised by the CNN.
    let (_, shape) = post_json(
        &format!("{}/api/classify/shape", remote.url),
        &json!({ "image": image }),
    )
    .await?;
    assert_eq!(shape["results"][0]["shape"], "square", "{shape}");
    Ok(())
}

#[tokio::test]
async fn an_app_composed_for_spinkube_reaches_the_worker_through_nn_remote() -> anyhow::Result<()> {
    let worker = TestWorker::start(&test_models()).await?;
    let native =
        TestApp::start_with(&manifest(NATIVE), |c| c.nn_pool = Some(pool(&worker))).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("spin.toml"), manifest(NATIVE))?;
    let app = vitrine_runtime::Manifest::load(&dir.path().join("spin.toml"))?;
    let nn = RemoteNn {
        adapter: guest("nn-remote"),
        url: format!("{}/", worker.url),
    };
    let out = dir.path().join("spinkube");
    assert_eq!(spin_app_dir::export(&app, &nn, &out)?, ["classify"]);

    // The manifest names no host AI and no dependency: stock Spin runs it as it is.
    let written: toml::Table = toml::from_str(&std::fs::read_to_string(out.join("spin.toml"))?)?;
    let classify = &written["component"]["classify"];
    assert_eq!(
        classify["source"].as_str(),
        Some("components/classify.wasm")
    );
    assert_eq!(
        classify["environment"]["VITRINE_NN_URL"].as_str(),
        Some(worker.url.as_str())
    );
    assert_eq!(
        classify["allowed_outbound_hosts"][0].as_str(),
        Some(worker.url.as_str())
    );
    for gone in ["ai_models", "dependencies"] {
        assert!(classify.get(gone).is_none(), "{gone} left in {classify}");
    }
    // A second export into the same directory would mix two applications.
    let again = spin_app_dir::export(&app, &nn, &out).unwrap_err();
    assert!(again.to_string().contains("not empty"), "{again}");

    // Served without the host's wasi:nn, it answers as the native function does.
    let composed = TestApp::start_file(&out.join("spin.toml"), |_| {}).await?;
    let body = features();
    let a = post_json(&format!("{}/api/classify/intent", native.url), &body).await?;
    let b = post_json(&format!("{}/api/classify/intent", composed.url), &body).await?;
    assert_eq!(a.0, 200, "{}", a.1);
    assert_eq!(a, b, "native and composed answers differ");
    Ok(())
}

const PROBE: &str = r#"
[[trigger.http]]
route = "/p/..."
component = "p"
[component.p]
source = "PROBE"
ai_models = ["intent-mlp", "no-such-model"]
"#;

async fn probe_nn(url: &str, model: &str, inputs: Value) -> anyhow::Result<(u16, Value)> {
    post_json(&format!("{url}/p/nn/{model}"), &json!({ "inputs": inputs })).await
}

#[tokio::test]
async fn the_host_enforces_ai_models_and_reports_wasi_nn_error_codes() -> anyhow::Result<()> {
    let worker = TestWorker::start(&test_models()).await?;
    let app = TestApp::start_with(&manifest(PROBE), |c| c.nn_pool = Some(pool(&worker))).await?;
    let row = json!([{ "name": "features", "dims": [1, 16], "fp32": vec![0.5; 16] }]);

    let (status, ok) = probe_nn(&app.url, "intent-mlp", row.clone()).await?;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["outputs"][0]["name"], "probabilities");
    assert_eq!(ok["outputs"][0]["dims"], json!([1, 4]));
    let sum: f64 = ok["outputs"][0]["fp32"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to {sum}");

    // Served by the worker, but not listed in ai_models.
    let (status, denied) = probe_nn(&app.url, "shapes-cnn", row.clone()).await?;
    assert_eq!(
        (status, denied["code"].as_str()),
        (422, Some("Security")),
        "{denied}"
    );
    // Listed, but no worker has it.
    let (_, missing) = probe_nn(&app.url, "no-such-model", row.clone()).await?;
    assert_eq!(missing["code"], "NotFound", "{missing}");
    // Wrong shape: the worker's message comes through as invalid-argument.
    let (_, wrong) = probe_nn(
        &app.url,
        "intent-mlp",
        json!([{ "name": "features", "dims": [1, 15], "fp32": vec![0.5; 15] }]),
    )
    .await?;
    assert_eq!(wrong["code"], "InvalidArgument", "{wrong}");
    assert!(
        wrong["message"].as_str().unwrap().contains("shape [1, 15]"),
        "{wrong}"
    );
    // Dimensions that do not match the data are caught by the host.
    let (_, short) = probe_nn(
        &app.url,
        "intent-mlp",
        json!([{ "name": "features", "dims": [2, 16], "fp32": vec![0.5; 16] }]),
    )
    .await?;
    assert_eq!(short["code"], "InvalidArgument", "{short}");
    // Raw graph bytes are not accepted.
    let (_, bytes) = vitrine_tests::get_json(&format!("{}/p/nn-load-bytes", app.url)).await?;
    assert_eq!(bytes["code"], "UnsupportedOperation", "{bytes}");
    Ok(())
}

#[tokio::test]
async fn without_workers_wasi_nn_fails_cleanly() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(PROBE)).await?;
    let (status, body) = probe_nn(&app.url, "intent-mlp", json!([])).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("RuntimeError")),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn health_says_not_ready_while_no_worker_serves_a_needed_model() -> anyhow::Result<()> {
    let health = |admin: String| async move {
        let response = reqwest::get(format!("{admin}/healthz")).await?;
        anyhow::Ok((response.status().as_u16(), response.text().await?))
    };
    // A worker address where nobody listens.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?;
    let dead_url = format!("http://{}", dead.local_addr()?);
    drop(dead);
    let options = PoolOptions {
        health_interval: std::time::Duration::from_millis(100),
        ..PoolOptions::default()
    };
    let down = Arc::new(WorkerPool::new(&[dead_url], options.clone())?);
    down.start_health_checks();
    let app = TestApp::start_with(&manifest(NATIVE), |c| c.nn_pool = Some(down)).await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, body) = health(app.admin_url.clone()).await?;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("intent-mlp") && body.contains("shapes-cnn"),
        "{body}"
    );
    // What a client sees meanwhile names no internal address.
    let (status, answer) =
        post_json(&format!("{}/api/classify/intent", app.url), &features()).await?;
    assert_eq!(status, 503, "{answer}");
    assert!(!answer.to_string().contains("127.0.0.1"), "{answer}");

    // A live worker with the models: ready.
    let worker = TestWorker::start(&test_models()).await?;
    let up = Arc::new(WorkerPool::new(std::slice::from_ref(&worker.url), options)?);
    up.start_health_checks();
    let app = TestApp::start_with(&manifest(NATIVE), |c| c.nn_pool = Some(up)).await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        health(app.admin_url.clone()).await?,
        (200, "ok\n".to_string())
    );
    Ok(())
}

#[tokio::test]
async fn texts_reach_a_bytes_input_through_native_wasi_nn_and_nn_remote() -> anyhow::Result<()> {
    let worker = TestWorker::start(&vitrine_tests::text_embed_models()).await?;
    let texts = [
        "a linen dress for a summer wedding",
        "black leather ankle boots",
    ];
    let direct = json!({ "inputs": [{ "name": "text", "shape": [2, 1], "datatype": "BYTES", "data": texts }] });
    let (status, answer) = post_json(
        &format!("{}/v2/models/text-embed/infer", worker.url),
        &direct,
    )
    .await?;
    assert_eq!(status, 200, "{answer}");
    let expected: Vec<f64> = serde_json::from_value(answer["outputs"][0]["data"].clone())?;

    let probe = r#"
[[trigger.http]]
route = "/p/..."
component = "p"
[component.p]
source = "PROBE"
ai_models = ["text-embed"]
"#;
    let composed = format!(
        r#"{probe}environment = {{ VITRINE_NN_URL = "{url}" }}
allowed_outbound_hosts = ["{url}"]
dependencies_inherit_configuration = true
[component.p.dependencies]
"wasi:nn" = {{ path = "NN_REMOTE" }}
"#,
        url = worker.url
    );
    let native = TestApp::start_with(&manifest(probe), |c| c.nn_pool = Some(pool(&worker))).await?;
    let remote = TestApp::start(&manifest(&composed)).await?;
    for app in [&native, &remote] {
        let (status, body) = probe_nn(
            &app.url,
            "text-embed",
            json!([{ "name": "text", "dims": [2, 1], "text": texts }]),
        )
        .await?;
        assert_eq!(status, 200, "{body}");
        let output = &body["outputs"][0];
        assert_eq!(output["dims"], json!([2, 384]), "{body}");
        let got: Vec<f64> = serde_json::from_value(output["fp32"].clone())?;
        assert_eq!(got.len(), expected.len());
        assert!(got.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-6));
    }
    // A U8 tensor for a numeric input stays U8: the worker refuses it by its datatype.
    let (status, body) = probe_nn(
        &native.url,
        "text-embed",
        json!([{ "name": "other", "dims": [1, 1], "text": ["x"] }]),
    )
    .await?;
    assert_eq!(status, 422, "{body}");
    Ok(())
}

//! The worker over HTTP, as a Triton client sees it: metadata, health, JSON and binary
//! inference on a real candle model, protocol errors, the repository extension and hot reload.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use candle_core::{Device, Tensor};
use serde_json::{json, Value};
use vitrine_worker::Worker;

const FEATURES: usize = 4;
const HIDDEN: usize = 8;
const CLASSES: usize = 3;

fn mlp_config(max_batch_size: usize) -> String {
    format!(
        r#"
architecture = "mlp"
max_batch_size = {max_batch_size}
[[input]]
name = "x"
datatype = "FP32"
dims = [{FEATURES}]
[[output]]
name = "p"
datatype = "FP32"
dims = [{CLASSES}]
[dynamic_batching]
max_queue_delay_microseconds = 200
[parameters]
hidden = {HIDDEN}
"#
    )
}

/// Weights of a small MLP, filled from `seed` so each test knows them.
struct Weights(Vec<(String, Vec<usize>, Vec<f32>)>);

impl Weights {
    fn new(seed: u32) -> Self {
        let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 2000) as f32 / 1000.0 - 1.0
        };
        let mut layers = Vec::new();
        for (name, out, inp) in [
            ("fc1", HIDDEN, FEATURES),
            ("fc2", HIDDEN, HIDDEN),
            ("fc3", CLASSES, HIDDEN),
        ] {
            layers.push((
                format!("{name}.weight"),
                vec![out, inp],
                (0..out * inp).map(|_| next()).collect(),
            ));
            layers.push((
                format!("{name}.bias"),
                vec![out],
                (0..out).map(|_| next() * 0.1).collect(),
            ));
        }
        Self(layers)
    }

    fn save(&self, path: &Path) {
        let tensors: HashMap<String, Tensor> = self
            .0
            .iter()
            .map(|(n, shape, v)| {
                (
                    n.clone(),
                    Tensor::from_vec(v.clone(), shape.as_slice(), &Device::Cpu).unwrap(),
                )
            })
            .collect();
        candle_core::safetensors::save(&tensors, path).unwrap();
    }

    /// The model computed by hand: three linear layers, ReLU between, softmax at the end.
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let layer = |i: usize, input: &[f32], relu: bool| -> Vec<f32> {
            let (_, shape, w) = &self.0[2 * i];
            let b = &self.0[2 * i + 1].2;
            (0..shape[0])
                .map(|o| {
                    let v = b[o]
                        + (0..shape[1])
                            .map(|k| w[o * shape[1] + k] * input[k])
                            .sum::<f32>();
                    if relu {
                        v.max(0.0)
                    } else {
                        v
                    }
                })
                .collect()
        };
        let logits = layer(2, &layer(1, &layer(0, x, true), true), false);
        let max = logits.iter().cloned().fold(f32::MIN, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        exp.iter().map(|e| e / sum).collect()
    }
}

fn write_model(root: &Path, name: &str, config: &str, weights: &Weights) {
    let dir = root.join(name).join("1");
    std::fs::create_dir_all(&dir).unwrap();
    weights.save(&dir.join("model.safetensors"));
    std::fs::write(root.join(name).join("config.toml"), config).unwrap();
}

struct Server {
    url: String,
    worker: Arc<Worker>,
    client: reqwest::Client,
}

async fn serve(root: &Path) -> Server {
    let (url, worker) = common::serve(root, None, Duration::from_millis(50)).await;
    Server {
        url,
        worker,
        client: reqwest::Client::new(),
    }
}

impl Server {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn infer_body(rows: &[[f32; FEATURES]]) -> Value {
    json!({ "inputs": [{ "name": "x", "shape": [rows.len(), FEATURES], "datatype": "FP32", "data": rows }] })
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
}

#[tokio::test]
async fn metadata_health_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "m", &mlp_config(8), &Weights::new(1));
    let s = serve(dir.path()).await;
    let (status, meta) = s.get("/v2").await;
    assert_eq!(status, 200);
    assert!(meta["extensions"]
        .as_array()
        .unwrap()
        .contains(&json!("binary_tensor_data")));
    assert_eq!(s.get("/v2/health/live").await.0, 200);
    assert_eq!(s.get("/v2/health/ready").await.0, 200);
    let (status, model) = s.get("/v2/models/m").await;
    assert_eq!(status, 200);
    assert_eq!(model["versions"], json!(["1"]));
    assert_eq!(
        model["inputs"],
        json!([{ "name": "x", "datatype": "FP32", "shape": [-1, FEATURES] }])
    );
    assert_eq!(
        model["outputs"],
        json!([{ "name": "p", "datatype": "FP32", "shape": [-1, CLASSES] }])
    );
    assert_eq!(s.get("/v2/models/m/versions/1").await.0, 200);
    assert_eq!(s.get("/v2/models/m/ready").await.0, 200);
    assert_eq!(s.get("/v2/models/m/versions/1/ready").await.0, 200);
    let (status, err) = s.get("/v2/models/m/versions/2").await;
    assert_eq!(status, 404);
    assert!(
        err["error"].as_str().unwrap().contains("no version '2'"),
        "{err}"
    );
    let (status, err) = s.get("/v2/models/nope").await;
    assert_eq!(
        (status, err["error"].as_str()),
        (404, Some("unknown model 'nope'"))
    );
    assert_eq!(s.get("/v2/models/nope/ready").await.0, 404);
    let metrics = async || {
        s.client
            .get(format!("{}/metrics", s.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = metrics().await;
    assert!(
        before.contains("vitrine_worker_queue_depth{model=\"m\"} 0"),
        "{before}"
    );
    assert_eq!(
        s.post("/v2/models/m/infer", infer_body(&[[0.0; 4], [1.0; 4]]))
            .await
            .0,
        200
    );
    let after = metrics().await;
    for line in [
        "vitrine_worker_batch_size_sum{model=\"m\"} 2.0",
        "vitrine_worker_inferences_total{model=\"m\"} 1",
        "vitrine_worker_compute_duration_seconds_count{model=\"m\"} 1",
    ] {
        assert!(after.contains(line), "{line} missing in {after}");
    }
}

#[tokio::test]
async fn json_inference_computes_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let weights = Weights::new(2);
    write_model(dir.path(), "m", &mlp_config(8), &weights);
    let s = serve(dir.path()).await;
    let rows = [[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, -2.0]];
    let mut body = infer_body(&rows);
    body["id"] = json!("req-7");
    let (status, answer) = s.post("/v2/models/m/infer", body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["model_name"], "m");
    assert_eq!(answer["model_version"], "1");
    assert_eq!(answer["id"], "req-7");
    let out = &answer["outputs"][0];
    assert_eq!(
        (out["name"].as_str(), out["datatype"].as_str()),
        (Some("p"), Some("FP32"))
    );
    assert_eq!(out["shape"], json!([2, CLASSES]));
    let want: Vec<f32> = rows.iter().flat_map(|r| weights.forward(r)).collect();
    assert_close(&floats(&out["data"]), &want);
    // The versioned endpoint and nested data arrays give the same answer.
    let (status, again) = s.post("/v2/models/m/versions/1/infer", body).await;
    assert_eq!(status, 200);
    assert_eq!(again["outputs"], answer["outputs"]);
}

#[tokio::test]
async fn binary_tensor_data_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let weights = Weights::new(3);
    write_model(dir.path(), "m", &mlp_config(8), &weights);
    let s = serve(dir.path()).await;
    let rows = [
        [0.1f32, 0.2, 0.3, 0.4],
        [-0.4, -0.3, -0.2, -0.1],
        [1.0, 1.0, 1.0, 1.0],
    ];
    let header = serde_json::to_vec(&json!({
        "inputs": [{ "name": "x", "shape": [3, FEATURES], "datatype": "FP32", "parameters": { "binary_data_size": 48 } }],
        "outputs": [{ "name": "p", "parameters": { "binary_data": true } }],
    }))
    .unwrap();
    let mut body = header.clone();
    body.extend(rows.iter().flatten().flat_map(|v| v.to_le_bytes()));
    let response = s
        .client
        .post(format!("{}/v2/models/m/infer", s.url))
        .header("Inference-Header-Content-Length", header.len())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let json_length: usize = response.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.bytes().await.unwrap();
    let (json_part, binary) = bytes.split_at(json_length);
    let meta: Value = serde_json::from_slice(json_part).unwrap();
    assert_eq!(
        meta["outputs"][0]["parameters"]["binary_data_size"],
        3 * CLASSES * 4
    );
    assert!(meta["outputs"][0].get("data").is_none());
    let got: Vec<f32> = binary
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let want: Vec<f32> = rows.iter().flat_map(|r| weights.forward(r)).collect();
    assert_close(&got, &want);

    // A binary size that runs past the body is a 400.
    let mut short = header.clone();
    short.extend([0u8; 10]);
    let response = s
        .client
        .post(format!("{}/v2/models/m/infer", s.url))
        .header("Inference-Header-Content-Length", header.len())
        .body(short)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let err: Value = response.json().await.unwrap();
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("binary_data_size 48 exceeds"),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_requests_are_400_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "m", &mlp_config(2), &Weights::new(4));
    let s = serve(dir.path()).await;
    let input = |name: &str, shape: Value, datatype: &str, data: Value| json!({ "inputs": [{ "name": name, "shape": shape, "datatype": datatype, "data": data }] });
    let cases = [
        (
            input("x", json!([1, 3]), "FP32", json!([1, 2, 3])),
            "does not match the model's [-1, 4]",
        ),
        (
            input("x", json!([1, 4]), "INT32", json!([1, 2, 3, 4])),
            "datatype INT32 does not match the model's FP32",
        ),
        (
            input("y", json!([1, 4]), "FP32", json!([1, 2, 3, 4])),
            "unknown input 'y'",
        ),
        (
            input("x", json!([1, 4]), "FP32", json!([1, 2, 3])),
            "has 4 elements but data has 3",
        ),
        (
            input("x", json!([3, 4]), "FP32", json!(vec![0; 12])),
            "batch size 3 is outside 1..=2",
        ),
        (
            input("x", json!([1, 4]), "FP32", json!(["a", 2, 3, 4])),
            "is not a valid FP32 element",
        ),
        (
            input("x", json!([1, 4]), "STRING", json!([1, 2, 3, 4])),
            "unsupported datatype 'STRING'",
        ),
        (
            input("x", json!([-1, 4]), "FP32", json!([1, 2, 3, 4])),
            "negative dimension",
        ),
        (json!({ "inputs": [] }), "missing input 'x'"),
        (json!({ "input": [] }), "invalid inference request JSON"),
        (
            json!({ "inputs": [{ "name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4] }], "outputs": [{ "name": "q" }] }),
            "unknown output 'q'",
        ),
        (
            json!({ "inputs": [{ "name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4] }], "parameters": { "priority": 5 } }),
            "priority 5 is out of range",
        ),
    ];
    for (body, message) in cases {
        let (status, err) = s.post("/v2/models/m/infer", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert!(
            err["error"].as_str().unwrap_or_default().contains(message),
            "{body}: {err} lacks {message:?}"
        );
    }
    let (status, err) = s
        .post("/v2/models/nope/infer", infer_body(&[[0.0; 4]]))
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (404, Some("unknown model 'nope'"))
    );
}

#[tokio::test]
async fn repository_index_load_and_unload() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "a", &mlp_config(8), &Weights::new(5));
    write_model(dir.path(), "b", &mlp_config(8), &Weights::new(6));
    let s = serve(dir.path()).await;
    let (status, index) = s.post("/v2/repository/index", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        index,
        json!([
            { "name": "a", "version": "1", "state": "READY", "reason": "" },
            { "name": "b", "version": "1", "state": "READY", "reason": "" },
        ])
    );
    assert_eq!(
        s.post("/v2/repository/models/a/unload", json!({})).await.0,
        200
    );
    assert_eq!(s.get("/v2/models/a/ready").await.0, 503);
    let (status, err) = s.post("/v2/models/a/infer", infer_body(&[[0.0; 4]])).await;
    assert_eq!(status, 503);
    assert!(err["error"].as_str().unwrap().contains("unloaded"), "{err}");
    let (_, ready) = s
        .post("/v2/repository/index", json!({ "ready": true }))
        .await;
    assert_eq!(ready.as_array().unwrap().len(), 1);
    assert_eq!(
        s.post("/v2/repository/models/a/load", json!({})).await.0,
        200
    );
    assert_eq!(
        s.post("/v2/models/a/infer", infer_body(&[[0.0; 4]]))
            .await
            .0,
        200
    );
    assert_eq!(
        s.post("/v2/repository/models/zzz/load", json!({})).await.0,
        404
    );
}

async fn eventually(mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached within 5 s");
}

#[tokio::test]
async fn hot_reload_serves_new_and_changed_models_and_isolates_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    let first = Weights::new(7);
    write_model(dir.path(), "m", &mlp_config(8), &first);
    let s = serve(dir.path()).await;
    let row = [[0.3, -0.6, 0.9, -1.2]];
    let (_, before) = s.post("/v2/models/m/infer", infer_body(&row)).await;
    assert_close(
        &floats(&before["outputs"][0]["data"]),
        &first.forward(&row[0]),
    );

    // A new model folder is picked up.
    write_model(dir.path(), "fresh", &mlp_config(8), &Weights::new(8));
    eventually(async || s.get("/v2/models/fresh/ready").await.0 == 200).await;

    // New weights replace the old ones.
    let second = Weights::new(9);
    second.save(&dir.path().join("m/1/model.safetensors"));
    eventually(async || {
        let (_, now) = s.post("/v2/models/m/infer", infer_body(&row)).await;
        floats(&now["outputs"][0]["data"]) != floats(&before["outputs"][0]["data"])
    })
    .await;
    let (_, after) = s.post("/v2/models/m/infer", infer_body(&row)).await;
    assert_close(
        &floats(&after["outputs"][0]["data"]),
        &second.forward(&row[0]),
    );

    // A broken config makes that model unavailable, with the reason; the others keep serving.
    std::fs::write(
        dir.path().join("m/config.toml"),
        "architecture = \"mlp\"\nmax_batch_size = \"lots\"\n",
    )
    .unwrap();
    eventually(async || s.get("/v2/models/m/ready").await.0 == 503).await;
    let (_, index) = s.post("/v2/repository/index", json!({})).await;
    let m = index
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "m")
        .unwrap()
        .clone();
    assert_eq!(m["state"], "UNAVAILABLE");
    assert!(
        m["reason"].as_str().unwrap().contains("max_batch_size"),
        "{m}"
    );
    let (status, err) = s.post("/v2/models/m/infer", infer_body(&row)).await;
    assert_eq!(status, 503);
    assert!(
        err["error"].as_str().unwrap().contains("unavailable"),
        "{err}"
    );
    assert_eq!(
        s.post("/v2/models/fresh/infer", infer_body(&row)).await.0,
        200
    );

    // Missing weights are reported too; fixing the folder brings the model back.
    std::fs::write(dir.path().join("m/config.toml"), mlp_config(8)).unwrap();
    std::fs::remove_file(dir.path().join("m/1/model.safetensors")).unwrap();
    eventually(async || {
        let index = s.worker.repository.index();
        index
            .iter()
            .any(|e| e.name == "m" && e.reason.contains("model.safetensors"))
    })
    .await;
    second.save(&dir.path().join("m/1/model.safetensors"));
    eventually(async || s.get("/v2/models/m/ready").await.0 == 200).await;
}

#[tokio::test]
async fn an_oversized_body_is_413_with_the_json_error_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "m", &mlp_config(2), &Weights::new(4));
    let s = serve(dir.path()).await;
    let stream = tokio::net::TcpStream::connect(s.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // 300 MB declared and sent, over the 256 MiB limit: the worker answers once it has read
    // past the limit, and the rest is refused.
    let total: usize = 300_000_000;
    let sender = tokio::spawn(async move {
        let head = format!(
            "POST /v2/models/m/infer HTTP/1.1\r\nhost: w\r\ncontent-type: application/json\r\ncontent-length: {total}\r\n\r\n"
        );
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 1 << 20];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            writer.write_all(&chunk[..n]).await?;
            sent += n;
        }
        std::io::Result::Ok(())
    });
    // Read the head, then as many body bytes as it announces.
    let mut bytes = Vec::new();
    let response = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = reader.read(&mut chunk).await.unwrap();
            bytes.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if n == 0 || length.is_some_and(|length| body.len() >= length) {
                    return text;
                }
            }
            assert!(n > 0, "connection closed before a response");
        }
    })
    .await
    .expect("a 413 within 60 s");
    sender.abort();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains("content-type: application/json"),
        "{response}"
    );
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body: Value = serde_json::from_str(body).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("larger than the limit"),
        "{body}"
    );
}

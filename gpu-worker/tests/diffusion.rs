//! The `stable-diffusion` architecture wired end to end with a tiny random-weight model (no
//! real weights ship with Vitrine): the repository loads it, the protocol serves it, the same
//! prompt and seed give the same picture and either changed gives another.

mod common;

use std::path::Path;
use std::time::Duration;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use serde_json::{json, Value};
use vitrine_worker::models::diffusion::{
    Networks, Settings, TextEncoder, SETTINGS_FILE, TOKENIZER_FILE, WEIGHT_FILES,
};

const SIDE: usize = 32;

/// A tiny model (random weights) and its config in `repository/tiny-sd/1`.
fn tiny_model(repository: &Path) {
    let settings = Settings {
        width: SIDE,
        height: SIDE,
        steps: 2,
        guidance_scale: 3.0,
        text_encoder: TextEncoder {
            vocab_size: 16,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            max_position_embeddings: 8,
            pad_token_id: 1,
        },
        unet_blocks: vec![(32, Some(1), 16), (32, None, 16)],
        unet_layers_per_block: 1,
        unet_norm_groups: 8,
        unet_linear_projection: false,
        vae_blocks: vec![32, 32],
        vae_layers_per_block: 1,
        vae_norm_groups: 8,
        vae_scale: 0.18215,
    };
    let dir = repository.join("tiny-sd/1");
    std::fs::create_dir_all(&dir).unwrap();
    let maps = [VarMap::new(), VarMap::new(), VarMap::new()];
    let vbs = [0, 1, 2].map(|i| VarBuilder::from_varmap(&maps[i], DType::F32, &Device::Cpu));
    Networks::new(&settings, vbs).unwrap();
    for (map, file) in maps.iter().zip(WEIGHT_FILES) {
        map.save(dir.join(file)).unwrap();
    }
    std::fs::write(
        dir.join(SETTINGS_FILE),
        serde_json::to_string(&settings).unwrap(),
    )
    .unwrap();
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "unk_token": "<unk>",
                  "vocab": {"<unk>": 0, "<pad>": 1, "red": 2, "dress": 3, "blue": 4, "coat": 5}}
    });
    std::fs::write(dir.join(TOKENIZER_FILE), tokenizer.to_string()).unwrap();
    std::fs::write(
        repository.join("tiny-sd/config.toml"),
        format!(
            "backend = \"candle\"\narchitecture = \"stable-diffusion\"\nmax_batch_size = 0\n\
             [[input]]\nname = \"prompt\"\ndatatype = \"BYTES\"\ndims = [1]\n\
             [[input]]\nname = \"seed\"\ndatatype = \"INT64\"\ndims = [1]\n\
             [[output]]\nname = \"image\"\ndatatype = \"UINT8\"\ndims = [{SIDE}, {SIDE}, 3]\n"
        ),
    )
    .unwrap();
}

async fn generate(url: &str, prompt: &str, seed: i64) -> (u16, Value) {
    let body = json!({"inputs": [
        {"name": "prompt", "datatype": "BYTES", "shape": [1], "data": [prompt]},
        {"name": "seed", "datatype": "INT64", "shape": [1], "data": [seed]}]});
    let response = reqwest::Client::new()
        .post(format!("{url}/v2/models/tiny-sd/infer"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn pixels(answer: &Value) -> Vec<u64> {
    let output = &answer["outputs"][0];
    assert_eq!(output["name"], "image", "{answer}");
    assert_eq!(output["shape"], json!([SIDE, SIDE, 3]), "{answer}");
    output["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_random_model_is_served_deterministically_by_prompt_and_seed() {
    let repository = tempfile::tempdir().unwrap();
    tiny_model(repository.path());
    let (url, _worker) = common::serve(repository.path(), None, Duration::from_secs(3600)).await;
    let (status, first) = generate(&url, "red dress", 1).await;
    assert_eq!(status, 200, "{first}");
    let first = pixels(&first);
    assert!(first.iter().any(|&v| v != first[0]), "not one flat colour");
    assert_eq!(
        pixels(&generate(&url, "red dress", 1).await.1),
        first,
        "same prompt and seed"
    );
    assert_ne!(
        pixels(&generate(&url, "red dress", 2).await.1),
        first,
        "another seed"
    );
    assert_ne!(
        pixels(&generate(&url, "blue coat", 1).await.1),
        first,
        "another prompt"
    );
    let (status, refused) = generate(&url, &"x".repeat(5000), 1).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("more than 4096"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_its_tokenizer_does_not_load_and_says_why() {
    let repository = tempfile::tempdir().unwrap();
    tiny_model(repository.path());
    std::fs::remove_file(repository.path().join("tiny-sd/1").join(TOKENIZER_FILE)).unwrap();
    let (url, _worker) = common::serve(repository.path(), None, Duration::from_secs(3600)).await;
    let index = common::repository_index(&url).await;
    let entry = index
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "tiny-sd")
        .unwrap()
        .clone();
    assert_eq!(entry["state"], "UNAVAILABLE", "{entry}");
    assert!(
        entry["reason"].as_str().unwrap().contains(TOKENIZER_FILE),
        "{entry}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_past_its_deadline_stops_between_steps() {
    let repository = tempfile::tempdir().unwrap();
    tiny_model(repository.path());
    let settings_path = repository.path().join("tiny-sd/1").join(SETTINGS_FILE);
    let mut settings: Settings =
        serde_json::from_str(&std::fs::read_to_string(&settings_path).unwrap()).unwrap();
    settings.steps = 200;
    std::fs::write(&settings_path, serde_json::to_string(&settings).unwrap()).unwrap();
    let (url, _worker) = common::serve(repository.path(), None, Duration::from_secs(3600)).await;
    let body = json!({"parameters": {"timeout": 300_000}, "inputs": [
        {"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["red dress"]},
        {"name": "seed", "datatype": "INT64", "shape": [1], "data": [1]}]});
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{url}/v2/models/tiny-sd/infer"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504, "{}", response.text().await.unwrap());
    // 200 steps take tens of seconds; the answer comes within a step or two of the deadline.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

//! `wasi:nn` straight from the generated bindings, so tests see exactly what the host returns:
//!
//! - `POST /nn/<model>[?repeat=N]` with `{"inputs": [{"name": …, "dims": […], "fp32": […]}]}`
//!   (or `"text": [strings]`, sent as a `U8` tensor in the BYTES binary form)
//!   loads the model by name and computes (N times, timing each call); answers
//!   `{"outputs": [{"name", "dims", "type", "fp32"}], "compute_us": [...]}`;
//! - `GET /nn-load-bytes` tries `graph.load` with raw bytes.
//!
//! A `wasi:nn` error is answered with status 422 and `{"code": …, "message": …}`.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/wasi-nn.wit",
        world: "wasi:nn/ml",
    });
}

use bindings::wasi::nn::{errors, graph, tensor};
use serde_json::{json, Value as Json};

fn failure(err: errors::Error) -> (u16, Json) {
    let code = format!("{:?}", err.code());
    let code = code.trim_start_matches("ErrorCode::");
    (422, json!({ "code": code, "message": err.data() }))
}

/// Loads `model`, computes on the request's inputs `repeat` times.
pub fn compute(model: &str, body: &[u8], repeat: usize) -> (u16, Json) {
    let Ok(input) = serde_json::from_slice::<Json>(body) else {
        return (400, json!({ "error": "body must be JSON" }));
    };
    let graph = match graph::load_by_name(model) {
        Ok(graph) => graph,
        Err(e) => return failure(e),
    };
    let context = match graph.init_execution_context() {
        Ok(context) => context,
        Err(e) => return failure(e),
    };
    let mut timings = Vec::new();
    let mut last = Vec::new();
    for _ in 0..repeat.max(1) {
        let inputs: Vec<(String, tensor::Tensor)> = input["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let dims: Vec<u32> = serde_json::from_value(t["dims"].clone()).unwrap_or_default();
                let name = t["name"].as_str().unwrap_or_default().to_string();
                // Texts go as U8 in the protocol's BYTES form: a 4-byte length before each.
                if let Some(texts) = t["text"].as_array() {
                    let mut data = Vec::new();
                    for text in texts {
                        let text = text.as_str().unwrap_or_default().as_bytes();
                        data.extend_from_slice(&(text.len() as u32).to_le_bytes());
                        data.extend_from_slice(text);
                    }
                    return (
                        name,
                        tensor::Tensor::new(&dims, tensor::TensorType::U8, &data),
                    );
                }
                let data: Vec<u8> = t["fp32"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|v| (v.as_f64().unwrap_or(0.0) as f32).to_le_bytes())
                    .collect();
                (
                    name,
                    tensor::Tensor::new(&dims, tensor::TensorType::Fp32, &data),
                )
            })
            .collect();
        let started = std::time::Instant::now();
        match context.compute(inputs) {
            Ok(outputs) => last = outputs,
            Err(e) => return failure(e),
        }
        timings.push(started.elapsed().as_micros() as u64);
    }
    let outputs: Vec<Json> = last
        .iter()
        .map(|(name, t)| {
            let values: Vec<f32> = match t.ty() {
                tensor::TensorType::Fp32 => t
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                _ => Vec::new(),
            };
            json!({ "name": name, "dims": t.dimensions(), "type": format!("{:?}", t.ty()).trim_start_matches("TensorType::"), "fp32": values })
        })
        .collect();
    (200, json!({ "outputs": outputs, "compute_us": timings }))
}

/// `graph.load` with bytes, which a host forwarding to a worker pool must refuse.
pub fn load_bytes() -> (u16, Json) {
    match graph::load(
        &[vec![0, 1, 2, 3]],
        graph::GraphEncoding::Onnx,
        graph::ExecutionTarget::Cpu,
    ) {
        Ok(_) => (200, json!({ "loaded": true })),
        Err(e) => failure(e),
    }
}

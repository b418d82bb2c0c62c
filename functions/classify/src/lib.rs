//! Classification API, computed by the inference worker pool through `wasi:nn`:
//!
//! - `POST /api/classify/intent` with `{"features": [[16 numbers], …]}` → the `intent-mlp`
//!   model's intent (browse, compare, buy, leave) and probabilities per row;
//! - `POST /api/classify/shape` with `{"image": [[784 numbers in 0..1], …]}` (28×28, row-major)
//!   → the `shapes-cnn` model's shape (circle, square, triangle, cross) per image.
//!
//! Up to 64 rows per request. Bad input is a 400 naming the problem; an inference failure is a
//! 502 (worker error), 503 (no worker) or 504 (timeout) with the `wasi:nn` message.

use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::http::{IntoResponse, Method, Request};
use spin_sdk::http_component;
use vitrine_guest::http::{error, json_response, not_allowed};
use vitrine_nn::{ErrorCode, Model, Tensor};

/// One classification task: which model, which input, what the classes mean.
struct Task {
    model: &'static str,
    field: &'static str,
    input: &'static str,
    dims: &'static [u32],
    labels: &'static [&'static str],
    key: &'static str,
}

const INTENT: Task = Task {
    model: "intent-mlp",
    field: "features",
    input: "features",
    dims: &[16],
    labels: &["browse", "compare", "buy", "leave"],
    key: "intent",
};

const SHAPE: Task = Task {
    model: "shapes-cnn",
    field: "image",
    input: "image",
    dims: &[1, 28, 28],
    labels: &["circle", "square", "triangle", "cross"],
    key: "shape",
};

const MAX_ROWS: usize = 64;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let path = req
        .header("spin-path-info")
        .and_then(|h| h.as_str())
        .unwrap_or("")
        .trim_matches('/');
    let task = match path {
        "intent" => INTENT,
        "shape" => SHAPE,
        other => {
            return Ok(error(
                404,
                format!("no classifier '{other}' (use /intent or /shape)"),
            ))
        }
    };
    if *req.method() != Method::Post {
        return Ok(not_allowed(req.method(), "POST"));
    }
    let rows = match parse_rows(req.body(), &task) {
        Ok(rows) => rows,
        Err(message) => return Ok(error(400, message)),
    };
    Ok(match classify(&task, &rows) {
        Ok(body) => json_response(200, body),
        Err(err) => {
            let status = match err.code {
                ErrorCode::InvalidArgument => 400,
                ErrorCode::Timeout => 504,
                ErrorCode::NotFound | ErrorCode::Security | ErrorCode::RuntimeError => 503,
                _ => 502,
            };
            error(status, format!("model '{}': {}", task.model, err))
        }
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Rows {
    Many(Vec<Vec<f32>>),
    One(Vec<f32>),
}

/// The request's rows, each checked for its length.
fn parse_rows(body: &[u8], task: &Task) -> Result<Vec<Vec<f32>>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let field = value
        .get(task.field)
        .ok_or_else(|| format!("missing field '{}'", task.field))?;
    let rows = match serde_json::from_value::<Rows>(field.clone()) {
        Ok(Rows::Many(rows)) => rows,
        Ok(Rows::One(row)) => vec![row],
        Err(_) => {
            return Err(format!(
                "'{}' must be an array of numbers or of rows of numbers",
                task.field
            ))
        }
    };
    let width: usize = task.dims.iter().map(|d| *d as usize).product();
    if rows.is_empty() || rows.len() > MAX_ROWS {
        return Err(format!(
            "'{}' needs 1 to {MAX_ROWS} rows, got {}",
            task.field,
            rows.len()
        ));
    }
    if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
        return Err(format!(
            "row {i} of '{}' has {} numbers; the model takes {width}",
            task.field,
            row.len()
        ));
    }
    if let Some(i) = rows.iter().position(|r| r.iter().any(|v| !v.is_finite())) {
        return Err(format!(
            "row {i} of '{}' has a value that is not a finite number",
            task.field
        ));
    }
    Ok(rows)
}

fn classify(task: &Task, rows: &[Vec<f32>]) -> Result<Value, vitrine_nn::Error> {
    let model = Model::load(task.model)?;
    let mut dims = vec![rows.len() as u32];
    dims.extend_from_slice(task.dims);
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let outputs = model.infer(&[(task.input, Tensor::from_f32(&dims, &flat)?)])?;
    let probabilities = outputs.get("probabilities")?.to_f32()?;
    let classes = task.labels.len();
    let results: Vec<Value> = probabilities
        .chunks(classes)
        .map(|p| {
            let best = (0..classes)
                .max_by(|a, b| p[*a].total_cmp(&p[*b]))
                .unwrap_or(0);
            let by_label: serde_json::Map<String, Value> = task
                .labels
                .iter()
                .zip(p)
                .map(|(l, v)| (l.to_string(), json!(v)))
                .collect();
            json!({ task.key: task.labels[best], "probabilities": by_label })
        })
        .collect();
    Ok(json!({ "model": task.model, "results": results }))
}

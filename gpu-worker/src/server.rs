//! HTTP endpoints of the Open Inference Protocol v2 (as Triton serves them), the repository
//! extension, and Prometheus `/metrics`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::InferError;
use crate::metrics::Metrics;
use crate::protocol::{self, HEADER_LENGTH};
use crate::repository::Repository;
use crate::scheduler;

/// Largest request body accepted (JSON plus binary tensors).
const MAX_BODY_BYTES: usize = 256 << 20;

/// What the handlers share.
pub struct Worker {
    /// The served models.
    pub repository: Arc<Repository>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
}

type Shared = State<Arc<Worker>>;

/// The worker's routes.
pub fn router(worker: Arc<Worker>) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(|| async { StatusCode::OK }))
        .route("/v2/models/{model}", get(model_metadata))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(model_version_metadata),
        )
        .route("/v2/models/{model}/ready", get(model_ready))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(model_version_ready),
        )
        .route("/v2/models/{model}/infer", post(infer))
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(infer_version),
        )
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{model}/load", post(load_model))
        .route("/v2/repository/models/{model}/unload", post(unload_model))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError(InferError::NotFound(
                "no such endpoint; see docs/worker.md".into(),
            ))
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(json_payload_too_large))
        .with_state(worker)
}

/// Gives the body limit's 413 (answered by axum before a handler runs) the JSON error body
/// of every other error.
async fn json_payload_too_large(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    let message = format!("request body is larger than the limit of {MAX_BODY_BYTES} bytes");
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        Json(json!({ "error": message })),
    )
        .into_response()
}

/// An error answered as `{"error": "..."}` with the protocol's status code.
struct ApiError(InferError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(json!({ "error": self.0.to_string() }))).into_response()
    }
}

impl From<InferError> for ApiError {
    fn from(err: InferError) -> Self {
        Self(err)
    }
}

async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "vitrine-worker",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data", "model_repository", "schedule_policy", "parameters"],
    }))
}

async fn model_metadata(state: Shared, Path(model): Path<String>) -> Result<Json<Value>, ApiError> {
    metadata(&state, &model, None)
}

async fn model_version_metadata(
    state: Shared,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    metadata(&state, &model, Some(&version))
}

fn metadata(worker: &Worker, name: &str, version: Option<&str>) -> Result<Json<Value>, ApiError> {
    let model = worker.repository.get(name, version)?;
    let describe = |specs: &[crate::config::TensorSpec]| -> Vec<Value> {
        specs
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "datatype": s.datatype.name(),
                    "shape": protocol::expected_shape(s, model.config.max_batch_size),
                })
            })
            .collect()
    };
    Ok(Json(json!({
        "name": model.name,
        "versions": [model.version.to_string()],
        "platform": format!("{}_{}", model.config.backend, model.config.architecture),
        "inputs": describe(&model.config.inputs),
        "outputs": describe(&model.config.outputs),
    })))
}

async fn model_ready(state: Shared, Path(model): Path<String>) -> Result<StatusCode, ApiError> {
    state.repository.get(&model, None)?;
    Ok(StatusCode::OK)
}

async fn model_version_ready(
    state: Shared,
    Path((model, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.repository.get(&model, Some(&version))?;
    Ok(StatusCode::OK)
}

async fn infer(
    state: Shared,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    run_inference(&state, &model, None, &headers, &body).await
}

async fn infer_version(
    state: Shared,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    run_inference(&state, &model, Some(&version), &headers, &body).await
}

async fn run_inference(
    worker: &Worker,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let result = async {
        let model = worker.repository.get(name, version)?;
        let header_length = match headers.get(HEADER_LENGTH) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok())
                    .ok_or_else(|| {
                        InferError::Invalid(
                            "Inference-Header-Content-Length must be a byte count".into(),
                        )
                    })?,
            ),
        };
        let mut request = protocol::decode_request(body, header_length, &model.config)?;
        let outputs = model
            .scheduler
            .infer(scheduler::Request {
                inputs: std::mem::take(&mut request.inputs),
                priority: request.priority,
                timeout: request.timeout,
                parameters: std::mem::take(&mut request.parameters),
            })
            .await?;
        protocol::encode_response(&model.name, model.version, &request, outputs)
    }
    .await;
    let encoded = result.inspect_err(|err| {
        if !matches!(err, InferError::Timeout(_) | InferError::Compute(_)) {
            // The scheduler counts timeouts and compute failures itself.
            worker.metrics.record_error(name, err.kind());
        }
    })?;
    let mut response = encoded.body.into_response();
    let headers = response.headers_mut();
    match encoded.header_length {
        Some(length) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(HEADER_LENGTH, HeaderValue::from(length));
        }
        None => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    Ok(response)
}

async fn repository_index(state: Shared, body: Bytes) -> Result<Json<Value>, ApiError> {
    let ready_only = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        let request: Value = serde_json::from_slice(&body)
            .map_err(|e| InferError::Invalid(format!("invalid repository index request: {e}")))?;
        request
            .get("ready")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let index: Vec<_> = state
        .repository
        .index()
        .into_iter()
        .filter(|e| !ready_only || e.state == "READY")
        .collect();
    Ok(Json(serde_json::to_value(index).expect("index serializes")))
}

async fn load_model(state: Shared, Path(model): Path<String>) -> Result<StatusCode, ApiError> {
    let repository = state.repository.clone();
    tokio::task::spawn_blocking(move || repository.load(&model))
        .await
        .map_err(|e| InferError::Compute(format!("loading panicked: {e}")))??;
    Ok(StatusCode::OK)
}

async fn unload_model(state: Shared, Path(model): Path<String>) -> Result<StatusCode, ApiError> {
    state.repository.unload(&model)?;
    Ok(StatusCode::OK)
}

async fn metrics(state: Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

//! The product catalogue API (routes `/api/products/...` and `/api/catalog/...`):
//!
//! - `GET /api/products` — search with filters `category`, `colour` (or `color`), `style`,
//!   `brand` (each a comma-separated list, any value matches), `min_price`, `max_price`,
//!   `q` (full-text, or by meaning with `semantic=true`), `sort` (`relevance`, `price_asc`,
//!   `price_desc`, `rating`, `newest`), `limit` (1–100, default 20) and `offset`;
//! - `GET /api/products/{id}` — one product;
//! - `GET /api/catalog/embeddings` — how many products have a text embedding;
//! - `POST /api/catalog/embeddings?batch=N&category=…` — embeds the next `N` (1–64, default 64)
//!   products without one (of these categories, if given) through `wasi:nn` (`text-embed`) and
//!   stores them; `vitrine up` calls it until the catalogue is covered.
//!
//! Data lives in the `default` SQLite database; the demo catalogue is created on first use.

mod query;
mod store;

use serde_json::json;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use vitrine_catalog::embeddings;
use vitrine_guest::http::{error, json_response, not_allowed};
use vitrine_nn::{ErrorCode, Model, Tensor};

use query::{ProductQuery, QueryError};

/// Most products embedded per `POST /api/catalog/embeddings` (the model's batch size).
const MAX_EMBED_BATCH: i64 = 64;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let path = req.path().trim_end_matches('/').to_string();
    let db = match vitrine_catalog::open() {
        Ok(db) => db,
        Err(e) => return Ok(error(503, format!("catalogue unavailable: {e}"))),
    };
    if let Some(rest) = path.strip_prefix("/api/catalog") {
        return Ok(match (req.method(), rest) {
            (Method::Get, "/embeddings") => match embeddings::coverage(&db) {
                Ok((done, total)) => json_response(
                    200,
                    json!({ "model": embeddings::MODEL, "embedded": done, "products": total }),
                ),
                Err(e) => error(500, format!("embeddings: {e}")),
            },
            (Method::Post, "/embeddings") => embed_batch(&db, req.query()),
            (method, "/embeddings") => not_allowed(method, "GET, POST"),
            _ => error(404, format!("no such resource `{path}`")),
        });
    }
    if *req.method() != Method::Get {
        return Ok(not_allowed(req.method(), "GET"));
    }
    let id = path
        .trim_start_matches("/api/products")
        .trim_start_matches('/');
    let response = match id {
        "" => match ProductQuery::parse(req.query()) {
            Err(QueryError(message)) => error(400, message),
            Ok(query) if query.semantic => match embed(&[&query.text]) {
                Ok(vectors) => match store::semantic_search(&db, &query, &vectors[0]) {
                    Ok(page) => json_response(200, page),
                    Err(e) => error(500, format!("search failed: {e}")),
                },
                Err(e) => nn_error(&e),
            },
            Ok(query) => match store::search(&db, &query) {
                Ok(page) => json_response(200, page),
                Err(e) => error(500, format!("search failed: {e}")),
            },
        },
        id if !id.contains('/') => match vitrine_catalog::get(&db, id) {
            Ok(Some(product)) => json_response(200, product),
            Ok(None) => error(404, format!("no product `{id}`")),
            Err(e) => error(500, format!("lookup failed: {e}")),
        },
        _ => error(404, format!("no such resource `{path}`")),
    };
    Ok(response)
}

/// `POST /api/catalog/embeddings`: embeds and stores the next batch of products without one.
fn embed_batch(db: &spin_sdk::sqlite::Connection, query: &str) -> Response {
    let mut batch = MAX_EMBED_BATCH;
    let mut categories = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match (key.as_ref(), value.parse::<i64>()) {
            ("batch", Ok(n)) if (1..=MAX_EMBED_BATCH).contains(&n) => batch = n,
            ("batch", _) => {
                return error(
                    400,
                    format!("batch must be an integer from 1 to {MAX_EMBED_BATCH}"),
                )
            }
            ("category", _) => categories.extend(
                value
                    .split(',')
                    .map(|c| c.trim().to_lowercase())
                    .filter(|c| !c.is_empty()),
            ),
            (other, _) => {
                return error(
                    400,
                    format!("unknown parameter `{other}`; use batch, category"),
                )
            }
        }
    }
    let missing = match embeddings::missing(db, batch, &categories) {
        Ok(missing) => missing,
        Err(e) => return error(500, format!("embeddings: {e}")),
    };
    if !missing.is_empty() {
        let texts: Vec<&str> = missing.iter().map(|(_, text)| text.as_str()).collect();
        let vectors = match embed(&texts) {
            Ok(vectors) => vectors,
            Err(e) => return nn_error(&e),
        };
        let rows: Vec<(i64, &[f32])> = missing
            .iter()
            .zip(&vectors)
            .map(|((rowid, _), v)| (*rowid, v.as_slice()))
            .collect();
        if let Err(e) = embeddings::store(db, &rows) {
            return error(500, format!("storing embeddings: {e}"));
        }
    }
    match embeddings::coverage(db) {
        Ok((done, total)) => json_response(
            200,
            json!({ "model": embeddings::MODEL, "embedded_now": missing.len(), "embedded": done, "products": total }),
        ),
        Err(e) => error(500, format!("embeddings: {e}")),
    }
}

/// Embeds texts with the [`embeddings::MODEL`] model: one L2-normalised vector per text.
fn embed(texts: &[&str]) -> Result<Vec<Vec<f32>>, vitrine_nn::Error> {
    let model = Model::load(embeddings::MODEL)?;
    let outputs = model.infer(&[("text", Tensor::from_texts(texts))])?;
    let flat = outputs.get("embedding")?.to_f32()?;
    Ok(flat.chunks(embeddings::DIM).map(<[f32]>::to_vec).collect())
}

/// An inference failure as an answer: 504 on timeout, 503 when no model or worker serves it,
/// 502 otherwise.
fn nn_error(e: &vitrine_nn::Error) -> Response {
    let status = match e.code {
        ErrorCode::InvalidArgument => 400,
        ErrorCode::Timeout => 504,
        ErrorCode::NotFound | ErrorCode::Security | ErrorCode::RuntimeError => 503,
        _ => 502,
    };
    error(status, format!("model '{}': {e}", embeddings::MODEL))
}

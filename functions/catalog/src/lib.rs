//! The product catalogue API (routes `/api/products/...` and `/api/catalog/...`):
//!
//! - `GET /api/products` — search with filters `category`, `colour` (or `color`), `style`,
//!   `brand` (each a comma-separated list, any value matches), `min_price`, `max_price`,
//!   `q` (full-text, or by meaning with `semantic=true`), `sort` (`relevance`, `price_asc`,
//!   `price_desc`, `rating`, `newest`), `limit` (1–100, default 20) and `offset`;
//! - `GET /api/products/{id}` — one product;
//! - `GET /api/catalog/embeddings` — how many products have a text embedding;
//! - `PUT /api/catalog/products` (admin token) — imports a batch of the shop's own products
//!   ([`import`]); `DELETE /api/catalog/products?before_generation=G` removes older ones;
//! - `POST /api/catalog/embeddings?batch=N&category=…` — embeds the next `N` (1–64, default 64)
//!   products without one (of these categories, if given) through `wasi:nn` (`text-embed`) and
//!   stores them; `vitrine up` calls it until the catalogue is covered.
//!
//! Data lives in the `default` SQLite database; the demo catalogue is created on first use.

mod import;
mod query;
mod store;

use serde_json::json;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use vitrine_catalog::embeddings;
use vitrine_guest::http::{error, json_response, json_text_response, not_allowed};
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
            (Method::Put | Method::Delete, "/products") => {
                match vitrine_guest::http::bearer_authorized(&req, "admin_token") {
                    Err(denied) => denied,
                    Ok(()) if *req.method() == Method::Put => import_batch(&db, req.body()),
                    Ok(()) => delete_older(&db, req.query()),
                }
            }
            (method, "/products") => not_allowed(method, "PUT, DELETE"),
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
                    Ok(page) => json_text_response(200, page),
                    Err(e) => error(500, format!("search failed: {e}")),
                },
                Err(e) => nn_error(&e),
            },
            Ok(query) => match store::search(&db, &query) {
                Ok(page) => json_text_response(200, page),
                Err(e) => error(500, format!("search failed: {e}")),
            },
        },
        id if !id.contains('/') => match vitrine_catalog::get(&db, id) {
            Ok(Some(product)) => json_text_response(200, product),
            Ok(None) => error(404, format!("no product `{id}`")),
            Err(e) => error(500, format!("lookup failed: {e}")),
        },
        _ => error(404, format!("no such resource `{path}`")),
    };
    Ok(response)
}

/// `PUT /api/catalog/products`: `{"products": [...], "generation": G, "dry_run": false}`.
fn import_batch(db: &spin_sdk::sqlite::Connection, body: &[u8]) -> Response {
    let body: serde_json::Value = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(e) => return error(400, format!("body is not JSON: {e}")),
    };
    let Some(products) = body["products"].as_array() else {
        return error(400, "products: must be an array of products");
    };
    if products.is_empty() || products.len() > import::MAX_BATCH {
        return error(
            400,
            format!("products: must hold 1 to {} products", import::MAX_BATCH),
        );
    }
    let generation = match &body["generation"] {
        serde_json::Value::Null => 0,
        g => match g.as_i64().filter(|g| *g >= 0) {
            Some(g) => g,
            None => return error(400, "generation: must be a non-negative integer"),
        },
    };
    let dry_run = match &body["dry_run"] {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        _ => return error(400, "dry_run: must be true or false"),
    };
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    match import::check_batch(products, &today) {
        Err(problems) => {
            let first = &problems[0];
            let list: Vec<serde_json::Value> = problems
                .iter()
                .map(|p| json!({ "index": p.index, "field": p.field, "message": p.message }))
                .collect();
            json_response(
                400,
                json!({
                    "error": format!("products[{}].{}: {} ({} problems; nothing stored)",
                        first.index, first.field, first.message, problems.len()),
                    "problems": list,
                }),
            )
        }
        Ok(rows) if dry_run => json_response(200, json!({ "checked": rows.len() })),
        Ok(rows) => match import::upsert(db, &rows, generation) {
            Ok(()) => json_response(
                200,
                json!({ "imported": rows.len(), "generation": generation }),
            ),
            Err(e) => error(500, format!("storing products: {e}")),
        },
    }
}

/// `DELETE /api/catalog/products?before_generation=G`: removes products older imports left.
fn delete_older(db: &spin_sdk::sqlite::Connection, query: &str) -> Response {
    let mut generation = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match (key.as_ref(), value.parse::<i64>()) {
            ("before_generation", Ok(g)) if g >= 0 => generation = Some(g),
            ("before_generation", _) => {
                return error(400, "before_generation must be a non-negative integer")
            }
            (other, _) => {
                return error(
                    400,
                    format!("unknown parameter `{other}`; use before_generation"),
                )
            }
        }
    }
    let Some(generation) = generation else {
        return error(
            400,
            "before_generation is required (the generation of the import to keep)",
        );
    };
    match import::delete_before(db, generation) {
        Ok(n) => json_response(200, json!({ "deleted": n })),
        Err(e) => error(500, format!("deleting products: {e}")),
    }
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
        let rows: Vec<(i64, &str, &[f32])> = missing
            .iter()
            .zip(&vectors)
            .map(|((rowid, text), v)| (*rowid, text.as_str(), v.as_slice()))
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

//! The product catalogue API (route `/api/products/...`):
//!
//! - `GET /api/products` — search with filters `category`, `colour` (or `color`), `style`,
//!   `brand` (each a comma-separated list, any value matches), `min_price`, `max_price`,
//!   `q` (full-text), `sort` (`relevance`, `price_asc`, `price_desc`, `rating`, `newest`),
//!   `limit` (1–100, default 20) and `offset`;
//! - `GET /api/products/{id}` — one product.
//!
//! Data lives in the `default` SQLite database; the demo catalogue is created on first use.

mod query;
mod store;

use serde_json::json;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;

use query::{ProductQuery, QueryError};

fn json_response(status: u16, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

fn error(status: u16, message: impl Into<String>) -> Response {
    json_response(status, json!({ "error": message.into() }))
}

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    if *req.method() != Method::Get {
        let mut response = error(405, format!("{} is not allowed; use GET", req.method()));
        response.set_header("allow", "GET");
        return Ok(response);
    }
    let path_info = req
        .header("spin-path-info")
        .and_then(|h| h.as_str())
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    let db = match vitrine_catalog::open() {
        Ok(db) => db,
        Err(e) => return Ok(error(503, format!("catalogue unavailable: {e}"))),
    };
    let response = match path_info.trim_start_matches('/') {
        "" => match ProductQuery::parse(req.query()) {
            Err(QueryError(message)) => error(400, message),
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
        _ => error(404, format!("no such resource `{path_info}`")),
    };
    Ok(response)
}

//! Product pictures (route `/images/products/...`):
//!
//! - `GET /images/products/{id}[?w=N]` → an SVG drawing of the product ([`drawing`]), `N`
//!   pixels wide and high (16–2048, default 400). `ETag` and `Cache-Control` let browsers and
//!   caches keep it; `If-None-Match` gets `304`. `HEAD` answers the headers alone.
//!
//! Drawings are made from the product's attributes on request (a few kilobytes of text, well
//! under a millisecond), so nothing is stored.

mod drawing;

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::sqlite::Value;
use vitrine_guest::http::{error, header, not_allowed};

/// Picture size when `w` is not given.
const DEFAULT_SIZE: u32 = 400;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let head = match req.method() {
        Method::Get => false,
        Method::Head => true,
        other => return Ok(not_allowed(other, "GET, HEAD")),
    };
    // The route is `/images/products/...`: the path info is the product id.
    let id = header(&req, "spin-path-info")
        .unwrap_or("")
        .trim_matches('/');
    if id.is_empty() || id.contains('/') {
        return Ok(error(404, format!("no such image `{}`", req.path())));
    }
    let mut size = DEFAULT_SIZE;
    for (key, value) in form_urlencoded::parse(req.query().as_bytes()) {
        match key.as_ref() {
            "w" => match value.parse::<u32>() {
                Ok(w) if (16..=2048).contains(&w) => size = w,
                _ => return Ok(error(400, "w must be an integer from 16 to 2048 (pixels)")),
            },
            other => return Ok(error(400, format!("unknown parameter '{other}'; use w"))),
        }
    }
    let db = match vitrine_catalog::open() {
        Ok(db) => db,
        Err(e) => return Ok(error(503, format!("catalogue unavailable: {e}"))),
    };
    let rows = match db.execute(
        "SELECT title, category, item_type, colours, material FROM products WHERE id = ?",
        &[Value::Text(id.to_string())],
    ) {
        Ok(rows) => rows,
        Err(e) => return Ok(error(500, format!("lookup failed: {e}"))),
    };
    let Some(row) = rows.rows.first() else {
        return Ok(error(404, format!("no product `{id}`")));
    };
    let text = |i| row.get::<&str>(i).unwrap_or_default();
    let colours: Vec<String> = serde_json::from_str(text(3)).unwrap_or_default();
    let svg = drawing::svg(
        &drawing::Product {
            id,
            title: text(0),
            category: text(1),
            item_type: text(2),
            colours: &colours,
            material: text(4),
        },
        size,
    );
    let etag = format!("\"{:016x}\"", drawing::fnv(&svg));
    let fresh = header(&req, "if-none-match")
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let builder = |status: u16| {
        let mut response = Response::builder();
        response
            .status(status)
            .header("etag", etag.as_str())
            .header("cache-control", "public, max-age=86400");
        response
    };
    Ok(match (fresh, head) {
        (true, _) => builder(304).build(),
        (false, true) => builder(200).header("content-type", "image/svg+xml").build(),
        (false, false) => builder(200)
            .header("content-type", "image/svg+xml")
            .body(svg)
            .build(),
    })
}

//! Product pictures (route `/images/products/...`):
//!
//! - `GET /images/products/{id}[?w=N]` → the shop's own picture of the product if one was
//!   uploaded, else an SVG drawing of it from its attributes ([`drawing`]), `N` pixels wide
//!   and high (16–2048, default 400; uploaded pictures are served as they are). `ETag` and
//!   `Cache-Control` let browsers and caches keep it; `If-None-Match` gets `304`. `HEAD`
//!   answers the headers alone.
//! - `PUT /images/products/{id}` (admin token) with a JPEG, PNG, WebP or GIF body and its
//!   `content-type` stores the shop's picture ([`uploads`]); `DELETE` removes it.
//!
//! Drawings are made on request (a few kilobytes of text, well under a millisecond), so only
//! uploads are stored.

mod drawing;
mod uploads;

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::sqlite::Value;
use vitrine_guest::http::{bearer_authorized, error, header, json_response, not_allowed};

/// Picture size when `w` is not given.
const DEFAULT_SIZE: u32 = 400;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    // The route is `/images/products/...`: the path info is the product id.
    let id = header(&req, "spin-path-info")
        .unwrap_or("")
        .trim_matches('/')
        .to_string();
    if id.is_empty() || id.contains('/') {
        return Ok(error(404, format!("no such image `{}`", req.path())));
    }
    let db = match vitrine_catalog::open() {
        Ok(db) => db,
        Err(e) => return Ok(error(503, format!("catalogue unavailable: {e}"))),
    };
    let head = match req.method() {
        Method::Get => false,
        Method::Head => true,
        Method::Put | Method::Delete => {
            return Ok(match bearer_authorized(&req, "admin_token") {
                Err(denied) => denied,
                Ok(()) => change(&db, &req, &id),
            })
        }
        other => return Ok(not_allowed(other, "GET, HEAD, PUT, DELETE")),
    };
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
    let (content_type, body) = match uploads::get(&db, &id) {
        Err(e) => return Ok(error(500, format!("pictures: {e}"))),
        Ok(Some(upload)) => upload,
        Ok(None) => match drawn(&db, &id, size) {
            Ok(Some(svg)) => ("image/svg+xml".to_string(), svg.into_bytes()),
            Ok(None) => return Ok(error(404, format!("no product `{id}`"))),
            Err(e) => return Ok(error(500, format!("lookup failed: {e}"))),
        },
    };
    let etag = format!("\"{:016x}\"", vitrine_guest::fnv1a(&body));
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
        (false, true) => builder(200).header("content-type", content_type).build(),
        (false, false) => builder(200)
            .header("content-type", content_type)
            .body(body)
            .build(),
    })
}

/// The drawing of a product, `None` if there is no such product.
fn drawn(
    db: &spin_sdk::sqlite::Connection,
    id: &str,
    size: u32,
) -> Result<Option<String>, spin_sdk::sqlite::Error> {
    let rows = db.execute(
        "SELECT title, category, item_type, colours, material FROM products WHERE id = ?",
        &[Value::Text(id.to_string())],
    )?;
    let Some(row) = rows.rows.first() else {
        return Ok(None);
    };
    let text = |i| row.get::<&str>(i).unwrap_or_default();
    let colours: Vec<String> = serde_json::from_str(text(3)).unwrap_or_default();
    Ok(Some(drawing::svg(
        &drawing::Product {
            id,
            title: text(0),
            category: text(1),
            item_type: text(2),
            colours: &colours,
            material: text(4),
        },
        size,
    )))
}

/// `PUT` (store the body as the product's picture) or `DELETE` (back to the drawing).
fn change(db: &spin_sdk::sqlite::Connection, req: &Request, id: &str) -> Response {
    let known = db.execute(
        "SELECT 1 FROM products WHERE id = ?",
        &[Value::Text(id.to_string())],
    );
    match known {
        Ok(rows) if rows.rows.is_empty() => return error(404, format!("no product `{id}`")),
        Err(e) => return error(500, format!("lookup failed: {e}")),
        Ok(_) => {}
    }
    if *req.method() == Method::Delete {
        return match uploads::delete(db, id) {
            Ok(removed) => json_response(200, serde_json::json!({ "id": id, "removed": removed })),
            Err(e) => error(500, format!("pictures: {e}")),
        };
    }
    let content_type = header(req, "content-type").unwrap_or("");
    match uploads::put(db, id, content_type, req.body()) {
        Ok(()) => json_response(
            200,
            serde_json::json!({ "id": id, "content_type": content_type, "bytes": req.body().len() }),
        ),
        Err(uploads::UploadError::Invalid(message)) => error(400, message),
        Err(uploads::UploadError::Store(e)) => error(500, format!("pictures: {e}")),
    }
}

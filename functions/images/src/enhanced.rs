//! A product's own picture as uploaded, and its enhanced version, as the picture-enhancement
//! workers read and write them (docs/images.md):
//!
//! - `GET /images/products/{id}/original` → the shop's picture as it was uploaded (`404` when
//!   the product's picture is drawn);
//! - `GET /images/products/{id}/enhanced` → the enhanced version, with `x-vitrine-source` (the
//!   `ETag` of the picture it was made from) and `x-vitrine-model`;
//! - `PUT /images/products/{id}/enhanced` (admin token) with the picture, its `content-type`,
//!   `x-vitrine-source` and `x-vitrine-model`: stored if the source is still the product's
//!   picture (else `409`); from then on `GET /images/products/{id}` serves it (and its sizes);
//! - `DELETE /images/products/{id}/enhanced` (admin token).
//!
//! An enhanced version whose source is no longer the product's picture is not served.

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::sqlite::Connection;
use vitrine_guest::http::{bearer_authorized, error, header, json_response, not_allowed};

use crate::uploads::{self, Enhanced, UploadError};

/// Answers a request for `/images/products/{id}/{part}`.
pub fn handle(db: &Connection, req: &Request, id: &str, part: &str) -> Response {
    let method = req.method();
    match (part, method) {
        ("original" | "enhanced", Method::Get | Method::Head) => {}
        ("enhanced", Method::Put | Method::Delete) => {
            if let Err(denied) = bearer_authorized(req, "admin_token") {
                return denied;
            }
        }
        ("original", other) => return not_allowed(other, "GET, HEAD"),
        ("enhanced", other) => return not_allowed(other, "GET, HEAD, PUT, DELETE"),
        _ => return error(404, format!("no such image `{}`", req.path())),
    }
    let original = match uploads::get(db, id) {
        Ok(Some(original)) => original,
        Ok(None) => return missing(db, id),
        Err(e) => return error(500, format!("pictures: {e}")),
    };
    let source = crate::tag(&[&original.1]);
    let head = *method == Method::Head;
    match (part, method) {
        ("original", _) => picture(&source, &original.0, original.1, head, &[]),
        (_, Method::Get | Method::Head) => match uploads::get_enhanced(db, id) {
            Ok(Some(e)) => {
                let etag = crate::tag(&[&e.bytes]);
                let extra = [
                    ("x-vitrine-source", e.source.as_str()),
                    ("x-vitrine-model", e.model.as_str()),
                ];
                picture(&etag, &e.content_type, e.bytes.clone(), head, &extra)
            }
            Ok(None) => error(404, format!("product `{id}` has no enhanced picture")),
            Err(e) => error(500, format!("pictures: {e}")),
        },
        (_, Method::Delete) => match uploads::delete_enhanced(db, id) {
            Ok(removed) => {
                forget(db, id);
                json_response(200, serde_json::json!({ "id": id, "removed": removed }))
            }
            Err(e) => error(500, format!("pictures: {e}")),
        },
        _ => put(db, req, id, &source),
    }
}

fn put(db: &Connection, req: &Request, id: &str, source: &str) -> Response {
    let (Some(from), Some(model)) = (
        header(req, "x-vitrine-source"),
        header(req, "x-vitrine-model"),
    ) else {
        return error(
            400,
            "an enhanced picture needs x-vitrine-source (the ETag of the picture it was made from) and x-vitrine-model",
        );
    };
    if from != source {
        return error(
            409,
            format!("the picture of `{id}` is now {source}, not {from}: enhance it again"),
        );
    }
    let enhanced = Enhanced {
        content_type: header(req, "content-type").unwrap_or("").to_string(),
        bytes: req.body().to_vec(),
        source: from.to_string(),
        model: model.chars().take(200).collect(),
    };
    match uploads::put_enhanced(db, id, &enhanced) {
        Ok(()) => {
            forget(db, id);
            json_response(
                200,
                serde_json::json!({ "id": id, "source": from, "model": enhanced.model, "bytes": enhanced.bytes.len() }),
            )
        }
        Err(UploadError::Invalid(message)) => error(400, message),
        Err(UploadError::Store(e)) => error(500, format!("pictures: {e}")),
    }
}

/// Drops the kept sizes of `id`'s picture, which change with its enhanced version.
fn forget(db: &Connection, id: &str) {
    if let Err(e) = crate::renders::forget(db, id) {
        // Not served again all the same: their ETags name the old picture.
        eprintln!("dropping the old renders of `{id}` failed: {e}");
    }
}

fn missing(db: &Connection, id: &str) -> Response {
    match db.execute(
        "SELECT 1 FROM products WHERE id = ?",
        &[spin_sdk::sqlite::Value::Text(id.to_string())],
    ) {
        Ok(rows) if rows.rows.is_empty() => error(404, format!("no product `{id}`")),
        Ok(_) => error(
            404,
            format!("product `{id}` has no picture of its own: its picture is drawn"),
        ),
        Err(e) => error(500, format!("lookup failed: {e}")),
    }
}

fn picture(
    etag: &str,
    content_type: &str,
    bytes: Vec<u8>,
    head: bool,
    extra: &[(&str, &str)],
) -> Response {
    let mut response = Response::builder();
    response
        .status(200)
        .header("etag", etag)
        .header("cache-control", "no-cache")
        .header("content-type", content_type);
    for (name, value) in extra {
        response.header(*name, *value);
    }
    if head {
        response.build()
    } else {
        response.body(bytes).build()
    }
}

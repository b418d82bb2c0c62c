//! Product pictures (route `/images/products/...`):
//!
//! - `GET /images/products/{id}[?w=N][&format=jpeg|png|svg]` → the shop's own picture of the
//!   product if one was uploaded, else a picture drawn from its attributes ([`drawing`]),
//!   rasterized ([`raster`]). Drawings are `N` pixels square (one of [`SIZES`], default 400),
//!   JPEG unless `format` says PNG or SVG (the vector drawing itself). Uploaded pictures are
//!   served as they are, or `N` pixels wide (never enlarged) and/or in `format` (JPEG or PNG)
//!   when asked. Each size and encoding is made once and kept ([`renders`]). `ETag` and
//!   `Cache-Control` let browsers and caches keep them; `If-None-Match` gets `304` without
//!   making anything. `HEAD` answers the headers alone.
//! - `PUT /images/products/{id}` (admin token) with a JPEG, PNG, WebP or GIF body and its
//!   `content-type` stores the shop's picture ([`uploads`]); `DELETE` removes it.
//! - `/images/products/{id}/original` and `…/enhanced`: the shop's picture as uploaded, and
//!   its enhanced version, which is served instead while it was made from that picture
//!   ([`enhanced`]).
//! - `GET /images/looks/{look}?item=ID&item=ID…` → a lookbook look's hero picture, composed
//!   by the worker's `lookbook-render` ([`looks`]).

mod drawing;
mod enhanced;
mod looks;
mod raster;
mod renders;
mod uploads;

use raster::Encoding;
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::sqlite::{Connection, Value};
use vitrine_guest::http::{bearer_authorized, error, header, json_response, not_allowed};

/// The sizes (pixels) a picture is served at: a bounded set, so that the kept renders are too.
pub const SIZES: [u32; 7] = [64, 128, 256, 400, 512, 800, 1024];

/// Drawing size when `w` is not given.
const DEFAULT_SIZE: u32 = 400;

/// Changes whenever the same drawing would rasterize differently (kept renders are remade).
const RENDERER: &str = "resvg-0.49/jpeg-85/1";

/// What a request asks for.
struct Wanted {
    /// Width in pixels, if given.
    width: Option<u32>,
    /// `format`: `None` for the default, `Some(None)` for SVG.
    format: Option<Option<Encoding>>,
}

impl Wanted {
    fn parse(query: &str) -> Result<Self, String> {
        let mut wanted = Wanted {
            width: None,
            format: None,
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "w" => match value.parse::<u32>() {
                    Ok(w) if SIZES.contains(&w) => wanted.width = Some(w),
                    _ => {
                        let sizes: Vec<String> = SIZES.iter().map(u32::to_string).collect();
                        return Err(format!(
                            "w must be one of {} (pixels), not '{value}'",
                            sizes.join(", ")
                        ));
                    }
                },
                "format" => {
                    wanted.format = Some(match value.as_ref() {
                        "jpeg" | "jpg" => Some(Encoding::Jpeg),
                        "png" => Some(Encoding::Png),
                        "svg" => None,
                        other => {
                            return Err(format!("format must be jpeg, png or svg, not '{other}'"))
                        }
                    })
                }
                other => return Err(format!("unknown parameter '{other}'; use w and format")),
            }
        }
        Ok(wanted)
    }
}

/// A picture to answer with, before its bytes are made: its `ETag`, its content type and the
/// recipe.
struct Picture {
    etag: String,
    content_type: String,
    recipe: Recipe,
}

/// How a picture's bytes are had.
enum Recipe {
    /// Bytes at hand (an SVG drawing, an upload served as it is).
    Ready(Vec<u8>),
    /// A drawing rasterized at a size, kept under a variant name.
    Render(String, u32, Encoding),
    /// An upload shrunk to a width (never enlarged) and encoded, kept under a variant name.
    Convert(Vec<u8>, Option<u32>, Encoding),
    /// A look composed by the worker ([`looks`]), kept under the look's id.
    Look(looks::Look),
}

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    // The routes are `/images/products/...` and `/images/looks/...`: the path info is the
    // product's or the look's id.
    let look = req.path().starts_with("/images/looks/");
    let id = header(&req, "spin-path-info")
        .unwrap_or("")
        .trim_matches('/')
        .to_string();
    let (id, part) = match id.split_once('/') {
        Some((id, part)) if !look => (id.to_string(), Some(part.to_string())),
        _ => (id, None),
    };
    if id.is_empty() || id.contains('/') {
        return Ok(error(404, format!("no such image `{}`", req.path())));
    }
    let db = match vitrine_catalog::open() {
        Ok(db) => db,
        Err(e) => return Ok(error(503, format!("catalogue unavailable: {e}"))),
    };
    if let Some(part) = part {
        return Ok(enhanced::handle(&db, &req, &id, &part));
    }
    let head = match req.method() {
        Method::Get => false,
        Method::Head => true,
        Method::Put | Method::Delete if !look => {
            return Ok(match bearer_authorized(&req, "admin_token") {
                Err(denied) => denied,
                Ok(()) => change(&db, &req, &id),
            })
        }
        other if look => return Ok(not_allowed(other, "GET, HEAD")),
        other => return Ok(not_allowed(other, "GET, HEAD, PUT, DELETE")),
    };
    let picture = if look {
        looks::picture(&db, &id, req.query())
    } else {
        match Wanted::parse(req.query()) {
            Ok(wanted) => picture(&db, &id, &wanted)
                .and_then(|p| p.ok_or_else(|| error(404, format!("no product `{id}`")))),
            Err(message) => Err(error(400, message)),
        }
    };
    let picture = match picture {
        Ok(picture) => picture,
        Err(response) => return Ok(response),
    };
    let fresh = header(&req, "if-none-match").is_some_and(|tags| {
        tags.split(',')
            .any(|t| t.trim() == picture.etag || t.trim() == "*")
    });
    let builder = |status: u16| {
        let mut response = Response::builder();
        response
            .status(status)
            .header("etag", picture.etag.as_str())
            .header("cache-control", "public, max-age=86400");
        response
    };
    if fresh {
        return Ok(builder(304).build());
    }
    if head {
        return Ok(builder(200)
            .header("content-type", picture.content_type.as_str())
            .build());
    }
    let body = match made(&db, &id, &picture) {
        Ok(body) => body,
        Err(response) => return Ok(response),
    };
    Ok(builder(200)
        .header("content-type", picture.content_type.as_str())
        .body(body)
        .build())
}

/// What `wanted` of product `id` is, before it is made; `None` if there is no such product.
fn picture(db: &Connection, id: &str, wanted: &Wanted) -> Result<Option<Picture>, Response> {
    if let Some((content_type, bytes)) =
        uploads::current(db, id).map_err(|e| error(500, format!("pictures: {e}")))?
    {
        let encoding = match wanted.format {
            Some(None) => {
                return Err(error(
                    400,
                    format!(
                        "product `{id}` has an uploaded picture, which has no SVG form; \
                         use format=jpeg or format=png"
                    ),
                ))
            }
            Some(Some(encoding)) => encoding,
            // JPEG stays JPEG; the other types may be transparent.
            None if content_type == "image/jpeg" => Encoding::Jpeg,
            None => Encoding::Png,
        };
        if wanted.width.is_none() && encoding.content_type() == content_type {
            return Ok(Some(Picture {
                etag: tag(&[&bytes]),
                content_type,
                recipe: Recipe::Ready(bytes),
            }));
        }
        let etag = tag(&[
            &bytes,
            RENDERER.as_bytes(),
            &wanted.width.unwrap_or(0).to_le_bytes(),
            encoding.content_type().as_bytes(),
        ]);
        return Ok(Some(Picture {
            etag,
            content_type: encoding.content_type().into(),
            recipe: Recipe::Convert(bytes, wanted.width, encoding),
        }));
    }
    let size = wanted.width.unwrap_or(DEFAULT_SIZE);
    let Some(svg) = drawn(db, id, size).map_err(|e| error(500, format!("lookup failed: {e}")))?
    else {
        return Ok(None);
    };
    Ok(Some(match wanted.format.unwrap_or(Some(Encoding::Jpeg)) {
        None => Picture {
            etag: tag(&[svg.as_bytes()]),
            content_type: "image/svg+xml".into(),
            recipe: Recipe::Ready(svg.into_bytes()),
        },
        Some(encoding) => Picture {
            etag: tag(&[
                svg.as_bytes(),
                RENDERER.as_bytes(),
                encoding.content_type().as_bytes(),
            ]),
            content_type: encoding.content_type().into(),
            recipe: Recipe::Render(svg, size, encoding),
        },
    }))
}

/// An `ETag`: FNV-1a of `parts`, each ended by a NUL.
fn tag(parts: &[&[u8]]) -> String {
    let mut all = Vec::new();
    for part in parts {
        all.extend_from_slice(part);
        all.push(0);
    }
    format!("\"{:016x}\"", vitrine_guest::fnv1a(&all))
}

/// The bytes of `picture` of product `id`: at hand, kept, or made now and kept.
fn made(db: &Connection, id: &str, picture: &Picture) -> Result<Vec<u8>, Response> {
    let variant = match &picture.recipe {
        Recipe::Ready(bytes) => return Ok(bytes.clone()),
        Recipe::Render(_, size, encoding) => {
            format!("drawing/{size}/{}", encoding.content_type())
        }
        Recipe::Convert(_, width, encoding) => format!(
            "upload/{}/{}",
            width.map_or("full".into(), |w| w.to_string()),
            encoding.content_type()
        ),
        Recipe::Look(_) => "look/jpeg".into(),
    };
    match renders::get(db, id, &variant, &picture.etag) {
        Ok(Some(bytes)) => return Ok(bytes),
        Ok(None) => {}
        Err(e) => return Err(error(500, format!("kept pictures: {e}"))),
    }
    let cannot = |e| (500, format!("cannot make the picture of `{id}`: {e}"));
    let bytes = match &picture.recipe {
        Recipe::Render(svg, size, encoding) => {
            raster::render(svg, *size, *encoding).map_err(cannot)
        }
        Recipe::Convert(bytes, width, encoding) => {
            raster::convert(bytes, *width, *encoding).map_err(cannot)
        }
        Recipe::Look(look) => looks::compose(look),
        Recipe::Ready(_) => unreachable!("answered above"),
    }
    .map_err(|(status, message)| error(status, message))?;
    if let Err(e) = renders::put(db, id, &variant, &picture.etag, &bytes) {
        // Served all the same; made again next time.
        eprintln!("keeping the picture of `{id}` ({variant}) failed: {e}");
    }
    Ok(bytes)
}

/// The drawing of a product, `None` if there is no such product.
fn drawn(
    db: &spin_sdk::sqlite::Connection,
    id: &str,
    size: u32,
) -> Result<Option<String>, spin_sdk::sqlite::Error> {
    Ok(drawing::Attributes::load(db, id)?.map(|a| drawing::svg(&a.product(), size)))
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
        return match uploads::delete(db, id).and_then(|removed| {
            renders::forget(db, id)?;
            Ok(removed)
        }) {
            Ok(removed) => json_response(200, serde_json::json!({ "id": id, "removed": removed })),
            Err(e) => error(500, format!("pictures: {e}")),
        };
    }
    let content_type = header(req, "content-type").unwrap_or("");
    match uploads::put(db, id, content_type, req.body()) {
        Ok(()) => {
            if let Err(e) = renders::forget(db, id) {
                // Not served again all the same: their ETags name the old picture.
                eprintln!("dropping the old renders of `{id}` failed: {e}");
            }
            json_response(
                200,
                serde_json::json!({ "id": id, "content_type": content_type, "bytes": req.body().len() }),
            )
        }
        Err(uploads::UploadError::Invalid(message)) => error(400, message),
        Err(uploads::UploadError::Store(e)) => error(500, format!("pictures: {e}")),
    }
}

//! Lookbook hero pictures: `GET /images/looks/{look}?item=ID&item=ID…` (the lookbook's JSON
//! gives each look this URL as `hero_image`). The look's products, as pieces on transparency
//! (drawings without their backdrop, at the size they are shown; the shop's own pictures, in
//! their enhanced version once the picture-job workers made it, fitted into a square), and its
//! palette go to the worker's `lookbook-render` through `wasi:nn`, which lays them flat on a
//! background in the palette; the answer is JPEG, 1024 pixels square, made once and kept
//! ([`crate::renders`]) under a key naming every piece's picture, so a changed product makes
//! a new one.

use spin_sdk::sqlite::Connection;
use vitrine_guest::http::error;
use vitrine_nn::{ErrorCode, Model, Tensor};

use crate::raster::{self, Encoding};
use crate::{drawing, uploads, Picture, Recipe};

/// The model that composes the picture.
const MODEL: &str = "lookbook-render";
/// Side of each piece sent to the model (its `pieces` input).
const PIECE: u32 = 512;
/// Side of the picture the model answers (its `image` output).
const SIZE: u32 = 1024;
/// Most pieces in a look (the model's `max_pieces`).
const MAX_ITEMS: usize = 8;
/// Changes whenever the same look would be composed differently.
const COMPOSER: &str = "lookbook-render-1/jpeg-85";

/// A look's id as the lookbook gives it: FNV-1a of its product ids, in order, each ended by
/// a NUL (functions/lookbook's `look_id`).
pub fn look_id(items: &[String]) -> String {
    let ids: String = items.iter().map(|id| format!("{id}\0")).collect();
    format!("lk-{:016x}", vitrine_guest::fnv1a(ids.as_bytes()))
}

/// A look to compose: its id and products.
pub struct Look {
    id: String,
    items: Vec<Item>,
}

/// A look's product, as the picture needs it.
struct Item {
    id: String,
    colours: Vec<String>,
    /// Its picture: a drawing's cut-out SVG, or the shop's own picture.
    piece: Piece,
}

enum Piece {
    Drawing(String),
    Upload(Vec<u8>),
}

/// What `GET /images/looks/{look}?{query}` answers with, before it is made.
pub fn picture(
    db: &Connection,
    look: &str,
    query: &str,
) -> Result<Picture, spin_sdk::http::Response> {
    let mut ids = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "item" if !value.is_empty() => ids.push(value.into_owned()),
            "item" => return Err(error(400, "an item is an empty product id")),
            other => return Err(error(400, format!("unknown parameter '{other}'; use item"))),
        }
    }
    if ids.is_empty() || ids.len() > MAX_ITEMS {
        return Err(error(
            400,
            format!(
                "a look has 1 to {MAX_ITEMS} items (item=ID, in order), not {}",
                ids.len()
            ),
        ));
    }
    if look_id(&ids) != look {
        return Err(error(
            404,
            format!("no look `{look}` of these items (its id is not theirs)"),
        ));
    }
    let mut items = Vec::new();
    for id in &ids {
        match item(db, id) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return Err(error(404, format!("no product `{id}`"))),
            Err(e) => return Err(error(500, format!("lookup failed: {e}"))),
        }
    }
    let mut key = vec![COMPOSER.as_bytes().to_vec(), look.as_bytes().to_vec()];
    for item in &items {
        key.push(match &item.piece {
            Piece::Drawing(svg) => svg.as_bytes().to_vec(),
            Piece::Upload(bytes) => vitrine_guest::fnv1a(bytes).to_le_bytes().to_vec(),
        });
    }
    let etag = format!("\"{:016x}\"", vitrine_guest::fnv1a(&key.join(&0u8)));
    Ok(Picture {
        etag,
        content_type: Encoding::Jpeg.content_type().into(),
        recipe: Recipe::Look(Look {
            id: look.to_string(),
            items,
        }),
    })
}

fn item(db: &Connection, id: &str) -> Result<Option<Item>, spin_sdk::sqlite::Error> {
    let Some(attributes) = drawing::Attributes::load(db, id)? else {
        return Ok(None);
    };
    let piece = match uploads::current(db, id)? {
        Some((_, bytes)) => Piece::Upload(bytes),
        None => Piece::Drawing(drawing::cutout(&attributes.product(), PIECE)),
    };
    Ok(Some(Item {
        id: id.to_string(),
        colours: attributes.colours,
        piece,
    }))
}

/// Composes the look's picture through the worker (JPEG bytes); else the HTTP status and a
/// message naming the problem.
pub fn compose(look: &Look) -> Result<Vec<u8>, (u16, String)> {
    let items = &look.items;
    let mut pieces = Vec::with_capacity(items.len() * (PIECE * PIECE * 4) as usize);
    for item in items {
        let rgba = match &item.piece {
            Piece::Drawing(svg) => raster::render_rgba(svg, PIECE),
            Piece::Upload(bytes) => raster::fitted_rgba(bytes, PIECE),
        }
        .map_err(|e| (500, format!("the picture of `{}`: {e}", item.id)))?;
        pieces.extend_from_slice(&rgba);
    }
    // The palette: each product's colours, main ones first, each once.
    let mut palette: Vec<&str> = Vec::new();
    for rank in 0..3 {
        for item in items {
            if let Some(colour) = item.colours.get(rank) {
                if !palette.contains(&colour.as_str()) {
                    palette.push(colour);
                }
            }
        }
    }
    if palette.is_empty() {
        palette.push("beige");
    }
    let palette: Vec<u8> = palette
        .iter()
        .flat_map(|c| {
            let (r, g, b) = drawing::rgb(c);
            [r, g, b]
        })
        .collect();
    let seed = vitrine_guest::fnv1a(look.id.as_bytes()) as i64;
    let failed = |e: vitrine_nn::Error| {
        let status = match e.code {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Timeout => 504,
            _ => 503,
        };
        (status, format!("model '{MODEL}': {e}"))
    };
    let outputs = (|| {
        Model::load(MODEL)?.infer(&[
            (
                "pieces",
                Tensor::from_u8(&[look.items.len() as u32, PIECE, PIECE, 4], &pieces)?,
            ),
            (
                "palette",
                Tensor::from_u8(&[(palette.len() / 3) as u32, 3], &palette)?,
            ),
            ("seed", Tensor::from_i64(&[1], &[seed])?),
        ])
    })()
    .map_err(failed)?;
    let image = outputs.get("image").map_err(failed)?;
    if image.dims != [SIZE, SIZE, 3] {
        return Err((
            502,
            format!(
                "model '{MODEL}' answered a {:?} image, not {SIZE}x{SIZE} RGB",
                image.dims
            ),
        ));
    }
    let rgb = image.to_u8().map_err(failed)?.to_vec();
    raster::encode_rgb(rgb, SIZE, SIZE, Encoding::Jpeg).map_err(|e| (500, e))
}

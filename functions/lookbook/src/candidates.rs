//! The catalogue products a lookbook may use (in stock, not swimwear or activewear) with their
//! popularity, read once per catalogue revision and kept as a compact snapshot in the
//! `lookbook_candidates` table: every distinct word (category, type, brand, material, colour,
//! style tag, price band) stored once, products referring to words by number.
//!
//! Reading ~5,400 products from their tables (one JSON aggregate each for the products and for
//! popularity) costs about 12 ms; reading the snapshot about 0.5 ms. The snapshot is read again
//! when the catalogue's revision changes (any write to a product or an embedding:
//! [`vitrine_catalog::revision`]) and when its popularity is older than [`cache::TTL_SECONDS`]:
//! other shoppers' events may be that stale, as in cached answers. Then one request claims the
//! refresh and reads the catalogue; the requests meanwhile keep using the snapshot whose
//! popularity is stale (under load, every request reading the catalogue at once stalled all of
//! them for a few hundred milliseconds once a minute). An `as_of` request reads popularity at
//! its own moment and neither uses nor stores the snapshot.

use std::collections::HashMap;

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use spin_sdk::sqlite::{Connection, Error, Value};
use vitrine_shoppers::profile::price_band;

use crate::assemble::{Item, Look};
use crate::cache;
use crate::context::{LookbookRequest, SEASONS};
use crate::style;

/// Bumped when [`Candidates`] changes shape, so that a snapshot stored by an older build is
/// read again instead of misread.
const FORMAT: i64 = 6;

/// Run when the table is missing or has other columns (a database from an earlier build): it
/// only holds a snapshot that can be read again, so it is replaced. (Requests racing through
/// this at once may drop each other's new table: they then read the catalogue, once.)
const SCHEMA: &[&str] = &[
    "DROP TABLE IF EXISTS lookbook_candidates",
    "CREATE TABLE IF NOT EXISTS lookbook_candidates (
        id INTEGER PRIMARY KEY CHECK (id = 1), format INTEGER NOT NULL,
        revision INTEGER NOT NULL, read_at INTEGER NOT NULL, text BLOB NOT NULL,
        products BLOB NOT NULL, by_price BLOB NOT NULL, lists BLOB NOT NULL)",
];

/// A product as read from the catalogue, before its words are numbered.
#[derive(Debug, Clone)]
pub struct Product {
    /// Product id.
    pub id: String,
    /// Category.
    pub category: String,
    /// Item type.
    pub item_type: String,
    /// Brand.
    pub brand: String,
    /// Price in cents (EUR).
    pub price_cents: i64,
    /// Colours, main first.
    pub colours: Vec<String>,
    /// Style tags.
    pub styles: Vec<String>,
    /// Material.
    pub material: String,
    /// `ln(1 + reviews) + 2 ln(1 + event weight)`.
    pub popularity: f64,
}

/// The candidate products with their words numbered. Products hold no allocation of their own
/// (their ids and word lists are spans of shared buffers) and are stored as they lie in memory
/// ([`Pod`]), so that reading the snapshot copies a few buffers instead of decoding ~20 fields
/// and allocating three buffers per product.
pub struct Candidates {
    /// The strings and the times.
    text: Text,
    /// The products, ordered by id.
    pub products: Vec<Candidate>,
    /// Positions in `products`, ordered by price, then id.
    pub by_price: Vec<u32>,
    /// The products' colour and style word numbers, one list after another.
    lists: Vec<u32>,
}

/// What of [`Candidates`] is not plain numbers.
#[derive(Serialize, Deserialize)]
struct Text {
    /// Every distinct word of the products, once.
    words: Vec<String>,
    /// The products' ids, one after another.
    ids: String,
    /// Dense numbers of the words used as categories, `u32::MAX` for the others.
    category_rows: Vec<u32>,
    /// Dense numbers of the words used as style tags, `u32::MAX` for the others.
    style_columns: Vec<u32>,
    /// How many distinct categories there are.
    rows: usize,
    /// How many distinct style tags there are.
    columns: usize,
    /// Per word, as a style tag: the look styles it is and those it belongs in
    /// ([`style::bits`]).
    style_bits: Vec<(u32, u32)>,
}

/// Where a product's id or word list lies in [`Candidates`]' shared buffers.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

/// One candidate product; its words are positions in [`Candidates::words`], its id and word
/// lists are read through [`Candidates`].
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Candidate {
    /// Price in cents (EUR).
    pub price_cents: i64,
    /// `ln(1 + reviews) + 2 ln(1 + event weight)`.
    pub popularity: f64,
    /// Product id ([`Candidates::id`]).
    id: Span,
    /// Colours, main first ([`Candidates::colours`]).
    colours: Span,
    /// Style tags ([`Candidates::styles`]).
    styles: Span,
    /// Category.
    pub category: u32,
    /// Item type.
    pub item_type: u32,
    /// Brand.
    pub brand: u32,
    /// Material.
    pub material: u32,
    /// Price band (`vitrine_shoppers::profile::price_band`).
    pub price_band: u32,
    /// How well it suits each of [`SEASONS`], in tenths ([`style::season_fit`]; -1: it does
    /// not).
    seasons: [i8; 4],
}

impl Candidate {
    /// How well it suits the season numbered `season` in [`SEASONS`], if at all.
    pub fn season(&self, season: usize) -> Option<f64> {
        let tenths = self.seasons[season];
        (tenths >= 0).then(|| f64::from(tenths) / 10.0)
    }
}

/// A season fit in tenths, as a [`Candidate`] keeps it; `-1` for `None`. Fits are 0, 0.1 and
/// 0.2 ([`style::season_fit`]), which come back exactly.
fn season_tenths(fit: Option<f64>) -> i8 {
    fit.map_or(-1, |fit| (fit * 10.0).round() as i8)
}

impl Candidates {
    /// Numbers the words of `products`.
    pub fn new(mut products: Vec<Product>) -> Self {
        products.sort_by(|a, b| a.id.cmp(&b.id));
        let mut words = Vec::new();
        let mut numbers: HashMap<String, u32> = HashMap::new();
        let mut number = |word: &str| -> u32 {
            if let Some(n) = numbers.get(word) {
                return *n;
            }
            let n = words.len() as u32;
            words.push(word.to_string());
            numbers.insert(word.to_string(), n);
            n
        };
        let mut ids = String::new();
        let mut lists = Vec::new();
        let span = |len: usize, at: usize| Span {
            start: at as u32,
            len: len as u32,
        };
        let products: Vec<Candidate> = products
            .into_iter()
            .map(|p| {
                let id = span(p.id.len(), ids.len());
                ids.push_str(&p.id);
                let colours = span(p.colours.len(), lists.len());
                lists.extend(p.colours.iter().map(|c| number(c)));
                let styles = span(p.styles.len(), lists.len());
                lists.extend(p.styles.iter().map(|s| number(s)));
                Candidate {
                    id,
                    category: number(&p.category),
                    item_type: number(&p.item_type),
                    brand: number(&p.brand),
                    material: number(&p.material),
                    price_band: number(price_band(p.price_cents)),
                    price_cents: p.price_cents,
                    colours,
                    styles,
                    popularity: p.popularity,
                    seasons: SEASONS.map(|season| {
                        season_tenths(style::season_fit(
                            &p.category,
                            &p.item_type,
                            &p.material,
                            season,
                        ))
                    }),
                }
            })
            .collect();
        let mut by_price: Vec<u32> = (0..products.len() as u32).collect();
        by_price.sort_by_key(|n| (products[*n as usize].price_cents, *n));
        let (category_rows, rows) = dense(products.iter().map(|p| p.category), words.len());
        let style_bits = words.iter().map(|w| style::bits(w)).collect();
        let style_words = products.iter().flat_map(|p| &lists[p.styles.range()]);
        let (style_columns, columns) = dense(style_words.copied(), words.len());
        Candidates {
            text: Text {
                words,
                ids,
                category_rows,
                style_columns,
                rows,
                columns,
                style_bits,
            },
            products,
            by_price,
            lists,
        }
    }

    /// Every distinct word of the products, once.
    pub fn words(&self) -> &[String] {
        &self.text.words
    }

    /// How many (category, style tag) groups there may be ([`Self::group`]).
    pub fn groups(&self) -> usize {
        self.text.rows * self.text.columns
    }

    /// The number of the group (category, `style`) of `product`, below [`Self::groups`]: the
    /// groups are numbered densely, so that they can be counted in a table.
    pub fn group(&self, product: &Candidate, style: u32) -> usize {
        let row = self.text.category_rows[product.category as usize] as usize;
        row * self.text.columns + self.text.style_columns[style as usize] as usize
    }

    /// The id of `product`.
    pub fn id(&self, product: &Candidate) -> &str {
        &self.text.ids[product.id.range()]
    }

    /// The colours of `product`, main first.
    pub fn colours(&self, product: &Candidate) -> &[u32] {
        &self.lists[product.colours.range()]
    }

    /// The style tags of `product`.
    pub fn styles(&self, product: &Candidate) -> &[u32] {
        &self.lists[product.styles.range()]
    }

    /// The word numbered `n`.
    pub fn word(&self, n: u32) -> &str {
        &self.text.words[n as usize]
    }

    /// The position of the product `id`, if it is a candidate.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.products.binary_search_by(|p| self.id(p).cmp(id)).ok()
    }

    /// The product at `n` as an [`Item`] with the first pass's `score`.
    pub fn item(&self, n: usize, score: f64) -> Item<'_> {
        let p = &self.products[n];
        let words = |ns: &[u32]| ns.iter().map(|w| self.word(*w)).collect();
        let (carries, fits) = self.styles(p).iter().fold((0, 0), |(c, f), w| {
            let (is, belongs) = self.text.style_bits[*w as usize];
            (c | is, f | belongs)
        });
        Item {
            id: self.id(p),
            category: self.word(p.category),
            item_type: self.word(p.item_type),
            brand: self.word(p.brand),
            price_cents: p.price_cents,
            colours: words(self.colours(p)),
            styles: words(self.styles(p)),
            material: self.word(p.material),
            score,
            position: n as u32,
            carries,
            fits,
        }
    }
}

/// The candidates for `request`: the stored snapshot when it is current (and not `fresh` asked
/// for), else read from the catalogue (and stored, for a live request). `revision` is the
/// catalogue's.
pub fn load(
    db: &Connection,
    request: &LookbookRequest,
    revision: i64,
    now: i64,
    fresh: bool,
) -> Result<Candidates, Error> {
    if request.as_of.is_some() {
        return read(db, Some(now));
    }
    // The snapshot only saves work: when it cannot be used, the catalogue is read (and the
    // failure logged), never refused.
    if !fresh {
        match stored(db, revision) {
            Ok(Some((candidates, read_at))) if read_at > now - cache::TTL_SECONDS => {
                return Ok(candidates)
            }
            Ok(Some((stale, read_at))) => match claim_refresh(db, revision, read_at, now) {
                Ok(true) => {}
                Ok(false) => return Ok(stale),
                Err(e) => eprintln!("lookbook candidates refresh not claimed, reading: {e}"),
            },
            Ok(None) => {}
            Err(e) => eprintln!("lookbook candidates unreadable, reading the catalogue: {e}"),
        }
    }
    let candidates = read(db, None)?;
    if let Err(e) = store(db, &candidates, revision, now) {
        eprintln!("lookbook candidates not stored: {e}");
    }
    Ok(candidates)
}

/// Whether this request refreshes the snapshot of `revision` read at `read_at`: the first to
/// move its `read_at` on to `now` does; the others take it as fresh until the refreshed one is
/// stored (or, if that never comes, for another [`cache::TTL_SECONDS`]).
fn claim_refresh(db: &Connection, revision: i64, read_at: i64, now: i64) -> Result<bool, Error> {
    let claimed = db.execute(
        "UPDATE lookbook_candidates SET read_at = ?
         WHERE id = 1 AND format = ? AND revision = ? AND read_at = ? RETURNING 1",
        &[
            Value::Integer(now),
            Value::Integer(FORMAT),
            Value::Integer(revision),
            Value::Integer(read_at),
        ],
    )?;
    Ok(!claimed.rows.is_empty())
}

/// The stored snapshot, if it is of this format and revision, with when its popularity was
/// read (or its refresh claimed).
fn stored(db: &Connection, revision: i64) -> Result<Option<(Candidates, i64)>, Error> {
    let rows = vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "SELECT text, products, by_price, lists, read_at FROM lookbook_candidates
             WHERE format = ? AND revision = ?",
            &[Value::Integer(FORMAT), Value::Integer(revision)],
        )
    })?;
    let Some(row) = rows.rows.first() else {
        return Ok(None);
    };
    let blob = |n: usize| row.get::<&[u8]>(n).unwrap_or_default();
    let malformed =
        |what: &str| Error::Io(format!("stored lookbook candidates are malformed: {what}"));
    let candidates = Candidates {
        text: postcard::from_bytes(blob(0)).map_err(|e| malformed(&e.to_string()))?,
        products: records(blob(1)).ok_or_else(|| malformed("products"))?,
        by_price: records(blob(2)).ok_or_else(|| malformed("price order"))?,
        lists: records(blob(3)).ok_or_else(|| malformed("word lists"))?,
    };
    // Spans and positions outside their buffers would panic later: refuse them here.
    let words = candidates.text.words.len() as u32;
    let sound = candidates.products.iter().all(|p| {
        // In 64 bits: a corrupt span must not wrap around and pass.
        let within =
            |span: Span, len: usize| u64::from(span.start) + u64::from(span.len) <= len as u64;
        within(p.id, candidates.text.ids.len())
            && candidates.text.ids.is_char_boundary(p.id.range().start)
            && candidates.text.ids.is_char_boundary(p.id.range().end)
            && within(p.colours, candidates.lists.len())
            && within(p.styles, candidates.lists.len())
            && [p.category, p.item_type, p.brand, p.material, p.price_band]
                .iter()
                .all(|w| *w < words)
    }) && candidates.lists.iter().all(|w| *w < words)
        && candidates.text.category_rows.len() == words as usize
        && candidates.text.style_columns.len() == words as usize
        && candidates.text.style_bits.len() == words as usize
        && candidates.products.iter().all(|p| {
            (candidates.text.category_rows[p.category as usize] as usize) < candidates.text.rows
                && candidates.styles(p).iter().all(|s| {
                    (candidates.text.style_columns[*s as usize] as usize) < candidates.text.columns
                })
        })
        && candidates.by_price.len() == candidates.products.len()
        && candidates
            .by_price
            .iter()
            .all(|n| (*n as usize) < candidates.products.len());
    let read_at = row.get::<i64>(4).unwrap_or(0);
    match sound {
        true => Ok(Some((candidates, read_at))),
        false => Err(malformed("a span or position out of range")),
    }
}

/// Dense numbers for the word numbers `used` (out of `words`; `u32::MAX` for the others), and
/// how many there are.
fn dense(used: impl Iterator<Item = u32>, words: usize) -> (Vec<u32>, usize) {
    let mut numbers = vec![u32::MAX; words];
    let mut next = 0;
    for w in used {
        if numbers[w as usize] == u32::MAX {
            numbers[w as usize] = next;
            next += 1;
        }
    }
    (numbers, next as usize)
}

/// `bytes` as records of `T`, copied out (a blob's bytes need not be aligned for them); `None`
/// unless they hold a whole number of records.
fn records<T: Pod>(bytes: &[u8]) -> Option<Vec<T>> {
    let size = std::mem::size_of::<T>();
    bytes.len().is_multiple_of(size).then(|| {
        let mut records = vec![T::zeroed(); bytes.len() / size];
        bytemuck::cast_slice_mut(&mut records).copy_from_slice(bytes);
        records
    })
}

/// Stores `candidates` as the snapshot of `revision` with popularity read at `read_at`.
fn store(
    db: &Connection,
    candidates: &Candidates,
    revision: i64,
    read_at: i64,
) -> Result<(), Error> {
    let text = postcard::to_allocvec(&candidates.text)
        .map_err(|e| Error::Io(format!("lookbook candidates not encoded: {e}")))?;
    let bytes = |records: &[u8]| Value::Blob(records.to_vec());
    vitrine_guest::sqlite::with_schema(db, SCHEMA, |db| {
        db.execute(
            "INSERT OR REPLACE INTO lookbook_candidates
                (id, format, revision, read_at, text, products, by_price, lists)
             VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
            &[
                Value::Integer(FORMAT),
                Value::Integer(revision),
                Value::Integer(read_at),
                Value::Blob(text.clone()),
                bytes(bytemuck::cast_slice(&candidates.products)),
                bytes(bytemuck::cast_slice(&candidates.by_price)),
                bytes(bytemuck::cast_slice(&candidates.lists)),
            ],
        )
    })?;
    Ok(())
}

/// The first column of the first row as text (a JSON aggregate).
fn single_text(db: &Connection, sql: &str, params: &[Value]) -> Result<String, Error> {
    let rows = vitrine_shoppers::with_tables(db, |db| db.execute(sql, params))?;
    Ok(rows
        .rows
        .first()
        .and_then(|r| r.get::<&str>(0))
        .unwrap_or("[]")
        .to_string())
}

fn malformed(what: &str, e: serde_json::Error) -> Error {
    Error::Io(format!("{what} are not the JSON expected: {e}"))
}

/// Reads the candidates from the catalogue. Popularity is the all-time event weight: the
/// running totals, or summed from the events up to `as_of`. Thousands of products are read,
/// so each query returns one JSON value built by SQLite (`json_group_array`) rather than a
/// dozen values per product.
fn read(db: &Connection, as_of: Option<i64>) -> Result<Candidates, Error> {
    let products = single_text(
        db,
        "SELECT json_group_array(json_array(p.id, p.category, p.item_type, p.brand,
            p.price_cents, json(p.colours), json(p.style_tags), p.material, p.review_count))
         FROM products p
         WHERE p.stock > 0 AND p.category NOT IN ('swimwear', 'activewear')",
        &[],
    )?;
    let popularity = match as_of {
        None => single_text(
            db,
            "SELECT json_group_object(product, weight) FROM product_popularity",
            &[],
        )?,
        Some(as_of) => single_text(
            db,
            &format!(
                "SELECT json_group_object(product, weight) FROM (
                    SELECT product, sum(quantity * {}) AS weight FROM shopper_events
                    WHERE product IS NOT NULL AND time <= ? GROUP BY product)",
                vitrine_shoppers::profile::weight_sql("kind")
            ),
            &[Value::Integer(as_of)],
        )?,
    };
    type Row = (
        String,
        String,
        String,
        String,
        i64,
        Vec<String>,
        Vec<String>,
        String,
        i64,
    );
    let rows: Vec<Row> = serde_json::from_str(&products).map_err(|e| malformed("candidates", e))?;
    let weights: HashMap<&str, f64> = match popularity.as_str() {
        "[]" => HashMap::new(),
        text => serde_json::from_str(text).map_err(|e| malformed("popularity weights", e))?,
    };
    let products = rows
        .into_iter()
        .map(
            |(id, category, item_type, brand, price_cents, colours, styles, material, reviews)| {
                let events = weights.get(id.as_str()).copied().unwrap_or(0.0);
                Product {
                    popularity: (reviews as f64).ln_1p() + 2.0 * events.ln_1p(),
                    id,
                    category,
                    item_type,
                    brand,
                    price_cents,
                    colours,
                    styles,
                    material,
                }
            },
        )
        .collect();
    Ok(Candidates::new(products))
}

/// The titles and images of the looks' items, by product id.
pub fn details(db: &Connection, looks: &[Look]) -> Result<HashMap<String, Details>, Error> {
    let ids: Vec<Json> = looks
        .iter()
        .flat_map(|l| l.items.iter().map(|(_, i)| Json::from(i.id)))
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = db.execute(
        "SELECT p.id, p.title, p.image FROM products p
         WHERE p.id IN (SELECT value FROM json_each(?))",
        &[Value::Text(Json::Array(ids).to_string())],
    )?;
    Ok(rows
        .rows
        .iter()
        .filter_map(|r| {
            let details = Details {
                title: r.get::<&str>(1)?.to_string(),
                image: r.get::<&str>(2)?.to_string(),
            };
            Some((r.get::<&str>(0)?.to_string(), details))
        })
        .collect())
}

/// What a look shows of a product besides its words.
#[derive(Default)]
pub struct Details {
    /// Product title.
    pub title: String,
    /// Image URL.
    pub image: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn season_fits_come_back_exactly() {
        let kinds = [
            ("coats", "Wool Coat", "wool"),
            ("dresses", "Sundress", "linen"),
            ("tops", "Shirt", "cotton"),
            ("shoes", "Sneakers", "canvas"),
            ("jackets", "Jacket", "leather"),
            ("swimwear", "Bikini", "nylon"),
        ];
        let mut fits = std::collections::BTreeSet::new();
        for (category, item_type, material) in kinds {
            for season in SEASONS {
                let fit = style::season_fit(category, item_type, material, season);
                let mut candidate = Candidate::zeroed();
                candidate.seasons[1] = season_tenths(fit);
                assert_eq!(
                    candidate.season(1),
                    fit,
                    "{category} {item_type} in {season}"
                );
                fits.insert(format!("{fit:?}"));
            }
        }
        // Every kind of fit was tried.
        assert_eq!(fits.len(), 4, "{fits:?}");
    }
}

//! The catalogue search query in SQLite.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value as Json};
use spin_sdk::sqlite::{Connection, Error, Value};
use vitrine_catalog::{embeddings, PRODUCT_JSON};

use crate::query::{ProductQuery, Sort};

/// `column IN (?, ?, …)` for a list of values, appending them to `params`.
fn any_of(column: &str, values: &[String], params: &mut Vec<Value>) -> String {
    let marks = vec!["?"; values.len()].join(", ");
    params.extend(values.iter().cloned().map(Value::Text));
    format!("{column} IN ({marks})")
}

/// The `FROM` and `WHERE` of a search, with their parameters; full-text `MATCH` only when
/// `with_text` (a semantic search ranks by meaning instead).
fn filters(query: &ProductQuery, with_text: bool) -> (String, String, Vec<Value>) {
    let mut from = "products p".to_string();
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if with_text && !query.words.is_empty() {
        from.push_str(" JOIN product_search s ON s.rowid = p.rowid");
        conditions.push("product_search MATCH ?".to_string());
        let expr: Vec<String> = query.words.iter().map(|w| format!("\"{w}\"*")).collect();
        params.push(Value::Text(expr.join(" ")));
    }
    if !query.categories.is_empty() {
        conditions.push(any_of("p.category", &query.categories, &mut params));
    }
    if !query.brands.is_empty() {
        conditions.push(any_of("lower(p.brand)", &query.brands, &mut params));
    }
    if !query.colours.is_empty() {
        let inner = any_of("c.colour", &query.colours, &mut params);
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM product_colours c WHERE c.product = p.rowid AND {inner})"
        ));
    }
    if !query.styles.is_empty() {
        let inner = any_of("t.style", &query.styles, &mut params);
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM product_styles t WHERE t.product = p.rowid AND {inner})"
        ));
    }
    if let Some(min) = query.min_price_cents {
        conditions.push("p.price_cents >= ?".into());
        params.push(Value::Integer(min));
    }
    if let Some(max) = query.max_price_cents {
        conditions.push("p.price_cents <= ?".into());
        params.push(Value::Integer(max));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    (from, filter, params)
}

/// Runs a search and returns one page with the total match count, as JSON text.
pub fn search(db: &Connection, query: &ProductQuery) -> Result<String, Error> {
    let (from, filter, params) = filters(query, true);
    let order = match query.sort {
        Sort::Relevance if !query.words.is_empty() => "s.rank, p.rowid",
        Sort::Relevance => "p.rowid",
        Sort::PriceAsc => "p.price_cents, p.rowid",
        Sort::PriceDesc => "p.price_cents DESC, p.rowid",
        Sort::Rating => "p.rating DESC, p.review_count DESC, p.rowid",
        Sort::Newest => "p.created_at DESC, p.rowid",
    };
    // One statement (one host call) for the page and the total: SQLite evaluates the
    // uncorrelated count once. Only an empty page needs the count on its own.
    let mut page_params = params.clone();
    page_params.extend(params.iter().cloned());
    page_params.push(Value::Integer(query.limit));
    page_params.push(Value::Integer(query.offset));
    let rows = db.execute(
        &format!(
            "SELECT (SELECT count(*) FROM {from}{filter}) AS total, {PRODUCT_JSON} \
             FROM {from}{filter} ORDER BY {order} LIMIT ? OFFSET ?"
        ),
        &page_params,
    )?;
    let total = match rows.rows.first() {
        Some(row) => row.get::<i64>(0).unwrap_or(0),
        None if query.offset == 0 => 0,
        None => db
            .execute(&format!("SELECT count(*) FROM {from}{filter}"), &params)?
            .rows
            .first()
            .and_then(|row| row.get::<i64>(0))
            .unwrap_or(0),
    };
    let items = rows
        .rows
        .iter()
        .filter_map(|row| row.get::<&str>(1))
        .map(|text| item(text.to_string()))
        .collect::<Result<_, _>>()?;
    page(query, total, items, None)
}

/// A product's JSON text from SQLite ([`PRODUCT_JSON`]), checked.
fn item(text: String) -> Result<Box<RawValue>, Error> {
    RawValue::from_string(text).map_err(|e| Error::Io(format!("product JSON is malformed: {e}")))
}

/// One page of a search, in the order of its keys in the answer.
#[derive(Serialize)]
struct Page<'a> {
    items: Vec<Box<RawValue>>,
    limit: i64,
    next_offset: Option<i64>,
    offset: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    semantic: Option<&'a Json>,
    total: i64,
}

/// One page of a search as JSON text: the items with the total and where the next page
/// starts (and, for a search by meaning, the embeddings' coverage).
fn page(
    query: &ProductQuery,
    total: i64,
    items: Vec<Box<RawValue>>,
    semantic: Option<&Json>,
) -> Result<String, Error> {
    let next = query.offset + query.limit;
    let page = Page {
        items,
        limit: query.limit,
        next_offset: (next < total).then_some(next),
        offset: query.offset,
        semantic,
        total,
    };
    serde_json::to_string(&page).map_err(|e| Error::Io(format!("page not encoded: {e}")))
}

/// A search ranked by meaning: the filtered products with an embedding, by cosine similarity
/// of their embedding to `vector` (the embedding of `q`). The page says how much of the
/// catalogue has embeddings. JSON text.
pub fn semantic_search(
    db: &Connection,
    query: &ProductQuery,
    vector: &[f32],
) -> Result<String, Error> {
    let (from, filter, params) = filters(query, false);
    let rows = db.execute(
        &format!("SELECT p.rowid, e.vector FROM {from} JOIN product_embeddings e ON e.product = p.rowid{filter}"),
        &params,
    )?;
    let mut ranked: Vec<(i64, f32)> = rows
        .rows
        .iter()
        .filter_map(|row| {
            let stored = embeddings::decode(row.get::<&[u8]>(1)?)?;
            Some((row.get::<i64>(0)?, embeddings::similarity(vector, &stored)))
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let total = ranked.len() as i64;
    let chosen: Vec<(i64, f32)> = ranked
        .into_iter()
        .skip(query.offset as usize)
        .take(query.limit as usize)
        .collect();
    let mut items = Vec::with_capacity(chosen.len());
    if !chosen.is_empty() {
        let marks = vec!["?"; chosen.len()].join(", ");
        let ids: Vec<Value> = chosen
            .iter()
            .map(|(rowid, _)| Value::Integer(*rowid))
            .collect();
        let rows = db.execute(
            &format!("SELECT p.rowid, {PRODUCT_JSON} FROM products p WHERE p.rowid IN ({marks})"),
            &ids,
        )?;
        let mut by_rowid: std::collections::HashMap<i64, &str> = rows
            .rows
            .iter()
            .filter_map(|row| Some((row.get::<i64>(0)?, row.get::<&str>(1)?)))
            .collect();
        for (rowid, score) in &chosen {
            if let Some(text) = by_rowid.remove(rowid) {
                let mut product: Json = serde_json::from_str(text)
                    .map_err(|e| Error::Io(format!("product JSON is malformed: {e}")))?;
                product["score"] = json!((f64::from(*score) * 10_000.0).round() / 10_000.0);
                items.push(item(product.to_string())?);
            }
        }
    }
    let (embedded, products) = embeddings::coverage(db)?;
    let semantic =
        json!({ "model": embeddings::MODEL, "embedded": embedded, "products": products });
    page(query, total, items, Some(&semantic))
}

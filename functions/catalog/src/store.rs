//! The catalogue search query in SQLite.

use serde_json::{json, Value as Json};
use spin_sdk::sqlite::{Connection, Error, Value};
use vitrine_catalog::{products, COLUMNS};

use crate::query::{ProductQuery, Sort};

/// `column IN (?, ?, …)` for a list of values, appending them to `params`.
fn any_of(column: &str, values: &[String], params: &mut Vec<Value>) -> String {
    let marks = vec!["?"; values.len()].join(", ");
    params.extend(values.iter().cloned().map(Value::Text));
    format!("{column} IN ({marks})")
}

/// Runs a search and returns one page with the total match count.
pub fn search(db: &Connection, query: &ProductQuery) -> Result<Json, Error> {
    let mut from = "products p".to_string();
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if !query.words.is_empty() {
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
            "SELECT (SELECT count(*) FROM {from}{filter}) AS total, {COLUMNS} \
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
    let items = products(&rows);
    let next = query.offset + query.limit;
    Ok(json!({
        "total": total,
        "limit": query.limit,
        "offset": query.offset,
        "next_offset": if next < total { Some(next) } else { None },
        "items": items,
    }))
}

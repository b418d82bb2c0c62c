//! The catalogue in SQLite: schema, first-use seeding, and the search and lookup queries.

use serde_json::{json, Map, Value as Json};
use spin_sdk::sqlite::{Connection, Error, QueryResult, Value};

use crate::query::{ProductQuery, Sort};
use crate::seed;

/// Bumped when the schema changes; a database at an older version is rebuilt.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS catalog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS products (
        id TEXT NOT NULL UNIQUE, title TEXT NOT NULL, description TEXT NOT NULL,
        category TEXT NOT NULL, item_type TEXT NOT NULL, brand TEXT NOT NULL,
        price_cents INTEGER NOT NULL, currency TEXT NOT NULL,
        colours TEXT NOT NULL, style_tags TEXT NOT NULL, material TEXT NOT NULL,
        sizes TEXT NOT NULL, image TEXT NOT NULL, rating REAL NOT NULL,
        review_count INTEGER NOT NULL, stock INTEGER NOT NULL, created_at TEXT NOT NULL,
        attributes TEXT NOT NULL DEFAULT '{}')",
    "CREATE INDEX IF NOT EXISTS products_category_price ON products (category, price_cents)",
    "CREATE INDEX IF NOT EXISTS products_price ON products (price_cents)",
    "CREATE INDEX IF NOT EXISTS products_brand ON products (brand COLLATE NOCASE)",
    "CREATE TABLE IF NOT EXISTS product_colours (product INTEGER NOT NULL, colour TEXT NOT NULL, PRIMARY KEY (colour, product)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS product_styles (product INTEGER NOT NULL, style TEXT NOT NULL, PRIMARY KEY (style, product)) WITHOUT ROWID",
    "CREATE VIRTUAL TABLE IF NOT EXISTS product_search USING fts5 (title, description, brand, category, tags, tokenize = 'unicode61 remove_diacritics 2')",
];

const COLUMNS: &str =
    "p.id, p.title, p.description, p.category, p.item_type, p.brand, p.price_cents, \
     p.currency, p.colours, p.style_tags, p.material, p.sizes, p.image, p.rating, p.review_count, \
     p.stock, p.created_at, p.attributes";

/// Opens the `default` database, creating and seeding the catalogue on first use.
pub fn open() -> Result<Connection, Error> {
    let db = Connection::open_default()?;
    let ready = db
        .execute(
            "SELECT value FROM catalog_meta WHERE key = 'schema_version'",
            &[],
        )
        .ok()
        .and_then(|r| {
            r.rows
                .first()
                .and_then(|row| row.get::<&str>(0).map(str::to_string))
        })
        .is_some_and(|v| v == SCHEMA_VERSION.to_string());
    if !ready {
        seed_catalogue(&db)?;
    }
    Ok(db)
}

/// Creates the schema and loads the demo catalogue in one transaction; concurrent first
/// requests wait for it and then find it done.
fn seed_catalogue(db: &Connection) -> Result<(), Error> {
    db.execute("BEGIN IMMEDIATE", &[])?;
    let result = (|| {
        let done = db
            .execute(
                "SELECT value FROM catalog_meta WHERE key = 'schema_version'",
                &[],
            )
            .ok()
            .and_then(|r| {
                r.rows
                    .first()
                    .and_then(|row| row.get::<&str>(0).map(str::to_string))
            });
        if done.as_deref() == Some(&SCHEMA_VERSION.to_string()) {
            return Ok(());
        }
        for table in [
            "product_search",
            "product_styles",
            "product_colours",
            "products",
            "catalog_meta",
        ] {
            db.execute(&format!("DROP TABLE IF EXISTS {table}"), &[])?;
        }
        for statement in SCHEMA {
            db.execute(statement, &[])?;
        }
        let products = Value::Text(seed::products().to_string());
        db.execute(
            "INSERT INTO products (id, title, description, category, item_type, brand, price_cents,
                currency, colours, style_tags, material, sizes, image, rating, review_count, stock, created_at)
             SELECT j.value->>'id', j.value->>'title', j.value->>'description', j.value->>'category',
                j.value->>'item_type', j.value->>'brand', j.value->>'price_cents', j.value->>'currency',
                j.value->'colours', j.value->'style_tags', j.value->>'material', j.value->'sizes',
                j.value->>'image', j.value->>'rating', j.value->>'review_count', j.value->>'stock',
                j.value->>'created_at'
             FROM json_each(?) AS j",
            &[products],
        )?;
        db.execute(
            "INSERT INTO product_colours (product, colour)
             SELECT p.rowid, c.value FROM products p, json_each(p.colours) c",
            &[],
        )?;
        db.execute(
            "INSERT INTO product_styles (product, style)
             SELECT p.rowid, s.value FROM products p, json_each(p.style_tags) s",
            &[],
        )?;
        db.execute(
            "INSERT INTO product_search (rowid, title, description, brand, category, tags)
             SELECT rowid, title, description, brand, category || ' ' || item_type,
                (SELECT group_concat(value, ' ') FROM json_each(style_tags)) || ' ' ||
                (SELECT group_concat(value, ' ') FROM json_each(colours)) || ' ' || material
             FROM products",
            &[],
        )?;
        db.execute(
            "INSERT INTO catalog_meta (key, value) VALUES ('schema_version', ?)",
            &[Value::Text(SCHEMA_VERSION.to_string())],
        )?;
        Ok(())
    })();
    match result {
        Ok(()) => db.execute("COMMIT", &[]).map(drop),
        Err(e) => {
            let _ = db.execute("ROLLBACK", &[]);
            Err(e)
        }
    }
}

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

/// One product by id.
pub fn get(db: &Connection, id: &str) -> Result<Option<Json>, Error> {
    let rows = db.execute(
        &format!("SELECT {COLUMNS} FROM products p WHERE p.id = ?"),
        &[Value::Text(id.to_string())],
    )?;
    Ok(products(&rows).into_iter().next())
}

/// Rows of [`COLUMNS`] as API objects.
fn products(result: &QueryResult) -> Vec<Json> {
    result
        .rows
        .iter()
        .map(|row| {
            let mut product = Map::new();
            for (name, value) in result.columns.iter().zip(&row.values) {
                if name == "total" {
                    continue;
                }
                let value = match value {
                    Value::Integer(i) => json!(i),
                    Value::Real(r) => json!(r),
                    Value::Text(t)
                        if ["colours", "style_tags", "sizes", "attributes"]
                            .contains(&name.as_str()) =>
                    {
                        serde_json::from_str(t).unwrap_or(Json::Null)
                    }
                    Value::Text(t) => json!(t),
                    Value::Blob(_) | Value::Null => Json::Null,
                };
                product.insert(name.clone(), value);
            }
            if let Some(cents) = product.remove("price_cents").and_then(|c| c.as_i64()) {
                product.insert("price".into(), json!(cents as f64 / 100.0));
            }
            Json::Object(product)
        })
        .collect()
}

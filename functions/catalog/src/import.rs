//! A shop's own products (`PUT /api/catalog/products`, admin token): checked field by field,
//! every problem of a batch reported at once (`products[i].field`), then upserted by `id`
//! together with their colour, style and full-text rows. Each batch carries the import's
//! `generation`; `DELETE /api/catalog/products?before_generation=G` then removes what an
//! import did not bring (`vitrine catalog import --replace`). Changed products lose their
//! embedding, so the backfill computes it again.

use serde_json::{json, Map, Value};
use spin_sdk::sqlite::{Connection, Error, Value as Sql};

/// Most products per batch.
pub const MAX_BATCH: usize = 1000;

/// One problem with one product.
pub struct Problem {
    /// Index in the batch.
    pub index: usize,
    /// The field (`price`, `colours`, …).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// A list field: an array of strings, or one string separated by `|`, `;` or `,`.
fn list(value: Option<&Value>, lower: bool) -> Result<Vec<String>, String> {
    let items: Vec<String> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(['|', ';', ',']).map(str::to_string).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or("must hold strings only")
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err("must be a list of strings or a string separated by | ; or ,".into())
        }
    };
    let items: Vec<String> = items
        .into_iter()
        .map(|s| {
            if lower {
                s.trim().to_lowercase()
            } else {
                s.trim().to_string()
            }
        })
        .filter(|s| !s.is_empty())
        .collect();
    if items.len() > 32 || items.iter().any(|s| s.len() > 64) {
        return Err("at most 32 values of at most 64 bytes each".into());
    }
    Ok(items)
}

/// A number field (JSON number, or a string holding one).
fn number(value: Option<&Value>) -> Result<Option<f64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| format!("'{s}' is not a number")),
        Some(other) => Err(format!("{other} is not a number")),
    }
}

/// A text field of at most `max` bytes.
fn text(value: Option<&Value>, max: usize) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.trim().to_string())),
        Some(Value::String(_)) => Err(format!("is longer than {max} bytes")),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!("{other} is not text")),
    }
}

/// Checks one product and returns its stored form (the `json_each` insert's input).
fn check(index: usize, raw: &Value, today: &str, problems: &mut Vec<Problem>) -> Option<Value> {
    let Some(obj) = raw.as_object() else {
        problems.push(Problem {
            index,
            field: "product",
            message: "must be an object".into(),
        });
        return None;
    };
    let before = problems.len();
    let mut fail = |field: &'static str, message: String| {
        problems.push(Problem {
            index,
            field,
            message,
        })
    };
    let get = |name: &str| obj.get(name);
    let id = match text(get("id"), 64) {
        Ok(Some(id))
            if id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            id
        }
        Ok(Some(id)) => {
            fail(
                "id",
                format!("'{id}' may hold only letters, digits, '-', '_' and '.'"),
            );
            String::new()
        }
        Ok(None) => {
            fail("id", "is required".into());
            String::new()
        }
        Err(e) => {
            fail("id", e);
            String::new()
        }
    };
    let mut required = |field: &'static str, max: usize| match text(get(field), max) {
        Ok(Some(v)) => v,
        Ok(None) => {
            fail(field, "is required".into());
            String::new()
        }
        Err(e) => {
            fail(field, e);
            String::new()
        }
    };
    let title = required("title", 300);
    let category = required("category", 64).to_lowercase();
    let mut optional = |field: &'static str, max: usize| {
        text(get(field), max).unwrap_or_else(|e| {
            problems.push(Problem {
                index,
                field,
                message: e,
            });
            None
        })
    };
    let description = optional("description", 5000).unwrap_or_default();
    let item_type = optional("item_type", 64);
    let brand = optional("brand", 128).unwrap_or_default();
    let material = optional("material", 64).unwrap_or_default().to_lowercase();
    let image = optional("image", 2000);
    let created_at = optional("created_at", 32).unwrap_or_else(|| today.to_string());
    let currency = optional("currency", 3)
        .unwrap_or_else(|| "EUR".into())
        .to_uppercase();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        problems.push(Problem {
            index,
            field: "currency",
            message: format!("'{currency}' is not a 3-letter code"),
        });
    }
    let mut listed = |field: &'static str, lower: bool| {
        list(get(field), lower).unwrap_or_else(|e| {
            problems.push(Problem {
                index,
                field,
                message: e,
            });
            Vec::new()
        })
    };
    let colours = listed("colours", true);
    let style_tags = listed("style_tags", true);
    let sizes = listed("sizes", false);
    let mut numeric =
        |field: &'static str, range: std::ops::RangeInclusive<f64>, whole: bool| match number(get(
            field,
        )) {
            Ok(Some(v)) if range.contains(&v) && (!whole || v.fract() == 0.0) => Some(v),
            Ok(Some(v)) => {
                let kind = if whole { "a whole number" } else { "a number" };
                problems.push(Problem {
                    index,
                    field,
                    message: format!(
                        "{v} is not {kind} from {} to {}",
                        range.start(),
                        range.end()
                    ),
                });
                None
            }
            Ok(None) => None,
            Err(e) => {
                problems.push(Problem {
                    index,
                    field,
                    message: e,
                });
                None
            }
        };
    let price = numeric("price", 0.0..=10_000_000.0, false);
    let rating = numeric("rating", 0.0..=5.0, false).unwrap_or(0.0);
    let reviews = numeric("review_count", 0.0..=1e12, true).unwrap_or(0.0);
    let stock = numeric("stock", 0.0..=1e12, true).unwrap_or(1.0);
    if price.is_none() && !problems[before..].iter().any(|p| p.field == "price") {
        problems.push(Problem {
            index,
            field: "price",
            message: "is required".into(),
        });
    }
    let known = [
        "id",
        "title",
        "category",
        "description",
        "item_type",
        "brand",
        "material",
        "image",
        "created_at",
        "currency",
        "colours",
        "style_tags",
        "sizes",
        "price",
        "rating",
        "review_count",
        "stock",
        "attributes",
    ];
    let mut attributes: Map<String, Value> = match get("attributes") {
        Some(Value::Object(a)) => a.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            problems.push(Problem {
                index,
                field: "attributes",
                message: "must be an object".into(),
            });
            Map::new()
        }
    };
    for (key, value) in obj.iter().filter(|(k, _)| !known.contains(&k.as_str())) {
        attributes.insert(key.clone(), value.clone());
    }
    if problems.len() > before {
        return None;
    }
    Some(json!({
        "id": id,
        "title": title,
        "description": description,
        "category": category,
        "item_type": item_type.unwrap_or_else(|| category.clone()),
        "brand": brand,
        "price_cents": (price.unwrap_or(0.0) * 100.0).round() as i64,
        "currency": currency,
        "colours": colours,
        "style_tags": style_tags,
        "material": material,
        "sizes": sizes,
        "image": image.unwrap_or_else(|| format!("/images/products/{id}")),
        "rating": rating,
        "review_count": reviews as i64,
        "stock": stock as i64,
        "created_at": created_at,
        "attributes": Value::Object(attributes),
    }))
}

/// Checks a batch: every product's stored form, or every problem found.
pub fn check_batch(products: &[Value], today: &str) -> Result<Vec<Value>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut rows = Vec::with_capacity(products.len());
    let mut ids = std::collections::HashSet::new();
    for (index, raw) in products.iter().enumerate() {
        if let Some(id) = raw.get("id").and_then(Value::as_str).map(str::trim) {
            if !id.is_empty() && !ids.insert(id.to_string()) {
                problems.push(Problem {
                    index,
                    field: "id",
                    message: format!("'{id}' appears twice in the batch"),
                });
            }
        }
        if let Some(row) = check(index, raw, today, &mut problems) {
            rows.push(row);
        }
    }
    match problems.is_empty() {
        true => Ok(rows),
        false => Err(problems),
    }
}

/// Upserts checked products with `generation`, in one transaction.
pub fn upsert(db: &Connection, rows: &[Value], generation: i64) -> Result<(), Error> {
    let rows_json = [Sql::Text(Value::Array(rows.to_vec()).to_string())];
    let ids = "(SELECT p.rowid FROM products p, json_each(?) j WHERE p.id = j.value->>'id')";
    vitrine_guest::sqlite::transaction(db, || {
        for table in ["product_colours", "product_styles"] {
            db.execute(
                &format!("DELETE FROM {table} WHERE product IN {ids}"),
                &rows_json,
            )?;
        }
        for table in ["product_search", "product_embeddings"] {
            let key = if table == "product_search" {
                "rowid"
            } else {
                "product"
            };
            db.execute(
                &format!("DELETE FROM {table} WHERE {key} IN {ids}"),
                &rows_json,
            )?;
        }
        db.execute(
            "INSERT INTO products (id, title, description, category, item_type, brand, price_cents,
                currency, colours, style_tags, material, sizes, image, rating, review_count, stock,
                created_at, attributes, generation)
             SELECT j.value->>'id', j.value->>'title', j.value->>'description', j.value->>'category',
                j.value->>'item_type', j.value->>'brand', j.value->>'price_cents', j.value->>'currency',
                j.value->'colours', j.value->'style_tags', j.value->>'material', j.value->'sizes',
                j.value->>'image', j.value->>'rating', j.value->>'review_count', j.value->>'stock',
                j.value->>'created_at', j.value->'attributes', ?
             FROM json_each(?) AS j WHERE true
             ON CONFLICT (id) DO UPDATE SET title = excluded.title, description = excluded.description,
                category = excluded.category, item_type = excluded.item_type, brand = excluded.brand,
                price_cents = excluded.price_cents, currency = excluded.currency,
                colours = excluded.colours, style_tags = excluded.style_tags,
                material = excluded.material, sizes = excluded.sizes, image = excluded.image,
                rating = excluded.rating, review_count = excluded.review_count,
                stock = excluded.stock, created_at = excluded.created_at,
                attributes = excluded.attributes, generation = excluded.generation",
            &[Sql::Integer(generation), rows_json[0].clone()],
        )?;
        db.execute(
            &format!("INSERT INTO product_colours (product, colour)
                      SELECT p.rowid, c.value FROM products p, json_each(p.colours) c WHERE p.rowid IN {ids}"),
            &rows_json,
        )?;
        db.execute(
            &format!("INSERT INTO product_styles (product, style)
                      SELECT p.rowid, s.value FROM products p, json_each(p.style_tags) s WHERE p.rowid IN {ids}"),
            &rows_json,
        )?;
        db.execute(
            &format!(
                "INSERT INTO product_search (rowid, title, description, brand, category, tags)
                      SELECT rowid, {} FROM products p WHERE p.rowid IN {ids}",
                vitrine_catalog::SEARCH_COLUMNS
            ),
            &rows_json,
        )?;
        Ok(())
    })
}

/// Deletes the products of generations before `generation` with their rows elsewhere; returns
/// how many.
pub fn delete_before(db: &Connection, generation: i64) -> Result<i64, Error> {
    let old = "(SELECT rowid FROM products WHERE generation < ?)";
    let g = [Sql::Integer(generation)];
    vitrine_guest::sqlite::transaction(db, || {
        for (table, key) in [
            ("product_colours", "product"),
            ("product_styles", "product"),
            ("product_embeddings", "product"),
            ("product_search", "rowid"),
        ] {
            db.execute(&format!("DELETE FROM {table} WHERE {key} IN {old}"), &g)?;
        }
        db.execute("DELETE FROM products WHERE generation < ?", &g)?;
        let n = db.execute("SELECT changes()", &[])?;
        Ok(n.rows.first().and_then(|r| r.get::<i64>(0)).unwrap_or(0))
    })
}

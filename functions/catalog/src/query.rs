//! Parsing and checking the search parameters of `GET /api/products`.

/// A rejected query; the message names the parameter.
#[derive(Debug, PartialEq)]
pub struct QueryError(pub String);

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Full-text rank when `q` is given, else catalogue order.
    Relevance,
    /// Cheapest first.
    PriceAsc,
    /// Dearest first.
    PriceDesc,
    /// Best rated first.
    Rating,
    /// Newest first.
    Newest,
}

/// A validated product search.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuery {
    /// Any of these categories.
    pub categories: Vec<String>,
    /// Any of these colours.
    pub colours: Vec<String>,
    /// Any of these style tags.
    pub styles: Vec<String>,
    /// Any of these brands (case-insensitive).
    pub brands: Vec<String>,
    /// Lowest price in cents.
    pub min_price_cents: Option<i64>,
    /// Highest price in cents.
    pub max_price_cents: Option<i64>,
    /// Full-text words, all required (prefix match).
    pub words: Vec<String>,
    /// `q` as given, for a semantic search.
    pub text: String,
    /// Rank by meaning: the closest product embeddings to `q`'s (`semantic=true`).
    pub semantic: bool,
    /// Result order.
    pub sort: Sort,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// Largest page.
pub const MAX_LIMIT: i64 = 100;
/// Longest `q`, in characters: full-text cost grows with every prefix term.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most words in `q`.
pub const MAX_WORDS: usize = 12;
/// Most values in one list filter (`category`, `colour`, `style`, `brand`).
pub const MAX_LIST_VALUES: usize = 32;

fn decode(text: &str) -> Result<String, QueryError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| QueryError(format!("bad percent-encoding in `{text}`")))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| QueryError(format!("`{text}` is not UTF-8")))
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|v| v.trim().to_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

fn price(name: &str, value: &str) -> Result<i64, QueryError> {
    match value.trim().parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok((p * 100.0).round() as i64),
        _ => Err(QueryError(format!(
            "`{name}` must be a non-negative number, got `{value}`"
        ))),
    }
}

fn integer(name: &str, value: &str, min: i64, max: i64) -> Result<i64, QueryError> {
    match value.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(QueryError(format!(
            "`{name}` must be an integer from {min} to {max}, got `{value}`"
        ))),
    }
}

impl ProductQuery {
    /// Parses a URL query string.
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let mut q = ProductQuery {
            categories: Vec::new(),
            colours: Vec::new(),
            styles: Vec::new(),
            brands: Vec::new(),
            min_price_cents: None,
            max_price_cents: None,
            words: Vec::new(),
            text: String::new(),
            semantic: false,
            sort: Sort::Relevance,
            limit: 20,
            offset: 0,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            let value = decode(raw)?;
            match key.as_str() {
                "category" => q.categories.extend(list(&value)),
                "colour" | "color" => q.colours.extend(list(&value)),
                "style" | "style_tag" => q.styles.extend(list(&value)),
                "brand" => q.brands.extend(list(&value)),
                "min_price" => q.min_price_cents = Some(price(&key, &value)?),
                "max_price" => q.max_price_cents = Some(price(&key, &value)?),
                "q" => {
                    if value.chars().count() > MAX_QUERY_CHARS {
                        return Err(QueryError(format!(
                            "`q` is longer than {MAX_QUERY_CHARS} characters"
                        )));
                    }
                    q.text = match q.text.is_empty() {
                        true => value.trim().to_string(),
                        false => format!("{} {}", q.text, value.trim()),
                    };
                    q.words.extend(
                        value
                            .split(|c: char| !c.is_alphanumeric())
                            .filter(|w| !w.is_empty())
                            .map(str::to_lowercase),
                    );
                    if q.words.len() > MAX_WORDS {
                        return Err(QueryError(format!("`q` has more than {MAX_WORDS} words")));
                    }
                }
                "sort" => {
                    q.sort = match value.as_str() {
                        "relevance" => Sort::Relevance,
                        "price_asc" => Sort::PriceAsc,
                        "price_desc" => Sort::PriceDesc,
                        "rating" => Sort::Rating,
                        "newest" => Sort::Newest,
                        other => {
                            return Err(QueryError(format!(
                                "`sort` must be relevance, price_asc, price_desc, rating or newest, got `{other}`"
                            )))
                        }
                    }
                }
                "semantic" => {
                    q.semantic = match value.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        other => {
                            return Err(QueryError(format!(
                                "`semantic` must be true or false, got `{other}`"
                            )))
                        }
                    }
                }
                "limit" => q.limit = integer(&key, &value, 1, MAX_LIMIT)?,
                "offset" => q.offset = integer(&key, &value, 0, i64::from(i32::MAX))?,
                other => {
                    return Err(QueryError(format!(
                        "unknown parameter `{other}`; use category, colour, style, brand, min_price, max_price, q, semantic, sort, limit, offset"
                    )))
                }
            }
        }
        for (name, values) in [
            ("category", &q.categories),
            ("colour", &q.colours),
            ("style", &q.styles),
            ("brand", &q.brands),
        ] {
            if values.len() > MAX_LIST_VALUES {
                return Err(QueryError(format!(
                    "`{name}` has more than {MAX_LIST_VALUES} values"
                )));
            }
        }
        if q.semantic && q.text.is_empty() {
            return Err(QueryError(
                "`semantic=true` needs `q`, the text to rank by meaning".into(),
            ));
        }
        if q.semantic && q.sort != Sort::Relevance {
            return Err(QueryError(
                "`semantic=true` ranks by meaning; it takes no other `sort`".into(),
            ));
        }
        if let (Some(min), Some(max)) = (q.min_price_cents, q.max_price_cents) {
            if min > max {
                return Err(QueryError("`min_price` is greater than `max_price`".into()));
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters() {
        let q = ProductQuery::parse("category=Dresses,skirts&color=red&min_price=10.5&q=linen%20midi&limit=3&sort=price_asc").unwrap();
        assert_eq!(q.categories, ["dresses", "skirts"]);
        assert_eq!(q.colours, ["red"]);
        assert_eq!(q.min_price_cents, Some(1050));
        assert_eq!(q.words, ["linen", "midi"]);
        assert_eq!((q.limit, q.sort), (3, Sort::PriceAsc));
        assert!(!q.semantic);
        let q = ProductQuery::parse("q=something+for+a+summer+wedding&semantic=true").unwrap();
        assert_eq!(q.text, "something for a summer wedding");
        assert!(q.semantic);
    }

    #[test]
    fn rejects_bad_parameters_by_name() {
        for (query, name) in [
            ("limit=0", "limit"),
            ("limit=x", "limit"),
            ("min_price=-1", "min_price"),
            ("sort=best", "sort"),
            ("colr=red", "colr"),
            ("min_price=5&max_price=1", "min_price"),
            (format!("q={}", "ab ".repeat(13)).as_str(), "words"),
            (format!("q={}", "a".repeat(201)).as_str(), "200 characters"),
            (format!("q=a&q={}", "b ".repeat(12)).as_str(), "words"),
            (format!("brand={}", "x,".repeat(33)).as_str(), "brand"),
            ("semantic=true", "needs `q`"),
            ("semantic=yes&q=a", "semantic"),
            ("semantic=true&q=a&sort=rating", "sort"),
        ] {
            let QueryError(message) = ProductQuery::parse(query).unwrap_err();
            assert!(message.contains(name), "{query}: {message}");
        }
    }
}

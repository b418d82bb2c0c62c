//! The catalog function end to end: seeded on first use, filters, pagination, lookups and
//! clear errors.

use std::collections::HashSet;

use serde_json::{json, Value};
use vitrine_tests::{get_json, manifest, TestApp};

/// The probe component, reading and writing the `default` database as a test needs.
const PROBE: &str = "[[trigger.http]]\nroute = \"/probe/...\"\ncomponent = \"probe\"\n\
                     [component.probe]\nsource = \"PROBE\"\nsqlite_databases = [\"default\"]\n";

const CATALOG: &str = r#"
[[trigger.http]]
route = "/api/products/..."
component = "catalog"
[component.catalog]
source = "CATALOG"
sqlite_databases = ["default"]
"#;

#[tokio::test]
async fn catalogue_search_and_lookup() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(CATALOG)).await?;
    let api = format!("{}/api/products", app.url);

    let (status, all) = get_json(&api).await?;
    assert_eq!(status, 200, "{all}");
    let total = all["total"].as_i64().unwrap();
    assert!(total >= 5000, "only {total} products");
    assert_eq!(all["items"].as_array().unwrap().len(), 20);

    // Filters combine, and every returned item satisfies them.
    let (_, page) = get_json(&format!(
        "{api}?category=dresses&colour=black&min_price=50&max_price=150&limit=100"
    ))
    .await?;
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty());
    for item in items {
        assert_eq!(item["category"], "dresses");
        assert!(
            item["colours"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "black"),
            "{item}"
        );
        let price = item["price"].as_f64().unwrap();
        assert!((50.0..=150.0).contains(&price), "{item}");
    }
    assert!(page["total"].as_i64().unwrap() < total);

    let (_, styled) = get_json(&format!(
        "{api}?style=bohemian&brand=maison%20lune&limit=100"
    ))
    .await?;
    for item in styled["items"].as_array().unwrap() {
        assert!(item["style_tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "bohemian"));
        assert_eq!(item["brand"], "Maison Lune");
    }

    // Full-text search.
    let (_, linen) = get_json(&format!("{api}?q=linen%20dress&limit=10")).await?;
    assert!(linen["total"].as_i64().unwrap() > 0);
    for item in linen["items"].as_array().unwrap() {
        let text = format!("{} {}", item["title"], item["description"]).to_lowercase();
        assert!(text.contains("linen") && text.contains("dress"), "{item}");
    }

    // Sorting and pagination: pages do not overlap and follow the order.
    let (_, first) = get_json(&format!("{api}?category=shoes&sort=price_asc&limit=25")).await?;
    let (_, second) = get_json(&format!(
        "{api}?category=shoes&sort=price_asc&limit=25&offset=25"
    ))
    .await?;
    assert_eq!(first["next_offset"], 25);
    let prices: Vec<f64> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|i| i["price"].as_f64().unwrap())
        .collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    let ids: HashSet<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 50);

    // One product by id, and clear errors.
    let some_id = first["items"][0]["id"].as_str().unwrap().to_string();
    let (status, product) = get_json(&format!("{api}/{some_id}")).await?;
    assert_eq!(
        (status, product["id"].as_str()),
        (200, Some(some_id.as_str()))
    );
    assert_eq!(product["image"], format!("/images/products/{some_id}"));
    let (status, body) = get_json(&format!("{api}/p-99999")).await?;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("p-99999"));
    // A thousand search words would keep the full-text query busy far past the deadline.
    let many_words = format!("q={}", "shirt+".repeat(1000));
    for (query, name) in [
        ("limit=1000", "limit"),
        ("min_price=abc", "min_price"),
        ("sort=cheap", "sort"),
        ("colour=red&size=m", "size"),
        (many_words.as_str(), "`q`"),
    ] {
        let (status, body) = get_json(&format!("{api}?{query}")).await?;
        assert_eq!(status, 400, "{query}");
        assert!(
            body["error"].as_str().unwrap().contains(name),
            "{query}: {body}"
        );
    }
    let post = reqwest::Client::new().post(&api).send().await?;
    assert_eq!(post.status(), 405);

    // The total is the number of matches wherever the page falls: walking every page finds
    // exactly that many distinct items, and an offset past the end still reports it.
    for filter in [
        "category=shoes&colour=black",
        "q=linen&sort=price_desc",
        "style=minimalist&max_price=60",
    ] {
        let mut seen = HashSet::new();
        let mut offset = Some(0);
        let mut totals = HashSet::new();
        while let Some(at) = offset {
            let (status, page) = get_json(&format!("{api}?{filter}&limit=37&offset={at}")).await?;
            assert_eq!(status, 200, "{page}");
            totals.insert(page["total"].as_i64().unwrap());
            for item in page["items"].as_array().unwrap() {
                assert!(seen.insert(item["id"].as_str().unwrap().to_string()));
            }
            offset = page["next_offset"].as_i64();
        }
        assert_eq!(totals.len(), 1, "{filter}: {totals:?}");
        let total = *totals.iter().next().unwrap();
        assert!(total > 0, "{filter}");
        assert_eq!(seen.len() as i64, total, "{filter}");
        let (_, past) = get_json(&format!("{api}?{filter}&offset={}", total + 5)).await?;
        assert_eq!(past["total"], total, "{filter}: {past}");
        assert_eq!(past["items"], json!([]));
        assert_eq!(past["next_offset"], Value::Null);
    }
    let (_, none) = get_json(&format!("{api}?q=zzzzqqq")).await?;
    assert_eq!((&none["total"], &none["items"]), (&json!(0), &json!([])));
    Ok(())
}

#[tokio::test]
async fn concurrent_first_requests_seed_once() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(CATALOG)).await?;
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let url = format!("{}/api/products?limit=1", app.url);
            tokio::spawn(async move { get_json(&url).await })
        })
        .collect();
    let mut totals = HashSet::new();
    for request in requests {
        let (status, body) = request.await??;
        assert_eq!(status, 200, "{body}");
        totals.insert(body["total"].as_i64().unwrap());
    }
    assert_eq!(
        totals.len(),
        1,
        "every request sees the same, fully seeded catalogue"
    );
    Ok(())
}

/// Semantic search: product embeddings computed through the worker pool, then a query ranked
/// by meaning. Only some categories are embedded, to keep the test short; the answer says so.
#[tokio::test]
async fn semantic_search_ranks_by_meaning() -> anyhow::Result<()> {
    use vitrine_runtime::nn_pool::{PoolOptions, WorkerPool};
    let worker = vitrine_tests::TestWorker::start(&vitrine_tests::text_embed_models()).await?;
    let text = "[[trigger.http]]\nroute = \"/api/products/...\"\ncomponent = \"catalog\"\n\
                [[trigger.http]]\nroute = \"/api/catalog/...\"\ncomponent = \"catalog\"\n\
                [component.catalog]\nsource = \"CATALOG\"\nsqlite_databases = [\"default\"]\n\
                ai_models = [\"text-embed\"]\n";
    let pool = std::sync::Arc::new(WorkerPool::new(
        std::slice::from_ref(&worker.url),
        PoolOptions::default(),
    )?);
    let app = TestApp::start_with(&manifest(text), |c| c.nn_pool = Some(pool)).await?;
    let client = reqwest::Client::new();
    let embeddings = format!("{}/api/catalog/embeddings", app.url);
    let (status, coverage) = get_json(&embeddings).await?;
    assert_eq!(
        (status, &coverage["embedded"]),
        (200, &json!(0)),
        "{coverage}"
    );

    // Dresses, coats and knitwear, batch by batch, as `vitrine up` does for all.
    let mut rounds = 0;
    loop {
        let answer: Value = client
            .post(format!("{embeddings}?category=dresses,coats,knitwear"))
            .send()
            .await?
            .json()
            .await?;
        rounds += 1;
        assert!(answer["embedded_now"].as_u64().unwrap() <= 64, "{answer}");
        if answer["embedded_now"] == 0 {
            break;
        }
        assert!(rounds < 200, "{answer}");
    }
    let (_, coverage) = get_json(&embeddings).await?;
    let embedded = coverage["embedded"].as_i64().unwrap();
    let (_, dresses) = get_json(&format!(
        "{}/api/products?category=dresses,coats,knitwear&limit=1",
        app.url
    ))
    .await?;
    assert_eq!(embedded, dresses["total"].as_i64().unwrap(), "{coverage}");

    // No description holds "wedding": full text finds nothing, meaning finds light dresses.
    let (_, words) = get_json(&format!("{}/api/products?q=summer+wedding", app.url)).await?;
    assert_eq!(words["total"], 0, "{words}");
    let search = |q: &str| format!("{}/api/products?q={q}&semantic=true&limit=10", app.url);
    let (status, wedding) = get_json(&search("something+for+a+summer+wedding")).await?;
    assert_eq!(status, 200, "{wedding}");
    assert_eq!(wedding["semantic"]["embedded"], embedded);
    assert_eq!(wedding["semantic"]["products"], 6000);
    let items = wedding["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    let light = [
        "linen",
        "silk",
        "satin",
        "chiffon",
        "cotton poplin",
        "crepe",
    ];
    for item in items {
        assert_eq!(item["category"], "dresses", "{item}");
        assert!(
            light.contains(&item["material"].as_str().unwrap()),
            "{item}"
        );
    }
    let scores: Vec<f64> = items.iter().map(|i| i["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    // Another need, other products; filters still apply.
    let (_, warm) = get_json(&search("a+warm+layer+for+a+snowy+day")).await?;
    let warm_ones = warm["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["category"] != "dresses")
        .count();
    assert!(warm_ones >= 8, "{warm}");
    let (_, cheap) = get_json(&format!(
        "{}&max_price=40",
        search("something+for+a+summer+wedding")
    ))
    .await?;
    assert!(
        cheap["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["price"].as_f64().unwrap() <= 40.0),
        "{cheap}"
    );

    // Bad requests name the problem.
    for query in [
        "semantic=true",
        "q=a&semantic=maybe",
        "q=a&semantic=true&sort=rating",
    ] {
        let (status, body) = get_json(&format!("{}/api/products?{query}", app.url)).await?;
        assert_eq!(status, 400, "{query}: {body}");
    }
    let bad = client
        .post(format!("{embeddings}?batch=500"))
        .send()
        .await?;
    assert_eq!(bad.status(), 400);
    Ok(())
}

/// A catalogue holding a shop's imported products is never rebuilt with the demo catalogue:
/// at another schema version it is refused (503, saying why) and left as it is.
#[tokio::test]
async fn imported_products_are_never_dropped_for_a_rebuild() -> anyhow::Result<()> {
    let app = TestApp::start(&vitrine_tests::shop_manifest(PROBE)).await?;
    let client = reqwest::Client::new();
    let imported = client
        .put(format!("{}/api/catalog/products", app.url))
        .bearer_auth(vitrine_tests::ADMIN_TOKEN)
        .json(&json!({ "products": [{"id": "own-1", "title": "Our Linen Shirt", "price": 80, "category": "shirts"}], "generation": 7 }))
        .send()
        .await?;
    assert_eq!(imported.status(), 200);
    // As if this build had a newer schema than the database.
    let sql = format!("{}/probe/sqlite/default", app.url);
    let (status, body) = vitrine_tests::post_json(
        &sql,
        &json!({ "sql": "UPDATE catalog_meta SET value = '2' WHERE key = 'schema_version'", "params": [] }),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_json(&format!("{}/api/products", app.url)).await?;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("needs a migration"),
        "{body}"
    );
    let (_, rows) = vitrine_tests::post_json(
        &sql,
        &json!({ "sql": "SELECT count(*), sum(id = 'own-1') FROM products", "params": [] }),
    )
    .await?;
    assert_eq!(rows["rows"][0], json!([6001, 1]), "nothing dropped: {rows}");
    Ok(())
}

/// A catalogue at the previous schema version (3, before the catalogue revision) is migrated
/// in place: imported products kept, the revision added and bumped by later writes.
#[tokio::test]
async fn the_previous_schema_is_migrated_in_place() -> anyhow::Result<()> {
    let app = TestApp::start(&vitrine_tests::shop_manifest(PROBE)).await?;
    let client = reqwest::Client::new();
    let import = |title: &str| {
        client
            .put(format!("{}/api/catalog/products", app.url))
            .bearer_auth(vitrine_tests::ADMIN_TOKEN)
            .json(&json!({ "products": [{"id": "own-1", "title": title, "price": 80, "category": "shirts"}], "generation": 7 }))
            .send()
    };
    assert_eq!(import("Our Linen Shirt").await?.status(), 200);
    let sql = format!("{}/probe/sqlite/default", app.url);
    let query = |statement: &str| {
        let (sql, body) = (sql.clone(), json!({ "sql": statement, "params": [] }));
        async move { vitrine_tests::post_json(&sql, &body).await }
    };
    // Back to version 3 as it was: no revision, no triggers, no index by category alone.
    for statement in [
        "DELETE FROM catalog_meta WHERE key = 'revision'",
        "DROP INDEX products_category",
        "UPDATE catalog_meta SET value = '3' WHERE key = 'schema_version'",
    ] {
        let (status, body) = query(statement).await?;
        assert_eq!(status, 200, "{body}");
    }
    let (_, triggers) = query("SELECT name FROM sqlite_master WHERE type = 'trigger'").await?;
    for trigger in triggers["rows"].as_array().unwrap() {
        let (status, body) =
            query(&format!("DROP TRIGGER {}", trigger[0].as_str().unwrap())).await?;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = get_json(&format!("{}/api/products/own-1", app.url)).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["title"], "Our Linen Shirt");
    let state = "SELECT (SELECT value FROM catalog_meta WHERE key = 'schema_version'),
                        (SELECT CAST(value AS INTEGER) FROM catalog_meta WHERE key = 'revision'),
                        (SELECT count(*) FROM products),
                        (SELECT count(*) FROM sqlite_master WHERE name = 'products_category')";
    let (_, rows) = query(state).await?;
    let row = &rows["rows"][0];
    assert_eq!(
        (&row[0], &row[2], &row[3]),
        (&json!("4"), &json!(6001), &json!(1)),
        "{rows}"
    );
    let before = row[1].as_i64().expect("a revision");
    assert_eq!(import("Our Linen Shirt, Washed").await?.status(), 200);
    let (_, rows) = query(state).await?;
    assert!(rows["rows"][0][1].as_i64().unwrap() > before, "{rows}");
    Ok(())
}

//! Lookbooks end to end: complete, valid, deterministic looks from the demo catalogue; the
//! budget and the parameters checked; events that move a consenting shopper's looks; product
//! pictures with caching; and the page in headless Chromium.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use vitrine_tests::{get_json, post_json, TestApp};

fn app_manifest() -> String {
    vitrine_tests::shop_manifest("")
}

fn looks(lookbook: &Value) -> &Vec<Value> {
    lookbook["looks"].as_array().expect("looks")
}

fn product_ids(look: &Value) -> Vec<String> {
    look["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn looks_are_complete_valid_and_stable() -> anyhow::Result<()> {
    let app = TestApp::start(&app_manifest()).await?;
    let url = |q: &str| format!("{}/api/lookbooks?{q}", app.url);
    let (status, book) = get_json(&url("occasion=weekend&season=autumn&looks=5")).await?;
    assert_eq!(status, 200, "{book}");
    assert_eq!(looks(&book).len(), 5, "{book}");
    assert_eq!(book["personalized"], false);
    let mut seen = BTreeSet::new();
    for look in looks(&book) {
        assert_eq!(look["rules_met"], true, "{look}");
        let items = look["items"].as_array().unwrap();
        let slots: Vec<&str> = items.iter().map(|i| i["slot"].as_str().unwrap()).collect();
        assert!(
            slots == ["top", "bottom", "shoes", "accessory"]
                || slots == ["dress", "shoes", "bag or outerwear"],
            "{slots:?}"
        );
        let total: f64 = items.iter().map(|i| i["price"].as_f64().unwrap()).sum();
        assert!(
            (total - look["total"].as_f64().unwrap()).abs() < 0.005,
            "{look}"
        );
        for item in items {
            assert!(
                seen.insert(item["id"].to_string()),
                "{} in two looks",
                item["id"]
            );
            // Every piece exists in the catalogue, in stock, with the look's style or a
            // companion of it.
            let (status, product) =
                get_json(&format!("{}{}", app.url, item["url"].as_str().unwrap())).await?;
            assert_eq!(status, 200);
            assert!(product["stock"].as_i64().unwrap() > 0, "{product}");
        }
        let title = look["title"].as_str().unwrap();
        assert!(title.contains("weekend"), "{title}");
        let description = look["description"].as_str().unwrap();
        assert_eq!(
            description.matches(". ").count() + 1,
            2,
            "two sentences: {description}"
        );
        assert!(look["id"].as_str().unwrap().starts_with("lk-"));
        assert!(!look["why"].as_array().unwrap().is_empty());
    }
    // Same inputs, same lookbook.
    let (_, again) = get_json(&url("occasion=weekend&season=autumn&looks=5")).await?;
    assert_eq!(again["looks"], book["looks"]);
    // A change to the catalogue is seen at once (not a minute later, from cached answers or
    // candidates): the first piece sold out, it leaves the looks.
    let first = &looks(&book)[0]["items"][0];
    let sold_out = json!({ "products": [{
        "id": first["id"], "title": first["title"], "price": first["price"],
        "category": first["category"], "stock": 0 }] });
    let put = reqwest::Client::new()
        .put(format!("{}/api/catalog/products", app.url))
        .bearer_auth(vitrine_tests::ADMIN_TOKEN)
        .json(&sold_out)
        .send()
        .await?;
    assert_eq!(put.status(), 200);
    let (_, after) = get_json(&url("occasion=weekend&season=autumn&looks=5")).await?;
    let id = first["id"].as_str().unwrap().to_string();
    assert!(
        looks(&after).iter().all(|l| !product_ids(l).contains(&id)),
        "{id} is sold out: {after}"
    );
    // Another occasion changes it.
    let (_, evening) = get_json(&url("occasion=evening&season=autumn&looks=5")).await?;
    assert_ne!(evening["looks"], book["looks"]);

    // A budget holds for every look; an impossible one says so.
    let (status, cheap) = get_json(&url("occasion=work&season=winter&budget=180")).await?;
    assert_eq!(status, 200, "{cheap}");
    assert!(!looks(&cheap).is_empty(), "{cheap}");
    for look in looks(&cheap) {
        assert!(look["total"].as_f64().unwrap() <= 180.0, "{look}");
    }
    let (status, none) = get_json(&url("budget=10")).await?;
    assert_eq!(status, 200);
    assert!(looks(&none).is_empty());
    assert!(
        none["note"]
            .as_str()
            .unwrap()
            .contains("budget of 10.00 EUR"),
        "{none}"
    );

    // Bad parameters: 400 naming them.
    for (query, named) in [
        ("occasion=gala", "occasion"),
        ("looks=13", "looks"),
        ("budget=-5", "budget"),
        ("season=monsoon", "season"),
        ("colour=red", "unknown parameter 'colour'"),
    ] {
        let (status, body) = get_json(&url(query)).await?;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(named),
            "{query}: {body}"
        );
    }
    let response = reqwest::Client::new().post(url("")).send().await?;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
    Ok(())
}

/// Calls a `/api/shoppers` endpoint with the admin token; the status.
async fn shopper(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<u16> {
    Ok(vitrine_tests::shopper_api(app, method, path, body, None)
        .await?
        .0)
}

/// Share of the looks' pieces that have `colour`, and share of looks in `style`.
fn shares(book: &Value, colour: &str, style: &str) -> (f64, f64) {
    let items: Vec<&Value> = looks(book)
        .iter()
        .flat_map(|l| l["items"].as_array().unwrap())
        .collect();
    let coloured = items
        .iter()
        .filter(|i| i["colours"].as_array().unwrap().iter().any(|c| c == colour))
        .count();
    let styled = looks(book).iter().filter(|l| l["style"] == style).count();
    (
        coloured as f64 / items.len() as f64,
        styled as f64 / looks(book).len() as f64,
    )
}

#[tokio::test]
async fn a_shoppers_events_move_their_looks() -> anyhow::Result<()> {
    let app = TestApp::start(&app_manifest()).await?;
    let query = "shopper=ann&occasion=weekend&season=autumn&looks=4";
    let (_, before) = get_json(&format!("{}/api/lookbooks?{query}", app.url)).await?;
    assert_eq!(before["personalized"], false);

    assert_eq!(
        shopper(
            &app,
            reqwest::Method::PUT,
            "ann/consent",
            Some(json!({ "personalization": true }))
        )
        .await?,
        200
    );
    let (_, page) = get_json(&format!(
        "{}/api/products?colour=black&style=minimalist&limit=12",
        app.url
    ))
    .await?;
    let picks: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(picks.len() >= 10);
    let mut events = Vec::new();
    for (i, product) in picks.iter().enumerate() {
        events.push(json!({ "id": format!("v{i}"), "type": "view", "shopper": "ann", "time": "2026-12-01T10:00:00Z", "product": product }));
        if i % 2 == 0 {
            events.push(json!({ "id": format!("p{i}"), "type": "purchase", "shopper": "ann", "time": "2026-12-01T10:05:00Z", "product": product, "context": { "size": "M" } }));
        }
    }
    let (status, body) = post_json(
        &format!("{}/api/events", app.url),
        &json!({ "events": events }),
    )
    .await?;
    assert_eq!(status, 200, "{body}");

    let (_, after) = get_json(&format!("{}/api/lookbooks?{query}", app.url)).await?;
    assert_eq!(after["personalized"], true, "{after}");
    assert_ne!(after["looks"], before["looks"]);
    let (black_before, minimal_before) = shares(&before, "black", "minimalist");
    let (black_after, minimal_after) = shares(&after, "black", "minimalist");
    // Dominated by them: most looks minimalist, black the leading colour, and more of both
    // than before.
    assert!(
        minimal_after > 0.5 && minimal_after > minimal_before,
        "{minimal_before} → {minimal_after}: {after}"
    );
    assert!(
        black_after >= 0.4 && black_after > black_before,
        "{black_before} → {black_after}: {after}"
    );
    let why = after["looks"][0]["why"].to_string();
    assert!(why.contains("style interest"), "{why}");
    // What she bought is not offered again.
    for look in looks(&after) {
        for id in product_ids(look) {
            let bought = picks.iter().step_by(2).any(|p| *p == id);
            assert!(!bought, "{id} was bought: {look}");
        }
    }

    // Her profile is kept between requests (with the closeness of what was shortlisted), under
    // the state of her events: another budget (no cached answer) gets what a fresh build gets,
    // and a new event makes it built again.
    let db = rusqlite::Connection::open(app.state_dir.path().join(".vitrine/sqlite/default.db"))?;
    let kept = |db: &rusqlite::Connection| -> rusqlite::Result<Vec<String>> {
        let mut keys = db.prepare("SELECT key FROM shopper_derived WHERE shopper = 'ann'")?;
        let keys = keys.query_map([], |r| r.get(0))?;
        keys.collect()
    };
    assert_eq!(kept(&db)?.len(), 1);
    // (Never-binding budgets: the looks are the same whatever the budget, and each request
    // misses the answer cache.)
    let (_, from_kept) =
        get_json(&format!("{}/api/lookbooks?{query}&budget=5000", app.url)).await?;
    db.execute("DELETE FROM shopper_derived WHERE shopper = 'ann'", [])?;
    let (_, rebuilt) = get_json(&format!("{}/api/lookbooks?{query}&budget=5001", app.url)).await?;
    let ids = |book: &Value| looks(book).iter().map(product_ids).collect::<Vec<_>>();
    assert_eq!(ids(&from_kept), ids(&rebuilt));
    assert_eq!(ids(&from_kept), ids(&after));
    let first_key = kept(&db)?;
    assert_eq!(first_key.len(), 1);
    let one_more = json!({ "id": "v-later", "type": "view", "shopper": "ann", "time": "2026-12-02T10:00:00Z", "product": picks[1] });
    let (status, body) = post_json(&format!("{}/api/events", app.url), &one_more).await?;
    assert_eq!(status, 200, "{body}");
    let (_, _) = get_json(&format!("{}/api/lookbooks?{query}&budget=4000", app.url)).await?;
    let second_key = kept(&db)?;
    assert_eq!(second_key.len(), 1);
    assert_ne!(first_key, second_key);

    // Popularity is kept as running totals at ingest; retried events must not count twice.
    // The live lookbook must equal the one summed from the stored events (`as_of`).
    let retry: Vec<Value> = events.iter().step_by(3).cloned().collect();
    let (status, body) = post_json(
        &format!("{}/api/events", app.url),
        &json!({ "events": retry }),
    )
    .await?;
    assert_eq!((status, &body["accepted"]), (200, &json!(0)), "{body}");
    // Popularity may be a minute old in cached answers and candidates; `no-cache` asks for now.
    let live: Value = reqwest::Client::new()
        .get(format!("{}/api/lookbooks?{query}", app.url))
        .header("cache-control", "no-cache")
        .send()
        .await?
        .json()
        .await?;
    let (_, summed) = get_json(&format!(
        "{}/api/lookbooks?{query}&as_of=2100-01-01T00:00:00Z",
        app.url
    ))
    .await?;
    assert_eq!(live["looks"], summed["looks"]);

    // Another shopper without consent is not personalized, and nobody's events leak into it.
    let (_, bob) = get_json(&format!(
        "{}/api/lookbooks?shopper=bob&occasion=weekend&season=autumn&looks=4",
        app.url
    ))
    .await?;
    assert_eq!(bob["personalized"], false);
    assert!(
        bob["looks"][0]["why"][0]
            .as_str()
            .unwrap()
            .contains("no consent"),
        "{bob}"
    );
    // Shoppers without consent share the answer for a context (cached once), each with
    // their own id.
    let (_, carol) = get_json(&format!(
        "{}/api/lookbooks?shopper=carol&occasion=weekend&season=autumn&looks=4",
        app.url
    ))
    .await?;
    assert_eq!(
        (&carol["shopper"], &bob["shopper"]),
        (&json!("carol"), &json!("bob"))
    );
    assert_eq!(carol["looks"], bob["looks"]);

    // Her answers are kept under her id (shared ones under none), and erased with her.
    let answers = |db: &rusqlite::Connection, who: &str| -> rusqlite::Result<i64> {
        db.query_row(
            "SELECT count(*) FROM lookbook_answers WHERE shopper IS ?",
            [(!who.is_empty()).then_some(who)],
            |r| r.get(0),
        )
    };
    assert!(
        answers(&db, "ann")? >= 3,
        "her answers are not kept under her id"
    );
    assert!(answers(&db, "")? >= 1);
    assert_eq!(answers(&db, "carol")?, 0);

    // Erasure takes the personalization away again.
    assert_eq!(
        shopper(&app, reqwest::Method::DELETE, "ann", None).await?,
        200
    );
    assert_eq!(
        answers(&db, "ann")?,
        0,
        "her cached answers outlived her erasure"
    );
    let (_, erased) = get_json(&format!("{}/api/lookbooks?{query}", app.url)).await?;
    assert_eq!(erased["personalized"], false);
    assert!(
        kept(&db)?.is_empty(),
        "her kept profile outlived her erasure"
    );
    Ok(())
}

#[tokio::test]
async fn product_pictures_are_drawn_kept_and_sized() -> anyhow::Result<()> {
    let app = TestApp::start(&app_manifest()).await?;
    let client = reqwest::Client::new();
    let url = format!("{}/images/products/p-00001", app.url);
    let response = client.get(&url).send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert!(response.headers()["cache-control"]
        .to_str()?
        .contains("max-age"));
    let etag = response.headers()["etag"].clone();
    let jpeg = response.bytes().await?;
    let picture = image::load_from_memory(&jpeg)?.to_rgb8();
    assert_eq!(picture.dimensions(), (400, 400));
    // A product on a plain background: a good part of the picture is neither the
    // background's colour nor one flat colour.
    let corner = picture.get_pixel(3, 3).0;
    let far = |p: &[u8; 3], q: [u8; 3]| {
        p.iter()
            .zip(q)
            .map(|(a, b)| a.abs_diff(b) as u32)
            .sum::<u32>()
            > 40
    };
    let product = picture.pixels().filter(|p| far(&p.0, corner)).count();
    assert!(product > 400 * 400 / 10, "{product} product pixels");
    let (_, listed) = get_json(&format!("{}/api/products/p-00001", app.url)).await?;
    assert_eq!(listed["image"], "/images/products/p-00001");

    // Made once, then kept.
    let db = rusqlite::Connection::open(app.state_dir.path().join(".vitrine/sqlite/default.db"))?;
    let kept = || -> rusqlite::Result<i64> {
        db.query_row(
            "SELECT count(*) FROM product_renders WHERE product = 'p-00001'",
            [],
            |r| r.get(0),
        )
    };
    assert_eq!(kept()?, 1);
    let again = client.get(&url).send().await?;
    assert_eq!(again.headers()["etag"], etag);
    assert_eq!(again.bytes().await?, jpeg);
    assert_eq!(kept()?, 1);
    let cached = client
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await?;
    assert_eq!(cached.status(), 304);

    let small = client.get(format!("{url}?w=64")).send().await?;
    assert_ne!(small.headers()["etag"], etag);
    let small = image::load_from_memory(&small.bytes().await?)?;
    assert_eq!((small.width(), small.height()), (64, 64));
    let png = client.get(format!("{url}?w=128&format=png")).send().await?;
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(image::load_from_memory(&png.bytes().await?)?.width(), 128);
    let svg = client.get(format!("{url}?format=svg")).send().await?;
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await?.contains("width=\"400\""));
    assert_eq!(kept()?, 3, "the SVG is not kept, each raster is");
    let other = client
        .get(format!("{}/images/products/p-00002", app.url))
        .send()
        .await?
        .bytes()
        .await?;
    assert_ne!(other, jpeg);

    for (path, status, says) in [
        ("/images/products/p-99999", 404, "no product `p-99999`"),
        (
            "/images/products/p-00001?w=0",
            400,
            "64, 128, 256, 400, 512, 800, 1024",
        ),
        ("/images/products/p-00001?w=big", 400, "not 'big'"),
        ("/images/products/p-00001?w=300", 400, "w must be one of"),
        ("/images/products/p-00001?format=gif", 400, "format must be"),
        (
            "/images/products/p-00001?h=10",
            400,
            "unknown parameter 'h'",
        ),
    ] {
        let response = client.get(format!("{}{path}", app.url)).send().await?;
        assert_eq!(response.status(), status, "{path}");
        let text = response.text().await?;
        assert!(text.contains(says), "{path}: {text}");
    }
    let head = client.head(&url).send().await?;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["etag"], etag);
    assert_eq!(head.headers()["content-type"], "image/jpeg");
    let post = client.post(&url).send().await?;
    assert_eq!(post.status(), 405);

    // The shop's own picture (transparent PNG, 300×200) replaces the drawing; thumbnails of
    // it keep its proportions and transparency.
    let mut own = image::RgbaImage::from_pixel(300, 200, image::Rgba([200, 30, 60, 255]));
    own.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
    let mut upload = Vec::new();
    image::DynamicImage::ImageRgba8(own).write_to(
        &mut std::io::Cursor::new(&mut upload),
        image::ImageFormat::Png,
    )?;
    let put = |body: Vec<u8>| {
        client
            .put(&url)
            .bearer_auth(vitrine_tests::ADMIN_TOKEN)
            .header("content-type", "image/png")
            .body(body)
            .send()
    };
    assert_eq!(put(upload.clone()).await?.status(), 200);
    assert_eq!(kept()?, 0, "renders of the drawing are dropped");
    let served = client.get(&url).send().await?;
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.bytes().await?, upload);
    let thumb = client.get(format!("{url}?w=128")).send().await?;
    assert_eq!(thumb.headers()["content-type"], "image/png");
    let thumb = image::load_from_memory(&thumb.bytes().await?)?.to_rgba8();
    assert_eq!(thumb.dimensions(), (128, 86));
    assert_eq!(thumb.get_pixel(64, 43).0, [200, 30, 60, 255]);
    let as_jpeg = client.get(format!("{url}?format=jpeg")).send().await?;
    assert_eq!(as_jpeg.headers()["content-type"], "image/jpeg");
    assert_eq!(
        image::load_from_memory(&as_jpeg.bytes().await?)?.width(),
        300
    );
    let no_svg = client.get(format!("{url}?format=svg")).send().await?;
    assert_eq!(no_svg.status(), 400);
    let broken = put(upload[..upload.len() / 2].to_vec()).await?;
    assert_eq!(broken.status(), 400);
    assert!(broken.text().await?.contains("does not decode"));
    let removed = client
        .delete(&url)
        .bearer_auth(vitrine_tests::ADMIN_TOKEN)
        .send()
        .await?;
    assert_eq!(removed.status(), 200);
    let back = client.get(&url).send().await?;
    assert_eq!(back.headers()["content-type"], "image/jpeg");
    assert_eq!(back.bytes().await?, jpeg, "the same drawing again");
    Ok(())
}

#[tokio::test]
async fn looks_get_hero_pictures_composed_by_the_worker() -> anyhow::Result<()> {
    use vitrine_runtime::nn_pool::{PoolOptions, WorkerPool};
    let models = tempfile::tempdir()?;
    vitrine_worker::models::look_render::install(models.path())?;
    let worker = vitrine_tests::TestWorker::start(models.path()).await?;
    let pool = std::sync::Arc::new(WorkerPool::new(
        std::slice::from_ref(&worker.url),
        PoolOptions::default(),
    )?);
    let app = TestApp::start_with(&app_manifest(), |c| c.nn_pool = Some(pool)).await?;
    let client = reqwest::Client::new();
    let (_, book) = get_json(&format!(
        "{}/api/lookbooks?occasion=weekend&season=summer&looks=2",
        app.url
    ))
    .await?;
    let look = &looks(&book)[0];
    let hero = look["hero_image"].as_str().expect("hero_image");
    let items: Vec<String> = product_ids(look)
        .iter()
        .map(|id| format!("item={id}"))
        .collect();
    assert_eq!(
        hero,
        format!(
            "/images/looks/{}?{}",
            look["id"].as_str().unwrap(),
            items.join("&")
        )
    );
    let url = format!("{}{hero}", app.url);
    let response = client.get(&url).send().await?;
    assert_eq!(response.status(), 200, "{}", response.text().await?);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let etag = response.headers()["etag"].clone();
    let jpeg = response.bytes().await?;
    let picture = image::load_from_memory(&jpeg)?.to_rgb8();
    assert_eq!(picture.dimensions(), (1024, 1024));
    // The pieces cover a good part of a pale background.
    let corner = picture.get_pixel(8, 8).0;
    assert!(corner.iter().all(|&c| c > 150), "{corner:?}");
    let far = |p: &[u8; 3]| {
        p.iter()
            .zip(corner)
            .map(|(a, b)| a.abs_diff(b) as u32)
            .sum::<u32>()
            > 60
    };
    let covered = picture.pixels().filter(|p| far(&p.0)).count();
    assert!(covered > 1024 * 1024 / 8, "{covered} pixels of pieces");

    // Kept under the look's id; the same bytes again, or 304.
    let db = rusqlite::Connection::open(app.state_dir.path().join(".vitrine/sqlite/default.db"))?;
    let kept: i64 = db.query_row(
        "SELECT count(*) FROM product_renders WHERE product = ?1 AND variant = 'look/jpeg'",
        [look["id"].as_str().unwrap()],
        |r| r.get(0),
    )?;
    assert_eq!(kept, 1);
    assert_eq!(client.get(&url).send().await?.bytes().await?, jpeg);
    let fresh = client
        .get(&url)
        .header("if-none-match", etag)
        .send()
        .await?;
    assert_eq!(fresh.status(), 304);

    let first = product_ids(look)[0].clone();
    let only_first = format!(
        "/images/looks/{}?item={first}",
        look["id"].as_str().unwrap()
    );
    let nine = format!("/images/looks/lk-0?{}", ["item=p-00001"; 9].join("&"));
    for (path, status, says) in [
        (only_first.as_str(), 404, "is not theirs"),
        ("/images/looks/lk-0", 400, "1 to 8 items"),
        (nine.as_str(), 400, "not 9"),
        (
            "/images/looks/lk-0?item=p-1&size=9",
            400,
            "unknown parameter 'size'",
        ),
    ] {
        let response = client.get(format!("{}{path}", app.url)).send().await?;
        assert_eq!(response.status(), status, "{path}");
        let text = response.text().await?;
        assert!(text.contains(says), "{path}: {text}");
    }
    let put = client.put(&url).send().await?;
    assert_eq!(put.status(), 405);

    // A shop picture for the first piece makes a new picture of the look, and so does its
    // enhanced version once stored (the look uses it).
    let first_url = format!("{}/images/products/{first}", app.url);
    let tag =
        |response: &reqwest::Response| response.headers()["etag"].to_str().unwrap().to_string();
    let before = tag(&client.head(&url).send().await?);
    let mut shop = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        60,
        40,
        image::Rgb([20, 90, 200]),
    ))
    .write_to(
        &mut std::io::Cursor::new(&mut shop),
        image::ImageFormat::Png,
    )?;
    let mut enhanced = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        120,
        80,
        image::Rgb([20, 90, 200]),
    ))
    .write_to(
        &mut std::io::Cursor::new(&mut enhanced),
        image::ImageFormat::Png,
    )?;
    let put = |url: String, body: Vec<u8>, source: Option<String>| {
        let mut request = client
            .put(url)
            .bearer_auth(vitrine_tests::ADMIN_TOKEN)
            .header("content-type", "image/png")
            .body(body);
        if let Some(source) = source {
            request = request
                .header("x-vitrine-source", source)
                .header("x-vitrine-model", "test/1");
        }
        request.send()
    };
    assert_eq!(put(first_url.clone(), shop, None).await?.status(), 200);
    let with_shop = client.get(&url).send().await?;
    assert_eq!(with_shop.status(), 200);
    let with_shop = tag(&with_shop);
    assert_ne!(with_shop, before);
    let source = tag(&client.get(format!("{first_url}/original")).send().await?);
    let stored = put(format!("{first_url}/enhanced"), enhanced, Some(source)).await?;
    assert_eq!(stored.status(), 200);
    assert_ne!(
        tag(&client.head(&url).send().await?),
        with_shop,
        "the enhanced piece"
    );
    assert_eq!(client.get(&url).send().await?.status(), 200);

    // Without a worker, a look not yet kept is 503 naming the model; kept ones still serve.
    drop(worker);
    let other = looks(&book)[1]["hero_image"].as_str().unwrap().to_string();
    let response = client.get(format!("{}{other}", app.url)).send().await?;
    assert_eq!(response.status(), 503);
    assert!(response.text().await?.contains("lookbook-render"));
    assert_eq!(client.get(&url).send().await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn the_page_shows_the_looks_with_their_pictures_in_chromium() -> anyhow::Result<()> {
    let app = TestApp::start(&app_manifest()).await?;
    let query = "shopper=demo-1&occasion=weekend&season=summer&looks=4";
    let (_, book) = get_json(&format!("{}/api/lookbooks?{query}", app.url)).await?;
    let pictures: usize = looks(&book).iter().map(|l| product_ids(l).len()).sum();
    let page = format!("{}/lookbook?{query}", app.url);
    // Chromium loads the page and its pictures; the page's script records how many loaded.
    let dom = tokio::task::spawn_blocking(move || {
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=10000",
                "--dump-dom",
                &page,
            ])
            .output()
    })
    .await?
    .map_err(|e| {
        anyhow::anyhow!(
            "chromium (Debian's `chromium` package, installed by .ci/run) did not start: {e}"
        )
    })?;
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains(&format!("data-images=\"{pictures}/{pictures}\"")),
        "expected all {pictures} pictures loaded: {}",
        &dom[..dom.len().min(600)]
    );
    assert_eq!(
        dom.matches("<article class=\"look\"").count(),
        looks(&book).len()
    );
    for look in looks(&book) {
        assert!(dom.contains(look["id"].as_str().unwrap()));
        for id in product_ids(look) {
            assert!(
                dom.contains(&format!("href=\"/api/products/{id}\"")),
                "{id}"
            );
        }
    }
    // Errors are pages too.
    let response = reqwest::get(format!("{}/lookbook?looks=0", app.url)).await?;
    assert_eq!(response.status(), 400);
    assert!(response.headers()["content-type"]
        .to_str()?
        .starts_with("text/html"));
    Ok(())
}

//! `vitrine catalog import` as a user runs it against a served catalogue: every problem of a
//! file named by line, column and field with nothing stored; a good file imported with its
//! columns mapped, lists split, updates in place; `--replace` removing the demo catalogue.

use serde_json::Value;
use vitrine_tests::{get_json, TestApp, ADMIN_TOKEN};

use crate::commands::{output, vitrine};

fn catalogue_app() -> String {
    vitrine_tests::shop_manifest("")
}

/// Runs `vitrine catalog import` on `file`; returns (success, stdout, stderr).
async fn import(app: &TestApp, file: &std::path::Path, extra: &[&str]) -> (bool, String, String) {
    let mut cmd = vitrine();
    cmd.args([
        "catalog",
        "import",
        "--no-embed",
        "--url",
        &app.url,
        "--products",
    ])
    .arg(file)
    .args(extra)
    .env("VITRINE_ADMIN_TOKEN", ADMIN_TOKEN)
    .env("RUST_BACKTRACE", "0");
    output(cmd).await
}

const MAP: &str = "id=sku,title=name,price=price_eur,colours=colour,style_tags=tags,stock=qty";

#[tokio::test]
async fn import_checks_every_row_then_maps_stores_and_replaces() -> anyhow::Result<()> {
    let app = TestApp::start(&catalogue_app()).await?;
    let dir = tempfile::tempdir()?;
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "sku,name,price_eur,category,colour,tags,material,qty,notes\n\
         A-1,Linen Wrap Dress,129.00,dresses,sage,romantic|beach,linen,4,x\n\
         A-2,Merino Jumper,abc,knitwear,navy,classic,merino wool,10,y\n\
         A-3,,40,tops,white,casual,cotton,-1,z\n\
         A-1,Again,10,tops,white,casual,cotton,1,w\n",
    )?;
    let (ok, _, stderr) = import(&app, &bad, &["--map", MAP]).await;
    assert!(!ok);
    for expected in [
        "bad.csv:3: price (column price_eur): 'abc' is not a number",
        "bad.csv:4: title (column name): is required",
        "bad.csv:4: stock (column qty):",
        "bad.csv:5: id (column sku): 'A-1' appears twice",
        "4 problems",
        "nothing was imported",
        "ignoring columns notes",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    let (status, _) = get_json(&format!("{}/api/products/A-1", app.url)).await?;
    assert_eq!(status, 404, "nothing stored");
    let (ok, _, stderr) = import(&app, &bad, &["--map", "titel=name"]).await;
    assert!(
        !ok && stderr.contains("`titel` is not a catalogue field"),
        "{stderr}"
    );
    let (ok, _, stderr) = import(&app, &bad, &["--map", "title=nom"]).await;
    assert!(!ok && stderr.contains("no column `nom`"), "{stderr}");

    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "sku,name,price_eur,category,colour,tags,material,qty\n\
         A-1,Linen Wrap Dress,129.00,dresses,sage,romantic|beach,linen,4\n\
         A-2,Merino Crew Jumper,89.5,knitwear,navy;grey,classic,merino wool,10\n",
    )?;
    let (ok, stdout, stderr) = import(&app, &good, &["--map", MAP]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("imported 2 products"), "{stdout}");
    let (status, dress) = get_json(&format!("{}/api/products/A-1", app.url)).await?;
    assert_eq!(status, 200);
    assert_eq!(dress["title"], "Linen Wrap Dress");
    assert_eq!(dress["price"], 129.0);
    assert_eq!(
        dress["style_tags"],
        serde_json::json!(["romantic", "beach"])
    );
    assert_eq!(dress["stock"], 4);
    let (_, jumper) = get_json(&format!("{}/api/products/A-2", app.url)).await?;
    assert_eq!(jumper["colours"], serde_json::json!(["navy", "grey"]));
    // Searchable and filterable like the demo products; the demo is still there.
    let (_, found) = get_json(&format!(
        "{}/api/products?q=merino+crew&colour=grey",
        app.url
    ))
    .await?;
    assert_eq!(found["items"][0]["id"], "A-2", "{found}");
    let (_, all) = get_json(&format!("{}/api/products?limit=1", app.url)).await?;
    assert_eq!(all["total"], 6002);

    // JSON Lines updates in place and, with --replace, leaves only what it brings.
    let jsonl = dir.path().join("more.jsonl");
    let lines: Vec<Value> = vec![
        serde_json::json!({"id": "A-2", "title": "Merino Crew Jumper", "price": 79, "category": "knitwear", "colours": ["navy"], "season": "winter"}),
        serde_json::json!({"id": "B-1", "title": "Canvas Tote", "price": "35", "category": "bags", "colours": "ecru"}),
    ];
    std::fs::write(
        &jsonl,
        lines
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    )?;
    let (ok, stdout, stderr) = import(&app, &jsonl, &["--replace"]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("removed 6001 products"), "{stdout}");
    let (_, all) = get_json(&format!("{}/api/products", app.url)).await?;
    let ids: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["A-2", "B-1"]);
    let (_, jumper) = get_json(&format!("{}/api/products/A-2", app.url)).await?;
    assert_eq!(
        (jumper["price"].as_f64(), &jumper["colours"]),
        (Some(79.0), &serde_json::json!(["navy"]))
    );
    let (_, old) = get_json(&format!("{}/api/products?colour=grey", app.url)).await?;
    assert_eq!(old["total"], 0, "the old colour row is gone: {old}");

    // Pictures: the file the `image` column names, else `<id>.<ext>`; refused ones are named.
    let pictures = dir.path().join("pictures");
    std::fs::create_dir(&pictures)?;
    let mut png = Vec::new();
    image::RgbImage::from_pixel(8, 8, image::Rgb([20, 40, 160]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    std::fs::write(pictures.join("jumper-front.png"), &png)?;
    std::fs::write(pictures.join("B-1.gif"), b"this is no gif")?;
    let with_pictures = dir.path().join("pictures.jsonl");
    std::fs::write(
        &with_pictures,
        [
            serde_json::json!({"id": "A-2", "title": "Merino Crew Jumper", "price": 79, "category": "knitwear", "image": "jumper-front.png"}),
            serde_json::json!({"id": "B-1", "title": "Canvas Tote", "price": 35, "category": "bags"}),
            serde_json::json!({"id": "C-1", "title": "Silk Scarf", "price": 45, "category": "accessories"}),
        ]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n"),
    )?;
    let images_arg = pictures.to_string_lossy().into_owned();
    let (ok, stdout, stderr) = import(&app, &with_pictures, &["--images", &images_arg]).await;
    assert!(!ok, "a refused picture fails the command: {stdout}");
    assert!(stdout.contains("uploaded 1 pictures"), "{stdout}");
    assert!(stdout.contains("for 1 products (C-1)"), "{stdout}");
    assert!(
        stderr.contains("B-1.gif") && stderr.contains("not image/gif data"),
        "{stderr}"
    );
    let picture = reqwest::get(format!("{}/images/products/A-2", app.url)).await?;
    assert_eq!(picture.headers()["content-type"], "image/png");
    assert_eq!(picture.bytes().await?.as_ref(), png.as_slice());
    let (_, jumper) = get_json(&format!("{}/api/products/A-2", app.url)).await?;
    assert_eq!(jumper["image"], "/images/products/A-2");
    let drawn = reqwest::get(format!("{}/images/products/C-1", app.url)).await?;
    assert_eq!(drawn.headers()["content-type"], "image/jpeg");

    // The endpoint itself wants the token.
    let denied = reqwest::Client::new()
        .put(format!("{}/api/catalog/products", app.url))
        .json(&serde_json::json!({"products": lines}))
        .send()
        .await?;
    assert_eq!(denied.status(), 401);
    Ok(())
}

//! `vitrine catalog`: work on the catalogue of a running application.
//!
//! `embed` fills in the products' text embeddings through the catalog function
//! (`POST /api/catalog/embeddings`, one batch per call, each stored when computed), so it can
//! stop and resume at any time. `vitrine up` runs the same loop in the background when the
//! application's catalogue has an embedding model ([`backfill_in_background`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

/// Catalogue commands.
#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Compute the missing product embeddings (resumable; shows progress).
    Embed(EmbedArgs),
    /// Import your own products from CSV or JSON Lines, then compute their embeddings.
    Import(ImportArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// The products: `.csv` (with a header row) or `.jsonl` (one object per line).
    #[arg(long)]
    products: PathBuf,
    /// A folder with the products' pictures (JPEG, PNG, WebP, GIF; at most 1 MiB each): the
    /// file the `image` field names, else `<id>.jpg|.jpeg|.png|.webp|.gif`. Products without
    /// one keep their drawn picture.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Columns for the catalogue's fields, e.g. `title=name,price=price_eur` (fields: id, title,
    /// category, price, description, item_type, brand, currency, colours, style_tags, material,
    /// sizes, image, rating, review_count, stock, created_at); unmapped fields use the column
    /// of the same name.
    #[arg(long, value_delimiter = ',')]
    map: Vec<String>,
    /// Remove the products this import does not bring (e.g. the demo catalogue).
    #[arg(long)]
    replace: bool,
    /// Skip computing the embeddings afterwards.
    #[arg(long)]
    no_embed: bool,
    #[command(flatten)]
    app: crate::http::App,
}

/// The catalogue's product fields an import can fill.
const FIELDS: &[&str] = &[
    "id",
    "title",
    "category",
    "price",
    "description",
    "item_type",
    "brand",
    "currency",
    "colours",
    "style_tags",
    "material",
    "sizes",
    "image",
    "rating",
    "review_count",
    "stock",
    "created_at",
];

/// Products per request (and at most [`MAX_BATCH_BYTES`] of JSON).
const BATCH: usize = 500;
const MAX_BATCH_BYTES: usize = 512 * 1024;

#[derive(Args)]
pub struct EmbedArgs {
    /// The application's address.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
}

/// Runs a catalogue command.
pub fn run(command: CatalogCommand) -> Result<()> {
    match command {
        CatalogCommand::Import(args) => tokio::runtime::Runtime::new()?.block_on(import(args)),
        CatalogCommand::Embed(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let bar = indicatif::ProgressBar::new(0).with_style(
                    indicatif::ProgressStyle::with_template(
                        "embedding products {bar:40} {pos}/{len} ({per_sec}, {eta} left)",
                    )?,
                );
                let (done, total) = embed_all(&args.url, |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                })
                .await?;
                bar.finish();
                println!("{done} of {total} products have an embedding");
                Ok(())
            })
        }
    }
}

/// A record of a products file: its line and its fields by column.
type Record = (usize, serde_json::Map<String, Value>);

/// The records of a products file, and the column names.
fn read_records(path: &Path) -> Result<(Vec<Record>, Vec<String>)> {
    let name = path.display();
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match extension.as_str() {
        "csv" => {
            let mut reader =
                csv::Reader::from_path(path).with_context(|| format!("opening {name}"))?;
            let headers: Vec<String> = reader
                .headers()
                .with_context(|| format!("{name}: no header row"))?
                .iter()
                .map(|h| h.trim().to_string())
                .collect();
            let mut records = Vec::new();
            for record in reader.records() {
                let record = record.with_context(|| format!("{name}: not valid CSV"))?;
                let line = record.position().map_or(0, |p| p.line() as usize);
                let fields = headers
                    .iter()
                    .zip(record.iter())
                    .map(|(h, v)| (h.clone(), Value::String(v.to_string())))
                    .collect();
                records.push((line, fields));
            }
            Ok((records, headers))
        }
        "jsonl" | "ndjson" => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {name}"))?;
            let mut records = Vec::new();
            let mut columns: Vec<String> = Vec::new();
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let fields: serde_json::Map<String, Value> = serde_json::from_str(line)
                    .with_context(|| format!("{name}:{}: not a JSON object", n + 1))?;
                for key in fields.keys() {
                    if !columns.contains(key) {
                        columns.push(key.clone());
                    }
                }
                records.push((n + 1, fields));
            }
            Ok((records, columns))
        }
        _ => bail!("{name}: use a .csv or .jsonl (.ndjson) file"),
    }
}

/// `vitrine catalog import`: check every product (nothing is stored if one is wrong), store
/// them batch by batch, remove the others with `--replace`, then compute embeddings.
async fn import(args: ImportArgs) -> Result<()> {
    let name = args.products.display().to_string();
    let (records, columns) = read_records(&args.products)?;
    if records.is_empty() {
        bail!("{name}: no products");
    }
    let mut sources: Vec<(&str, String)> = FIELDS.iter().map(|f| (*f, f.to_string())).collect();
    for pair in &args.map {
        let (field, column) = pair
            .split_once('=')
            .with_context(|| format!("--map `{pair}` is not FIELD=COLUMN"))?;
        let Some(entry) = sources.iter_mut().find(|(f, _)| *f == field.trim()) else {
            bail!(
                "--map `{pair}`: `{field}` is not a catalogue field; use one of {}",
                FIELDS.join(", ")
            );
        };
        if !columns.iter().any(|c| c == column.trim()) {
            bail!(
                "--map `{pair}`: {name} has no column `{column}`; it has {}",
                columns.join(", ")
            );
        }
        entry.1 = column.trim().to_string();
    }
    let used: Vec<&str> = sources.iter().map(|(_, c)| c.as_str()).collect();
    let ignored: Vec<&str> = columns
        .iter()
        .map(String::as_str)
        .filter(|c| !used.contains(c))
        .collect();
    if !ignored.is_empty() {
        eprintln!(
            "{name}: ignoring columns {} (map them with --map FIELD=COLUMN)",
            ignored.join(", ")
        );
    }
    // With --images, an `image` naming a file in the folder is the picture to upload; the
    // product then points at its served picture (the default).
    let mut picture_names: HashMap<String, String> = HashMap::new();
    let products: Vec<(usize, Value)> = records
        .into_iter()
        .map(|(line, fields)| {
            let mut product: serde_json::Map<String, Value> = sources
                .iter()
                .filter_map(|(field, column)| {
                    Some((field.to_string(), fields.get(column)?.clone()))
                })
                .collect();
            if let Some(dir) = &args.images {
                let named = product
                    .get("image")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if let Some(file) = named.filter(|f| !f.is_empty() && dir.join(f).is_file()) {
                    product.remove("image");
                    if let Some(id) = product.get("id").and_then(Value::as_str) {
                        picture_names.insert(id.trim().to_string(), file);
                    }
                }
            }
            (line, Value::Object(product))
        })
        .collect();
    let mut batches: Vec<&[(usize, Value)]> = Vec::new();
    let mut rest = products.as_slice();
    while !rest.is_empty() {
        let (mut n, mut bytes) = (0, 0);
        while n < rest.len()
            && n < BATCH
            && (n == 0 || bytes + rest[n].1.to_string().len() < MAX_BATCH_BYTES)
        {
            bytes += rest[n].1.to_string().len();
            n += 1;
        }
        batches.push(&rest[..n]);
        rest = &rest[n..];
    }
    let client = reqwest::Client::new();
    let endpoint = format!(
        "{}/api/catalog/products",
        args.app.url.trim_end_matches('/')
    );
    let generation = chrono::Utc::now().timestamp_millis();
    let request = |batch: &[(usize, Value)], dry_run: bool| {
        let products: Vec<&Value> = batch.iter().map(|(_, p)| p).collect();
        client
            .put(&endpoint)
            .bearer_auth(&args.app.token)
            .json(&serde_json::json!({ "products": products, "generation": generation, "dry_run": dry_run }))
    };
    // Pass 1: every problem of every row, by file and line.
    let bar = indicatif::ProgressBar::new(products.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg:9} {bar:40} {pos}/{len} products ({eta} left)",
        )?,
    );
    bar.set_message("checking");
    let mut problems = Vec::new();
    for batch in &batches {
        let response = request(batch, true)
            .send()
            .await
            .with_context(|| format!("PUT {endpoint}"))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .with_context(|| format!("{endpoint} answered {status}"))?;
        match status.as_u16() {
            200 => {}
            400 if answer["problems"].is_array() => {
                for p in answer["problems"].as_array().into_iter().flatten() {
                    let line = p["index"]
                        .as_u64()
                        .and_then(|i| batch.get(i as usize))
                        .map_or(0, |(l, _)| *l);
                    let field = p["field"].as_str().unwrap_or("?");
                    let column = sources
                        .iter()
                        .find(|(f, _)| *f == field)
                        .map_or(field, |(_, c)| c.as_str());
                    let shown = if column == field {
                        field.to_string()
                    } else {
                        format!("{field} (column {column})")
                    };
                    problems.push(format!(
                        "{name}:{line}: {shown}: {}",
                        p["message"].as_str().unwrap_or("")
                    ));
                }
            }
            _ => bail!(
                "{endpoint} answered {status}: {}",
                answer["error"].as_str().unwrap_or(&answer.to_string())
            ),
        }
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    if !problems.is_empty() {
        for p in problems.iter().take(100) {
            eprintln!("{p}");
        }
        if problems.len() > 100 {
            eprintln!("… and {} more", problems.len() - 100);
        }
        bail!(
            "{} problems in {name}; nothing was imported",
            problems.len()
        );
    }
    // Pass 2: store.
    bar.reset();
    bar.set_message("importing");
    for batch in &batches {
        crate::http::send(request(batch, false), &format!("PUT {endpoint}")).await?;
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    println!("imported {} products from {name}", products.len());
    if let Some(dir) = &args.images {
        upload_pictures(&client, &args, dir, &products, &picture_names).await?;
    }
    if args.replace {
        let delete = format!("{endpoint}?before_generation={generation}");
        let request = client.delete(&delete).bearer_auth(&args.app.token);
        let answer: Value = crate::http::send(request, &format!("DELETE {delete}"))
            .await?
            .json()
            .await?;
        println!(
            "removed {} products the import did not bring",
            answer["deleted"].as_i64().unwrap_or(0)
        );
    }
    if !args.no_embed {
        let bar =
            indicatif::ProgressBar::new(0).with_style(indicatif::ProgressStyle::with_template(
                "embedding {bar:40} {pos}/{len} products ({eta} left)",
            )?);
        match embed_all(&args.app.url, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await
        {
            Ok((done, total)) => {
                bar.finish_and_clear();
                println!("{done} of {total} products have an embedding");
            }
            Err(e) => {
                bar.abandon();
                eprintln!("embeddings not computed ({e:#}); run `vitrine catalog embed` when the model is served");
            }
        }
    }
    Ok(())
}

/// The picture types `--images` uploads, by file extension.
const PICTURE_TYPES: &[(&str, &str)] = &[
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("webp", "image/webp"),
    ("gif", "image/gif"),
];

/// Uploads each product's picture from `dir` (`PUT /images/products/{id}`); reports products
/// without one and pictures refused, and fails if any was refused.
async fn upload_pictures(
    client: &reqwest::Client,
    args: &ImportArgs,
    dir: &Path,
    products: &[(usize, Value)],
    named: &HashMap<String, String>,
) -> Result<()> {
    let bar = indicatif::ProgressBar::new(products.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("pictures  {bar:40} {pos}/{len} ({eta} left)")?,
    );
    let (mut uploaded, mut missing, mut refused) = (0, Vec::new(), Vec::new());
    for (_, product) in products {
        bar.inc(1);
        let Some(id) = product["id"].as_str().map(str::trim) else {
            continue;
        };
        let file = named.get(id).map(|f| dir.join(f)).or_else(|| {
            PICTURE_TYPES
                .iter()
                .map(|(ext, _)| dir.join(format!("{id}.{ext}")))
                .find(|p| p.is_file())
        });
        let Some(file) = file else {
            missing.push(id.to_string());
            continue;
        };
        let extension = file
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let Some((_, content_type)) = PICTURE_TYPES.iter().find(|(ext, _)| *ext == extension)
        else {
            refused.push(format!(
                "{}: not a .jpg, .png, .webp or .gif file",
                file.display()
            ));
            continue;
        };
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let url = format!(
            "{}/images/products/{id}",
            args.app.url.trim_end_matches('/')
        );
        let response = client
            .put(&url)
            .bearer_auth(&args.app.token)
            .header("content-type", *content_type)
            .body(bytes)
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        match response.status() {
            s if s.is_success() => uploaded += 1,
            s => refused.push(format!(
                "{}: {s} {}",
                file.display(),
                response.text().await.unwrap_or_default()
            )),
        }
    }
    bar.finish_and_clear();
    println!("uploaded {uploaded} pictures from {}", dir.display());
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(10).map(String::as_str).collect();
        let more = if missing.len() > 10 { ", …" } else { "" };
        println!(
            "no picture in {} for {} products ({}{more}): they keep their drawn picture",
            dir.display(),
            missing.len(),
            shown.join(", ")
        );
    }
    for r in &refused {
        eprintln!("{r}");
    }
    if !refused.is_empty() {
        bail!(
            "{} pictures were refused (the products themselves are imported)",
            refused.len()
        );
    }
    Ok(())
}

/// A catalogue product, as the simulation and the evaluation need it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Product {
    /// Product id.
    pub id: String,
    /// Category.
    pub category: String,
    /// Brand.
    pub brand: String,
    /// Price in EUR.
    pub price: f64,
    /// Colours, main first.
    pub colours: Vec<String>,
    /// Style tags.
    pub style_tags: Vec<String>,
    /// Reviews (how visible the product is).
    pub review_count: u64,
    /// Units in stock.
    pub stock: i64,
}

/// Every product of the application's catalogue, page by page through `GET /api/products`.
pub async fn products(client: &reqwest::Client, url: &str) -> Result<Vec<Product>> {
    let mut out = Vec::new();
    loop {
        let page = format!(
            "{}/api/products?limit=100&offset={}",
            url.trim_end_matches('/'),
            out.len()
        );
        let answer: Value = crate::http::send(client.get(&page), &format!("GET {page}"))
            .await?
            .json()
            .await?;
        let items: Vec<Product> = serde_json::from_value(answer["items"].clone())
            .with_context(|| format!("{page}: items are not products"))?;
        let last = items.is_empty() || answer["next_offset"].is_null();
        out.extend(items);
        if last {
            return Ok(out);
        }
    }
}

/// Posts batches to `{url}/api/catalog/embeddings` until every product has an embedding,
/// calling `progress(embedded, products)` after each. Returns the final counts.
pub async fn embed_all(url: &str, mut progress: impl FnMut(u64, u64)) -> Result<(u64, u64)> {
    let client = reqwest::Client::new();
    let endpoint = format!("{}/api/catalog/embeddings", url.trim_end_matches('/'));
    let mut failures = 0;
    loop {
        let response = client.post(&endpoint).send().await;
        let answer = match response {
            Ok(r) if r.status().is_success() => r.json::<Value>().await?,
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                failures += 1;
                if failures >= 5 || status.is_client_error() {
                    bail!("{endpoint} answered {status}: {text}");
                }
                tokio::time::sleep(Duration::from_secs(1 << failures)).await;
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("POST {endpoint}")),
        };
        failures = 0;
        let count = |key: &str| {
            answer[key]
                .as_u64()
                .with_context(|| format!("{endpoint} answered {answer} (no `{key}`)"))
        };
        let (done, total, now) = (
            count("embedded")?,
            count("products")?,
            count("embedded_now")?,
        );
        progress(done, total);
        if done >= total || now == 0 {
            return Ok((done, total));
        }
    }
}

/// When the application serves `/api/catalog/...` from a component that uses `text-embed`,
/// starts filling in the embeddings through `addr`, logging progress; stops at the first
/// lasting failure with a hint to resume.
pub fn backfill_in_background(manifest: &vitrine_runtime::Manifest, addr: std::net::SocketAddr) {
    let embeds = manifest.triggers.iter().any(|t| {
        t.route
            .as_ref()
            .is_some_and(|r| r.as_str().starts_with("/api/catalog"))
            && manifest
                .components
                .get(&t.component)
                .is_some_and(|c| c.ai_models.iter().any(|m| m == "text-embed"))
    });
    if !embeds {
        return;
    }
    tokio::spawn(async move {
        let mut logged = 0;
        let result = embed_all(&format!("http://{addr}"), |done, total| {
            let tenth = (done * 10).checked_div(total).unwrap_or(10);
            if tenth > logged || done == total {
                logged = tenth;
                tracing::info!("product embeddings: {done} of {total}");
            }
        })
        .await;
        if let Err(e) = result {
            tracing::warn!("product embeddings stopped: {e:#}; semantic search covers the products embedded so far (resume with `vitrine catalog embed`)");
        }
    });
}

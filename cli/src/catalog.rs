//! `vitrine catalog`: work on the catalogue of a running application.
//!
//! `embed` fills in the products' text embeddings through the catalog function
//! (`POST /api/catalog/embeddings`, one batch per call, each stored when computed), so it can
//! stop and resume at any time. `vitrine up` runs the same loop in the background when the
//! application's catalogue has an embedding model ([`backfill_in_background`]).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

/// Catalogue commands.
#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Compute the missing product embeddings (resumable; shows progress).
    Embed(EmbedArgs),
}

#[derive(Args)]
pub struct EmbedArgs {
    /// The application's address.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
}

/// Runs a catalogue command.
pub fn run(command: CatalogCommand) -> Result<()> {
    match command {
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
        let response = client
            .get(&page)
            .send()
            .await
            .with_context(|| format!("GET {page}"))?;
        if !response.status().is_success() {
            bail!(
                "{page} answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let answer: Value = response.json().await?;
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

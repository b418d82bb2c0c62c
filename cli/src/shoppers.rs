//! `vitrine shoppers simulate`: shoppers with latent tastes browsing and buying from the
//! application's catalogue, for demos and for `vitrine lookbook eval`.
//!
//! Each shopper has a hidden taste: two of the catalogue's styles, three of its colours,
//! category preferences, a price level relative to each category's median, and a favourite
//! brand. A session picks a category by preference and is shown 30 of its products, popular
//! ones more often (exposure follows reviews, as in a shop). The shopper views the 6 with the highest utility (taste match plus
//! Gumbel noise), clicks the best 3, carts the best if it pleases enough, and buys half of
//! what is carted. Sessions are spread over `--days` up to `--end`.
//!
//! The shoppers consent to personalization and their events are posted to the application
//! (`POST /api/events`, batches of 500); the same events and the hidden tastes are written to
//! `--out` (`events.jsonl`, `shoppers.jsonl`). Same seed, catalogue and end: same output.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::catalog::{self, Product};

/// Shopper commands.
#[derive(Subcommand)]
pub enum ShoppersCommand {
    /// Simulate shoppers with hidden tastes browsing and buying; post and save their events.
    Simulate(SimulateArgs),
}

#[derive(Args)]
pub struct SimulateArgs {
    /// How many shoppers.
    #[arg(long, default_value_t = 200)]
    shoppers: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Days of history.
    #[arg(long, default_value_t = 120)]
    days: i64,
    /// Last day of the history (RFC 3339 date or time); default: today, 00:00 UTC.
    #[arg(long)]
    end: Option<String>,
    #[command(flatten)]
    app: crate::http::App,
    /// Folder for `events.jsonl` and `shoppers.jsonl`.
    #[arg(long, default_value = "shoppers-sim")]
    out: PathBuf,
}

/// A shopper's hidden taste.
#[derive(Debug, Clone, serde::Serialize)]
struct Taste {
    id: String,
    styles: Vec<(String, f64)>,
    colours: Vec<(String, f64)>,
    categories: HashMap<String, f64>,
    price_level: f64,
    brand: String,
}

impl Taste {
    /// How much the shopper likes a product (before noise).
    fn utility(&self, p: &Product, median_price: f64) -> f64 {
        let weight = |list: &[(String, f64)], value: &str| {
            list.iter()
                .find(|(v, _)| v == value)
                .map_or(0.0, |(_, w)| *w)
        };
        let style: f64 = p
            .style_tags
            .iter()
            .map(|s| weight(&self.styles, s))
            .fold(0.0, f64::max);
        let colour = p.colours.first().map_or(0.0, |c| weight(&self.colours, c))
            + 0.3 * p.colours.get(1).map_or(0.0, |c| weight(&self.colours, c));
        let price = (p.price / (median_price * self.price_level)).ln().abs();
        let brand = if p.brand == self.brand { 0.5 } else { 0.0 };
        3.0 * style + 3.0 * colour - 1.2 * price + brand
    }
}

/// Each word once, in order.
fn distinct<'a>(words: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let set: std::collections::BTreeSet<&str> = words.collect();
    set.into_iter().collect()
}

/// Runs a shopper command.
pub fn run(command: ShoppersCommand) -> Result<()> {
    let ShoppersCommand::Simulate(args) = command;
    tokio::runtime::Runtime::new()?.block_on(simulate(args))
}

async fn simulate(args: SimulateArgs) -> Result<()> {
    if args.shoppers == 0 || args.days <= 0 {
        bail!("--shoppers and --days must be positive");
    }
    let end = match &args.end {
        None => chrono::Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc(),
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.to_utc())
            .or_else(|_| {
                chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
            })
            .with_context(|| {
                format!("--end `{text}` is not a date (2026-12-01) or RFC 3339 time")
            })?,
    };
    let client = reqwest::Client::new();
    let products = catalog::products(&client, &args.app.url).await?;
    if products.is_empty() {
        bail!("the catalogue at {} is empty", args.app.url);
    }
    let mut by_category: HashMap<&str, Vec<&Product>> = HashMap::new();
    for p in &products {
        by_category.entry(p.category.as_str()).or_default().push(p);
    }
    let mut categories: Vec<&str> = by_category.keys().copied().collect();
    categories.sort();
    let median: HashMap<&str, f64> = by_category
        .iter()
        .map(|(c, items)| {
            let mut prices: Vec<f64> = items.iter().map(|p| p.price).collect();
            prices.sort_by(f64::total_cmp);
            (*c, prices[prices.len() / 2])
        })
        .collect();
    // Every colour, style and brand of the catalogue once, in order.
    let colours = distinct(
        products
            .iter()
            .flat_map(|p| p.colours.iter().map(String::as_str)),
    );
    let styles = distinct(
        products
            .iter()
            .flat_map(|p| p.style_tags.iter().map(String::as_str)),
    );
    let brands = distinct(products.iter().map(|p| p.brand.as_str()));
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut tastes = Vec::new();
    let mut events: Vec<Value> = Vec::new();
    for n in 0..args.shoppers {
        let pick = |rng: &mut ChaCha8Rng, from: &[&str], k: usize| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            while out.len() < k.min(from.len()) {
                let c = from.choose(rng).expect("non-empty").to_string();
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            out
        };
        let taste = Taste {
            id: format!("sim-{}-{:04}", args.seed, n + 1),
            styles: pick(&mut rng, &styles, 2)
                .into_iter()
                .zip([0.7, 0.3])
                .collect(),
            colours: pick(&mut rng, &colours, 3)
                .into_iter()
                .zip([0.6, 0.3, 0.15])
                .collect(),
            categories: categories
                .iter()
                .map(|c| (c.to_string(), rng.random::<f64>().powi(3)))
                .collect(),
            price_level: (0.35 * (rng.random::<f64>() * 2.0 - 1.0)).exp(),
            brand: brands.choose(&mut rng).expect("brands").to_string(),
        };
        let sessions = rng.random_range(10..=30);
        let total: f64 = taste.categories.values().sum();
        for s in 0..sessions {
            let mut roll = rng.random::<f64>() * total;
            let category = categories
                .iter()
                .find(|c| {
                    roll -= taste.categories[**c];
                    roll <= 0.0
                })
                .unwrap_or(&categories[0]);
            let pool = &by_category[category];
            let shown: Vec<&Product> = (0..30)
                .map(|_| {
                    *pool
                        .choose_weighted(&mut rng, |p| (1.0 + p.review_count as f64).sqrt())
                        .expect("weights")
                })
                .collect();
            let mut ranked: Vec<(f64, &Product)> = shown
                .into_iter()
                .map(|p| {
                    let gumbel = -(-(rng.random::<f64>().max(1e-12)).ln()).ln();
                    (taste.utility(p, median[category]) + 0.7 * gumbel, p)
                })
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
            ranked.dedup_by(|a, b| a.1.id == b.1.id);
            let start =
                end.timestamp() - args.days * 86_400 + rng.random_range(0..args.days * 86_400);
            let mut t = start;
            let event = |kind: &str, p: &Product, k: usize, t: i64| {
                let time = chrono::DateTime::from_timestamp(t, 0).expect("time");
                json!({
                    "id": format!("{}-s{s}-{kind}-{k}", taste.id),
                    "type": kind,
                    "shopper": taste.id,
                    "session": format!("{}-s{s}", taste.id),
                    "time": time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "product": p.id,
                })
            };
            for (k, (utility, p)) in ranked.iter().take(6).enumerate() {
                t += rng.random_range(20..120);
                events.push(event("view", p, k, t));
                if k < 3 {
                    t += rng.random_range(5..60);
                    events.push(event("click", p, k, t));
                }
                if k == 0 && *utility > 2.5 {
                    t += rng.random_range(30..300);
                    events.push(event("add_to_cart", p, k, t));
                    if rng.random::<f64>() < 0.5 {
                        t += rng.random_range(60..600);
                        events.push(event("purchase", p, k, t));
                    }
                }
            }
        }
        tastes.push(taste);
    }
    events.sort_by(|a, b| a["time"].as_str().cmp(&b["time"].as_str()));
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let lines = |items: Vec<String>| items.join("\n") + "\n";
    std::fs::write(
        args.out.join("events.jsonl"),
        lines(events.iter().map(Value::to_string).collect()),
    )?;
    std::fs::write(
        args.out.join("shoppers.jsonl"),
        lines(
            tastes
                .iter()
                .map(|t| serde_json::to_string(t).expect("serializable"))
                .collect(),
        ),
    )?;

    let bar = indicatif::ProgressBar::new((tastes.len() + events.len()) as u64).with_style(
        indicatif::ProgressStyle::with_template("posting {bar:40} {pos}/{len} ({eta} left)")?,
    );
    let base = args.app.url.trim_end_matches('/');
    for taste in &tastes {
        let url = format!("{base}/api/shoppers/{}/consent", taste.id);
        let request = client
            .put(&url)
            .bearer_auth(&args.app.token)
            .json(&json!({ "personalization": true }));
        crate::http::send(request, &format!("PUT {url}")).await?;
        bar.inc(1);
    }
    for batch in events.chunks(500) {
        let url = format!("{base}/api/events");
        let request = client.post(&url).json(&json!({ "events": batch }));
        crate::http::send(request, &format!("POST {url}")).await?;
        bar.inc(batch.len() as u64);
    }
    bar.finish();
    let purchases = events.iter().filter(|e| e["type"] == "purchase").count();
    println!(
        "{} shoppers, {} events ({purchases} purchases) over {} days to {}; written to {}",
        tastes.len(),
        events.len(),
        args.days,
        end.format("%Y-%m-%d"),
        args.out.display()
    );
    Ok(())
}

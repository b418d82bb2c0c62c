//! `vitrine lookbook eval`: how well lookbooks predict what simulated shoppers buy next.
//!
//! For every shopper of a simulation (`vitrine shoppers simulate`) with at least two
//! purchases, the last 20% of the purchases (at least one) are held out. The lookbook is asked
//! for as of just before the session of the first held-out purchase (`as_of`), so it sees only
//! earlier sessions; its products, look by look, are the ranking. Baselines rank by popularity
//! (event weight of all simulated shoppers before the same moment) and at random; like the
//! lookbook, they leave out what the shopper already bought. Reported:
//! hit-rate@10 and @20 (share of shoppers with a held-out purchase in the top k), NDCG@10, and
//! the outfit-validity rate (looks meeting the slot, style, colour and budget rules, every
//! piece in stock), and colour variety (distinct main colours per lookbook).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use futures::StreamExt;
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::catalog;

/// Lookbook commands.
#[derive(Subcommand)]
pub enum LookbookCommand {
    /// Hit-rate and NDCG of lookbooks on held-out purchases, against baselines.
    Eval(EvalArgs),
}

#[derive(Args)]
pub struct EvalArgs {
    /// The simulation's folder (with `events.jsonl`).
    #[arg(long, default_value = "shoppers-sim")]
    data: PathBuf,
    /// The application's address.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Looks per lookbook.
    #[arg(long, default_value_t = 6)]
    looks: usize,
    /// Seed of the random baseline.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Lookbook requests in flight at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Also write one JSON line per shopper here: the held-out products, the lookbook's
    /// ranking and both NDCG@10 (for comparing two versions shopper by shopper).
    #[arg(long)]
    details: Option<PathBuf>,
}

/// Runs a lookbook command.
pub fn run(command: LookbookCommand) -> Result<()> {
    let LookbookCommand::Eval(args) = command;
    tokio::runtime::Runtime::new()?.block_on(eval(args))
}

/// One logged event of the simulation.
struct Event {
    shopper: String,
    session: Option<String>,
    kind: String,
    time: i64,
    product: String,
}

fn weight(kind: &str) -> f64 {
    match kind {
        "purchase" => 8.0,
        "add_to_cart" => 4.0,
        "click" => 1.5,
        "view" => 1.0,
        _ => 0.0,
    }
}

/// Hits in the top `k` of `ranking`, and NDCG@10, against the `held` products.
fn score(ranking: &[String], held: &HashSet<&str>) -> (bool, bool, f64) {
    let hit = |k: usize| ranking.iter().take(k).any(|p| held.contains(p.as_str()));
    let dcg: f64 = ranking
        .iter()
        .take(10)
        .enumerate()
        .filter(|(_, p)| held.contains(p.as_str()))
        .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let ideal: f64 = (0..held.len().min(10))
        .map(|i| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    (
        hit(10),
        hit(20),
        if ideal > 0.0 { dcg / ideal } else { 0.0 },
    )
}

#[derive(Default)]
struct Tally {
    shoppers: usize,
    hits10: usize,
    hits20: usize,
    ndcg: Vec<f64>,
}

impl Tally {
    fn add(&mut self, (h10, h20, ndcg): (bool, bool, f64)) {
        self.shoppers += 1;
        self.hits10 += usize::from(h10);
        self.hits20 += usize::from(h20);
        self.ndcg.push(ndcg);
    }
    fn mean_ndcg(&self) -> f64 {
        // `+ 0.0`: a float sum starts at -0.0, which would print as "-0.0000".
        self.ndcg.iter().sum::<f64>() / self.ndcg.len().max(1) as f64 + 0.0
    }
    /// Half-width of the 95% interval of the mean NDCG (normal approximation).
    fn ndcg_interval(&self) -> f64 {
        let n = self.ndcg.len().max(2) as f64;
        let mean = self.mean_ndcg();
        let var = self.ndcg.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        1.96 * (var / n).sqrt()
    }
    fn row(&self, name: &str) -> String {
        let n = self.shoppers.max(1) as f64;
        format!(
            "| {name} | {:.3} | {:.3} | {:.4} ± {:.4} |",
            self.hits10 as f64 / n,
            self.hits20 as f64 / n,
            self.mean_ndcg(),
            self.ndcg_interval()
        )
    }
}

async fn eval(args: EvalArgs) -> Result<()> {
    let path = args.data.join("events.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (run `vitrine shoppers simulate` first)",
            path.display()
        )
    })?;
    let mut events = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
        let field = |name: &str| {
            v[name]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("{}:{}: no `{name}`", path.display(), n + 1))
        };
        let time = chrono::DateTime::parse_from_rfc3339(&field("time")?)
            .with_context(|| format!("{}:{}: bad `time`", path.display(), n + 1))?
            .timestamp();
        events.push(Event {
            shopper: field("shopper")?,
            session: v["session"].as_str().map(str::to_string),
            kind: field("type")?,
            time,
            product: field("product")?,
        });
    }
    events.sort_by_key(|e| e.time);
    let mut purchases: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind == "purchase") {
        purchases.entry(&e.shopper).or_default().push(e);
    }
    let client = reqwest::Client::new();
    let products = catalog::products(&client, &args.url).await?;
    let stock: HashMap<&str, i64> = products.iter().map(|p| (p.id.as_str(), p.stock)).collect();
    // When each session began: its first event (the events are in time order).
    let mut session_starts: HashMap<&str, i64> = HashMap::new();
    for e in &events {
        if let Some(session) = &e.session {
            session_starts.entry(session).or_insert(e.time);
        }
    }
    let cases: Vec<Case> = purchases
        .iter()
        .filter(|(_, bought)| bought.len() >= 2)
        .map(|(shopper, bought)| Case::new(shopper, bought, &session_starts))
        .collect();
    if cases.is_empty() {
        bail!("no simulated shopper has two purchases: simulate more shoppers or days");
    }
    let bar = indicatif::ProgressBar::new(cases.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("evaluating {bar:40} {pos}/{len} shoppers")?,
    );
    // The lookbooks, `parallel` requests at a time, in the order of the cases.
    let books: Vec<Result<Value>> = futures::stream::iter(cases.iter().map(|case| {
        let as_of = chrono::DateTime::from_timestamp(case.cutoff, 0)
            .expect("time")
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let url = format!(
            "{}/api/lookbooks?shopper={}&looks={}&as_of={as_of}",
            args.url.trim_end_matches('/'),
            case.shopper,
            args.looks
        );
        let (client, bar) = (&client, &bar);
        async move {
            let response = crate::http::send(client.get(&url), &format!("GET {url}")).await?;
            let book: Value = response.json().await?;
            bar.inc(1);
            Ok(book)
        }
    }))
    .buffered(args.parallel.max(1))
    .collect()
    .await;
    let popular_rankings = popularity_rankings(&cases, &events);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let (mut lookbook, mut popular, mut random) =
        (Tally::default(), Tally::default(), Tally::default());
    let (mut looks, mut valid) = (0usize, 0usize);
    // Distinct main colours per lookbook: how varied the looks are.
    let main_colour: HashMap<&str, &str> = products
        .iter()
        .filter_map(|p| Some((p.id.as_str(), p.colours.first()?.as_str())))
        .collect();
    let mut variety: Vec<usize> = Vec::new();
    let mut details = match &args.details {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    for ((case, book), top) in cases.iter().zip(books).zip(popular_rankings) {
        let book = book?;
        let mut ranking = Vec::new();
        for look in book["looks"].as_array().into_iter().flatten() {
            looks += 1;
            let ids: Vec<String> = look["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["id"].as_str().map(str::to_string))
                .collect();
            let in_stock = ids
                .iter()
                .all(|id| stock.get(id.as_str()).is_some_and(|s| *s > 0));
            if look["rules_met"] == true && in_stock && (3..=4).contains(&ids.len()) {
                valid += 1;
            }
            ranking.extend(ids);
        }
        let mains: Vec<&str> = ranking
            .iter()
            .filter_map(|id| main_colour.get(id.as_str()).copied())
            .collect();
        variety.push(BTreeSet::from_iter(&mains).len());
        let (mine, theirs) = (score(&ranking, &case.held), score(&top, &case.held));
        if let Some(out) = details.as_mut() {
            let line = json!({
                "shopper": case.shopper, "as_of": case.cutoff,
                "held": case.held.iter().collect::<BTreeSet<_>>(),
                "lookbook": ranking, "lookbook_ndcg": mine.2, "popularity_ndcg": theirs.2,
            });
            writeln!(out, "{line}")?;
        }
        lookbook.add(mine);
        popular.add(theirs);
        let any: Vec<String> = products
            .iter()
            .filter(|p| !case.bought_before.contains(p.id.as_str()))
            .collect::<Vec<_>>()
            .choose_multiple(&mut rng, 20)
            .map(|p| p.id.clone())
            .collect();
        random.add(score(&any, &case.held));
    }
    if let Some(mut out) = details {
        out.flush()?;
    }
    bar.finish_and_clear();
    println!(
        "{} shoppers with held-out purchases; {} looks of {} per lookbook\n",
        lookbook.shoppers, looks, args.looks
    );
    println!("| ranking | hit-rate@10 | hit-rate@20 | NDCG@10 (95% interval) |\n|---|---|---|---|");
    println!("{}", lookbook.row("lookbook"));
    println!("{}", popular.row("popularity"));
    println!("{}", random.row("random"));
    let ratio = lookbook.mean_ndcg() / popular.mean_ndcg().max(1e-12);
    let (low, high) = ratio_interval(&lookbook.ndcg, &popular.ndcg, args.seed);
    println!(
        "\nNDCG@10 lookbook / popularity: {ratio:.2}× (95% bootstrap interval {low:.2}–{high:.2}; target ≥ 2×)"
    );
    println!(
        "outfit validity: {valid} of {looks} looks ({:.1}%; target 100%)",
        100.0 * valid as f64 / looks.max(1) as f64
    );
    println!(
        "colour variety: {:.1} distinct main colours per lookbook",
        variety.iter().sum::<usize>() as f64 / variety.len().max(1) as f64
    );
    Ok(())
}

/// One shopper's held-out purchases and the moment their lookbook is asked for.
struct Case<'a> {
    shopper: &'a str,
    /// Just before the session of the first held-out purchase: its views, clicks and cart
    /// would give the answer away.
    cutoff: i64,
    /// The held-out products.
    held: HashSet<&'a str>,
    /// What the shopper bought up to the cutoff (left out of the baselines, as the lookbook
    /// leaves it out).
    bought_before: HashSet<&'a str>,
}

impl<'a> Case<'a> {
    /// The last 20% of `bought` (at least one) held out; `session_starts`: when each session
    /// began.
    fn new(shopper: &'a str, bought: &[&'a Event], session_starts: &HashMap<&str, i64>) -> Self {
        let held_n = (bought.len() as f64 * 0.2).round().max(1.0) as usize;
        let held_out = &bought[bought.len() - held_n..];
        let session_start = held_out[0]
            .session
            .as_deref()
            .and_then(|s| session_starts.get(s).copied());
        let cutoff = session_start.unwrap_or(held_out[0].time) - 1;
        Case {
            shopper,
            cutoff,
            held: held_out.iter().map(|e| e.product.as_str()).collect(),
            bought_before: bought
                .iter()
                .filter(|e| e.time <= cutoff)
                .map(|e| e.product.as_str())
                .collect(),
        }
    }
}

/// The popularity baseline of every case: the 20 products of most event weight up to its
/// cutoff, leaving out what the shopper bought. One pass over `events` (in time order), the
/// cases visited by cutoff.
fn popularity_rankings(cases: &[Case], events: &[Event]) -> Vec<Vec<String>> {
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.sort_by_key(|i| cases[*i].cutoff);
    let mut rankings = vec![Vec::new(); cases.len()];
    let mut weights: HashMap<&str, f64> = HashMap::new();
    let mut next = 0;
    for i in order {
        let case = &cases[i];
        while let Some(e) = events.get(next).filter(|e| e.time <= case.cutoff) {
            *weights.entry(&e.product).or_default() += weight(&e.kind);
            next += 1;
        }
        let mut by_weight: Vec<(&str, f64)> = weights
            .iter()
            .filter(|(p, _)| !case.bought_before.contains(*p))
            .map(|(p, w)| (*p, *w))
            .collect();
        by_weight.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        rankings[i] = by_weight
            .iter()
            .take(20)
            .map(|(p, _)| p.to_string())
            .collect();
    }
    rankings
}

/// The 95% interval of `mean(a) / mean(b)` over 1,000 bootstrap resamples of the shoppers
/// (paired: `a[i]` and `b[i]` are one shopper's).
fn ratio_interval(a: &[f64], b: &[f64], seed: u64) -> (f64, f64) {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = a.len().min(b.len());
    if n == 0 {
        return (0.0, 0.0);
    }
    let mut ratios: Vec<f64> = (0..1000)
        .map(|_| {
            let (mut sa, mut sb) = (0.0, 0.0);
            for _ in 0..n {
                let i = rng.random_range(0..n);
                sa += a[i];
                sb += b[i];
            }
            sa / sb.max(1e-12)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    (ratios[25], ratios[974])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics() {
        let ranking: Vec<String> = (0..25).map(|i| format!("p{i}")).collect();
        let held: HashSet<&str> = ["p0"].into();
        assert_eq!(score(&ranking, &held), (true, true, 1.0));
        let held: HashSet<&str> = ["p12"].into();
        let (h10, h20, ndcg) = score(&ranking, &held);
        assert_eq!((h10, h20, ndcg), (false, true, 0.0));
        let held: HashSet<&str> = ["p1", "p99"].into();
        let (_, _, ndcg) = score(&ranking, &held);
        let expected = (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((ndcg - expected).abs() < 1e-12);
        // Twice as good everywhere: the interval is exactly 2; noisy pairs widen it around 2.
        let b: Vec<f64> = (0..200).map(|i| 0.1 + (i % 7) as f64 * 0.01).collect();
        let a: Vec<f64> = b.iter().map(|v| 2.0 * v).collect();
        let (low, high) = ratio_interval(&a, &b, 1);
        assert!((low - 2.0).abs() < 1e-9 && (high - 2.0).abs() < 1e-9);
        let noisy: Vec<f64> = a
            .iter()
            .enumerate()
            .map(|(i, v)| if i % 2 == 0 { v * 1.5 } else { v * 0.5 })
            .collect();
        let (low, high) = ratio_interval(&noisy, &b, 1);
        assert!(low < high && low > 1.5 && high < 2.5, "{low} {high}");
    }
}

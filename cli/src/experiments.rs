//! `vitrine experiments report`: an experiment's variants against its control, from what the
//! app logged in its SQLite database — exposures (`functions/campaigns`) and shopper events
//! (`functions/events`) — with 95% intervals, CUPED, a sample-ratio check and a verdict that
//! is never "better" or "worse" while the interval covers zero
//! ([`vitrine_campaigns::experiments`], docs/campaigns.md#experiments).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rusqlite::OptionalExtension;
use serde_json::{json, Value};
use vitrine_campaigns::experiments::{
    bootstrap, cuped, ratio, ratio_cuped, srm_p_value, welch, Comparison,
};

use crate::plot::{line_chart, Series};

/// Below this sample-ratio p-value the split is broken and nothing is judged.
const SRM_ALPHA: f64 = 0.001;

/// `vitrine experiments`.
#[derive(Subcommand)]
pub enum ExperimentsCommand {
    /// Each variant against the control: conversion, orders, revenue and sessions per
    /// shopper, events per session, with 95% intervals, CUPED and a sample-ratio check.
    Report(ReportArgs),
}

/// `vitrine experiments report`.
#[derive(Args)]
pub struct ReportArgs {
    /// The app's SQLite database (`<state-dir>/sqlite/default.db` of `vitrine up`).
    #[arg(long)]
    db: PathBuf,
    /// The experiment's id.
    #[arg(long)]
    experiment: String,
    /// Days before a shopper's first exposure whose activity is the CUPED covariate.
    #[arg(long, default_value_t = 14)]
    pre_days: u32,
    /// Bootstrap resamples (revenue).
    #[arg(long, default_value_t = 2000)]
    resamples: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the cumulative conversion uplift (with its interval) to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// Runs a `vitrine experiments` command.
pub fn run(command: ExperimentsCommand) -> Result<()> {
    match command {
        ExperimentsCommand::Report(args) => report(args),
    }
}

/// One exposed shopper: activity after the first exposure, and before it (the covariate).
#[derive(Default, Clone)]
struct Unit {
    first_exposed: i64,
    post: Activity,
    pre: Activity,
}

#[derive(Default, Clone)]
struct Activity {
    orders: f64,
    revenue: f64,
    events: f64,
    sessions: std::collections::BTreeSet<String>,
}

impl Activity {
    fn converted(&self) -> f64 {
        f64::from(u8::from(self.orders > 0.0))
    }
}

/// An experiment as read: its variants (control first), their weights, and their shoppers.
struct Read {
    variants: Vec<(String, u32)>,
    units: BTreeMap<String, Vec<Unit>>,
}

fn read(db: &Path, experiment: &str, pre_days: u32) -> Result<Read> {
    let db = crate::app_db::open(db)?;
    let definition: String = crate::app_db::find(
        &db,
        "experiments",
        "experiment",
        experiment,
        "definition",
        |r| r.get(0),
    )?;
    let definition: Value = serde_json::from_str(&definition)?;
    let mut variants: Vec<(String, u32)> = definition["variants"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .map(|v| {
                    let weight = v["weight"].as_u64().unwrap_or(1);
                    (v["id"].as_str().unwrap_or("").to_string(), weight as u32)
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(control) = definition["control"].as_str() {
        if let Some(i) = variants.iter().position(|(v, _)| v == control) {
            let c = variants.remove(i);
            variants.insert(0, c);
        }
    }
    let mut units: BTreeMap<String, Vec<Unit>> = variants
        .iter()
        .map(|(v, _)| (v.clone(), Vec::new()))
        .collect();
    let mut index: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut exposures = db.prepare(
        "SELECT shopper, variant, first_exposed FROM experiment_exposures WHERE experiment = ?
          ORDER BY first_exposed, shopper",
    )?;
    for row in exposures.query_map([experiment], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })? {
        let (shopper, variant, first_exposed) = row?;
        // A variant no longer defined still keeps its shoppers in the split check.
        let list = units.entry(variant.clone()).or_default();
        index.insert(shopper, (variant, list.len()));
        list.push(Unit {
            first_exposed,
            ..Unit::default()
        });
    }
    let has_events = db
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'shopper_events'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if has_events {
        let pre = i64::from(pre_days) * 86_400;
        let mut events = db.prepare(
            "SELECT e.shopper, e.kind, e.time, e.quantity, coalesce(e.price, 0), e.session
               FROM shopper_events e JOIN experiment_exposures x
                 ON x.experiment = ? AND x.shopper = e.shopper
              WHERE e.time >= x.first_exposed - ?",
        )?;
        let rows = events.query_map(rusqlite::params![experiment, pre], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, f64>(3)?,
                r.get::<_, f64>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        for row in rows {
            let (shopper, kind, time, quantity, price, session) = row?;
            let Some((variant, i)) = index.get(&shopper) else {
                continue;
            };
            let unit = &mut units.get_mut(variant).expect("indexed")[*i];
            let activity = if time >= unit.first_exposed {
                &mut unit.post
            } else {
                &mut unit.pre
            };
            activity.events += 1.0;
            if let Some(session) = session {
                activity.sessions.insert(session);
            }
            if kind == "purchase" {
                activity.orders += 1.0;
                activity.revenue += quantity * price;
            }
        }
    }
    Ok(Read { variants, units })
}

/// One metric of one variant against the control.
struct Row {
    metric: &'static str,
    method: &'static str,
    comparison: Option<Comparison>,
    cuped: Option<(Comparison, f64)>,
}

impl Row {
    /// The comparison the verdict rests on: CUPED's when it narrowed the interval.
    fn decisive(&self) -> Option<&Comparison> {
        match &self.cuped {
            Some((c, reduction)) if *reduction > 0.0 => Some(c),
            _ => self.comparison.as_ref(),
        }
    }

    fn verdict(&self, srm_broken: bool) -> &'static str {
        match self.decisive() {
            None => "too few shoppers",
            Some(_) if srm_broken => "not judged: sample ratio mismatch",
            Some(c) if c.absolute.covers_zero() => "no difference shown",
            Some(c) if c.absolute.value > 0.0 => "variant higher",
            Some(_) => "variant lower",
        }
    }
}

/// The rows of `variant` against `control`. Per-shopper metrics use Welch (revenue: the
/// bootstrap); conversion, orders and revenue also with CUPED on their pre-period values;
/// events per session the delta method, also with CUPED on the pre-period's.
fn compare(control: &[Unit], variant: &[Unit], args: &ReportArgs) -> Vec<Row> {
    type Metric = fn(&Activity) -> f64;
    let per_shopper: [(&str, Metric, bool); 4] = [
        ("conversion rate", Activity::converted, true),
        ("orders per shopper", |a| a.orders, true),
        ("revenue per shopper", |a| a.revenue, true),
        ("sessions per shopper", |a| a.sessions.len() as f64, false),
    ];
    let mut rows = Vec::new();
    for (metric, value, with_cuped) in per_shopper {
        let y = |units: &[Unit]| units.iter().map(|u| value(&u.post)).collect::<Vec<_>>();
        let x = |units: &[Unit]| units.iter().map(|u| value(&u.pre)).collect::<Vec<_>>();
        let (y0, y1) = (y(control), y(variant));
        let revenue = metric.starts_with("revenue");
        let compare = |a: &[f64], b: &[f64]| {
            if revenue {
                bootstrap(a, b, args.resamples, args.seed)
            } else {
                welch(a, b)
            }
        };
        let cuped_row = with_cuped.then(|| {
            // One θ for both groups, from all their shoppers; the covariate is the same
            // metric before the exposure, or the shopper's pre-period events when those
            // explain more (a conversion rate is often 0 for everyone before).
            let ys: Vec<f64> = y0.iter().chain(&y1).copied().collect();
            let same: Vec<f64> = x(control).into_iter().chain(x(variant)).collect();
            let events: Vec<f64> = (control.iter().chain(variant))
                .map(|u| u.pre.events)
                .collect();
            let (by_same, by_events) = (cuped(&ys, &same), cuped(&ys, &events));
            let (adjusted, reduction) = if by_events.1 > by_same.1 {
                by_events
            } else {
                by_same
            };
            let (a, b) = adjusted.split_at(y0.len());
            compare(a, b).map(|c| (c, reduction))
        });
        rows.push(Row {
            metric,
            method: if revenue { "bootstrap" } else { "Welch" },
            comparison: compare(&y0, &y1),
            cuped: cuped_row.flatten(),
        });
    }
    // Events and sessions per shopper, after the exposure or before it (the CUPED covariate).
    let pairs = |units: &[Unit], before: bool| -> Vec<(f64, f64)> {
        (units.iter())
            .map(|u| if before { &u.pre } else { &u.post })
            .map(|a| (a.events, a.sessions.len() as f64))
            .collect()
    };
    let (after0, after1) = (pairs(control, false), pairs(variant, false));
    rows.push(Row {
        metric: "events per session",
        method: "delta method",
        comparison: ratio(&after0, &after1),
        cuped: ratio_cuped(
            &after0,
            &after1,
            &pairs(control, true),
            &pairs(variant, true),
        ),
    });
    rows
}

fn report(args: ReportArgs) -> Result<()> {
    let read = read(&args.db, &args.experiment, args.pre_days).with_context(|| {
        format!(
            "reading experiment `{}` from {}",
            args.experiment,
            args.db.display()
        )
    })?;
    let Some((control, _)) = read.variants.first().cloned() else {
        bail!("experiment `{}` has no variants", args.experiment);
    };
    let counts: Vec<u64> = (read.variants.iter())
        .map(|(v, _)| read.units.get(v).map_or(0, Vec::len) as u64)
        .collect();
    let weights: Vec<u32> = read.variants.iter().map(|(_, w)| *w).collect();
    let srm = srm_p_value(&counts, &weights);
    let srm_broken = srm.is_some_and(|p| p < SRM_ALPHA);
    let exposed: u64 = counts.iter().sum();
    let control_units = &read.units[&control];
    let comparisons: Vec<(String, Vec<Row>)> = (read.variants.iter().skip(1))
        .map(|(v, _)| (v.clone(), compare(control_units, &read.units[v], &args)))
        .collect();

    if let Some(path) = &args.plot {
        let svg = cumulative_plot(&args.experiment, &control, &read, &comparisons);
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        let interval = |c: &Comparison| json!({ "control": c.control, "variant": c.variant, "absolute": c.absolute, "relative": c.relative });
        let out = json!({
            "experiment": args.experiment,
            "control": control,
            "variants": read.variants.iter().zip(&counts).map(|((v, w), n)| json!({ "id": v, "weight": w, "shoppers": n })).collect::<Vec<_>>(),
            "srm_p_value": srm,
            "comparisons": comparisons.iter().map(|(v, rows)| json!({
                "variant": v,
                "metrics": rows.iter().map(|r| json!({
                    "metric": r.metric,
                    "method": r.method,
                    "estimate": r.comparison.as_ref().map(interval),
                    "cuped": r.cuped.as_ref().map(|(c, reduction)| json!({ "estimate": interval(c), "variance_reduction": reduction })),
                    "verdict": r.verdict(srm_broken),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "experiment {} (control: {control}): {exposed} shoppers exposed",
        args.experiment
    );
    for ((v, w), n) in read.variants.iter().zip(&counts) {
        println!("  {v:<16} weight {w:<6} {n} shoppers");
    }
    match srm {
        Some(p) if p < SRM_ALPHA => println!(
            "sample ratio mismatch: p = {p:.2e} < {SRM_ALPHA}: the split is broken (assignment, logging or bots); nothing is judged"
        ),
        Some(p) => println!("sample ratio: p = {p:.3} (the split follows the weights)"),
        None => println!("sample ratio: not checked (one variant, or no shoppers)"),
    }
    let signed = |x: f64, percent: bool| {
        if percent {
            format!("{:+.1}%", 100.0 * x)
        } else {
            format!("{x:+.4}")
        }
    };
    let interval = |i: &vitrine_campaigns::experiments::Interval, percent: bool| {
        format!(
            "{} [{}, {}]",
            signed(i.value, percent),
            signed(i.low, percent),
            signed(i.high, percent)
        )
    };
    for (variant, rows) in &comparisons {
        println!();
        println!(
            "{:<34} {:>10} {:>10}  {:<34} {:<28} verdict",
            format!("{variant} vs {control}"),
            "control",
            "variant",
            "difference (95% CI)",
            "relative (95% CI)"
        );
        for row in rows {
            let line = |label: &str, c: &Comparison| {
                let relative = c
                    .relative
                    .as_ref()
                    .map_or("—".into(), |r| interval(r, true));
                format!(
                    "{label:<34} {:>10.4} {:>10.4}  {:<34} {:<28}",
                    c.control,
                    c.variant,
                    interval(&c.absolute, false),
                    relative
                )
            };
            match &row.comparison {
                Some(c) => println!(
                    "{} {}",
                    line(&format!("{} ({})", row.metric, row.method), c),
                    row.verdict(srm_broken)
                ),
                None => println!("{:<34} too few shoppers", row.metric),
            }
            if let Some((c, reduction)) = &row.cuped {
                println!(
                    "{}",
                    line(
                        &format!(
                            "  with CUPED (variance −{:.0}%)",
                            100.0 * reduction.max(0.0)
                        ),
                        c
                    )
                );
            }
        }
    }
    println!();
    println!("A verdict is \"higher\" or \"lower\" only when the 95% interval excludes 0 (with CUPED when it narrows it).");
    Ok(())
}

/// The conversion-rate difference (and its interval) of each variant against the control as
/// shoppers accrued, in the order of their first exposure.
fn cumulative_plot(
    experiment: &str,
    control: &str,
    read: &Read,
    comparisons: &[(String, Vec<Row>)],
) -> String {
    let mut series_data: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (variant, _) in comparisons {
        let (a, b) = (&read.units[control], &read.units[variant]);
        let mut all: Vec<(i64, bool, f64)> = (a
            .iter()
            .map(|u| (u.first_exposed, false, u.post.converted())))
        .chain(
            b.iter()
                .map(|u| (u.first_exposed, true, u.post.converted())),
        )
        .collect();
        all.sort_by_key(|u| u.0);
        let (mut lows, mut mids, mut highs) = (Vec::new(), Vec::new(), Vec::new());
        let step = (all.len() / 40).max(1);
        for end in (step..=all.len()).step_by(step) {
            let seen = &all[..end];
            let group = |treated: bool| {
                seen.iter()
                    .filter(|u| u.1 == treated)
                    .map(|u| u.2)
                    .collect::<Vec<_>>()
            };
            if let Some(c) = welch(&group(false), &group(true)) {
                let x = end as f64;
                mids.push((x, c.absolute.value));
                lows.push((x, c.absolute.low));
                highs.push((x, c.absolute.high));
            }
        }
        series_data.push((format!("{variant} − {control}"), mids));
        series_data.push(("95% low".into(), lows));
        series_data.push(("95% high".into(), highs));
    }
    let series: Vec<Series> = series_data
        .iter()
        .map(|(name, points)| Series {
            name,
            points: points.clone(),
        })
        .collect();
    line_chart(
        &format!("Experiment {experiment}: cumulative conversion uplift"),
        "shoppers exposed",
        "conversion rate difference",
        &series,
    )
}

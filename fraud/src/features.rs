//! Time-respecting features of each transaction, computed in one pass over the transactions in
//! time order: every value uses only what happened before the transaction (plus the
//! transaction itself), so training and scoring see the same thing a live system would.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Timelike};

use crate::schema::{Account, Transaction};

/// Names of the feature columns, in order.
pub const FEATURES: &[&str] = &[
    "log_amount",
    "channel_card_present",
    "channel_online",
    "channel_mobile",
    "channel_transfer",
    "channel_salary",
    "hour_sin",
    "hour_cos",
    "to_account",
    "near_threshold",
    "src_log_age_days",
    "src_log_out_count",
    "src_amount_z",
    "src_log_seconds_since_out",
    "src_log_distinct_targets",
    "src_new_target",
    "src_new_device",
    "src_log_in_count",
    "src_inflow_24h_ratio",
    "dst_log_in_count",
    "dst_log_distinct_sources",
    "dst_log_out_count",
    "dst_log_age_days",
    "device_log_accounts",
];

#[derive(Default)]
struct AccountState {
    out_count: f64,
    out_sum: f64,
    out_sum_sq: f64,
    last_out: Option<i64>,
    targets: HashSet<String>,
    sources: HashSet<String>,
    devices: HashSet<String>,
    in_count: f64,
    /// Recent inflows (time, amount), for the 24-hour window.
    recent_in: Vec<(i64, f64)>,
}

/// The feature matrix (row-major, `FEATURES.len()` columns) of `transactions`, which must be in
/// time order.
pub fn transaction_features(transactions: &[Transaction], accounts: &[Account]) -> Vec<f32> {
    let opened: HashMap<&str, i64> = accounts
        .iter()
        .filter_map(|a| {
            Some((
                a.account_id.as_str(),
                DateTime::parse_from_rfc3339(&a.opened_at).ok()?.timestamp(),
            ))
        })
        .collect();
    let mut state: HashMap<String, AccountState> = HashMap::new();
    let mut device_accounts: HashMap<String, HashSet<String>> = HashMap::new();
    let mut out = Vec::with_capacity(transactions.len() * FEATURES.len());
    for t in transactions {
        let at = DateTime::parse_from_rfc3339(&t.timestamp)
            .map(|d| d.timestamp())
            .unwrap_or(0);
        let hour = DateTime::parse_from_rfc3339(&t.timestamp)
            .map(|d| d.hour() as f64)
            .unwrap_or(0.0);
        let amount = t.amount.max(0.0);
        let age = |id: &str| {
            opened
                .get(id)
                .map_or(0.0, |o| ((at - o).max(0) as f64 / 86_400.0).ln_1p())
        };
        let channel = |name: &str| (t.channel == name) as u8 as f64;
        let src = state.entry(t.source.clone()).or_default();
        let mean = if src.out_count > 0.0 {
            src.out_sum / src.out_count
        } else {
            amount
        };
        let var = if src.out_count > 1.0 {
            (src.out_sum_sq / src.out_count - mean * mean).max(0.0)
        } else {
            0.0
        };
        let z = ((amount - mean) / (var.sqrt() + 1.0)).clamp(-10.0, 10.0);
        src.recent_in.retain(|(time, _)| at - time < 86_400);
        let inflow: f64 = src.recent_in.iter().map(|(_, a)| a).sum();
        let device_new = !t.device_id.is_empty() && !src.devices.contains(&t.device_id);
        let mut row = vec![
            amount.ln_1p(),
            channel("card_present"),
            channel("online"),
            channel("mobile"),
            channel("transfer"),
            channel("salary"),
            (hour / 24.0 * std::f64::consts::TAU).sin(),
            (hour / 24.0 * std::f64::consts::TAU).cos(),
            t.target.starts_with('A') as u8 as f64,
            (8_000.0..10_000.0).contains(&amount) as u8 as f64,
            age(&t.source),
            src.out_count.ln_1p(),
            z,
            src.last_out
                .map_or(20.0, |last| ((at - last).max(0) as f64).ln_1p()),
            (src.targets.len() as f64).ln_1p(),
            !src.targets.contains(&t.target) as u8 as f64,
            device_new as u8 as f64,
            src.in_count.ln_1p(),
            if inflow > 0.0 {
                (amount / inflow).min(2.0)
            } else {
                0.0
            },
        ];
        // Update the source before looking at the target (self-transfers see their own update).
        src.out_count += 1.0;
        src.out_sum += amount;
        src.out_sum_sq += amount * amount;
        src.last_out = Some(at);
        src.targets.insert(t.target.clone());
        if !t.device_id.is_empty() {
            src.devices.insert(t.device_id.clone());
        }
        let dst = state.entry(t.target.clone()).or_default();
        row.extend([
            dst.in_count.ln_1p(),
            (dst.sources.len() as f64).ln_1p(),
            dst.out_count.ln_1p(),
            age(&t.target),
        ]);
        dst.in_count += 1.0;
        dst.sources.insert(t.source.clone());
        dst.recent_in.push((at, amount));
        let shared = match t.device_id.as_str() {
            "" => 0.0,
            device => {
                let users = device_accounts.entry(device.to_string()).or_default();
                users.insert(t.source.clone());
                (users.len() as f64).ln_1p()
            }
        };
        row.push(shared);
        debug_assert_eq!(row.len(), FEATURES.len());
        out.extend(row.into_iter().map(|v| v as f32));
    }
    out
}

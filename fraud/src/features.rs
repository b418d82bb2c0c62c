//! Time-respecting features of each transaction, computed as transactions arrive: every value
//! uses only what happened before the transaction (plus the transaction itself), so training,
//! evaluation and live scoring in the worker compute exactly the same thing.

use std::collections::{HashMap, HashSet};

use crate::graph::{Event, CHANNELS};
use crate::schema::Transaction;

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

/// Number of feature columns.
pub const FEATURE_COUNT: usize = FEATURES.len();

#[derive(Default)]
struct AccountState {
    first_seen: Option<i64>,
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

/// What the features remember about the transactions seen so far.
#[derive(Default)]
pub struct FeatureState {
    accounts: HashMap<String, AccountState>,
    device_accounts: HashMap<String, HashSet<String>>,
}

fn channel_is(event: &Event, name: &str) -> f64 {
    (CHANNELS.get(event.channel as usize) == Some(&name)) as u8 as f64
}

impl FeatureState {
    /// A state that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The features of `event` given everything seen before, then remembers `event`.
    /// Events should arrive in time order.
    pub fn next(&mut self, event: &Event) -> [f32; FEATURE_COUNT] {
        let at = event.time;
        let hour = at.rem_euclid(86_400) as f64 / 3_600.0;
        let amount = event.amount.max(0.0);
        let age =
            |first: Option<i64>| first.map_or(0.0, |o| ((at - o).max(0) as f64 / 86_400.0).ln_1p());
        let src = self.accounts.entry(event.source.clone()).or_default();
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
        let device_new = !event.device.is_empty() && !src.devices.contains(&event.device);
        let mut row = vec![
            amount.ln_1p(),
            channel_is(event, "card_present"),
            channel_is(event, "online"),
            channel_is(event, "mobile"),
            channel_is(event, "transfer"),
            channel_is(event, "salary"),
            (hour / 24.0 * std::f64::consts::TAU).sin(),
            (hour / 24.0 * std::f64::consts::TAU).cos(),
            event.target.starts_with('A') as u8 as f64,
            (8_000.0..10_000.0).contains(&amount) as u8 as f64,
            age(src.first_seen),
            src.out_count.ln_1p(),
            z,
            src.last_out
                .map_or(20.0, |last| ((at - last).max(0) as f64).ln_1p()),
            (src.targets.len() as f64).ln_1p(),
            !src.targets.contains(&event.target) as u8 as f64,
            device_new as u8 as f64,
            src.in_count.ln_1p(),
            if inflow > 0.0 {
                (amount / inflow).min(2.0)
            } else {
                0.0
            },
        ];
        // Update the source before looking at the target (self-transfers see their own update).
        src.first_seen.get_or_insert(at);
        src.out_count += 1.0;
        src.out_sum += amount;
        src.out_sum_sq += amount * amount;
        src.last_out = Some(at);
        src.targets.insert(event.target.clone());
        if !event.device.is_empty() {
            src.devices.insert(event.device.clone());
        }
        let dst = self.accounts.entry(event.target.clone()).or_default();
        row.extend([
            dst.in_count.ln_1p(),
            (dst.sources.len() as f64).ln_1p(),
            dst.out_count.ln_1p(),
            age(dst.first_seen),
        ]);
        dst.first_seen.get_or_insert(at);
        dst.in_count += 1.0;
        dst.sources.insert(event.source.clone());
        dst.recent_in.push((at, amount));
        let shared = match event.device.as_str() {
            "" => 0.0,
            device => {
                let users = self.device_accounts.entry(device.to_string()).or_default();
                users.insert(event.source.clone());
                (users.len() as f64).ln_1p()
            }
        };
        row.push(shared);
        let mut out = [0.0; FEATURE_COUNT];
        for (o, v) in out.iter_mut().zip(row) {
            *o = v as f32;
        }
        out
    }
}

/// The feature matrix (row-major, [`FEATURE_COUNT`] columns) of `transactions`, which must be
/// in time order.
pub fn transaction_features(transactions: &[Transaction]) -> Vec<f32> {
    let mut state = FeatureState::new();
    transactions
        .iter()
        .flat_map(|t| state.next(&Event::from_transaction(t)))
        .collect()
}

//! Account-level AML: a bank's transactions as a heterogeneous graph of accounts, merchants,
//! devices and cards, with pattern features per account, for node classification
//! ([`crate::account_gnn`]).
//!
//! Laundering is a property of accounts and of the patterns they take part in (fan-in, fan-out,
//! cycles, scatter-gather, layering chains), so each account gets features that describe those
//! patterns ([`ACCOUNT_FEATURES`]), and the relations between nodes keep what flowed along them:
//! every (account, counterpart) pair of a relation is one edge carrying aggregates of its
//! transactions ([`PAIR_FEATURES`]). Relations ([`RELATIONS`]): an account transfers to an
//! account, pays a merchant, uses a device, uses a card.
//!
//! The graph holds every transaction it was built from: the account task scores accounts as of
//! the end of the data.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::graph::{channel_code, Event, CHANNELS};
use crate::schema::{Account, Transaction};

/// Node kinds, in the order their nodes are numbered (accounts first).
pub const NODE_KINDS: [&str; 4] = ["account", "merchant", "device", "card"];

/// Relations, each from an account to a node of the kind given by its index in
/// [`NODE_KINDS`].
pub const RELATIONS: [(&str, usize); 4] = [
    ("transfers to", 0),
    ("pays", 1),
    ("uses device", 2),
    ("uses card", 3),
];

/// Features of each account, as of the end of the data. None measures an amount's size: a
/// model that learned one bank's amounts (its launderers structuring under 10,000, say) fails
/// on a bank whose launderers move everyday amounts (measured in docs/fraud.md), so amounts
/// enter only as ratios.
pub const ACCOUNT_FEATURES: &[&str] = &[
    "log_transfers_out",
    "log_transfers_in",
    "log_payments",
    "log_payees",
    "log_payers",
    // Share of account counterparties that both pay and are paid by the account.
    "reciprocity",
    // min(transfers in, transfers out) / max of the two, in amounts: money passing through.
    "flow_through",
    // Median time from the latest incoming transfer to each outgoing one (ln seconds / 16).
    "pass_through_delay",
    // Share of outgoing transfers preceded by an incoming one within three days.
    "forwarded_share",
    "log_max_payers_per_day",
    "log_max_payees_per_day",
    // The account lies on a directed transfer cycle of three or four accounts.
    "on_cycle",
    "salary_share",
    "log_devices",
    // ln(1 + the most accounts that share one of its devices).
    "log_device_sharers",
    "log_cards",
    "log_active_days",
    // Share of its payments between midnight and 6:00; 0 for data without time of day.
    "night_share",
    // Standard deviation / mean of its outgoing transfer amounts.
    "amount_cv_out",
    "merchant_share",
    // Share of outgoing transfers that pass on 90–100% of a transfer received in the five
    // days before (layering less a cut, at any amount).
    "peeled_share",
    // Share of transfer counterparts met only once (one transfer between the two in all).
    "one_off_share",
];

/// Features of merchants, devices and cards.
pub const OTHER_FEATURES: &[&str] = &["log_accounts", "log_transactions", "log_mean_amount"];

/// Features of each edge: aggregates of the pair's transactions (amounts only as a ratio, as
/// for [`ACCOUNT_FEATURES`]).
pub const PAIR_FEATURES: &[&str] = &[
    "log_count",
    // Largest / mean amount of the pair's transactions.
    "max_to_mean_amount",
    "log_span",
    "channel_card_present",
    "channel_online",
    "channel_mobile",
    "channel_transfer",
    "channel_salary",
    "channel_other",
];

/// Seconds in a day: the window of the per-day maxima.
const DAY: i64 = 86_400;
/// An outgoing transfer within this many seconds of an incoming one forwards it.
const FORWARD_WINDOW: i64 = 3 * DAY;
/// An outgoing transfer within this many seconds of an incoming one can pass it on, less a cut.
const PEEL_WINDOW: i64 = 5 * DAY;
/// Out-neighbours followed per step when looking for cycles.
const CYCLE_FANOUT: usize = 50;

/// The edges of one relation: account `source[i]` to node `target[i]` (global node indices),
/// with [`PAIR_FEATURES`] in `x`.
#[derive(Debug, Clone, Default)]
pub struct Relation {
    pub(crate) source: Vec<u32>,
    pub(crate) target: Vec<u32>,
    pub(crate) x: Vec<f32>,
}

/// A bank as a heterogeneous graph with node and edge features and account labels.
#[derive(Debug, Clone)]
pub struct AccountGraph {
    /// Account ids: node `i` is `accounts[i]`.
    pub accounts: Vec<String>,
    /// Number of nodes of each kind of [`NODE_KINDS`].
    pub(crate) counts: [usize; 4],
    /// Node features of each kind, row-major ([`ACCOUNT_FEATURES`] for accounts,
    /// [`OTHER_FEATURES`] otherwise).
    pub(crate) features: [Vec<f32>; 4],
    /// Edges of each relation of [`RELATIONS`].
    pub(crate) relations: [Relation; 4],
    /// Whether each account took part in a transaction.
    pub active: Vec<bool>,
    /// Whether each account is labelled as laundering.
    pub laundering: Vec<bool>,
    /// Each account's typology label (empty when none).
    pub typologies: Vec<String>,
}

/// Running aggregates of one (account, counterpart) pair.
#[derive(Default, Clone)]
struct Pair {
    count: f64,
    sum: f64,
    max: f64,
    first: i64,
    last: i64,
    channels: [f64; 6],
}

impl Pair {
    fn add(&mut self, time: i64, amount: f64, channel: u8) {
        if self.count == 0.0 {
            self.first = time;
        }
        self.count += 1.0;
        self.sum += amount;
        self.max = self.max.max(amount);
        self.first = self.first.min(time);
        self.last = self.last.max(time);
        self.channels[usize::from(channel).min(CHANNELS.len() - 1)] += 1.0;
    }

    fn features(&self) -> impl Iterator<Item = f32> + '_ {
        let c = self.count.max(1.0);
        let mean = self.sum / c;
        [
            self.count.ln_1p(),
            if mean > 0.0 { self.max / mean } else { 1.0 },
            ((self.last - self.first).max(0) as f64).ln_1p() / 16.0,
        ]
        .into_iter()
        .chain(self.channels.iter().map(move |n| n / c))
        .map(|v| v as f32)
    }
}

/// Ids of one node kind, numbered in order of first appearance.
#[derive(Default)]
struct Ids(HashMap<String, u32>, Vec<String>);

impl Ids {
    fn get(&mut self, name: &str) -> u32 {
        if let Some(id) = self.0.get(name) {
            return *id;
        }
        let id = self.1.len() as u32;
        self.0.insert(name.to_string(), id);
        self.1.push(name.to_string());
        id
    }
}

/// One transaction as the account graph reads it.
struct Row<'a> {
    source: &'a str,
    target: &'a str,
    /// Seconds since the Unix epoch.
    time: i64,
    amount: f64,
    /// Channel code (the index in [`CHANNELS`]).
    channel: u8,
    /// Device used, or empty.
    device: &'a str,
    /// Card used, or empty.
    card: &'a str,
}

/// How a merchant, device or card was used: by which accounts, how often, how much.
#[derive(Default, Clone)]
struct Usage {
    accounts: HashSet<u32>,
    count: f64,
    amount: f64,
}

impl Usage {
    fn add(&mut self, account: u32, amount: f64) {
        self.accounts.insert(account);
        self.count += 1.0;
        self.amount += amount;
    }
}

/// What one account did, in time order.
#[derive(Default, Clone)]
struct Activity {
    /// (time, amount, counterpart account).
    transfers_in: Vec<(i64, f64, u32)>,
    transfers_out: Vec<(i64, f64, u32)>,
    payments: usize,
    salary_in: usize,
    night: usize,
    outgoing: usize,
    devices: HashSet<u32>,
    cards: HashSet<u32>,
    first: Option<i64>,
    last: i64,
}

impl Activity {
    /// Widens the account's active period to include `time`.
    fn seen(&mut self, time: i64) {
        self.first = Some(self.first.map_or(time, |f| f.min(time)));
        self.last = self.last.max(time);
    }
}

impl AccountGraph {
    /// The graph of `transactions` (any order) with the labels of `accounts`; accounts that
    /// appear only in transactions are added unlabelled.
    pub fn new(transactions: &[Transaction], accounts: &[Account]) -> Self {
        let rows = transactions.iter().map(|t| Row {
            source: &t.source,
            target: &t.target,
            time: Event::from_transaction(t).time,
            amount: t.amount,
            channel: channel_code(&t.channel),
            device: &t.device_id,
            card: &t.card_id,
        });
        Self::build(rows.collect(), accounts)
    }

    /// The graph of `events` with the labels of `accounts`: what the live transaction graph
    /// keeps (no cards, currencies or merchant categories), so a model trained on it sees the
    /// same inputs when it scores the worker's live graph.
    pub fn from_events(events: &[Event], accounts: &[Account]) -> Self {
        let rows = events.iter().map(|e| Row {
            source: &e.source,
            target: &e.target,
            time: e.time,
            amount: e.amount,
            channel: e.channel,
            device: &e.device,
            card: "",
        });
        Self::build(rows.collect(), accounts)
    }

    /// The graph of `rows` (any order) with the labels of `accounts`.
    fn build(rows: Vec<Row<'_>>, accounts: &[Account]) -> Self {
        let mut ids: [Ids; 4] = Default::default();
        for a in accounts {
            ids[0].get(&a.account_id);
        }
        let mut pairs: [HashMap<(u32, u32), Pair>; 4] = Default::default();
        let mut activity: Vec<Activity> = vec![Activity::default(); accounts.len()];
        let mut others: [HashMap<u32, Usage>; 4] = Default::default();
        let time_of_day = rows.iter().any(|t| t.time.rem_euclid(DAY) != 0);
        for t in &rows {
            let (time, channel) = (t.time, t.channel);
            let source = ids[0].get(t.source);
            let merchant = t.target.starts_with('M');
            let (kind, target) = match merchant {
                true => (1, ids[1].get(t.target)),
                false => (0, ids[0].get(t.target)),
            };
            let needed = ids[0].1.len();
            if activity.len() < needed {
                activity.resize(needed, Activity::default());
            }
            let amount = t.amount.max(0.0);
            pairs[kind]
                .entry((source, target))
                .or_default()
                .add(time, amount, channel);
            for (relation, id) in [(2, t.device), (3, t.card)] {
                if !id.is_empty() {
                    let node = ids[relation].get(id);
                    pairs[relation]
                        .entry((source, node))
                        .or_default()
                        .add(time, amount, channel);
                    others[relation]
                        .entry(node)
                        .or_default()
                        .add(source, amount);
                    let set = match relation {
                        2 => &mut activity[source as usize].devices,
                        _ => &mut activity[source as usize].cards,
                    };
                    set.insert(node);
                }
            }
            let hour = time.rem_euclid(DAY) / 3_600;
            let s = &mut activity[source as usize];
            s.seen(time);
            s.outgoing += 1;
            s.night += usize::from(time_of_day && hour < 6);
            if merchant {
                s.payments += 1;
                others[1].entry(target).or_default().add(source, amount);
            } else {
                s.transfers_out.push((time, amount, target));
                let d = &mut activity[target as usize];
                d.seen(time);
                d.transfers_in.push((time, amount, source));
                d.salary_in += usize::from(CHANNELS[usize::from(channel)] == "salary");
            }
        }
        let n = ids[0].1.len();
        activity.resize(n, Activity::default());
        for a in &mut activity {
            a.transfers_in.sort_by_key(|x| x.0);
            a.transfers_out.sort_by_key(|x| x.0);
        }
        let sharers: HashMap<u32, usize> = (others[2].iter())
            .map(|(device, usage)| (*device, usage.accounts.len()))
            .collect();
        let payees: Vec<BTreeSet<u32>> = (activity.iter())
            .map(|a| a.transfers_out.iter().map(|x| x.2).collect())
            .collect();
        let mut features = Vec::with_capacity(n * ACCOUNT_FEATURES.len());
        for (i, a) in activity.iter().enumerate() {
            features.extend(account_features(i as u32, a, &payees, &sharers));
        }
        let counts = [n, ids[1].1.len(), ids[2].1.len(), ids[3].1.len()];
        let mut node_features: [Vec<f32>; 4] = [features, Vec::new(), Vec::new(), Vec::new()];
        for kind in 1..4 {
            for node in 0..counts[kind] as u32 {
                let usage = others[kind].get(&node).cloned().unwrap_or_default();
                node_features[kind].extend([
                    (usage.accounts.len() as f32).ln_1p(),
                    (usage.count as f32).ln_1p(),
                    ((usage.amount / usage.count.max(1.0)) as f32).ln_1p(),
                ]);
            }
        }
        // Global node index: the kinds one after another.
        let offsets = [0, n, n + counts[1], n + counts[1] + counts[2]];
        let relations = std::array::from_fn(|r| {
            let kind = RELATIONS[r].1;
            let mut sorted: Vec<(&(u32, u32), &Pair)> = pairs[r].iter().collect();
            sorted.sort_by_key(|(k, _)| **k);
            let mut relation = Relation::default();
            for ((s, t), pair) in sorted {
                relation.source.push(*s);
                relation.target.push(*t + offsets[kind] as u32);
                relation.x.extend(pair.features());
            }
            relation
        });
        let mut laundering = vec![false; n];
        let mut typologies = vec![String::new(); n];
        for (i, a) in accounts.iter().enumerate() {
            laundering[i] = a.is_laundering == 1;
            typologies[i] = a.typology.clone();
        }
        Self {
            active: activity.iter().map(|a| a.first.is_some()).collect(),
            accounts: std::mem::take(&mut ids[0].1),
            counts,
            features: node_features,
            relations,
            laundering,
            typologies,
        }
    }

    /// Indices of the accounts that took part in a transaction.
    pub fn active_accounts(&self) -> Vec<usize> {
        (0..self.accounts.len())
            .filter(|i| self.active[*i])
            .collect()
    }

    /// Number of nodes of all kinds.
    pub fn node_count(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Number of edges of all relations.
    pub fn edge_count(&self) -> usize {
        self.relations.iter().map(|r| r.source.len()).sum()
    }

    /// The [`ACCOUNT_FEATURES`] of account `i`.
    pub fn account_features(&self, i: usize) -> &[f32] {
        let f = ACCOUNT_FEATURES.len();
        &self.features[0][i * f..(i + 1) * f]
    }

    /// For every account, the mean [`ACCOUNT_FEATURES`] of the accounts it transfers with
    /// (both directions; zeros when none), row-major: a graph aggregate for tabular models.
    pub fn neighbour_means(&self) -> Vec<f32> {
        let f = ACCOUNT_FEATURES.len();
        let n = self.counts[0];
        let mut sum = vec![0f32; n * f];
        let mut count = vec![0usize; n];
        let transfers = &self.relations[0];
        for (s, t) in transfers.source.iter().zip(&transfers.target) {
            for (node, other) in [(*s as usize, *t as usize), (*t as usize, *s as usize)] {
                count[node] += 1;
                for (acc, v) in sum[node * f..(node + 1) * f]
                    .iter_mut()
                    .zip(self.account_features(other))
                {
                    *acc += v;
                }
            }
        }
        for (node, c) in count.iter().enumerate() {
            for v in &mut sum[node * f..(node + 1) * f] {
                *v /= (*c).max(1) as f32;
            }
        }
        sum
    }
}

/// [`ACCOUNT_FEATURES`] of account `id` from its activity.
fn account_features(
    id: u32,
    a: &Activity,
    payees: &[BTreeSet<u32>],
    sharers: &HashMap<u32, usize>,
) -> [f32; 22] {
    let ins = &a.transfers_in;
    let outs = &a.transfers_out;
    let payers: HashSet<u32> = ins.iter().map(|x| x.2).collect();
    let own_payees = &payees[id as usize];
    let both = own_payees.iter().filter(|p| payers.contains(p)).count();
    let either = payers.len() + own_payees.len() - both;
    let amount_in: f64 = ins.iter().map(|x| x.1).sum();
    let amount_out: f64 = outs.iter().map(|x| x.1).sum();
    let share = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    // Time from the latest incoming transfer to each outgoing one.
    let mut delays: Vec<i64> = outs
        .iter()
        .filter_map(|(time, _, _)| {
            let before = ins.partition_point(|x| x.0 <= *time);
            before.checked_sub(1).map(|i| time - ins[i].0)
        })
        .collect();
    delays.sort_unstable();
    let delay = match delays.get(delays.len() / 2) {
        Some(d) => (*d as f64).ln_1p() / 16.0,
        None => 1.0,
    };
    let forwarded = delays.iter().filter(|d| **d <= FORWARD_WINDOW).count();
    let per_day = |list: &[(i64, f64, u32)]| {
        let (mut best, mut start) = (0, 0);
        for end in 0..list.len() {
            while list[end].0 - list[start].0 >= DAY {
                start += 1;
            }
            best = best.max(end + 1 - start);
        }
        (best as f64).ln_1p()
    };
    let sharers = (a.devices.iter())
        .map(|d| sharers.get(d).copied().unwrap_or(0))
        .max()
        .unwrap_or(0);
    let mean_out = amount_out / outs.len().max(1) as f64;
    let var_out =
        (outs.iter()).map(|x| (x.1 - mean_out).powi(2)).sum::<f64>() / outs.len().max(1) as f64;
    let cv = match mean_out > 0.0 {
        true => (var_out.sqrt() / mean_out).min(5.0),
        false => 0.0,
    };
    let days = a.first.map_or(0.0, |f| (a.last - f) as f64 / DAY as f64);
    let peeled = (outs.iter())
        .filter(|(time, amount, _)| {
            let start = ins.partition_point(|x| x.0 < time - PEEL_WINDOW);
            let end = ins.partition_point(|x| x.0 <= *time);
            ins[start..end]
                .iter()
                .any(|x| *amount <= x.1 && *amount >= 0.9 * x.1)
        })
        .count();
    let mut met: HashMap<u32, usize> = HashMap::new();
    for x in ins.iter().chain(outs) {
        *met.entry(x.2).or_default() += 1;
    }
    let once = met.values().filter(|n| **n == 1).count();
    let values = [
        (outs.len() as f64).ln_1p(),
        (ins.len() as f64).ln_1p(),
        (a.payments as f64).ln_1p(),
        (own_payees.len() as f64).ln_1p(),
        (payers.len() as f64).ln_1p(),
        share(both, either),
        match amount_in.max(amount_out) {
            0.0 => 0.0,
            max => amount_in.min(amount_out) / max,
        },
        delay,
        share(forwarded, outs.len()),
        per_day(ins),
        per_day(outs),
        f64::from(u8::from(on_cycle(id, payees, &payers))),
        share(a.salary_in, ins.len()),
        (a.devices.len() as f64).ln_1p(),
        (sharers as f64).ln_1p(),
        (a.cards.len() as f64).ln_1p(),
        days.ln_1p(),
        share(a.night, a.outgoing),
        cv,
        share(a.payments, a.payments + outs.len()),
        share(peeled, outs.len()),
        share(once, met.len()),
    ];
    values.map(|v| v as f32)
}

/// Whether `id` lies on a directed transfer cycle of three or four distinct accounts
/// (`payers`: the accounts that transferred to it). Two-account cycles are `reciprocity`. Each
/// step follows at most [`CYCLE_FANOUT`] payees (the lowest node ids: deterministic).
fn on_cycle(id: u32, payees: &[BTreeSet<u32>], payers: &HashSet<u32>) -> bool {
    let next = |node: u32| payees[node as usize].iter().take(CYCLE_FANOUT).copied();
    next(id).filter(|b| *b != id).any(|b| {
        next(b).filter(|c| *c != id && *c != b).any(|c| {
            payers.contains(&c)
                || next(c).any(|d| d != id && d != b && d != c && payers.contains(&d))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(source: &str, target: &str, time: &str, amount: f64) -> Transaction {
        Transaction {
            transaction_id: String::new(),
            timestamp: time.into(),
            source: source.into(),
            target: target.into(),
            amount,
            currency: "EUR".into(),
            channel: if target.starts_with('M') {
                "online"
            } else {
                "transfer"
            }
            .into(),
            merchant_category: String::new(),
            card_id: String::new(),
            device_id: "D1".into(),
            is_fraud: 0,
            typology: String::new(),
            pattern_id: String::new(),
        }
    }

    fn feature(graph: &AccountGraph, account: &str, name: &str) -> f32 {
        let i = graph.accounts.iter().position(|a| a == account).unwrap();
        let f = ACCOUNT_FEATURES.iter().position(|f| *f == name).unwrap();
        graph.account_features(i)[f]
    }

    #[test]
    fn patterns_show_in_the_features() {
        // A → B → C → A within hours, amounts just under 10,000; D pays a merchant and gets a
        // transfer from A two days later, at midnight, and pays it back at 7:00.
        let txs = [
            tx("A", "B", "2026-01-01T10:00:00Z", 9_500.0),
            tx("B", "C", "2026-01-01T12:00:00Z", 9_300.0),
            tx("C", "A", "2026-01-01T15:00:00Z", 9_100.0),
            tx("D", "M1", "2026-01-02T01:00:00Z", 20.0),
            tx("A", "D", "2026-01-03T00:00:00Z", 100.0),
            tx("D", "A", "2026-01-03T07:00:00Z", 50.0),
        ];
        let graph = AccountGraph::new(&txs, &[]);
        assert_eq!(graph.counts, [4, 1, 1, 0]);
        for a in ["A", "B", "C"] {
            assert_eq!(feature(&graph, a, "on_cycle"), 1.0, "{a}");
        }
        assert_eq!(feature(&graph, "D", "on_cycle"), 0.0);
        assert_eq!(feature(&graph, "B", "flow_through"), 9_300.0 / 9_500.0);
        assert_eq!(feature(&graph, "B", "forwarded_share"), 1.0);
        // B passes on 98% of what it got; D pays back half of it.
        assert_eq!(feature(&graph, "B", "peeled_share"), 1.0);
        assert_eq!(feature(&graph, "D", "peeled_share"), 0.0);
        // B met A and C once each; D met A twice (the merchant is no counterpart).
        assert_eq!(feature(&graph, "B", "one_off_share"), 1.0);
        assert_eq!(feature(&graph, "D", "one_off_share"), 0.0);
        assert_eq!(feature(&graph, "D", "reciprocity"), 1.0);
        assert_eq!(feature(&graph, "D", "merchant_share"), 0.5);
        assert_eq!(feature(&graph, "D", "night_share"), 0.5);
        // B passes money on two hours after it came in.
        let delay = feature(&graph, "B", "pass_through_delay");
        assert!((delay - (7_201f32).ln() / 16.0).abs() < 1e-5, "{delay}");
        // Four accounts share device D1.
        assert_eq!(feature(&graph, "A", "log_device_sharers"), 5f32.ln());
        // Transfers A → B, B → C, C → A, A → D, D → A; one payment; four device pairs.
        let edges: Vec<usize> = graph.relations.iter().map(|r| r.source.len()).collect();
        assert_eq!(edges, [5, 1, 4, 0]);
    }

    #[test]
    fn time_steps_without_time_of_day_have_no_night() {
        let txs = [
            tx("A", "B", "2026-01-01T00:00:00Z", 10.0),
            tx("B", "A", "2026-01-02T00:00:00Z", 10.0),
        ];
        let graph = AccountGraph::new(&txs, &[]);
        assert_eq!(feature(&graph, "A", "night_share"), 0.0);
    }
}

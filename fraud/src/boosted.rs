//! The boosted-trees baseline: gradient-boosted trees ([forust-ml](https://docs.rs/forust-ml))
//! over the tabular features plus graph aggregates of the transaction's two ends, because
//! published AML results make boosted trees with graph features the bar a GNN must clear.
//! (`perpetual`, the maintained successor, needs a nightly compiler in every release tried:
//! 1.1.1, 2.1.0 and 2.3.0.)

use std::ops::Range;

use forust_ml::objective::ObjectiveType;
use forust_ml::{GradientBooster, Matrix};

use crate::features::FEATURE_COUNT;
use crate::training::Prepared;

/// Names of the graph aggregates after the tabular features.
pub const GRAPH_AGGREGATES: &[&str] = &[
    // The target paid the source before.
    "reciprocal",
    // The transaction closes a cycle of three: target → someone → source before it.
    "closes_3_cycle",
    // ln(1 + accounts within two hops of either end, sampled as the GNN samples them).
    "log_2_hop_accounts",
];

/// Columns: the tabular features, then [`GRAPH_AGGREGATES`].
const COLUMNS: usize = FEATURE_COUNT + GRAPH_AGGREGATES.len();

/// Edges per node looked at for the cycle aggregate.
const CYCLE_FANOUT: usize = 20;

/// Why the trees could not be trained.
#[derive(Debug, thiserror::Error)]
#[error("boosted trees: {0}")]
pub struct BoostedError(String);

/// Gradient-boosted trees for the fraud probability.
pub struct BoostedTrees(GradientBooster);

impl BoostedTrees {
    /// Fits the trees to `rows` of `data`.
    pub fn train(data: &Prepared, rows: Range<usize>) -> Result<Self, BoostedError> {
        let labels: Vec<bool> = data.labels[rows.clone()].iter().map(|l| l.fraud).collect();
        Self::fit(&columns(data, rows), COLUMNS, &labels)
    }

    /// Fraud probabilities of `rows` of `data`.
    pub fn score(&self, data: &Prepared, rows: Range<usize>) -> Vec<f32> {
        self.predict(&columns(data, rows), COLUMNS)
    }

    /// Fits the trees to a column-major matrix of `width` columns, one row per label.
    pub fn fit(columns: &[f64], width: usize, labels: &[bool]) -> Result<Self, BoostedError> {
        let y: Vec<f64> = labels.iter().map(|l| f64::from(u8::from(*l))).collect();
        let x = Matrix::new(columns, y.len(), width);
        let weights = vec![1.0; y.len()];
        let mut booster = GradientBooster::default()
            .set_objective_type(ObjectiveType::LogLoss)
            .set_iterations(200)
            .set_learning_rate(0.1)
            .set_max_depth(6)
            .set_seed(0);
        booster
            .fit(&x, &y, &weights, None)
            .map_err(|e| BoostedError(e.to_string()))?;
        Ok(Self(booster))
    }

    /// Probabilities of the rows of a column-major matrix of `width` columns.
    pub fn predict(&self, columns: &[f64], width: usize) -> Vec<f32> {
        let n = columns.len() / width.max(1);
        let logits = self.0.predict(&Matrix::new(columns, n, width), true);
        logits
            .iter()
            .map(|z| (1.0 / (1.0 + (-z).exp())) as f32)
            .collect()
    }
}

/// The column-major matrix of `rows`: each row's tabular features and graph aggregates, the
/// graph as of that row.
fn columns(data: &Prepared, rows: Range<usize>) -> Vec<f64> {
    let n = rows.len();
    let mut out = vec![0.0; n * COLUMNS];
    for (i, row) in rows.enumerate() {
        let tabular = data.features[row].iter().map(|v| f64::from(*v));
        let aggregates = aggregates(data, row);
        for (c, value) in tabular.chain(aggregates).enumerate() {
            out[c * n + i] = value;
        }
    }
    out
}

/// [`GRAPH_AGGREGATES`] of row `row` (edge `row` of the graph), from what came before it.
fn aggregates(data: &Prepared, row: usize) -> [f64; 3] {
    let graph = &data.graph;
    let event = &data.events[row];
    let before = data.before(row);
    let (Some(source), Some(target)) = (graph.node_id(&event.source), graph.node_id(&event.target))
    else {
        return [0.0; 3];
    };
    let paid_by = |node: u32| graph.recent_edges(node, before, CYCLE_FANOUT).0;
    let reciprocal = paid_by(target)
        .iter()
        .any(|e| graph.edge(*e).target == source);
    let closes_cycle = paid_by(target).iter().any(|e| {
        let middle = graph.edge(*e).target;
        middle != source
            && paid_by(middle)
                .iter()
                .any(|e| graph.edge(*e).target == source)
    });
    let reach = graph
        .sample(&[source, target], before, &[10, 5])
        .nodes
        .len();
    [
        f64::from(u8::from(reciprocal)),
        f64::from(u8::from(closes_cycle)),
        (reach as f64).ln_1p(),
    ]
}

//! Time-respecting neighbourhood sampling into batches: each query transaction brings the
//! `k`-hop neighbourhood of its two ends in the [`TemporalGraph`] before it ([`Before`]), as
//! node and edge features the GNN ([`crate::gnn`]) reads.

use crate::features::FEATURE_COUNT;
use crate::graph::{Before, Event, TemporalGraph, CHANNELS};

/// Features of each node: is a merchant, log out-degree, log in-degree (as of the query time),
/// is the query's source, is the query's target (ego markers).
pub const NODE_FEATURES: usize = 5;
/// Features of each edge: log amount, channel one-hot, log age relative to the query, hour of
/// day (sine, cosine).
pub const EDGE_FEATURES: usize = 4 + CHANNELS.len();

/// Query transactions with their sampled neighbourhoods, ready for [`crate::gnn::FraudGnn`].
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub(crate) tabular: Vec<f32>,
    pub(crate) node_x: Vec<f32>,
    pub(crate) nodes: Vec<Option<u32>>,
    pub(crate) edge_src: Vec<u32>,
    pub(crate) edge_dst: Vec<u32>,
    pub(crate) edge_x: Vec<f32>,
    pub(crate) source: Vec<u32>,
    pub(crate) target: Vec<u32>,
    pub(crate) first_node: Vec<u32>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of query transactions.
    pub fn len(&self) -> usize {
        self.source.len()
    }

    /// Number of nodes over all queries' neighbourhoods (a node sampled by two queries counts
    /// twice).
    pub fn graph_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the batch holds no query.
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// Adds `event` (with its tabular `features`) and its neighbourhood in `graph` as of
    /// `before` (its time, and its place among the transactions of that time), `fanouts[hop]`
    /// edges per node, hop and direction.
    pub fn push(
        &mut self,
        graph: &TemporalGraph,
        event: &Event,
        before: Before,
        features: &[f32; FEATURE_COUNT],
        fanouts: &[usize],
    ) {
        self.tabular.extend_from_slice(features);
        let at = event.time;
        let ends = [graph.node_id(&event.source), graph.node_id(&event.target)];
        let seeds: Vec<u32> = ends.iter().flatten().copied().collect();
        let sub = if fanouts.is_empty() {
            crate::graph::Subgraph {
                nodes: seeds,
                edges: Vec::new(),
            }
        } else {
            graph.sample(&seeds, before, fanouts)
        };
        let base = self.nodes.len() as u32;
        self.first_node.push(base);
        let is_source = |id: u32| (Some(id) == ends[0]) as u8 as f32;
        let is_target = |id: u32| (Some(id) == ends[1]) as u8 as f32;
        for id in &sub.nodes {
            let (out, inc) = graph.degrees(*id, before);
            self.node_x.extend([
                graph.node_name(*id).starts_with('M') as u8 as f32,
                (out as f32).ln_1p(),
                (inc as f32).ln_1p(),
                is_source(*id),
                is_target(*id),
            ]);
            self.nodes.push(Some(*id));
        }
        let mut end_index = |end: Option<u32>, name: &str, flags: [f32; 2]| match end {
            Some(id) => base + sub.nodes.iter().position(|n| *n == id).unwrap_or(0) as u32,
            None => {
                // First time the graph sees this account or merchant: a node with no history.
                self.node_x.extend([
                    name.starts_with('M') as u8 as f32,
                    0.0,
                    0.0,
                    flags[0],
                    flags[1],
                ]);
                self.nodes.push(None);
                self.nodes.len() as u32 - 1
            }
        };
        let source = end_index(ends[0], &event.source, [1.0, 0.0]);
        let target = if event.target == event.source {
            source
        } else {
            end_index(ends[1], &event.target, [0.0, 1.0])
        };
        self.source.push(source);
        self.target.push(target);
        for (s, t, e) in sub.edges {
            let edge = graph.edge(e);
            let hour = edge.time.rem_euclid(86_400) as f32 / 86_400.0 * std::f32::consts::TAU;
            self.edge_src.push(base + s as u32);
            self.edge_dst.push(base + t as u32);
            self.edge_x.push(edge.amount.max(0.0).ln_1p());
            self.edge_x
                .extend((0..CHANNELS.len()).map(|c| (c == edge.channel as usize) as u8 as f32));
            self.edge_x.extend([
                ((at - edge.time).max(0) as f32).ln_1p() / 16.0,
                hour.sin(),
                hour.cos(),
            ]);
        }
    }

    /// The graph node behind node `index` of the batch (`None` for an end seen for the first
    /// time).
    pub(crate) fn graph_node(&self, index: usize) -> Option<u32> {
        self.nodes[index]
    }
}

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

    /// The batch's nodes ordered by their distance (in sampled edges, either direction) from
    /// the nearest query end, for a network of `layers` message-passing layers.
    pub(crate) fn by_distance(&self, layers: usize) -> Layout {
        let n = self.nodes.len();
        let mut start = vec![0usize; n + 1];
        for (s, t) in self.edge_src.iter().zip(&self.edge_dst) {
            start[*s as usize + 1] += 1;
            start[*t as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut neighbours = vec![0u32; start[n]];
        for (s, t) in self.edge_src.iter().zip(&self.edge_dst) {
            for (a, b) in [(s, t), (t, s)] {
                neighbours[fill[*a as usize]] = *b;
                fill[*a as usize] += 1;
            }
        }
        let mut distance = vec![layers; n];
        let mut frontier: Vec<u32> = Vec::new();
        for end in self.source.iter().chain(&self.target) {
            if distance[*end as usize] != 0 {
                distance[*end as usize] = 0;
                frontier.push(*end);
            }
        }
        for hop in 1..layers {
            let mut next = Vec::new();
            for node in frontier {
                let node = node as usize;
                for b in &neighbours[start[node]..start[node + 1]] {
                    if distance[*b as usize] > hop {
                        distance[*b as usize] = hop;
                        next.push(*b);
                    }
                }
            }
            frontier = next;
        }
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|i| distance[*i as usize]);
        let mut position = vec![0u32; n];
        for (new, old) in order.iter().enumerate() {
            position[*old as usize] = new as u32;
        }
        let within = (0..=layers)
            .map(|d| distance.iter().filter(|x| **x <= d).count())
            .collect();
        let at = |index: &[u32]| index.iter().map(|i| position[*i as usize]).collect();
        Layout {
            order,
            within,
            edge_src: at(&self.edge_src),
            edge_dst: at(&self.edge_dst),
            source: at(&self.source),
            target: at(&self.target),
        }
    }

    /// The graph node behind node `index` of the batch (`None` for an end seen for the first
    /// time).
    pub(crate) fn graph_node(&self, index: usize) -> Option<u32> {
        self.nodes[index]
    }
}

/// A batch's nodes reordered so that each message-passing layer updates a prefix: layer `i` of
/// `L` needs new states only for the nodes within `L - 1 - i` edges of a query end (the heads
/// read the ends), and messages from one edge further. Indices below are new positions.
pub(crate) struct Layout {
    /// The batch's node at each new position.
    pub order: Vec<u32>,
    /// `within[d]`: how many nodes lie within `d` edges of an end (`d` up to `L`, which counts
    /// every node).
    pub within: Vec<usize>,
    /// Each edge's source and target, in the batch's edge order.
    pub edge_src: Vec<u32>,
    pub edge_dst: Vec<u32>,
    /// Each query's source and target end.
    pub source: Vec<u32>,
    pub target: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(source: &str, target: &str, time: i64) -> Event {
        Event {
            source: source.into(),
            target: target.into(),
            time,
            amount: 10.0,
            channel: 0,
            device: String::new(),
        }
    }

    /// A chain A1 → A2 → A3 → A4 and a query from A1 to a new account: two layers need new
    /// states for A1 (the end) and A2 (one edge away) only, and read A3 as a sender.
    #[test]
    fn nodes_are_ordered_by_their_distance_from_the_query_ends() {
        let mut graph = TemporalGraph::new();
        let chain = [("A3", "A4", 1), ("A2", "A3", 2), ("A1", "A2", 3)];
        for (s, t, time) in chain {
            graph.add(&event(s, t, time)).unwrap();
        }
        let mut batch = Batch::new();
        let query = event("A1", "A9", 10);
        let fanouts = [5, 5];
        batch.push(
            &graph,
            &query,
            Before::arrived(10),
            &[0.0; FEATURE_COUNT],
            &fanouts,
        );
        let layout = batch.by_distance(2);
        let name = |position: u32| {
            let node = batch.nodes[layout.order[position as usize] as usize];
            node.map_or("new", |id| graph.node_name(id))
        };
        // The ends (A1 and the new A9), then A2, then the rest (A3).
        assert_eq!(layout.within, [2, 3, 4]);
        assert_eq!(name(layout.source[0]), "A1");
        assert_eq!(name(layout.target[0]), "new");
        assert_eq!(name(2), "A2");
        assert_eq!(name(3), "A3");
        let mut sorted = layout.order.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3]);
        // Every edge joins positions in neighbouring (or the same) prefixes.
        for (s, t) in layout.edge_src.iter().zip(&layout.edge_dst) {
            let band = |p: u32| {
                layout
                    .within
                    .iter()
                    .position(|w| (p as usize) < *w)
                    .unwrap()
            };
            assert!(band(*s).abs_diff(band(*t)) <= 1);
        }
    }
}

//! Live scoring: a trained model plus the graph and feature state of every transaction seen so
//! far. Each scored transaction is then added, so the next one sees it; with a graph file, a
//! restart picks up where it stopped.

use std::path::Path;

use crate::features::FeatureState;
use crate::gnn::{Batch, FraudGnn, GnnError, Scored};
use crate::graph::{Event, GraphError, TemporalGraph};

/// Why scoring could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum ScorerError {
    /// The model could not be loaded or run.
    #[error("model: {0}")]
    Model(#[from] GnnError),
    /// The graph store failed.
    #[error("{0}")]
    Graph(#[from] GraphError),
    /// The history could not be copied into place.
    #[error("cannot create {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// A model scoring transactions as they arrive.
pub struct Scorer {
    model: FraudGnn,
    graph: TemporalGraph,
    state: FeatureState,
}

impl Scorer {
    /// Loads the model in `weights`. The graph starts from `history` (a graph file written by
    /// training) when given; with `live`, the graph is kept in that file: created from the
    /// history the first time, reopened as it was afterwards. Without `live` it is in memory.
    pub fn open(
        weights: &Path,
        history: Option<&Path>,
        live: Option<&Path>,
    ) -> Result<Self, ScorerError> {
        let model = FraudGnn::load(weights)?;
        let mut state = FeatureState::new();
        let replay = |e: &Event| {
            state.next(e);
        };
        let graph = match (live, history) {
            (Some(live), history) => {
                if let (false, Some(history)) = (live.exists(), history) {
                    let io = |e: std::io::Error| ScorerError::Io {
                        path: live.display().to_string(),
                        message: e.to_string(),
                    };
                    if let Some(parent) = live.parent() {
                        std::fs::create_dir_all(parent).map_err(io)?;
                    }
                    std::fs::copy(history, live).map_err(io)?;
                }
                TemporalGraph::open(live, replay)?
            }
            (None, Some(history)) => TemporalGraph::read(history, replay)?,
            (None, None) => TemporalGraph::new(),
        };
        Ok(Self {
            model,
            graph,
            state,
        })
    }

    /// Scores `events` in order (each sees the ones before it), with up to `reasons` reasons
    /// each, and adds them to the graph.
    pub fn score(&mut self, events: &[Event], reasons: usize) -> Result<Vec<Scored>, ScorerError> {
        let mut batch = Batch::new();
        let fanouts = self.model.config().fanouts.clone();
        for event in events {
            let features = self.state.next(event);
            batch.push(&self.graph, event, &features, &fanouts);
            self.graph.add(event)?;
        }
        Ok(self.model.score(&batch, &self.graph, reasons)?)
    }

    /// Number of transactions in the graph.
    pub fn transactions(&self) -> usize {
        self.graph.edge_count()
    }
}

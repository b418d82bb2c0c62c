//! Live scoring: a trained model plus the graph and feature state of every transaction seen so
//! far. Each scored transaction is then added, so the next one sees it; with a graph file, a
//! restart picks up where it stopped.
//!
//! A transaction scored with a key (its transaction id) is scored once: the graph saves its
//! outcome in the same store transaction as its edge, and the key again gets that outcome back
//! without touching the graph or the features. So a retry, or a crash between scoring and the
//! caller recording its decision, never adds an edge twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::features::FeatureState;
use crate::gnn::{Batch, FraudGnn, GnnError, Scored};
use crate::graph::{Before, Event, GraphError, TemporalGraph, Unsaved};
use crate::schema::{TYPOLOGIES, UNKNOWN_TYPOLOGY};

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
    #[error("cannot create {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A saved outcome could not be read back.
    #[error("the saved outcome of transaction {key:?} is unreadable")]
    Outcome {
        /// The transaction's key.
        key: String,
    },
}

/// Where a scorer was opened from, to reopen it after a failed batch.
struct Files {
    weights: PathBuf,
    history: Option<PathBuf>,
    live: Option<PathBuf>,
}

/// A model scoring transactions as they arrive.
pub struct Scorer {
    model: FraudGnn,
    graph: TemporalGraph,
    state: FeatureState,
    files: Files,
    /// Memory holds transactions that were not saved (a batch failed half-way): reopen first.
    stale: bool,
}

/// How one row of a batch is answered.
enum Row {
    /// Scored now: index in the model's batch.
    New(usize),
    /// Its key was scored in an earlier call.
    Saved(Box<Scored>),
    /// Its key came earlier in this batch, at this row.
    SameAs(usize),
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
        Self::open_reporting(weights, history, live, |_| {})
    }

    /// [`Scorer::open`], handing each event of the graph it starts from to `replayed`, in
    /// order: for state kept beside the graph, without reading the file a second time.
    pub fn open_reporting(
        weights: &Path,
        history: Option<&Path>,
        live: Option<&Path>,
        mut replayed: impl FnMut(&Event),
    ) -> Result<Self, ScorerError> {
        let model = FraudGnn::load(weights)?;
        let mut state = FeatureState::new();
        let replay = |e: &Event| {
            state.next(e);
            replayed(e);
        };
        let graph = match (live, history) {
            (Some(live), history) => {
                if let (false, Some(history)) = (live.exists(), history) {
                    let io = |source| ScorerError::Io {
                        path: live.display().to_string(),
                        source,
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
            files: Files {
                weights: weights.to_path_buf(),
                history: history.map(Path::to_path_buf),
                live: live.map(Path::to_path_buf),
            },
            stale: false,
        })
    }

    /// Scores `events` in order (each sees the ones before it), with up to `reasons` reasons
    /// each, and adds them to the graph. An event with a key already scored (earlier, or
    /// earlier in `events`) gets that outcome again and is not added twice.
    ///
    /// A batch is saved whole or not at all; after a failure the scorer reopens its graph
    /// before the next batch (without a graph file, that is the history alone).
    pub fn score(
        &mut self,
        events: &[(Option<String>, Event)],
        reasons: usize,
    ) -> Result<Vec<Scored>, ScorerError> {
        self.score_reporting(events, reasons, |_| {})
    }

    /// [`Scorer::score`], handing each event that entered the graph (not those whose key was
    /// scored before) to `added`, in order, once the batch is saved: for state kept beside the
    /// graph.
    pub fn score_reporting(
        &mut self,
        events: &[(Option<String>, Event)],
        reasons: usize,
        mut added: impl FnMut(&Event),
    ) -> Result<Vec<Scored>, ScorerError> {
        if self.stale {
            let files = &self.files;
            *self = Self::open(
                &files.weights,
                files.history.as_deref(),
                files.live.as_deref(),
            )?;
        }
        let mut rows = Vec::with_capacity(events.len());
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut batch = Batch::new();
        let mut unsaved = Vec::new();
        let fanouts = self.model.config().fanouts.clone();
        for (row, (key, event)) in events.iter().enumerate() {
            if let Some(key) = key.as_deref() {
                if let Some(earlier) = first.get(key) {
                    rows.push(Row::SameAs(*earlier));
                    continue;
                }
                if let Some(text) = self.graph.outcome(key)? {
                    let scored = decode(&text).ok_or_else(|| ScorerError::Outcome {
                        key: key.to_string(),
                    })?;
                    rows.push(Row::Saved(Box::new(scored)));
                    continue;
                }
                first.insert(key, row);
            }
            self.stale = true;
            let features = self.state.next(event);
            let before = Before::arrived(event.time);
            batch.push(&self.graph, event, before, &features, &fanouts);
            self.graph.insert_unsaved(event);
            rows.push(Row::New(unsaved.len()));
            unsaved.push(Unsaved {
                event,
                key: key.as_deref(),
                outcome: None,
            });
        }
        let scored = match unsaved.is_empty() {
            true => Vec::new(),
            false => self.model.score(&batch, &self.graph, reasons)?,
        };
        for (u, s) in unsaved.iter_mut().zip(&scored) {
            u.outcome = u.key.map(|_| encode(s));
        }
        self.graph.save(&unsaved)?;
        self.stale = false;
        for u in &unsaved {
            added(u.event);
        }
        let mut out: Vec<Scored> = Vec::with_capacity(rows.len());
        for row in rows {
            let s = match row {
                Row::New(i) => scored[i].clone(),
                Row::Saved(s) => *s,
                Row::SameAs(r) => out[r].clone(),
            };
            out.push(s);
        }
        Ok(out)
    }

    /// Number of transactions in the graph.
    pub fn transactions(&self) -> usize {
        self.graph.edge_count()
    }
}

/// An outcome as the graph saves it (JSON).
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    fraud: f32,
    source_risk: f32,
    target_risk: f32,
    typology: String,
    reasons: Vec<(String, f32)>,
}

fn encode(s: &Scored) -> String {
    serde_json::to_string(&Saved {
        fraud: s.fraud,
        source_risk: s.source_risk,
        target_risk: s.target_risk,
        typology: s.typology.to_string(),
        reasons: s.reasons.clone(),
    })
    .expect("plain data serializes")
}

fn decode(text: &str) -> Option<Scored> {
    let saved: Saved = serde_json::from_str(text).ok()?;
    Some(Scored {
        fraud: saved.fraud,
        source_risk: saved.source_risk,
        target_risk: saved.target_risk,
        typology: (TYPOLOGIES.iter().chain([&UNKNOWN_TYPOLOGY])).find(|t| **t == saved.typology)?,
        reasons: saved.reasons,
    })
}

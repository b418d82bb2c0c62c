//! The fraud GNN: a GraphSAGE-style message-passing network in candle, after IBM's Multi-GNN
//! ideas (reverse message passing, ego markers, edge features), that scores a new transaction
//! from its tabular features and the time-respecting neighbourhood of both of its ends. Nodes
//! are accounts and merchants (the kind is a node feature); cards and devices enter through
//! the tabular features, not as nodes.
//!
//! Each query transaction brings its own sampled subgraph ([`Batch::push`], in
//! [`crate::sampling`]): the `k`-hop
//! neighbourhood of its source and target strictly before its time. Nodes (accounts and
//! merchants) start from [`NODE_FEATURES`]; edges carry [`EDGE_FEATURES`]. Every layer sends
//! messages along each edge (source → target) and against it (target → source) with separate
//! weights, averages them per node and updates the node; a layer computes new states only for
//! the nodes a later layer or the heads read (within one edge fewer of an end per layer left,
//! the batch's `Layout`), which gives the same scores as updating every node, with
//! about a third of the arithmetic for two layers. The heads read the two end nodes plus
//! the standardised tabular features and give:
//! - the transaction's fraud logit (edge classification),
//! - each end account's laundering risk (node classification),
//! - the most likely typology of a fraudulent transaction.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{linear, Linear, VarBuilder, VarMap};

use crate::features::{FEATURES, FEATURE_COUNT};
use crate::graph::TemporalGraph;
pub use crate::sampling::{Batch, EDGE_FEATURES, NODE_FEATURES};
use crate::schema::{TYPOLOGIES, UNKNOWN_TYPOLOGY};

/// Architecture settings, stored with the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct GnnConfig {
    /// Width of node states and of the head.
    pub hidden: usize,
    /// Neighbours sampled per node and hop, in each direction; its length is the number of
    /// message-passing layers (0 = no graph: an MLP over the tabular features).
    pub fanouts: Vec<usize>,
}

impl Default for GnnConfig {
    fn default() -> Self {
        Self {
            hidden: 32,
            fanouts: vec![6, 3],
        }
    }
}

/// One message-passing layer: separate weights for messages along and against edges.
struct Layer {
    along: Linear,
    against: Linear,
    update: Linear,
}

/// The network and the tabular feature scaling it was trained with.
pub struct FraudGnn {
    config: GnnConfig,
    /// Which of [`TYPOLOGIES`] training saw: the only ones the typology head may name.
    trained_typologies: Vec<bool>,
    mean: Tensor,
    std: Tensor,
    node_in: Linear,
    layers: Vec<Layer>,
    head: Linear,
    fraud_out: Linear,
    typology_out: Linear,
    risk_out: Linear,
    device: Device,
}

/// Logits of a batch.
pub(crate) struct Logits {
    /// Transaction fraud, `[batch]`.
    pub fraud: Tensor,
    /// Source account risk, `[batch]`.
    pub source_risk: Tensor,
    /// Target account risk, `[batch]`.
    pub target_risk: Tensor,
    /// Typology, `[batch, TYPOLOGIES.len()]`.
    pub typology: Tensor,
}

/// Why a model could not be loaded, saved or run.
#[derive(Debug, thiserror::Error)]
pub enum GnnError {
    /// candle failed (shapes, missing weights, I/O of the weights file).
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    /// The stored settings are unusable.
    #[error("{0}")]
    Config(String),
}

/// What the model says about one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Fraud probability of the transaction.
    pub fraud: f32,
    /// Laundering risk of the source account.
    pub source_risk: f32,
    /// Laundering risk of the target account.
    pub target_risk: f32,
    /// The most likely typology, were it fraud.
    pub typology: &'static str,
    /// What drove the fraud score up most: `feature <name>` or `neighbour <id>`, with its
    /// contribution to the logit (gradient × input), largest first.
    pub reasons: Vec<(String, f32)>,
}

impl FraudGnn {
    /// A model with weights drawn from `seed` and tabular scaling `mean`/`std`, plus the
    /// variables to train.
    pub(crate) fn init(
        config: &GnnConfig,
        mean: &[f32],
        std: &[f32],
        seed: u64,
    ) -> Result<(Self, VarMap), GnnError> {
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let model = Self::build(
            config,
            mean,
            std,
            VarBuilder::from_varmap(&varmap, DType::F32, &device),
        )?;
        crate::training::seeded_init(&varmap, seed, crate::training::Init::LinearUniform)?;
        Ok((model, varmap))
    }

    fn build(
        config: &GnnConfig,
        mean: &[f32],
        std: &[f32],
        vb: VarBuilder,
    ) -> Result<Self, GnnError> {
        let h = config.hidden;
        if h == 0 || mean.len() != FEATURE_COUNT || std.len() != FEATURE_COUNT {
            return Err(GnnError::Config(format!(
                "hidden must be positive and the scaling must have {FEATURE_COUNT} columns"
            )));
        }
        let device = vb.device().clone();
        let layers = (0..config.fanouts.len())
            .map(|i| {
                let vb = vb.pp(format!("layer{i}"));
                Ok(Layer {
                    along: linear(h + EDGE_FEATURES, h, vb.pp("along"))?,
                    against: linear(h + EDGE_FEATURES, h, vb.pp("against"))?,
                    update: linear(h, h, vb.pp("update"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            trained_typologies: vec![true; TYPOLOGIES.len()],
            mean: Tensor::from_slice(mean, (1, FEATURE_COUNT), &device)?,
            std: Tensor::from_slice(std, (1, FEATURE_COUNT), &device)?,
            node_in: linear(NODE_FEATURES, h, vb.pp("node_in"))?,
            layers,
            head: linear(2 * h + FEATURE_COUNT, h, vb.pp("head"))?,
            fraud_out: linear(h, 1, vb.pp("fraud_out"))?,
            typology_out: linear(h, TYPOLOGIES.len(), vb.pp("typology_out"))?,
            risk_out: linear(h, 1, vb.pp("risk_out"))?,
            device,
        })
    }

    /// The architecture settings.
    pub fn config(&self) -> &GnnConfig {
        &self.config
    }

    /// Limits the typologies the model names to those training saw (`trained[i]` for
    /// [`TYPOLOGIES`]`[i]`); with none, every typology is [`UNKNOWN_TYPOLOGY`].
    pub(crate) fn set_trained_typologies(&mut self, trained: Vec<bool>) {
        self.trained_typologies = trained;
    }

    /// Writes weights, scaling and settings to one safetensors file.
    pub fn save(&self, varmap: &VarMap, path: &Path) -> Result<(), GnnError> {
        let mut tensors = crate::training::weights_and_scaling(varmap, &self.mean, &self.std)?;
        tensors.insert(
            "config.hidden".into(),
            Tensor::new(&[self.config.hidden as u32], &self.device)?,
        );
        let trained: Vec<u32> = (self.trained_typologies.iter())
            .map(|t| u32::from(*t))
            .collect();
        tensors.insert(
            "config.trained_typologies".into(),
            Tensor::from_vec(trained, TYPOLOGIES.len(), &self.device)?,
        );
        let fanouts: Vec<u32> = self.config.fanouts.iter().map(|f| *f as u32).collect();
        tensors.insert(
            "config.fanouts".into(),
            Tensor::from_vec(fanouts.clone(), fanouts.len(), &self.device)?,
        );
        candle_core::safetensors::save(&tensors, path)?;
        Ok(())
    }

    /// Loads a model written by [`FraudGnn::save`].
    pub fn load(path: &Path) -> Result<Self, GnnError> {
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(path, &device)?;
        let get = |name: &str| {
            tensors
                .get(name)
                .ok_or_else(|| GnnError::Config(format!("{} has no '{name}'", path.display())))
        };
        let hidden = get("config.hidden")?.to_vec1::<u32>()?[0] as usize;
        let fanouts = get("config.fanouts")?
            .to_vec1::<u32>()?
            .into_iter()
            .map(|f| f as usize)
            .collect();
        let mean = get("scaling.mean")?.to_vec1::<f32>()?;
        let std = get("scaling.std")?.to_vec1::<f32>()?;
        // Models from before the list was saved name every typology.
        let trained = match tensors.get("config.trained_typologies") {
            Some(t) => t.to_vec1::<u32>()?.into_iter().map(|t| t == 1).collect(),
            None => vec![true; TYPOLOGIES.len()],
        };
        let config = GnnConfig { hidden, fanouts };
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let mut model = Self::build(&config, &mean, &std, vb)?;
        model.trained_typologies = trained;
        Ok(model)
    }

    /// Standardised tabular features of `batch`, `[batch, FEATURE_COUNT]`.
    fn tabular(&self, batch: &Batch) -> candle_core::Result<Tensor> {
        Tensor::from_slice(&batch.tabular, (batch.len(), FEATURE_COUNT), &self.device)?
            .broadcast_sub(&self.mean)?
            .broadcast_div(&self.std)
    }

    fn node_features(&self, batch: &Batch) -> candle_core::Result<Tensor> {
        Tensor::from_slice(
            &batch.node_x,
            (batch.nodes.len(), NODE_FEATURES),
            &self.device,
        )
    }

    /// Logits of `batch` from its standardised tabular features and node features.
    pub(crate) fn forward(
        &self,
        batch: &Batch,
        tabular: &Tensor,
        node_x: &Tensor,
    ) -> candle_core::Result<Logits> {
        let d = &self.device;
        let n = batch.nodes.len();
        let depth = self.layers.len();
        let layout = batch.by_distance(depth);
        let order = Tensor::from_slice(&layout.order, n, d)?;
        let mut h = self
            .node_in
            .forward(&node_x.index_select(&order, 0)?)?
            .relu()?;
        let edges = layout.edge_src.len();
        if edges > 0 && depth > 0 {
            let edge_x = Tensor::from_slice(&batch.edge_x, (edges, EDGE_FEATURES), d)?;
            let inverse_degree = |index: &[u32]| {
                let mut counts = vec![0f32; n];
                for i in index {
                    counts[*i as usize] += 1.0;
                }
                let inv: Vec<f32> = counts.iter().map(|c| 1.0 / c.max(1.0)).collect();
                Tensor::from_vec(inv, (n, 1), d)
            };
            let (inv_in, inv_out) = (
                inverse_degree(&layout.edge_dst)?,
                inverse_degree(&layout.edge_src)?,
            );
            for (i, layer) in self.layers.iter().enumerate() {
                // New states only for the nodes a later layer or the heads read: the first
                // `keep` (see `Layout`); the others are left out of `h` from here on.
                let keep = layout.within[depth - 1 - i];
                let zeros = Tensor::zeros((keep, self.config.hidden), DType::F32, d)?;
                // Mean of ReLU(linear([sender state, edge features])) over the edges into
                // each kept node, in the batch's edge order (so the same sums as over all).
                let mean = |linear: &Linear,
                            from: &[u32],
                            to: &[u32],
                            inverse: &Tensor|
                 -> candle_core::Result<Tensor> {
                    let kept: Vec<u32> = (0..edges as u32)
                        .filter(|e| to[*e as usize] < keep as u32)
                        .collect();
                    if kept.is_empty() {
                        return Ok(zeros.clone());
                    }
                    let pick = |index: &[u32]| -> Vec<u32> {
                        kept.iter().map(|e| index[*e as usize]).collect()
                    };
                    let (from, to) = (pick(from), pick(to));
                    let m = kept.len();
                    let x = edge_x.index_select(&Tensor::from_vec(kept, m, d)?, 0)?;
                    let sender = h.index_select(&Tensor::from_vec(from, m, d)?, 0)?;
                    let message = linear.forward(&Tensor::cat(&[&sender, &x], 1)?)?.relu()?;
                    zeros
                        .index_add(&Tensor::from_vec(to, m, d)?, &message, 0)?
                        .broadcast_mul(&inverse.narrow(0, 0, keep)?)
                };
                // Along each edge: the payer's state reaches the payee; against it: the reverse.
                let incoming = mean(&layer.along, &layout.edge_src, &layout.edge_dst, &inv_in)?;
                let outgoing = mean(&layer.against, &layout.edge_dst, &layout.edge_src, &inv_out)?;
                let own = layer.update.forward(&h.narrow(0, 0, keep)?)?;
                h = ((own + incoming)? + outgoing)?.relu()?;
            }
        }
        let source = Tensor::from_slice(&layout.source, batch.len(), d)?;
        let target = Tensor::from_slice(&layout.target, batch.len(), d)?;
        let (h_source, h_target) = (h.index_select(&source, 0)?, h.index_select(&target, 0)?);
        let z = self
            .head
            .forward(&Tensor::cat(&[&h_source, &h_target, tabular], 1)?)?
            .relu()?;
        Ok(Logits {
            fraud: self.fraud_out.forward(&z)?.squeeze(1)?,
            source_risk: self.risk_out.forward(&h_source)?.squeeze(1)?,
            target_risk: self.risk_out.forward(&h_target)?.squeeze(1)?,
            typology: self.typology_out.forward(&z)?,
        })
    }

    /// Logits of `batch` (training and bulk scoring).
    pub(crate) fn logits(&self, batch: &Batch) -> candle_core::Result<Logits> {
        self.forward(batch, &self.tabular(batch)?, &self.node_features(batch)?)
    }

    /// Fraud probability, source and target risk of every query in `batch`, without reasons.
    pub fn probabilities(&self, batch: &Batch) -> Result<Vec<[f32; 3]>, GnnError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let logits = self.logits(batch)?;
        let [fraud, source, target] = [logits.fraud, logits.source_risk, logits.target_risk]
            .map(|l| candle_nn::ops::sigmoid(&l).and_then(|p| p.to_vec1::<f32>()));
        let (fraud, source, target) = (fraud?, source?, target?);
        Ok((0..batch.len())
            .map(|i| [fraud[i], source[i], target[i]])
            .collect())
    }

    /// The trained typology with the highest logit, or [`UNKNOWN_TYPOLOGY`].
    fn likeliest_typology(&self, logits: &[f32]) -> &'static str {
        (TYPOLOGIES.iter().zip(logits).zip(&self.trained_typologies))
            .filter(|(_, trained)| **trained)
            .max_by(|((_, a), _), ((_, b), _)| a.total_cmp(b))
            .map_or(UNKNOWN_TYPOLOGY, |((name, _), _)| name)
    }

    /// Scores every query in `batch`, with the typology and up to `reasons` reasons each.
    /// Reasons come from one backward pass: gradient × input of the fraud logit with respect
    /// to the standardised tabular features and to each neighbour's node features.
    pub fn score(
        &self,
        batch: &Batch,
        graph: &TemporalGraph,
        reasons: usize,
    ) -> Result<Vec<Scored>, GnnError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let tabular = Var::from_tensor(&self.tabular(batch)?)?;
        let node_x = Var::from_tensor(&self.node_features(batch)?)?;
        let logits = self.forward(batch, tabular.as_tensor(), node_x.as_tensor())?;
        let grads = logits.fraud.sum_all()?.backward()?;
        let attribution = |var: &Var| -> candle_core::Result<Vec<f32>> {
            match grads.get(var.as_tensor()) {
                Some(g) => (g * var.as_tensor())?.sum(1)?.to_vec1(),
                None => Ok(vec![0.0; var.dims()[0]]),
            }
        };
        let feature_attribution = match grads.get(tabular.as_tensor()) {
            Some(g) => (g * tabular.as_tensor())?.to_vec2::<f32>()?,
            None => vec![vec![0.0; FEATURE_COUNT]; batch.len()],
        };
        let node_attribution = attribution(&node_x)?;
        let fraud = candle_nn::ops::sigmoid(&logits.fraud)?.to_vec1::<f32>()?;
        let source = candle_nn::ops::sigmoid(&logits.source_risk)?.to_vec1::<f32>()?;
        let target = candle_nn::ops::sigmoid(&logits.target_risk)?.to_vec1::<f32>()?;
        let typology = logits.typology.to_vec2::<f32>()?;
        Ok((0..batch.len())
            .map(|i| {
                let mut candidates: Vec<(String, f32)> = FEATURES
                    .iter()
                    .zip(&feature_attribution[i])
                    .map(|(name, a)| (format!("feature {name}"), *a))
                    .collect();
                let ends = [batch.source[i], batch.target[i]];
                // Each query's nodes are contiguous, up to the next query's first node.
                let end = batch
                    .first_node
                    .get(i + 1)
                    .map_or(batch.nodes.len(), |n| *n as usize);
                let range = batch.first_node[i] as usize..end;
                for node in range.filter(|n| !ends.contains(&(*n as u32))) {
                    if let Some(id) = batch.graph_node(node) {
                        candidates.push((
                            format!("neighbour {}", graph.node_name(id)),
                            node_attribution[node],
                        ));
                    }
                }
                candidates.retain(|(_, a)| *a > 0.0);
                candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
                candidates.truncate(reasons);
                Scored {
                    fraud: fraud[i],
                    source_risk: source[i],
                    target_risk: target[i],
                    typology: self.likeliest_typology(&typology[i]),
                    reasons: candidates,
                }
            })
            .collect())
    }
}

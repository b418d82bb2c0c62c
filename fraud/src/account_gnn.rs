//! The account-level AML model: node classification over the heterogeneous graph of
//! [`crate::accounts`], trained on account labels directly, full-batch.
//!
//! Each node kind has its own input layer. Every layer sends messages along each relation of
//! [`RELATIONS`] in both directions (account → counterpart and back), with relation- and
//! direction-specific weights that read the sender's state and the edge's
//! [`PAIR_FEATURES`] (R-GCN with edge attributes). Messages are aggregated per node by their
//! mean and standard deviation, with each relation's log degree beside them (after PNA's
//! multiple aggregators and degree scalers); a node's new state is a linear map of its own state
//! and all of that, through ReLU. The head reads an account's final state beside its
//! standardised [`ACCOUNT_FEATURES`]. With no layer it is an MLP over the account features.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{linear, AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::accounts::{AccountGraph, ACCOUNT_FEATURES, OTHER_FEATURES, PAIR_FEATURES, RELATIONS};
use crate::gnn::GnnError;
use crate::metrics::{best_f1_threshold, platt_scaling, pr_auc};
use crate::training::{binary_loss, seeded_init, weights_and_scaling, Init};

/// Architecture and training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountOptions {
    /// Width of node states.
    pub hidden: usize,
    /// Message-passing layers (0: an MLP over the account features).
    pub layers: usize,
    /// Seed of the initial weights.
    pub seed: u64,
    /// Full-batch optimiser steps at most; the weights kept are those of the step with the best
    /// validation PR-AUC.
    pub epochs: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// Share of node states (and of the head's hidden units) zeroed at random in each
    /// training step: without it the network learns the training bank by heart.
    pub dropout: f32,
}

impl AccountOptions {
    /// The defaults with `seed`: width 32, two layers, 300 steps, dropout 0.3.
    pub fn new(seed: u64) -> Self {
        Self {
            hidden: 32,
            layers: 2,
            seed,
            epochs: 300,
            learning_rate: 0.01,
            dropout: 0.3,
        }
    }
}

/// Validation PR-AUC is checked every this many steps.
const CHECK_EVERY: usize = 10;

/// Messages per layer: each relation, along and against.
const MESSAGES: usize = 2 * RELATIONS.len();

/// One layer: per relation and direction, a message from the sender's state (with bias) plus
/// one from the edge's features (`W·[state, edge] = W_s·state + W_e·edge`, computed per node
/// and per edge instead of on a concatenation per edge).
struct Layer {
    from_state: Vec<Linear>,
    from_edge: Vec<Linear>,
    update: Linear,
}

/// The trained account model with its feature scaling, calibration and decision threshold.
pub struct AccountGnn {
    varmap: VarMap,
    hidden: usize,
    /// Platt scaling `(a, b)`: the probability is σ(a·logit + b).
    calibration: (f32, f32),
    threshold: f32,
    mean: Tensor,
    std: Tensor,
    node_in: Vec<Linear>,
    layers: Vec<Layer>,
    head: Linear,
    out: Linear,
}

/// One relation's edges as tensors.
struct RelationTensors {
    source: Tensor,
    target: Tensor,
    x: Tensor,
    /// 1 / in-degree and 1 / out-degree of each node in this relation, `[nodes, 1]`.
    inverse: [Tensor; 2],
}

/// A graph's tensors, built once per graph.
struct GraphTensors {
    features: Vec<Tensor>,
    relations: Vec<Option<RelationTensors>>,
    /// ln(1 + degree) of each node per relation and direction, `[nodes, MESSAGES]`.
    log_degree: Tensor,
    nodes: usize,
}

impl AccountGnn {
    /// The model's layers as variables of a new [`VarMap`] (initialised by candle's defaults).
    fn build(options: &AccountOptions, mean: &[f32], std: &[f32]) -> Result<Self, GnnError> {
        let h = options.hidden;
        if h == 0 {
            return Err(GnnError::Config("hidden must be positive".into()));
        }
        let f = ACCOUNT_FEATURES.len();
        if mean.len() != f || std.len() != f {
            return Err(GnnError::Config(format!(
                "the account model was trained on {} account features; this version computes {f}",
                mean.len()
            )));
        }
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let widths = [
            f,
            OTHER_FEATURES.len(),
            OTHER_FEATURES.len(),
            OTHER_FEATURES.len(),
        ];
        let node_in = (widths.iter().enumerate())
            .map(|(k, w)| linear(*w, h, vb.pp(format!("node_in{k}"))))
            .collect::<candle_core::Result<_>>()?;
        let layers = (0..options.layers)
            .map(|i| {
                let vb = vb.pp(format!("layer{i}"));
                Ok(Layer {
                    from_state: (0..MESSAGES)
                        .map(|m| linear(h, h, vb.pp(format!("state{m}"))))
                        .collect::<candle_core::Result<_>>()?,
                    from_edge: (0..MESSAGES)
                        .map(|m| {
                            let vb = vb.pp(format!("edge{m}"));
                            let w = vb.get_with_hints(
                                (h, PAIR_FEATURES.len()),
                                "weight",
                                candle_nn::init::DEFAULT_KAIMING_NORMAL,
                            )?;
                            Ok(Linear::new(w, None))
                        })
                        .collect::<candle_core::Result<_>>()?,
                    update: linear(h * (1 + 2 * MESSAGES) + MESSAGES, h, vb.pp("update"))?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            varmap,
            hidden: h,
            calibration: (1.0, 0.0),
            threshold: 0.5,
            mean: Tensor::from_slice(mean, (1, f), &device)?,
            std: Tensor::from_slice(std, (1, f), &device)?,
            node_in,
            layers,
            head: linear(h + f, h, vb.pp("head"))?,
            out: linear(h, 1, vb.pp("out"))?,
        })
    }

    /// Trains on the accounts `fit` of `graph` (indices into [`AccountGraph::accounts`]) and
    /// keeps the weights that rank the `validation` accounts best; calibrates the probabilities
    /// and chooses the threshold on the `validation` accounts too (training weighs laundering
    /// accounts up, so raw outputs overstate the risk). `progress` gets a line per check.
    pub fn train(
        graph: &AccountGraph,
        fit: &[usize],
        validation: &[usize],
        options: &AccountOptions,
        mut progress: impl FnMut(&str),
    ) -> Result<Self, GnnError> {
        if options.epochs == 0 {
            return Err(GnnError::Config(
                "the account model needs at least one training step".into(),
            ));
        }
        let labels: Vec<bool> = fit.iter().map(|i| graph.laundering[*i]).collect();
        let positives = labels.iter().filter(|l| **l).count();
        if positives == 0 {
            return Err(GnnError::Config(
                "no training account is labelled as laundering (is_laundering = 1)".into(),
            ));
        }
        let f = ACCOUNT_FEATURES.len();
        let rows: Vec<f32> = fit
            .iter()
            .flat_map(|i| graph.account_features(*i).to_vec())
            .collect();
        let (mean, std) = crate::baseline::scaling(&rows, f);
        let device = Device::Cpu;
        let mut model = Self::build(options, &mean, &std)?;
        let varmap = model.varmap.clone();
        seeded_init(&varmap, options.seed, Init::LinearUniform)?;
        let tensors = model.tensors(graph)?;
        let fit_index = Tensor::from_vec(
            fit.iter().map(|r| *r as u32).collect::<Vec<_>>(),
            fit.len(),
            &device,
        )?;
        let validation_labels: Vec<bool> =
            validation.iter().map(|i| graph.laundering[*i]).collect();
        let weight = ((labels.len() - positives) as f64 / positives as f64).clamp(1.0, 50.0);
        let mut optimizer = AdamW::new(
            varmap.all_vars(),
            ParamsAdamW {
                lr: options.learning_rate,
                weight_decay: 1e-4,
                ..Default::default()
            },
        )?;
        let mut best: Option<(f64, usize, Snapshot)> = None;
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        for step in 1..=options.epochs {
            let logits = model
                .forward(&tensors, Some((options.dropout, &mut rng)))?
                .index_select(&fit_index, 0)?;
            let loss = binary_loss(&logits, &labels, weight)?;
            optimizer.backward_step(&loss)?;
            if step % CHECK_EVERY == 0 || step == options.epochs {
                let scores = model.forward(&tensors, None)?.to_vec1::<f32>()?;
                let picked: Vec<f32> = validation.iter().map(|i| scores[*i]).collect();
                let quality = pr_auc(&picked, &validation_labels);
                if best.as_ref().is_none_or(|(b, _, _)| quality > *b) {
                    best = Some((quality, step, snapshot(&varmap)?));
                }
                if step % (CHECK_EVERY * 5) == 0 {
                    progress(&format!(
                        "step {step}/{}: loss {:.4}, validation PR-AUC {quality:.3}",
                        options.epochs,
                        loss.to_scalar::<f32>()?
                    ));
                }
            }
        }
        if let Some((quality, step, weights)) = best {
            progress(&format!(
                "kept the weights of step {step} (validation PR-AUC {quality:.3})"
            ));
            let vars = varmap.data().lock().expect("varmap lock");
            for (name, tensor) in weights {
                vars[&name].set(&tensor)?;
            }
        }
        let logits = model.forward(&tensors, None)?.to_vec1::<f32>()?;
        let picked: Vec<f32> = validation.iter().map(|i| logits[*i]).collect();
        model.calibration = platt_scaling(&picked, &validation_labels);
        if validation_labels.contains(&true) {
            let calibrated: Vec<f32> = picked.iter().map(|z| model.probability(*z)).collect();
            model.threshold = best_f1_threshold(&calibrated, &validation_labels).0;
        }
        Ok(model)
    }

    /// Trains on a whole bank's `graph`: its active accounts in a `seed`ed order, the last
    /// fifth kept to choose the weights, the calibration and the threshold (as
    /// `vitrine fraud eval --train` does).
    pub fn train_bank(
        graph: &AccountGraph,
        options: &AccountOptions,
        progress: impl FnMut(&str),
    ) -> Result<Self, GnnError> {
        let [fit, validation, _] = crate::eval::split_accounts(graph, options.seed, 1.0);
        Self::train(graph, &fit, &validation, options, progress)
    }

    /// The probability from which an account is flagged: the best F1 on the validation
    /// accounts of training (0.5 when they held no laundering).
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Writes weights, scaling, calibration, threshold and settings to one safetensors file.
    pub fn save(&self, path: &Path) -> Result<(), GnnError> {
        let device = Device::Cpu;
        let mut tensors = weights_and_scaling(&self.varmap, &self.mean, &self.std)?;
        let settings = [self.hidden as u32, self.layers.len() as u32];
        tensors.insert("config.shape".into(), Tensor::new(&settings, &device)?);
        tensors.insert(
            "config.threshold".into(),
            Tensor::new(&[self.threshold], &device)?,
        );
        let (a, b) = self.calibration;
        tensors.insert("config.calibration".into(), Tensor::new(&[a, b], &device)?);
        candle_core::safetensors::save(&tensors, path)?;
        Ok(())
    }

    /// Loads a model written by [`AccountGnn::save`].
    pub fn load(path: &Path) -> Result<Self, GnnError> {
        let mut tensors = candle_core::safetensors::load(path, &Device::Cpu)?;
        let mut take = |name: &str| {
            tensors
                .remove(name)
                .ok_or_else(|| GnnError::Config(format!("{} has no '{name}'", path.display())))
        };
        let shape = take("config.shape")?.to_vec1::<u32>()?;
        let [hidden, layers] = shape[..] else {
            return Err(GnnError::Config(format!(
                "{}: config.shape must hold 2 numbers",
                path.display()
            )));
        };
        let options = AccountOptions {
            hidden: hidden as usize,
            layers: layers as usize,
            ..AccountOptions::new(0)
        };
        let mean = take("scaling.mean")?.to_vec1::<f32>()?;
        let std = take("scaling.std")?.to_vec1::<f32>()?;
        let threshold = take("config.threshold")?.to_vec1::<f32>()?[0];
        let calibration = take("config.calibration")?.to_vec1::<f32>()?;
        let [a, b] = calibration[..] else {
            return Err(GnnError::Config(format!(
                "{}: config.calibration must hold 2 numbers",
                path.display()
            )));
        };
        let mut model = Self::build(&options, &mean, &std)?;
        model.threshold = threshold;
        model.calibration = (a, b);
        for (name, var) in model.varmap.data().lock().expect("varmap lock").iter() {
            var.set(&take(name)?)?;
        }
        Ok(model)
    }

    /// Laundering probability of every account of `graph` (order of
    /// [`AccountGraph::accounts`]), calibrated on the validation accounts of training.
    pub fn score(&self, graph: &AccountGraph) -> Result<Vec<f32>, GnnError> {
        let logits = self
            .forward(&self.tensors(graph)?, None)?
            .to_vec1::<f32>()?;
        Ok(logits.into_iter().map(|z| self.probability(z)).collect())
    }

    /// The calibrated probability of a logit.
    fn probability(&self, logit: f32) -> f32 {
        let (a, b) = self.calibration;
        1.0 / (1.0 + (-(a * logit + b)).exp())
    }

    fn tensors(&self, graph: &AccountGraph) -> candle_core::Result<GraphTensors> {
        let device = &Device::Cpu;
        let nodes = graph.node_count();
        let mut features = Vec::with_capacity(4);
        for (k, x) in graph.features.iter().enumerate() {
            let width = match k {
                0 => ACCOUNT_FEATURES.len(),
                _ => OTHER_FEATURES.len(),
            };
            let t = Tensor::from_slice(x, (graph.counts[k], width), device)?;
            features.push(match k {
                0 => t.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?,
                _ => t,
            });
        }
        let mut log_degree = vec![0f32; nodes * MESSAGES];
        let mut relations = Vec::with_capacity(RELATIONS.len());
        for (r, relation) in graph.relations.iter().enumerate() {
            let edges = relation.source.len();
            let mut degree = [vec![0f32; nodes], vec![0f32; nodes]];
            for (s, t) in relation.source.iter().zip(&relation.target) {
                degree[0][*t as usize] += 1.0;
                degree[1][*s as usize] += 1.0;
            }
            for (d, counts) in degree.iter().enumerate() {
                for (node, c) in counts.iter().enumerate() {
                    log_degree[node * MESSAGES + 2 * r + d] = c.ln_1p();
                }
            }
            if edges == 0 {
                relations.push(None);
                continue;
            }
            let inverse = degree.map(|counts| {
                let inv: Vec<f32> = counts.iter().map(|c| 1.0 / c.max(1.0)).collect();
                Tensor::from_vec(inv, (nodes, 1), device)
            });
            let [to_target, to_source] = inverse;
            relations.push(Some(RelationTensors {
                source: Tensor::from_slice(&relation.source, edges, device)?,
                target: Tensor::from_slice(&relation.target, edges, device)?,
                x: Tensor::from_slice(&relation.x, (edges, PAIR_FEATURES.len()), device)?,
                inverse: [to_target?, to_source?],
            }));
        }
        Ok(GraphTensors {
            features,
            relations,
            log_degree: Tensor::from_vec(log_degree, (nodes, MESSAGES), device)?,
            nodes,
        })
    }

    /// Laundering logits of every account, `[accounts]`; in training, with `dropout`'s share
    /// of node states and head units zeroed, drawn from its generator.
    fn forward(
        &self,
        g: &GraphTensors,
        mut dropout: Option<(f32, &mut ChaCha8Rng)>,
    ) -> candle_core::Result<Tensor> {
        let mut drop = |t: Tensor| match dropout.as_mut() {
            Some((p, rng)) if *p > 0.0 => {
                let scale = 1.0 / (1.0 - *p);
                let mask: Vec<f32> = (0..t.elem_count())
                    .map(|_| if rng.random::<f32>() < *p { 0.0 } else { scale })
                    .collect();
                let mask = Tensor::from_vec(mask, t.shape(), t.device())?;
                t * mask
            }
            _ => Ok(t),
        };
        let starts: Vec<Tensor> = (self.node_in.iter().zip(&g.features))
            .map(|(layer, x)| layer.forward(x)?.relu())
            .collect::<candle_core::Result<_>>()?;
        let mut h = drop(Tensor::cat(&starts, 0)?)?;
        let zeros = Tensor::zeros((g.nodes, self.hidden), DType::F32, h.device())?;
        for layer in &self.layers {
            let mut parts = vec![h.clone()];
            for (r, relation) in g.relations.iter().enumerate() {
                for direction in 0..2 {
                    let Some(rel) = relation else {
                        parts.extend([zeros.clone(), zeros.clone()]);
                        continue;
                    };
                    // Along: the account's state reaches its counterpart; against: the reverse.
                    let (from, to) = match direction {
                        0 => (&rel.source, &rel.target),
                        _ => (&rel.target, &rel.source),
                    };
                    let m = 2 * r + direction;
                    let message = (layer.from_state[m].forward(&h)?.index_select(from, 0)?
                        + layer.from_edge[m].forward(&rel.x)?)?
                    .relu()?;
                    let inverse = &rel.inverse[direction];
                    let mean = zeros.index_add(to, &message, 0)?.broadcast_mul(inverse)?;
                    let square = zeros
                        .index_add(to, &message.sqr()?, 0)?
                        .broadcast_mul(inverse)?;
                    let std = ((square - mean.sqr()?)?.relu()? + 1e-5)?.sqrt()?;
                    parts.extend([mean, std]);
                }
            }
            parts.push(g.log_degree.clone());
            h = drop(layer.update.forward(&Tensor::cat(&parts, 1)?)?.relu()?)?;
        }
        let accounts = g.features[0].dims()[0];
        let z = self
            .head
            .forward(&Tensor::cat(
                &[&h.narrow(0, 0, accounts)?, &g.features[0]],
                1,
            )?)?
            .relu()?;
        self.out.forward(&drop(z)?)?.squeeze(1)
    }
}

/// Every variable's value at one step, by name.
type Snapshot = Vec<(String, Tensor)>;

/// A copy of every variable's current value.
fn snapshot(varmap: &VarMap) -> candle_core::Result<Snapshot> {
    let vars = varmap.data().lock().expect("varmap lock");
    vars.iter()
        .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
        .collect()
}

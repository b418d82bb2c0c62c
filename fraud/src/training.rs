//! Training the fraud GNN on labelled transactions, reproducibly: the same data, settings and
//! seed give the same weights, byte for byte.
//!
//! Every epoch sees every fraudulent training transaction and a fresh sample of normal ones
//! (`negatives_per_positive` each), with positives weighted up to the sampled balance. The loss
//! adds the account-risk heads (laundering labels of both ends) and, on fraud, the typology.
//! After training, the output biases are shifted back by the sampling and weighting, so the
//! probabilities estimate the real odds and thresholds keep their meaning.

use std::collections::HashMap;
use std::ops::Range;

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::features::{FeatureState, FEATURE_COUNT};
use crate::gnn::{Batch, FraudGnn, GnnConfig, GnnError};
use crate::graph::{Before, Event, TemporalGraph};
use crate::schema::{Account, Transaction, TYPOLOGIES};

/// Ground truth of one transaction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Label {
    /// Fraud or laundering.
    pub fraud: bool,
    /// Index in [`TYPOLOGIES`], for fraud.
    pub typology: Option<usize>,
    /// The source account launders.
    pub source_laundering: bool,
    /// The target account launders.
    pub target_laundering: bool,
}

/// Transactions turned into what the model needs: events in time order, their tabular
/// features, the whole temporal graph (sampling only ever looks before a query's time) and
/// the labels.
pub struct Prepared {
    /// Events, in the order of the transactions.
    pub events: Vec<Event>,
    /// Tabular features of each event.
    pub features: Vec<[f32; FEATURE_COUNT]>,
    /// Every event as a graph edge.
    pub graph: TemporalGraph,
    /// Ground truth of each event.
    pub labels: Vec<Label>,
}

impl Prepared {
    /// Prepares `transactions` (in time order) with the laundering labels of `accounts`.
    pub fn new(transactions: &[Transaction], accounts: &[Account]) -> Self {
        let laundering = crate::schema::laundering_ids(accounts);
        let events: Vec<Event> = transactions.iter().map(Event::from_transaction).collect();
        let mut state = FeatureState::new();
        let features = events.iter().map(|e| state.next(e)).collect();
        let mut graph = TemporalGraph::new();
        graph
            .add_all(&events)
            .expect("an in-memory graph has no store to fail");
        let labels = transactions
            .iter()
            .map(|t| Label {
                fraud: t.is_fraud == 1,
                typology: TYPOLOGIES.iter().position(|n| *n == t.typology),
                source_laundering: laundering.contains(t.source.as_str()),
                target_laundering: laundering.contains(t.target.as_str()),
            })
            .collect();
        Self {
            events,
            features,
            graph,
            labels,
        }
    }

    /// What row `row` may see of the graph: event `row` is edge `row`, so it sees the
    /// same-time rows before it.
    pub(crate) fn before(&self, row: usize) -> Before {
        Before {
            time: self.events[row].time,
            edge: row as u32,
        }
    }

    /// The batch of `rows`, sampled with `fanouts`.
    pub fn batch(&self, rows: &[usize], fanouts: &[usize]) -> Batch {
        let mut batch = Batch::new();
        for row in rows {
            batch.push(
                &self.graph,
                &self.events[*row],
                self.before(*row),
                &self.features[*row],
                fanouts,
            );
        }
        batch
    }
}

/// Gives candle's pool of element-wise workers one thread (the calling one) unless
/// `CANDLE_NUM_THREADS` is set; call it before any thread starts (candle reads the size once,
/// at its first operation). The fraud networks' tensors are small: the pool's spin-waiting
/// cost more than it shared, and [`train`] samples its next batch on the other core
/// meanwhile (2 cores: ~6,000 → ~9,500 samples/s, see docs/benchmarks.md). Matrix products
/// still use every core.
pub fn one_element_wise_thread() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Architecture.
    pub config: GnnConfig,
    /// Seed of the initial weights and of the sampling.
    pub seed: u64,
    /// Passes over the positives.
    pub epochs: usize,
    /// Transactions per optimiser step.
    pub batch_size: usize,
    /// Normal transactions sampled per fraudulent one, each epoch.
    pub negatives_per_positive: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
}

impl TrainOptions {
    /// The defaults with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            config: GnnConfig::default(),
            seed,
            epochs: 12,
            batch_size: 256,
            negatives_per_positive: 20,
            learning_rate: 3e-3,
        }
    }
}

/// Trains a model on `rows` of `data`; `progress` gets a line per epoch.
pub fn train(
    data: &Prepared,
    rows: Range<usize>,
    options: &TrainOptions,
    mut progress: impl FnMut(&str),
) -> Result<(FraudGnn, VarMap), GnnError> {
    let (mean, std) =
        crate::baseline::scaling(data.features[rows.clone()].as_flattened(), FEATURE_COUNT);
    let (mut model, varmap) = FraudGnn::init(&options.config, &mean, &std, options.seed)?;
    let mut trained = vec![false; TYPOLOGIES.len()];
    for label in &data.labels[rows.clone()] {
        if let (true, Some(t)) = (label.fraud, label.typology) {
            trained[t] = true;
        }
    }
    model.set_trained_typologies(trained);
    let (positives, negatives): (Vec<usize>, Vec<usize>) =
        rows.clone().partition(|r| data.labels[*r].fraud);
    if positives.is_empty() {
        return Err(nothing_to_learn(data, rows));
    }
    let per_epoch_negatives =
        (positives.len() * options.negatives_per_positive.max(1)).min(negatives.len());
    let positive_weight = (per_epoch_negatives as f64 / positives.len() as f64).clamp(1.0, 50.0);
    let mut optimizer = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: options.learning_rate,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x5eed);
    for epoch in 0..options.epochs {
        let mut order = positives.clone();
        // Normal transactions: a fresh uniform sample each epoch (with replacement).
        order.extend(
            (0..per_epoch_negatives).map(|_| negatives[rng.random_range(0..negatives.len())]),
        );
        order.shuffle(&mut rng);
        let (mut total, mut steps) = (0.0, 0);
        // Batches are sampled on a second thread while the network trains on the previous one.
        std::thread::scope(|scope| -> Result<(), GnnError> {
            let (sender, batches) = std::sync::mpsc::sync_channel(2);
            let order = &order;
            scope.spawn(move || {
                for chunk in order.chunks(options.batch_size.max(1)) {
                    let batch = data.batch(chunk, &options.config.fanouts);
                    if sender.send((chunk, batch)).is_err() {
                        return;
                    }
                }
            });
            for (chunk, batch) in batches {
                let loss = loss(&model, &batch, chunk, data, positive_weight)?;
                optimizer.backward_step(&loss)?;
                total += loss.to_scalar::<f32>()? as f64;
                steps += 1;
            }
            Ok(())
        })?;
        progress(&format!(
            "epoch {}/{}: loss {:.4} over {} transactions",
            epoch + 1,
            options.epochs,
            total / steps.max(1) as f64,
            order.len()
        ));
    }
    // Undo the sampling and weighting in the biases, so the probabilities are calibrated to
    // the real share of fraud (prior correction): training saw positives at
    // `positive_weight × |negatives| / per_epoch_negatives` times their real odds.
    let odds = positive_weight * negatives.len().max(1) as f64 / per_epoch_negatives.max(1) as f64;
    shift_bias(&varmap, "fraud_out.bias", -odds.ln())?;
    shift_bias(&varmap, "risk_out.bias", -RISK_WEIGHT.ln())?;
    Ok((model, varmap))
}

/// The error of training rows without a fraudulent transaction, with what the data does hold.
pub(crate) fn nothing_to_learn(data: &Prepared, rows: Range<usize>) -> GnnError {
    let touching = data.labels[rows]
        .iter()
        .filter(|l| l.source_laundering || l.target_laundering)
        .count();
    let hint = match touching {
        0 => String::new(),
        n => format!(
            "; {n} of them touch accounts labelled as laundering: the account models \
             (`vitrine fraud eval`, `vitrine fraud train --level accounts`) learn from those \
             labels, and --derive-transaction-labels \
             labels each transfer between two laundering accounts as laundering for the \
             transaction models"
        ),
    };
    GnnError::Config(format!(
        "the training transactions hold no fraud or laundering label (is_fraud = 1){hint}"
    ))
}

/// Every variable of `varmap` by name, with a model's feature scaling as `scaling.mean` and
/// `scaling.std`: what a model's safetensors file holds before its settings.
pub(crate) fn weights_and_scaling(
    varmap: &VarMap,
    mean: &Tensor,
    std: &Tensor,
) -> candle_core::Result<HashMap<String, Tensor>> {
    let mut tensors: HashMap<String, Tensor> = (varmap.data().lock())
        .expect("varmap lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    tensors.insert("scaling.mean".into(), mean.flatten_all()?);
    tensors.insert("scaling.std".into(), std.flatten_all()?);
    Ok(tensors)
}

/// Weight of laundering accounts in the risk loss.
const RISK_WEIGHT: f64 = 5.0;

fn shift_bias(varmap: &VarMap, name: &str, by: f64) -> candle_core::Result<()> {
    let data = varmap.data().lock().expect("varmap lock");
    let var = data
        .get(name)
        .ok_or_else(|| candle_core::Error::Msg(format!("no variable {name}")))?;
    var.set(&(var.as_tensor() + by)?)
}

/// Weighted binary cross-entropy of logits `z` against 0/1 `labels`, mean over the batch.
pub(crate) fn binary_loss(
    z: &Tensor,
    labels: &[bool],
    positive_weight: f64,
) -> candle_core::Result<Tensor> {
    let y: Vec<f32> = labels.iter().map(|l| *l as u8 as f32).collect();
    let w: Vec<f32> = labels
        .iter()
        .map(|l| if *l { positive_weight as f32 } else { 1.0 })
        .collect();
    let y = Tensor::from_vec(y, labels.len(), z.device())?;
    let w = Tensor::from_vec(w, labels.len(), z.device())?;
    // softplus(z) − y·z, with a stable softplus.
    let softplus = (z.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    ((softplus - (&y * z)?)? * w)?.mean_all()
}

fn loss(
    model: &FraudGnn,
    batch: &Batch,
    rows: &[usize],
    data: &Prepared,
    positive_weight: f64,
) -> candle_core::Result<Tensor> {
    let labels: Vec<&Label> = rows.iter().map(|r| &data.labels[*r]).collect();
    let logits = model.logits(batch)?;
    let fraud = binary_loss(
        &logits.fraud,
        &labels.iter().map(|l| l.fraud).collect::<Vec<_>>(),
        positive_weight,
    )?;
    let risk = (binary_loss(
        &logits.source_risk,
        &labels
            .iter()
            .map(|l| l.source_laundering)
            .collect::<Vec<_>>(),
        RISK_WEIGHT,
    )? + binary_loss(
        &logits.target_risk,
        &labels
            .iter()
            .map(|l| l.target_laundering)
            .collect::<Vec<_>>(),
        RISK_WEIGHT,
    )?)?;
    let mut total = (fraud + (risk * 0.5)?)?;
    let (with_typology, typologies): (Vec<u32>, Vec<u32>) = labels
        .iter()
        .enumerate()
        .filter_map(|(i, l)| Some((i as u32, l.typology? as u32)))
        .unzip();
    if !with_typology.is_empty() {
        let device = &Device::Cpu;
        let index = Tensor::new(with_typology.as_slice(), device)?;
        let targets = Tensor::new(typologies.as_slice(), device)?;
        let typology =
            candle_nn::loss::cross_entropy(&logits.typology.index_select(&index, 0)?, &targets)?;
        total = (total + (typology * 0.3)?)?;
    }
    Ok(total)
}

/// Fraud probability, source and target risk of `rows`, in batches.
pub fn score_rows(
    model: &FraudGnn,
    data: &Prepared,
    rows: Range<usize>,
) -> Result<Vec<[f32; 3]>, GnnError> {
    let rows: Vec<usize> = rows.collect();
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(512) {
        out.extend(model.probabilities(&data.batch(chunk, &model.config().fanouts))?);
    }
    Ok(out)
}

/// How [`seeded_init`] bounds a variable's uniform draw (`fan_in`: the product of all
/// dimensions but the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Weights ±√(6 / fan-in) (Kaiming-uniform, for ReLU networks), biases zero: the worker's
    /// built-in classifiers.
    KaimingUniform,
    /// Weights ±1/√fan-in (the bound of PyTorch's linear layers), a bias ±1/√(its length): the
    /// fraud GNN, whose calibration after prior correction was measured with it.
    LinearUniform,
}

/// Redraws every variable of `varmap` from `seed` with ChaCha8, in name order, so that
/// training is reproducible (candle's own initialisation cannot be seeded on the CPU). Every
/// model Vitrine trains starts this way; `init` picks the bounds.
pub fn seeded_init(varmap: &VarMap, seed: u64, init: Init) -> candle_core::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vars = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        let var = &vars[name];
        let dims = var.dims().to_vec();
        let weight = dims.len() >= 2;
        let fan_in: usize = match weight {
            true => dims[1..].iter().product(),
            false => dims.first().copied().unwrap_or(1),
        };
        let bound = match (init, weight) {
            (Init::KaimingUniform, true) => (6.0 / fan_in.max(1) as f32).sqrt(),
            (Init::KaimingUniform, false) => 0.0,
            (Init::LinearUniform, _) => 1.0 / (fan_in.max(1) as f32).sqrt(),
        };
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| match bound {
                0.0 => 0.0,
                _ => rng.random_range(-bound..bound),
            })
            .collect();
        var.set(&Tensor::from_vec(values, dims, var.device())?)?;
    }
    Ok(())
}

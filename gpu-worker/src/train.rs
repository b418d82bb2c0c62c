//! The built-in model repository: datasets generated from a seed, the models trained on them
//! with candle, and written as `config.toml` + `1/model.safetensors` folders.
//!
//! - `intent-mlp` (dense): 16 shopper-session features → 4 intents (browse, compare, buy, leave).
//!   Each intent is a mixture of Gaussian clusters, so no linear rule separates them.
//! - `shapes-cnn` (convolutional): 28×28 grey images → circle, square, triangle or cross, at
//!   random positions and sizes with pixel noise.
//! - `fraud-gnn` (graph): the fraud GNN of `vitrine-fraud` and its account-level AML model,
//!   trained on the first 80% of a generated bank, whose transactions are also the graph it
//!   starts from.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};

use crate::config::ModelConfig;
use crate::models::{self, Network};

/// Why training or writing a model failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor operation failed.
    #[error("training failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// Writing the repository failed.
    #[error(transparent)]
    Install(#[from] crate::repository::InstallError),
    /// A built-in configuration is invalid.
    #[error("built-in model: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// A built-in configuration does not build a network.
    #[error("built-in model: {0}")]
    Network(#[from] crate::error::LoadError),
    /// Generating the fraud model's bank failed.
    #[error("generating the fraud bank: {0}")]
    Bank(#[from] vitrine_fraud::GenerateError),
    /// Training or scoring the fraud model failed.
    #[error("fraud model: {0}")]
    Fraud(#[from] vitrine_fraud::gnn::GnnError),
}

/// How one trained model scored.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Model name.
    pub model: String,
    /// What `train_score` and `test_score` measure (`accuracy`, `PR-AUC`).
    pub metric: &'static str,
    /// The metric on the training rows.
    pub train_score: f32,
    /// The metric on held-out rows from the same generator.
    pub test_score: f32,
    /// Training rows.
    pub train_rows: usize,
    /// Wall time of training.
    pub seconds: f32,
}

const INTENT_CONFIG: &str = r#"# Dense classifier: shopper-session features -> intent probabilities (browse, compare, buy, leave).
backend = "candle"
architecture = "mlp"
max_batch_size = 64

[[input]]
name = "features"
datatype = "FP32"
dims = [16]

[[output]]
name = "probabilities"
datatype = "FP32"
dims = [4]

[dynamic_batching]
preferred_batch_size = [64]
max_queue_delay_microseconds = 500
priority_levels = 2          # 1: interactive, 2: bulk
default_priority_level = 1
max_queue_size = 256            # about 50 ms of work: shed load rather than queue it

[instance_group]
count = 1

[parameters]
hidden = 64
"#;

const SHAPES_CONFIG: &str = r#"# Convolutional image classifier: 28x28 grey image -> (circle, square, triangle, cross) probabilities.
backend = "candle"
architecture = "cnn"
max_batch_size = 64

[[input]]
name = "image"
datatype = "FP32"
dims = [1, 28, 28]

[[output]]
name = "probabilities"
datatype = "FP32"
dims = [4]

[dynamic_batching]
preferred_batch_size = [64]
max_queue_delay_microseconds = 2000
priority_levels = 2          # 1: interactive, 2: bulk
default_priority_level = 1
max_queue_size = 256            # about 50 ms of work: shed load rather than queue it

[instance_group]
count = 1

[parameters]
filters = 8
"#;

/// The built-in models and the `config.toml` each is written with.
const BUILTIN: [(&str, &str); 3] = [
    ("intent-mlp", INTENT_CONFIG),
    ("shapes-cnn", SHAPES_CONFIG),
    ("fraud-gnn", crate::models::fraud_gnn::CONFIG),
];

/// Whether `dir` holds every built-in model with the config this version writes: false when
/// one is missing, was written by a version whose tensors differ, or (`fraud-gnn`) holds
/// weights trained on other features.
pub fn builtin_repository_is_current(dir: &Path) -> bool {
    BUILTIN.iter().all(|(name, config)| {
        std::fs::read_to_string(dir.join(name).join("config.toml")).is_ok_and(|t| t == *config)
    }) && crate::models::fraud_gnn::weights_load(&dir.join("fraud-gnn"))
}

/// Trains the built-in models from `seed` and writes them under `dir` as their next versions,
/// each with the built-in `config.toml` (replacing an older one), calling `progress` with a
/// line per stage.
pub fn write_builtin_repository(
    dir: &Path,
    seed: u64,
    mut progress: impl FnMut(&str),
) -> Result<Vec<TrainReport>, TrainError> {
    let mut reports = Vec::new();
    for (name, config_text) in [("intent-mlp", INTENT_CONFIG), ("shapes-cnn", SHAPES_CONFIG)] {
        progress(&format!("training {name} (seed {seed})"));
        let config = ModelConfig::parse(config_text)?;
        let mut rng = Rng::new(seed ^ fnv(name));
        let (train, test) = match name {
            "intent-mlp" => (
                intent_data(&mut rng, 6000, seed)?,
                intent_data(&mut rng, 2000, seed)?,
            ),
            _ => (shapes_data(&mut rng, 2000)?, shapes_data(&mut rng, 1000)?),
        };
        let started = Instant::now();
        let varmap = VarMap::new();
        let network = models::build(
            &config,
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        )?;
        vitrine_fraud::training::seeded_init(
            &varmap,
            seed ^ fnv(name),
            vitrine_fraud::training::Init::KaimingUniform,
        )?;
        let epochs = if name == "intent-mlp" { 12 } else { 8 };
        fit(
            network.as_ref(),
            &varmap,
            &train,
            epochs,
            &mut rng,
            &mut progress,
        )?;
        let report = TrainReport {
            model: name.to_string(),
            metric: "accuracy",
            train_score: accuracy(network.as_ref(), &train)?,
            test_score: accuracy(network.as_ref(), &test)?,
            train_rows: train.1.dims()[0],
            seconds: started.elapsed().as_secs_f32(),
        };
        progress(&format!(
            "{name}: accuracy {:.1}% on {} held-out rows ({:.1}% on training), {:.1} s",
            report.test_score * 100.0,
            test.1.dims()[0],
            report.train_score * 100.0,
            report.seconds
        ));
        crate::repository::install_version(dir, name, config_text, |staging| {
            Ok(varmap.save(staging.join(crate::backend::WEIGHTS_FILE))?)
        })?;
        reports.push(report);
    }
    reports.extend(write_fraud_model(dir, seed, &mut progress)?);
    for (name, config) in BUILTIN {
        // Written beside, then renamed: a watching worker never reads half a config.
        let path = dir.join(name).join("config.toml");
        let staged = dir.join(name).join(".config.toml.new");
        std::fs::write(&staged, config)
            .and_then(|()| std::fs::rename(&staged, &path))
            .map_err(|e| {
                TrainError::Install(crate::repository::InstallError {
                    path: path.clone(),
                    source: e.into(),
                })
            })?;
    }
    Ok(reports)
}

/// Accounts of the generated bank the built-in `fraud-gnn` is trained on.
pub const FRAUD_BANK_ACCOUNTS: usize = 2000;
/// Share of that bank's transactions (the earliest) the model is trained on and starts its
/// graph from; the rest is left for live traffic (demos, tests).
pub const FRAUD_HISTORY_SHARE: f64 = 0.8;

/// The generated bank behind the built-in `fraud-gnn` of `seed`.
pub fn fraud_bank(seed: u64) -> Result<vitrine_fraud::Dataset, TrainError> {
    vitrine_fraud::generate(
        &vitrine_fraud::GenerateConfig::new(FRAUD_BANK_ACCOUNTS, seed),
        |_| {},
    )
    .map_err(TrainError::from)
}

/// Full-batch steps of the built-in account model (fewer than `vitrine fraud train`'s 300:
/// the bank is small, and `vitrine up` trains it on first start).
const BUILTIN_ACCOUNT_STEPS: usize = 150;

/// Trains `fraud-gnn`'s two models on the history of [`fraud_bank`] and installs them under
/// `dir`. The transaction model's held-out PR-AUC is measured on the rest of the bank, the
/// account model's on the accounts of another bank of the same size (the next seed).
fn write_fraud_model(
    dir: &Path,
    seed: u64,
    progress: &mut impl FnMut(&str),
) -> Result<[TrainReport; 2], TrainError> {
    use vitrine_fraud::training::{score_rows, train, Prepared, TrainOptions};
    progress(&format!(
        "training fraud-gnn on a generated bank of {FRAUD_BANK_ACCOUNTS} accounts (seed {seed})"
    ));
    let started = Instant::now();
    let bank = fraud_bank(seed)?;
    let data = Prepared::new(&bank.transactions, &bank.accounts);
    let cut = (bank.transactions.len() as f64 * FRAUD_HISTORY_SHARE) as usize;
    let (model, varmap) = train(&data, 0..cut, &TrainOptions::new(seed), |line| {
        progress(line)
    })?;
    let pr_auc = |rows: std::ops::Range<usize>| -> Result<f32, TrainError> {
        let scores: Vec<f32> = score_rows(&model, &data, rows.clone())?
            .iter()
            .map(|s| s[0])
            .collect();
        let labels: Vec<bool> = data.labels[rows].iter().map(|l| l.fraud).collect();
        Ok(vitrine_fraud::metrics::pr_auc(&scores, &labels) as f32)
    };
    let report = TrainReport {
        model: "fraud-gnn".into(),
        metric: "PR-AUC",
        train_score: pr_auc(0..cut)?,
        test_score: pr_auc(cut..data.events.len())?,
        train_rows: cut,
        seconds: started.elapsed().as_secs_f32(),
    };
    let accounts = write_account_model(&bank, &data.events[..cut], seed, progress)?;
    crate::models::fraud_gnn::install(
        dir,
        "fraud-gnn",
        Some((&model, &varmap)),
        Some(&accounts.0),
        &data.events[..cut],
    )?;
    Ok([report, accounts.1])
}

/// Trains the account model of the built-in `fraud-gnn` on the accounts of `bank` as
/// `history` shows them (what the worker's live graph starts from).
fn write_account_model(
    bank: &vitrine_fraud::Dataset,
    history: &[vitrine_fraud::graph::Event],
    seed: u64,
    progress: &mut impl FnMut(&str),
) -> Result<(vitrine_fraud::account_gnn::AccountGnn, TrainReport), TrainError> {
    use vitrine_fraud::account_gnn::{AccountGnn, AccountOptions};
    use vitrine_fraud::accounts::AccountGraph;
    progress("training fraud-gnn's account model");
    let started = Instant::now();
    let graph = AccountGraph::from_events(history, &bank.accounts);
    let options = AccountOptions {
        epochs: BUILTIN_ACCOUNT_STEPS,
        ..AccountOptions::new(seed)
    };
    let model = AccountGnn::train_bank(&graph, &options, |line| progress(line))?;
    let pr_auc = |graph: &AccountGraph| -> Result<f32, TrainError> {
        let active = graph.active_accounts();
        let scores = model.score(graph)?;
        let picked: Vec<f32> = active.iter().map(|i| scores[*i]).collect();
        let labels: Vec<bool> = active.iter().map(|i| graph.laundering[*i]).collect();
        Ok(vitrine_fraud::metrics::pr_auc(&picked, &labels) as f32)
    };
    let other = fraud_bank(seed + 1)?;
    let other_events: Vec<vitrine_fraud::graph::Event> = (other.transactions.iter())
        .map(vitrine_fraud::graph::Event::from_transaction)
        .collect();
    let report = TrainReport {
        model: "fraud-gnn (accounts)".into(),
        metric: "account PR-AUC",
        train_score: pr_auc(&graph)?,
        test_score: pr_auc(&AccountGraph::from_events(&other_events, &other.accounts))?,
        train_rows: graph.active_accounts().len(),
        seconds: started.elapsed().as_secs_f32(),
    };
    progress(&format!(
        "fraud-gnn's account model: account PR-AUC {:.3} on another bank ({:.3} on its own), {:.1} s",
        report.test_score, report.train_score, report.seconds
    ));
    Ok((model, report))
}

type Dataset = (Tensor, Tensor);

const BATCH: usize = 64;

fn fit(
    network: &dyn Network,
    varmap: &VarMap,
    (xs, ys): &Dataset,
    epochs: usize,
    rng: &mut Rng,
    progress: &mut impl FnMut(&str),
) -> Result<(), TrainError> {
    let mut optimizer = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 0.003,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let rows = ys.dims()[0];
    for epoch in 1..=epochs {
        let mut order: Vec<u32> = (0..rows as u32).collect();
        rng.shuffle(&mut order);
        let mut total = 0.0;
        for chunk in order.chunks(BATCH) {
            let index = Tensor::new(chunk, &Device::Cpu)?;
            let logits = network.forward(&xs.index_select(&index, 0)?)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &ys.index_select(&index, 0)?)?;
            optimizer.backward_step(&loss)?;
            total += loss.to_scalar::<f32>()? * chunk.len() as f32;
        }
        progress(&format!(
            "  epoch {epoch}/{epochs}: loss {:.4}",
            total / rows as f32
        ));
    }
    Ok(())
}

fn accuracy(network: &dyn Network, (xs, ys): &Dataset) -> Result<f32, TrainError> {
    let predicted = network.forward(xs)?.argmax(1)?;
    let correct = predicted
        .eq(ys)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(correct / ys.dims()[0] as f32)
}

/// Session features: each intent is a mixture of three clusters placed by the (fixed) `seed`.
fn intent_data(rng: &mut Rng, rows: usize, seed: u64) -> Result<Dataset, TrainError> {
    const FEATURES: usize = 16;
    let mut centers = Rng::new(seed ^ 0x001f_7e57);
    let clusters: Vec<Vec<f32>> = (0..12)
        .map(|_| {
            (0..FEATURES)
                .map(|_| centers.uniform() * 4.0 - 2.0)
                .collect()
        })
        .collect();
    let mut xs = Vec::with_capacity(rows * FEATURES);
    let mut ys = Vec::with_capacity(rows);
    for _ in 0..rows {
        let cluster = rng.below(12);
        ys.push((cluster % 4) as u32);
        xs.extend(clusters[cluster].iter().map(|c| c + rng.normal() * 1.4));
    }
    Ok((
        Tensor::from_vec(xs, (rows, FEATURES), &Device::Cpu)?,
        Tensor::from_vec(ys, rows, &Device::Cpu)?,
    ))
}

/// Grey 28×28 images of one of four shapes with random size, position, brightness and noise.
fn shapes_data(rng: &mut Rng, rows: usize) -> Result<Dataset, TrainError> {
    const SIDE: usize = 28;
    let mut xs = Vec::with_capacity(rows * SIDE * SIDE);
    let mut ys = Vec::with_capacity(rows);
    for _ in 0..rows {
        let shape = rng.below(4);
        ys.push(shape as u32);
        xs.extend(shape_image(shape, rng));
    }
    Ok((
        Tensor::from_vec(xs, (rows, 1, SIDE, SIDE), &Device::Cpu)?,
        Tensor::from_vec(ys, rows, &Device::Cpu)?,
    ))
}

/// One 28×28 image of shape `kind` (0 circle, 1 square, 2 triangle, 3 cross), values in 0..1.
pub fn shape_image(kind: usize, rng: &mut Rng) -> Vec<f32> {
    const SIDE: usize = 28;
    let r = 5.0 + rng.uniform() * 5.0;
    let cx = r + 1.0 + rng.uniform() * (SIDE as f32 - 2.0 * r - 2.0);
    let cy = r + 1.0 + rng.uniform() * (SIDE as f32 - 2.0 * r - 2.0);
    let brightness = 0.6 + rng.uniform() * 0.4;
    let mut pixels = Vec::with_capacity(SIDE * SIDE);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let inside = match kind {
                0 => dx * dx + dy * dy <= r * r,
                1 => dx.abs() <= r * 0.8 && dy.abs() <= r * 0.8,
                2 => dy <= r * 0.8 && dy >= -r && dx.abs() <= (dy + r) * 0.5,
                _ => {
                    (dx.abs() <= r * 0.25 && dy.abs() <= r)
                        || (dy.abs() <= r * 0.25 && dx.abs() <= r)
                }
            };
            let value = if inside { brightness } else { 0.0 } + rng.normal() * 0.1;
            pixels.push(value.clamp(0.0, 1.0));
        }
    }
    pixels
}

/// A small deterministic generator (SplitMix64) so datasets and weights follow from a seed.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u = self.uniform().max(1e-7);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

//! `fraud-gnn`: the fraud GNN of `vitrine-fraud` served with its live transaction graph. Each
//! row of a request is one transaction; the worker scores it against everything seen before,
//! then adds it to the graph (kept in the worker's state directory, so a restart loses
//! nothing). Tensors (the batch dimension first):
//!
//! - input `ids`, UINT8 `[4, 64]`: source account, target account or merchant, device (may be
//!   empty), transaction id (may be empty), UTF-8, zero-padded. A transaction id already
//!   scored gets its first outcome back and is not added to the graph again. Models installed
//!   before transaction ids declare `[3, 64]` (no id) and still load;
//! - input `event`, FP64 `[3]`: Unix time in seconds, amount, channel code (index in
//!   `vitrine_fraud::graph::CHANNELS`);
//! - output `scores`, FP32 `[3]`: fraud probability, source risk, target risk (an account's
//!   laundering risk: from the account-level AML model when the version has one and has
//!   scored the account, otherwise from the transaction model's risk head);
//! - output `explanation`, UINT8 `[6, 64]`: line 0 the likely typology, then up to five
//!   reasons such as `feature src_new_device +1.82` or `neighbour A000123 +0.40`, zero-padded.
//!
//! A version may also hold the account-level AML model (`accounts.safetensors`). The worker
//! then scores every account of its live graph with it when it loads, and again in the
//! background as transactions arrive (at most every `account_refresh_seconds`, a parameter of
//! `config.toml`, default 10, and at most a tenth of the time); the risks it answers come from
//! the latest such scoring. A version with only the account model is not served (the webhook
//! needs the transaction model) and says so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use vitrine_fraud::account_gnn::AccountGnn;
use vitrine_fraud::accounts::AccountGraph;
use vitrine_fraud::gnn::FraudGnn;
use vitrine_fraud::graph::{Event, CHANNELS};
use vitrine_fraud::scorer::Scorer;

use super::LoadContext;
use crate::backend::{ModelInstance, WEIGHTS_FILE};
use crate::config::{ModelConfig, TensorSpec};
use crate::error::{InferError, LoadError};
use crate::tensor::{DataType, Tensor};

/// Bytes per id and per explanation line.
pub const TEXT_BYTES: usize = 64;
/// Lines of the explanation: the typology and five reasons.
pub const EXPLANATION_LINES: usize = 6;
/// The graph history written by training, in a version folder.
const HISTORY_FILE: &str = "history.sqlite";
/// The account-level AML model, in a version folder (when trained).
const ACCOUNTS_FILE: &str = "accounts.safetensors";

/// Rows of `ids`: source, target, device, transaction id.
const ID_ROWS: usize = 4;
/// Rows of `ids` in models installed before transaction ids.
const LEGACY_ID_ROWS: usize = 3;

/// The tensors a `fraud-gnn` config must declare, with `id_rows` rows of ids.
fn expected(id_rows: usize) -> ([TensorSpec; 2], [TensorSpec; 2]) {
    let spec = |name: &str, datatype, dims: &[usize]| TensorSpec {
        name: name.into(),
        datatype,
        dims: dims.iter().map(|d| *d as i64).collect(),
    };
    (
        [
            spec("ids", DataType::U8, &[id_rows, TEXT_BYTES]),
            spec("event", DataType::F64, &[3]),
        ],
        [
            spec("scores", DataType::F32, &[3]),
            spec(
                "explanation",
                DataType::U8,
                &[EXPLANATION_LINES, TEXT_BYTES],
            ),
        ],
    )
}

/// Loads the model in `version_dir`; its live graph is kept at
/// `<state dir>/graphs/<model>.sqlite` (in memory without a state dir), starting from the
/// version's training history the first time.
pub fn load(
    context: &LoadContext<'_>,
    config: &ModelConfig,
    version_dir: &Path,
) -> Result<Arc<dyn ModelInstance>, LoadError> {
    let live_graph = context
        .state_dir
        .map(|s| s.join("graphs").join(format!("{}.sqlite", context.model)));
    let id_rows = [ID_ROWS, LEGACY_ID_ROWS]
        .into_iter()
        .find(|rows| {
            let (inputs, outputs) = expected(*rows);
            config.inputs == inputs && config.outputs == outputs
        })
        .filter(|_| config.max_batch_size > 0);
    let Some(id_rows) = id_rows else {
        let (inputs, outputs) = expected(ID_ROWS);
        return Err(LoadError::Mismatch(format!(
            "fraud-gnn needs max_batch_size > 0, inputs {inputs:?} and outputs {outputs:?} (see docs/fraud.md)"
        )));
    };
    if !version_dir.join(WEIGHTS_FILE).exists() && version_dir.join(ACCOUNTS_FILE).exists() {
        return Err(LoadError::Mismatch(format!(
            "{} holds only the account-level model ({ACCOUNTS_FILE}, for `vitrine fraud score`); \
             live scoring needs the transaction model ({WEIGHTS_FILE}): train one with \
             transaction labels or --derive-transaction-labels",
            version_dir.display()
        )));
    }
    // The account model (if any) starts from the events the scorer replays.
    let account_model = version_dir.join(ACCOUNTS_FILE).exists();
    let mut events = Vec::new();
    let scorer = open_version(version_dir, live_graph.as_deref(), |e| {
        if account_model {
            events.push(e.clone());
        }
    })?;
    let accounts = LiveAccounts::open(version_dir, events, config, context.model)?;
    Ok(Arc::new(FraudGnnModel {
        scorer: Mutex::new(scorer),
        id_rows,
        accounts,
    }))
}

/// The `config.toml` parameter: the least time between two scorings of the accounts.
const REFRESH_PARAMETER: &str = "account_refresh_seconds";
/// Its default.
const DEFAULT_REFRESH: Duration = Duration::from_secs(10);

struct FraudGnnModel {
    scorer: Mutex<Scorer>,
    /// Rows of the `ids` input: [`ID_ROWS`], or [`LEGACY_ID_ROWS`] without transaction ids.
    id_rows: usize,
    /// The account-level model over the live graph, when the version has one.
    accounts: Option<Arc<LiveAccounts>>,
}

/// The account-level model's view of the live graph.
struct LiveAccounts {
    model: AccountGnn,
    /// Every transaction of the live graph, in order (batches appended once saved).
    events: Mutex<Vec<Event>>,
    /// Laundering probability of each account, from the latest scoring.
    risks: RwLock<Arc<HashMap<String, f32>>>,
}

impl LiveAccounts {
    /// The account model of `version_dir`, if it has one, over `events` (those of the graph
    /// the scorer opened, in order), its accounts scored and kept fresh.
    fn open(
        version_dir: &Path,
        events: Vec<Event>,
        config: &ModelConfig,
        name: &str,
    ) -> Result<Option<Arc<Self>>, LoadError> {
        let path = version_dir.join(ACCOUNTS_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let failed = |e: vitrine_fraud::gnn::GnnError| LoadError::File {
            path: path.clone(),
            source: Box::new(e),
        };
        let model = AccountGnn::load(&path).map_err(failed)?;
        let every = match config.parameters.get(REFRESH_PARAMETER) {
            None => DEFAULT_REFRESH,
            Some(v) => (v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    LoadError::Mismatch(format!(
                        "parameter '{REFRESH_PARAMETER}' must be a non-negative number of seconds"
                    ))
                })?,
        };
        let live = Arc::new(Self {
            model,
            events: Mutex::new(events),
            risks: RwLock::new(Arc::new(HashMap::new())),
        });
        live.refresh().map_err(failed)?;
        Self::keep_fresh(Arc::downgrade(&live), name.to_string(), every);
        Ok(Some(live))
    }

    /// Scores every account of the graph as it is now; returns how many transactions it held.
    fn refresh(&self) -> Result<usize, vitrine_fraud::gnn::GnnError> {
        let started = Instant::now();
        // A copy, so that scoring batches can go on adding to the graph meanwhile.
        let events = self.events.lock().expect("events lock").clone();
        let graph = AccountGraph::from_events(&events, &[]);
        let risks: HashMap<String, f32> = graph
            .accounts
            .iter()
            .cloned()
            .zip(self.model.score(&graph)?)
            .collect();
        tracing::debug!(
            accounts = risks.len(),
            transactions = events.len(),
            seconds = started.elapsed().as_secs_f32(),
            "accounts scored"
        );
        *self.risks.write().expect("risks lock") = Arc::new(risks);
        Ok(events.len())
    }

    /// Rescores the accounts in a background thread while `live` is in use: when the graph
    /// has grown, at most every `every` and at most a tenth of the time.
    fn keep_fresh(live: Weak<Self>, model: String, every: Duration) {
        let spawned = std::thread::Builder::new()
            .name("fraud-accounts".into())
            .spawn(move || {
                let mut scored = live.upgrade().map_or(0, |l| l.events.lock().expect("events lock").len());
                let mut wait = every;
                loop {
                    std::thread::sleep(wait.max(Duration::from_millis(100)));
                    let Some(live) = live.upgrade() else {
                        return;
                    };
                    if live.events.lock().expect("events lock").len() == scored {
                        continue;
                    }
                    let started = Instant::now();
                    match live.refresh() {
                        Ok(transactions) => scored = transactions,
                        Err(e) => tracing::warn!(model = %model, error = %e, "scoring the accounts failed; the previous risks stay"),
                    }
                    wait = every.max(started.elapsed() * 10);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the account scoring thread; risks stay as loaded");
        }
    }
}

fn text(bytes: &[u8], row: usize, what: &str) -> Result<String, InferError> {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    std::str::from_utf8(&bytes[..end])
        .map(str::to_string)
        .map_err(|_| InferError::Invalid(format!("row {row}: {what} is not UTF-8")))
}

/// The events of a batch with their transaction ids, every row checked before any is scored.
fn events(
    ids: &Tensor,
    event: &Tensor,
    id_rows: usize,
) -> Result<Vec<(Option<String>, Event)>, InferError> {
    let values: Vec<f64> = event
        .data
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    ids.data
        .chunks_exact(id_rows * TEXT_BYTES)
        .zip(values.chunks_exact(3))
        .enumerate()
        .map(|(row, (ids, v))| {
            let source = text(&ids[..TEXT_BYTES], row, "the source")?;
            let target = text(&ids[TEXT_BYTES..2 * TEXT_BYTES], row, "the target")?;
            let device = text(&ids[2 * TEXT_BYTES..3 * TEXT_BYTES], row, "the device")?;
            let transaction = match id_rows {
                ID_ROWS => text(&ids[3 * TEXT_BYTES..], row, "the transaction id")?,
                _ => String::new(),
            };
            if source.is_empty() || target.is_empty() {
                return Err(InferError::Invalid(format!(
                    "row {row}: source and target must not be empty"
                )));
            }
            let (time, amount, channel) = (v[0], v[1], v[2]);
            if !time.is_finite() || !amount.is_finite() || amount < 0.0 {
                return Err(InferError::Invalid(format!(
                    "row {row}: time and amount must be finite and the amount not negative"
                )));
            }
            if channel.fract() != 0.0 || !(0.0..CHANNELS.len() as f64).contains(&channel) {
                return Err(InferError::Invalid(format!(
                    "row {row}: channel code {channel} is not one of 0..{}",
                    CHANNELS.len()
                )));
            }
            let event = Event {
                source,
                target,
                time: time as i64,
                amount,
                channel: channel as u8,
                device,
            };
            Ok(((!transaction.is_empty()).then_some(transaction), event))
        })
        .collect()
}

/// `line` zero-padded (or cut at a character boundary) to [`TEXT_BYTES`].
fn padded(line: &str, out: &mut Vec<u8>) {
    let mut end = line.len().min(TEXT_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&line.as_bytes()[..end]);
    out.resize(out.len() + TEXT_BYTES - end, 0);
}

impl ModelInstance for FraudGnnModel {
    fn check(&self, inputs: &[Tensor]) -> Result<(), InferError> {
        events(&inputs[0], &inputs[1], self.id_rows).map(|_| ())
    }

    fn compute(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferError> {
        let events = events(&inputs[0], &inputs[1], self.id_rows)?;
        let mut added = Vec::new();
        let mut scored = self
            .scorer
            .lock()
            .map_err(|_| InferError::Compute("the fraud model failed earlier".into()))?
            .score_reporting(&events, EXPLANATION_LINES - 1, |e| added.push(e.clone()))
            .map_err(|e| InferError::Compute(format!("scoring failed: {e}")))?;
        if let Some(live) = &self.accounts {
            live.events.lock().expect("events lock").extend(added);
            let risks = live.risks.read().expect("risks lock").clone();
            for (s, (_, e)) in scored.iter_mut().zip(&events) {
                s.source_risk = risks.get(&e.source).copied().unwrap_or(s.source_risk);
                s.target_risk = risks.get(&e.target).copied().unwrap_or(s.target_risk);
            }
        }
        let rows = scored.len();
        let scores: Vec<f32> = scored
            .iter()
            .flat_map(|s| [s.fraud, s.source_risk, s.target_risk])
            .collect();
        let mut explanation = Vec::with_capacity(rows * EXPLANATION_LINES * TEXT_BYTES);
        for s in &scored {
            padded(s.typology, &mut explanation);
            for (reason, weight) in &s.reasons {
                padded(&format!("{reason} {weight:+.2}"), &mut explanation);
            }
            let filled = 1 + s.reasons.len();
            explanation.resize(
                explanation.len() + (EXPLANATION_LINES - filled) * TEXT_BYTES,
                0,
            );
        }
        Ok(vec![
            Tensor::from_f32("scores", vec![rows, 3], &scores)?,
            Tensor::new(
                "explanation",
                DataType::U8,
                vec![rows, EXPLANATION_LINES, TEXT_BYTES],
                explanation,
            )?,
        ])
    }
}

/// The `config.toml` written for a new fraud model: the tensors above, dynamic batching.
pub const CONFIG: &str = r#"# Fraud GNN with its live transaction graph (docs/fraud.md).
backend = "candle"
architecture = "fraud-gnn"
max_batch_size = 64

[[input]]
name = "ids"
datatype = "UINT8"
dims = [4, 64]

[[input]]
name = "event"
datatype = "FP64"
dims = [3]

[[output]]
name = "scores"
datatype = "FP32"
dims = [3]

[[output]]
name = "explanation"
datatype = "UINT8"
dims = [6, 64]

[dynamic_batching]
max_queue_delay_microseconds = 500
max_queue_size = 1024

[parameters]
account_refresh_seconds = 10   # least time between two scorings of the accounts
"#;

/// Installs trained models as the next version of `<repository>/<name>`
/// ([`crate::repository::install_version`]): the transaction model with its variables and the
/// account-level model, either or both, with `history` (the transactions they were trained on,
/// in order) as the graph a new live graph starts from. Returns the version folder.
pub fn install(
    repository: &Path,
    name: &str,
    transactions: Option<(&vitrine_fraud::gnn::FraudGnn, &candle_nn::VarMap)>,
    accounts: Option<&AccountGnn>,
    history: &[Event],
) -> Result<PathBuf, crate::repository::InstallError> {
    crate::repository::install_version(repository, name, CONFIG, |staging| {
        if let Some((model, varmap)) = transactions {
            model.save(varmap, &staging.join(WEIGHTS_FILE))?;
        }
        if let Some(model) = accounts {
            model.save(&staging.join(ACCOUNTS_FILE))?;
        }
        let history_path = staging.join(HISTORY_FILE);
        let mut graph = vitrine_fraud::graph::TemporalGraph::open(&history_path, |_| {})?;
        for chunk in history.chunks(10_000) {
            graph.add_all(chunk)?;
        }
        Ok(())
    })
}

/// Whether the newest version in `model_dir` holds a transaction model (what the worker
/// serves).
pub fn serves_transactions(model_dir: &Path) -> bool {
    crate::repository::latest_version(model_dir)
        .is_some_and(|v| model_dir.join(v.to_string()).join(WEIGHTS_FILE).exists())
}

/// Whether the newest version in `model_dir` holds weights this build can load: false when
/// they were trained on features it no longer computes (a feature added to the account model,
/// say), so that the built-in model is trained again.
pub fn weights_load(model_dir: &Path) -> bool {
    let Some(version) = crate::repository::latest_version(model_dir) else {
        return false;
    };
    let dir = model_dir.join(version.to_string());
    let (weights, accounts) = (dir.join(WEIGHTS_FILE), dir.join(ACCOUNTS_FILE));
    (!weights.exists() || FraudGnn::load(&weights).is_ok())
        && (!accounts.exists() || AccountGnn::load(&accounts).is_ok())
}

/// The newest version of a fraud model folder, opened for batch scoring.
pub struct Opened {
    /// The version number.
    pub version: u64,
    /// The transaction model with its graph in memory (started from the version's training
    /// history when asked), if the version has one.
    pub transactions: Option<Scorer>,
    /// The account-level model, if the version has one.
    pub accounts: Option<AccountGnn>,
    /// The version's training history in order, when asked for and stored.
    pub history: Option<Vec<Event>>,
}

/// Opens the newest version of the fraud model in `model_dir`; with `history`, its
/// transaction model's graph starts from the version's training history, which is returned too.
pub fn open_latest(model_dir: &Path, history: bool) -> Result<Opened, LoadError> {
    let version = crate::repository::latest_version(model_dir).ok_or(LoadError::NoVersion)?;
    let version_dir = model_dir.join(version.to_string());
    let weights = version_dir.join(WEIGHTS_FILE);
    let accounts_path = version_dir.join(ACCOUNTS_FILE);
    let history_path = version_dir.join(HISTORY_FILE);
    let mut events = Vec::new();
    let transactions = match (weights.exists(), history) {
        (false, _) => None,
        (true, true) => Some(open_version(&version_dir, None, |e| {
            events.push(e.clone())
        })?),
        (true, false) => Some(Scorer::open(&weights, None, None)?),
    };
    let accounts = match accounts_path.exists() {
        true => Some(
            AccountGnn::load(&accounts_path).map_err(|e| LoadError::File {
                path: accounts_path,
                source: Box::new(e),
            })?,
        ),
        false => None,
    };
    if transactions.is_none() && accounts.is_none() {
        return Err(LoadError::Mismatch(format!(
            "{} holds neither {WEIGHTS_FILE} nor {ACCOUNTS_FILE}",
            version_dir.display()
        )));
    }
    let history = match (history && history_path.exists(), &transactions) {
        (false, _) => None,
        // The scorer replayed the history into `events`.
        (true, Some(_)) => Some(events),
        (true, None) => {
            vitrine_fraud::graph::TemporalGraph::read(&history_path, |e| events.push(e.clone()))
                .map_err(vitrine_fraud::scorer::ScorerError::from)?;
            Some(events)
        }
    };
    Ok(Opened {
        version,
        transactions,
        accounts,
        history,
    })
}

/// Opens one version folder of the fraud model: its weights and its training history (or
/// `live_graph`), handing each event it replays to `replayed`.
fn open_version(
    version_dir: &Path,
    live_graph: Option<&Path>,
    replayed: impl FnMut(&Event),
) -> Result<Scorer, LoadError> {
    let history = version_dir.join(HISTORY_FILE);
    Scorer::open_reporting(
        &version_dir.join(WEIGHTS_FILE),
        history.exists().then_some(history.as_path()),
        live_graph,
        replayed,
    )
    .map_err(LoadError::from)
}

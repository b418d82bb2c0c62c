//! Per-model scheduling: a bounded queue per priority level, dynamic batching on the batch
//! dimension, per-request deadlines, and one OS thread per model instance.
//!
//! A request waits at most `max_queue_delay` for others to share its batch; the batch is
//! computed as soon as it reaches the largest preferred size (or `max_batch_size`). Requests
//! whose deadline passes while queued are answered with a timeout and never computed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::backend::{ModelInstance, Options};
use crate::config::{DynamicBatching, ModelConfig};
use crate::error::InferError;
use crate::metrics::Metrics;
use crate::tensor::Tensor;

/// One inference request as the scheduler sees it: inputs in config order, batch dimension first.
pub struct Request {
    /// Inputs ordered as the model config lists them.
    pub inputs: Vec<Tensor>,
    /// Priority level (1 is highest); 0 takes the model's default.
    pub priority: u32,
    /// Time the request may wait in the queue; `None` takes the model's default.
    pub timeout: Option<Duration>,
    /// The request's parameters: those the model takes ([`ModelInstance::options`]) are
    /// passed to it; the others are the protocol's.
    pub parameters: vitrine_oip::messages::Parameters,
}

/// The queue and instance threads of one loaded model.
pub struct Scheduler {
    shared: Arc<Shared>,
    instance: Arc<dyn ModelInstance>,
}

struct Shared {
    model: String,
    policy: DynamicBatching,
    batching: bool,
    max_batch_size: usize,
    queue: Mutex<Queue>,
    wake: Condvar,
    metrics: Arc<Metrics>,
}

struct Queue {
    levels: Vec<VecDeque<Job>>,
    len: usize,
    closed: bool,
}

struct Job {
    inputs: Vec<Tensor>,
    options: Options,
    rows: usize,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    enqueued: Instant,
    state: Arc<JobState>,
    reply: oneshot::Sender<Result<Vec<Tensor>, InferError>>,
}

impl Scheduler {
    /// Starts `config.instance_group.count` threads computing with `instance`.
    pub fn start(
        name: &str,
        config: &ModelConfig,
        instance: Arc<dyn ModelInstance>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let policy = config.batching();
        metrics.set_queue_depth(name, 0);
        let levels = (0..policy.priority_levels)
            .map(|_| VecDeque::new())
            .collect();
        let shared = Arc::new(Shared {
            model: name.to_string(),
            batching: config.dynamic_batching.is_some(),
            max_batch_size: config.max_batch_size,
            policy,
            queue: Mutex::new(Queue {
                levels,
                len: 0,
                closed: false,
            }),
            wake: Condvar::new(),
            metrics,
        });
        for i in 0..config.instance_group.count {
            let shared = shared.clone();
            let instance = instance.clone();
            std::thread::Builder::new()
                .name(format!("model-{name}-{i}"))
                .spawn(move || shared.run(instance.as_ref()))
                .expect("spawning a model instance thread");
        }
        Self { shared, instance }
    }

    /// Queues `request` and waits for its outputs, its deadline, or a full queue.
    pub async fn infer(&self, request: Request) -> Result<Vec<Tensor>, InferError> {
        let shared = &self.shared;
        let rows = if shared.max_batch_size > 0 {
            request.inputs[0].shape[0]
        } else {
            1
        };
        let timeout = request.timeout.or_else(|| {
            let default = shared.policy.default_timeout_microseconds;
            (default > 0).then(|| Duration::from_micros(default))
        });
        let now = Instant::now();
        let deadline = timeout.map(|t| now + t);
        let level = match request.priority {
            0 => shared.policy.default_priority_level,
            p if p > shared.policy.priority_levels => {
                return Err(InferError::Invalid(format!(
                    "priority {p} is out of range: model '{}' has priority levels 1..={}",
                    shared.model, shared.policy.priority_levels
                )))
            }
            p => p,
        };
        // Refuse a bad request here, alone, rather than fail the batch it would join.
        self.instance.check(&request.inputs)?;
        let mut options = Options::new();
        for name in self.instance.options() {
            if let Some(value) = request.parameters.get(*name) {
                let text = value.as_str().ok_or_else(|| {
                    InferError::Invalid(format!("parameter '{name}' must be a string"))
                })?;
                options.insert(name.to_string(), text.to_string());
            }
        }
        self.instance.check_options(&options)?;
        let (reply, answer) = oneshot::channel();
        let state = Arc::new(JobState::default());
        {
            let mut queue = shared.queue.lock().unwrap();
            if queue.len >= shared.policy.max_queue_size {
                return Err(InferError::QueueFull(format!(
                    "model '{}' has {} requests queued, its max_queue_size; retry later",
                    shared.model, queue.len
                )));
            }
            queue.levels[level as usize - 1].push_back(Job {
                inputs: request.inputs,
                options,
                rows,
                timeout,
                deadline,
                enqueued: now,
                state: state.clone(),
                reply,
            });
            queue.len += 1;
            shared.metrics.set_queue_depth(&shared.model, queue.len);
        }
        shared.wake.notify_one();
        // Dropping this future (client gone) cancels the job if it has not started.
        let _cancel_on_drop = CancelOnDrop(state.clone());
        let mut answer = answer;
        let answer = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), &mut answer).await {
                Ok(answer) => answer,
                // The deadline bounds the wait in the queue: a job already computing is awaited.
                Err(_) if !state.cancel() => answer.await,
                Err(_) => return Err(timeout_error(&shared.model, timeout.unwrap_or_default())),
            },
            None => answer.await,
        };
        answer.unwrap_or_else(|_| {
            Err(InferError::Unavailable(format!(
                "model '{}' was unloaded",
                shared.model
            )))
        })
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // Instance threads finish what is queued, then exit.
        self.shared.queue.lock().unwrap().closed = true;
        self.shared.wake.notify_all();
    }
}

/// Where a job is: queued, taken into a batch, cancelled by its caller, or abandoned by its
/// caller while computing. The scheduler and the caller race for the change from queued;
/// whoever wins decides.
#[derive(Default)]
struct JobState(AtomicU8);

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const CANCELLED: u8 = 2;
const ABANDONED: u8 = 3;

impl JobState {
    /// Marks the job taken for computation; false if its caller cancelled it first.
    fn start(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Cancels the job; false if it has already started.
    fn cancel(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            || self.0.load(Ordering::Acquire) == CANCELLED
    }

    /// The caller has gone: a queued job is cancelled, a computing one marked abandoned.
    fn leave(&self) {
        if !self.cancel() {
            let _ =
                self.0
                    .compare_exchange(STARTED, ABANDONED, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// Whether the caller went away while the job was computing.
    fn abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire) == ABANDONED
    }
}

/// Dropped with the caller's future: the job is cancelled if queued, abandoned if computing.
struct CancelOnDrop(Arc<JobState>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.leave();
    }
}

fn timeout_error(model: &str, timeout: Duration) -> InferError {
    InferError::Timeout(format!(
        "request to model '{model}' timed out after {} µs in the queue",
        timeout.as_micros()
    ))
}

impl Shared {
    /// An instance thread: take batches until the scheduler is dropped and the queue drained.
    fn run(&self, instance: &dyn ModelInstance) {
        while let Some(batch) = self.next_batch() {
            self.compute(instance, batch);
        }
    }

    /// Blocks until a batch is due; `None` once closed and empty.
    fn next_batch(&self) -> Option<Vec<Job>> {
        let target = self
            .policy
            .preferred_batch_size
            .iter()
            .copied()
            .max()
            .unwrap_or(self.max_batch_size);
        let mut queue = self.queue.lock().unwrap();
        loop {
            while queue.len == 0 {
                if queue.closed {
                    return None;
                }
                queue = self.wake.wait(queue).unwrap();
            }
            if self.batching {
                let due =
                    queue.oldest().expect("queue is not empty") + self.policy.max_queue_delay();
                loop {
                    let now = Instant::now();
                    if now >= due || queue.closed || queue.ready_rows(self.max_batch_size) >= target
                    {
                        break;
                    }
                    queue = self.wake.wait_timeout(queue, due - now).unwrap().0;
                }
            }
            let max_rows = if self.batching {
                self.max_batch_size
            } else {
                0
            };
            let (batch, dead) = queue.take(max_rows, Instant::now());
            self.metrics.set_queue_depth(&self.model, queue.len);
            for (job, expired) in dead {
                self.answer_dead(job, expired);
            }
            if !batch.is_empty() {
                return Some(batch);
            }
        }
    }

    /// Answers a job that will not be computed: its deadline passed, or its caller went away.
    fn answer_dead(&self, job: Job, expired: bool) {
        if expired {
            self.metrics.record_error(&self.model, "timeout");
            let timeout = job.timeout.unwrap_or_default();
            let _ = job.reply.send(Err(timeout_error(&self.model, timeout)));
        } else {
            self.metrics.record_error(&self.model, "cancelled");
        }
    }

    fn compute(&self, instance: &dyn ModelInstance, batch: Vec<Job>) {
        let started = Instant::now();
        for job in &batch {
            self.metrics
                .record_queue_time(&self.model, started - job.enqueued);
        }
        let rows: usize = batch.iter().map(|j| j.rows).sum();
        // A computation that can stop part-way stops once none of its results is wanted: each
        // job's caller has gone or its deadline has passed.
        let stop = || {
            let now = Instant::now();
            batch
                .iter()
                .all(|j| j.state.abandoned() || j.deadline.is_some_and(|d| d <= now))
        };
        // The jobs of a batch agree on their options (see `take`).
        let options = &batch[0].options;
        let result = if batch.len() == 1 {
            instance.compute_with(&batch[0].inputs, options, &stop)
        } else {
            concat(&batch).and_then(|inputs| instance.compute_with(&inputs, options, &stop))
        };
        self.metrics
            .record_batch(&self.model, rows, batch.len(), started.elapsed());
        match result {
            Ok(outputs) if batch.len() == 1 => {
                let _ = batch.into_iter().next().unwrap().reply.send(Ok(outputs));
            }
            Ok(outputs) => {
                let mut offset = 0;
                for job in batch {
                    let _ = job.reply.send(split(&outputs, offset, job.rows, rows));
                    offset += job.rows;
                }
            }
            Err(InferError::Abandoned(reason)) => {
                tracing::info!(model = %self.model, reason, "computation stopped: no result wanted");
                for job in batch {
                    if job.state.abandoned() {
                        self.metrics.record_error(&self.model, "cancelled");
                        continue;
                    }
                    self.metrics.record_error(&self.model, "timeout");
                    let timeout = job.timeout.unwrap_or_default().as_micros();
                    let _ = job.reply.send(Err(InferError::Timeout(format!(
                        "request to model '{}' passed its deadline ({timeout} µs) while computing: {reason}",
                        self.model
                    ))));
                }
            }
            Err(err) => {
                tracing::warn!(model = %self.model, error = %err, "batch failed");
                let alone = batch.len() == 1;
                for job in batch {
                    self.metrics.record_error(&self.model, err.kind());
                    // A request computed alone gets the error as it is; one in a shared batch
                    // learns that the batch failed.
                    let answer = if alone {
                        err.clone()
                    } else {
                        InferError::Compute(err.to_string())
                    };
                    let _ = job.reply.send(Err(answer));
                }
            }
        }
    }
}

impl Queue {
    fn oldest(&self) -> Option<Instant> {
        self.levels
            .iter()
            .filter_map(|l| l.front().map(|j| j.enqueued))
            .min()
    }

    /// Rows that the next batch would hold, taking whole jobs in priority order.
    fn ready_rows(&self, max_rows: usize) -> usize {
        let mut rows = 0;
        for job in self.levels.iter().flatten() {
            if rows + job.rows > max_rows {
                break;
            }
            rows += job.rows;
        }
        rows
    }

    /// Removes the next batch: whole live jobs in priority order up to `max_rows` (0: just one
    /// job), and the dead jobs (expired or abandoned, with whether they expired) met on the way.
    fn take(&mut self, max_rows: usize, now: Instant) -> (Vec<Job>, Vec<(Job, bool)>) {
        let mut batch = Vec::new();
        let mut dead = Vec::new();
        let mut rows = 0;
        'levels: for level in &mut self.levels {
            while let Some(job) = level.front() {
                let expired = job.deadline.is_some_and(|d| d <= now);
                // Only jobs whose inputs have the same shape (variable-size dimensions) and
                // that ask for the same options can be computed together; a different one
                // waits for the next batch, keeping its place.
                let apart = |first: &Job| {
                    (max_rows == 0 || rows + job.rows > max_rows)
                        || !same_row_shapes(&first.inputs, &job.inputs)
                        || first.options != job.options
                };
                if !expired && batch.first().is_some_and(apart) {
                    break 'levels;
                }
                // A job whose deadline passed, or whose caller gave up, is not started.
                if expired || !job.state.start() {
                    job.state.cancel();
                    dead.push((level.pop_front().unwrap(), expired));
                    continue;
                }
                rows += job.rows;
                batch.push(level.pop_front().unwrap());
            }
        }
        self.len -= batch.len() + dead.len();
        (batch, dead)
    }
}

/// Whether two jobs' inputs have the same shapes apart from the batch dimension.
fn same_row_shapes(a: &[Tensor], b: &[Tensor]) -> bool {
    a.iter()
        .zip(b)
        .all(|(a, b)| a.shape.get(1..) == b.shape.get(1..))
}

/// Concatenates the jobs' inputs on the batch dimension.
fn concat(batch: &[Job]) -> Result<Vec<Tensor>, InferError> {
    let first = &batch[0].inputs;
    (0..first.len())
        .map(|i| {
            let mut shape = first[i].shape.clone();
            shape[0] = batch.iter().map(|j| j.inputs[i].shape[0]).sum();
            let data = batch
                .iter()
                .flat_map(|j| j.inputs[i].data.iter().copied())
                .collect();
            Tensor::new(first[i].name.clone(), first[i].datatype, shape, data)
        })
        .collect()
}

/// The rows `offset..offset + rows` of each output.
fn split(
    outputs: &[Tensor],
    offset: usize,
    rows: usize,
    total: usize,
) -> Result<Vec<Tensor>, InferError> {
    outputs
        .iter()
        .map(|out| {
            if out.shape.first() != Some(&total) {
                return Err(InferError::Compute(format!(
                    "output '{}' has shape {:?}, expected batch dimension {total}",
                    out.name, out.shape
                )));
            }
            let row_bytes = out.data.len() / total;
            let mut shape = out.shape.clone();
            shape[0] = rows;
            let data = out.data[offset * row_bytes..(offset + rows) * row_bytes].to_vec();
            Tensor::new(out.name.clone(), out.datatype, shape, data)
        })
        .collect()
}

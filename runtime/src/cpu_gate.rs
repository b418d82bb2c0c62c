//! Turns on the processors for guests: at most as many guests compute at once as the runtime
//! has worker threads, and a free turn goes to the request that has waited longest.
//!
//! Without turns, every guest in flight shares the worker threads in 1 ms slices (the epoch
//! tick) and each request takes about as long as all the others together; the unlucky ones,
//! which also wait for I/O at the back of every queue, much longer. With turns, requests are
//! served in the order they arrived:
//! - a guest needs no turn for its first [`FREE`] of processor time (most requests end
//!   within it);
//! - a guest keeps its turn while it computes (it still yields to the worker thread's other
//!   tasks every epoch tick: connections, timers); every [`SLICE`] it lets a request with an
//!   earlier place have it;
//! - it gives the turn back while it waits for anything else (SQLite on the blocking pool or
//!   the writer thread, outbound HTTP, inference) and, when the wait is over, queues with the
//!   time it arrived, ahead of newer requests;
//! - a guest that has computed for longer than [`GRACE`] queues as if it had arrived
//!   [`PENALTY`] times its extra processor time later: a long computation neither holds
//!   newer requests back nor is starved by them.
//!
//! A request's deadline covers the time it waits for a turn.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;

/// How long a guest may compute before it lets an older request have its turn.
const SLICE: Duration = Duration::from_millis(10);

/// Processor time a guest may use before it needs a turn: most requests need less, and for
/// them taking turns would cost more (waking, handing over) than it saves.
const FREE: Duration = Duration::from_millis(1);

/// Processor time a guest may use and still queue in the order it arrived.
const GRACE: Duration = Duration::from_millis(50);

/// How much later than it arrived a guest queues, per unit of processor time it used beyond
/// [`GRACE`].
const PENALTY: u32 = 16;

thread_local! {
    /// Whether the guest being polled on this thread yielded for its epoch tick (it is still
    /// computing), rather than to wait for something.
    static EPOCH_YIELD: Cell<bool> = const { Cell::new(false) };
}

/// Records that the guest polled on this thread yields because its epoch tick came (called
/// from the store's epoch callback).
pub fn epoch_yield() {
    EPOCH_YIELD.set(true);
}

/// The processor time this thread has used (what a guest's poll computed, or a SQLite
/// statement's share of its inline budget, without the time the thread waited for a
/// processor).
pub(crate) fn thread_cpu_time() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec`, which `t` is.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// A place in the queue: when the request counts as having arrived, then arrival order.
type Place = (Duration, u64);

/// The turns of one server, shared by every request it runs.
pub struct CpuGate {
    origin: Instant,
    arrivals: AtomicU64,
    queue: Mutex<Queue>,
    waiting: Gauge<i64, AtomicI64>,
}

struct Queue {
    free: usize,
    waiting: BTreeMap<Place, Waker>,
}

impl Queue {
    /// Wakes the waiters who may take the free turns (the first `free` in line).
    fn wake_next(&self) {
        for waker in self.waiting.values().take(self.free) {
            waker.wake_by_ref();
        }
    }
}

impl CpuGate {
    /// `turns` guests compute at once; `waiting` shows how many wait for a turn.
    pub fn new(turns: usize, waiting: Gauge<i64, AtomicI64>) -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            arrivals: AtomicU64::new(0),
            queue: Mutex::new(Queue {
                free: turns.max(1),
                waiting: BTreeMap::new(),
            }),
            waiting,
        })
    }

    /// Runs `guest` (a request's instantiation and call) in turns.
    pub fn run<F: Future>(self: &Arc<Self>, guest: F) -> Turns<F> {
        let now = Instant::now();
        Turns {
            gate: self.clone(),
            guest: Box::pin(guest),
            place: (
                now.duration_since(self.origin),
                self.arrivals.fetch_add(1, Ordering::Relaxed),
            ),
            arrived: now,
            turn: Turn::Waiting { queued: false },
            computed: Duration::ZERO,
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Turn {
    /// Waiting for a turn; `queued`: its waker is in the queue.
    Waiting { queued: bool },
    /// Computing since `since`.
    Holding { since: Instant },
}

/// A guest's future, polled while it holds a turn or has not used its free time yet
/// ([`CpuGate::run`]).
pub struct Turns<F> {
    gate: Arc<CpuGate>,
    guest: Pin<Box<F>>,
    place: Place,
    arrived: Instant,
    turn: Turn,
    /// Processor time its polls used so far.
    computed: Duration,
}

impl<F> Turns<F> {
    /// Takes a free turn if no one who has waited longer wants it; else queues.
    fn take_turn(&mut self, cx: &Context<'_>) -> bool {
        let mut queue = self.gate.queue();
        let first = queue.waiting.keys().next().is_none_or(|p| *p >= self.place);
        let queued = matches!(self.turn, Turn::Waiting { queued: true });
        if queue.free > 0 && first {
            queue.free -= 1;
            if queued {
                queue.waiting.remove(&self.place);
                self.gate.waiting.dec();
            }
            self.turn = Turn::Holding {
                since: Instant::now(),
            };
            return true;
        }
        if !queued {
            self.gate.waiting.inc();
        }
        queue.waiting.insert(self.place, cx.waker().clone());
        self.turn = Turn::Waiting { queued: true };
        false
    }

    /// Moves its place back by [`PENALTY`] times its processor time beyond [`GRACE`].
    fn update_place(&mut self) {
        let extra = self.computed.saturating_sub(GRACE);
        self.place.0 = self.arrived.duration_since(self.gate.origin) + extra * PENALTY;
    }

    /// At the end of a slice: keeps the turn for another unless someone with an earlier
    /// place waits.
    fn end_slice(&mut self) {
        self.update_place();
        let earlier = {
            let queue = self.gate.queue();
            queue.waiting.keys().next().is_some_and(|p| *p < self.place)
        };
        match earlier {
            true => self.give_back(),
            false => {
                self.turn = Turn::Holding {
                    since: Instant::now(),
                }
            }
        }
    }

    /// Gives the turn back and wakes whoever may take it.
    fn give_back(&mut self) {
        self.turn = Turn::Waiting { queued: false };
        self.update_place();
        let mut queue = self.gate.queue();
        queue.free += 1;
        queue.wake_next();
    }
}

impl<F: Future> Future for Turns<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // `Turns` is `Unpin`: the guest's future is boxed.
        let this = self.get_mut();
        let waiting = matches!(this.turn, Turn::Waiting { .. });
        if waiting && this.computed >= FREE && !this.take_turn(cx) {
            return Poll::Pending;
        }
        EPOCH_YIELD.set(false);
        let started = thread_cpu_time();
        let polled = this.guest.as_mut().poll(cx);
        this.computed += thread_cpu_time().saturating_sub(started);
        if let Turn::Holding { since } = this.turn {
            if polled.is_ready() || !EPOCH_YIELD.take() {
                this.give_back();
            } else if since.elapsed() >= SLICE {
                this.end_slice();
            }
        }
        polled
    }
}

impl<F> Drop for Turns<F> {
    fn drop(&mut self) {
        match self.turn {
            Turn::Holding { .. } => self.give_back(),
            Turn::Waiting { queued: true } => {
                let mut queue = self.gate.queue();
                queue.waiting.remove(&self.place);
                self.gate.waiting.dec();
                // It may have been woken to take a free turn: the next in line takes it.
                queue.wake_next();
            }
            Turn::Waiting { queued: false } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A guest that computes for `work` of processor time in 1 ms steps, each ending with an
    /// epoch yield.
    async fn compute(work: Duration) {
        for _ in 0..work.as_millis() {
            let step = thread_cpu_time();
            while thread_cpu_time().saturating_sub(step) < Duration::from_millis(1) {
                std::hint::spin_loop();
            }
            epoch_yield();
            tokio::task::yield_now().await;
        }
    }

    /// The guests below first compute for their free time, so that what follows needs turns.
    async fn past_free() {
        compute(FREE).await;
    }

    /// A guest that computes `steps` steps of 1 ms after its free time, counting them.
    fn counting(
        gate: &Arc<CpuGate>,
        steps: usize,
    ) -> (tokio::task::JoinHandle<()>, Arc<AtomicUsize>) {
        let done = Arc::new(AtomicUsize::new(0));
        let counter = done.clone();
        let task = tokio::spawn(gate.run(async move {
            past_free().await;
            for _ in 0..steps {
                compute(Duration::from_millis(1)).await;
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
        (task, done)
    }

    /// Lets the other tasks run until `done`.
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..100_000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("never happened");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_finish_in_the_order_they_arrived() {
        let waiting = Gauge::<i64, AtomicI64>::default();
        let gate = CpuGate::new(1, waiting.clone());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for n in 0..3 {
            let (gate, log) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(gate.run(async move {
                past_free().await;
                log.lock().unwrap().push(format!("{n} starts"));
                compute(Duration::from_millis(5)).await;
                log.lock().unwrap().push(format!("{n} ends"));
            })));
            // One after the other: the first computing, the others waiting for a turn.
            until(|| !order.lock().unwrap().is_empty() && waiting.get() == n).await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        // Sharing the thread in 1 ms slices, all would start before the first ends.
        assert_eq!(
            *order.lock().unwrap(),
            ["0 starts", "0 ends", "1 starts", "1 ends", "2 starts", "2 ends"]
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_short_request_needs_no_turn() {
        let gate = CpuGate::new(1, Gauge::default());
        let (long, steps) = counting(&gate, 30);
        while steps.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        gate.run(async {
            let started = Instant::now();
            while started.elapsed() < FREE / 4 {
                std::hint::spin_loop();
            }
        })
        .await;
        // It did not wait for the end of the long one's slice (10 steps).
        let waited = steps.load(Ordering::Relaxed);
        assert!(waited < 5, "{waited} steps");
        long.await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiting_guest_lets_others_compute_and_keeps_its_place() {
        let waiting = Gauge::<i64, AtomicI64>::default();
        let gate = CpuGate::new(1, waiting.clone());
        let order = Arc::new(Mutex::new(Vec::new()));
        let (answer, answered) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let (gate, order) = (gate.clone(), order.clone());
            tokio::spawn(gate.run(async move {
                past_free().await;
                order.lock().unwrap().push("first starts");
                // Waits for an answer (as for I/O), without its turn.
                answered.await.unwrap();
                order.lock().unwrap().push("first resumes");
                compute(Duration::from_millis(2)).await;
                order.lock().unwrap().push("first ends");
            }))
        };
        until(|| order.lock().unwrap().len() == 1).await;
        let mut others = Vec::new();
        for name in ["second", "third"] {
            let (gate, log) = (gate.clone(), order.clone());
            others.push(tokio::spawn(gate.run(async move {
                past_free().await;
                log.lock().unwrap().push(name);
                // Two slices, well within the grace (even on a loaded machine, where a step
                // takes longer): it keeps its place ahead of the third.
                compute(Duration::from_millis(20)).await;
                log.lock().unwrap().push(name);
            })));
            // The second computing; then the third waiting.
            until(|| order.lock().unwrap().len() == 2 && waiting.get() == (name == "third") as i64)
                .await;
        }
        answer.send(()).unwrap();
        first.await.unwrap();
        for other in others {
            other.await.unwrap();
        }
        // The first request waited without its turn (the second computed meanwhile), and took
        // the next one, at the end of one of the second's slices, ahead of the third.
        assert_eq!(
            *order.lock().unwrap(),
            [
                "first starts",
                "second",
                "first resumes",
                "first ends",
                "second",
                "third",
                "third"
            ],
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_long_computation_does_not_hold_back_newer_requests() {
        let gate = CpuGate::new(1, Gauge::default());
        let (long, steps) = counting(&gate, 300);
        // Past its grace (50 ms of processor time).
        until(|| steps.load(Ordering::Relaxed) >= 70).await;
        let before = steps.load(Ordering::Relaxed);
        gate.run(compute(Duration::from_millis(3))).await;
        // Arriving later, it still went before the long one's remaining 230 steps.
        let meanwhile = steps.load(Ordering::Relaxed) - before;
        assert!(
            meanwhile < 30,
            "the long one computed {meanwhile} steps meanwhile"
        );
        long.await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_dropped_while_waiting_passes_the_turn_on() {
        let waiting = Gauge::<i64, AtomicI64>::default();
        let gate = CpuGate::new(1, waiting.clone());
        let holder = tokio::spawn(gate.run(compute(Duration::from_millis(20))));
        let dropped = tokio::spawn(gate.run(compute(Duration::from_millis(5))));
        let last = tokio::spawn(gate.run(compute(Duration::from_millis(3))));
        until(|| waiting.get() == 2).await;
        dropped.abort();
        holder.await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), last)
            .await
            .expect("the request after the dropped one got a turn")
            .unwrap();
        assert_eq!(waiting.get(), 0);
    }
}

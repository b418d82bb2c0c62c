//! The writer of one SQLite database: a thread that runs the writes outside transactions one
//! after another, each on the connection of the request that sent it.
//!
//! Writes run on the blocking pool took SQLite's write lock in turn: under load the lock
//! passed from thread to thread, each woken only to hold it while it waited for a
//! processor, and a write of a tenth of a millisecond waited milliseconds. One thread
//! running them in order never waits for itself. Each write keeps its own connection, so
//! what it changes, `changes()` and `last_insert_rowid()` are as they would be anywhere else.

use std::sync::mpsc;

/// A write, ready to run.
type Job = Box<dyn FnOnce() + Send>;

/// The queue of one database's writer thread; the thread ends once this is dropped.
#[derive(Debug)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread.
    pub fn start() -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                for job in jobs {
                    // A job that panics fails its own request (its reply is dropped), not
                    // the writes queued after it.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })?;
        Ok(Self { queue })
    }

    /// Runs `job` on the writer thread after the writes queued before it; `None` if the
    /// thread has stopped or `job` panicked.
    pub async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // Its request is gone: nothing waits for it.
            if !reply.is_closed() {
                let _ = reply.send(job());
            }
        });
        self.queue.send(job).ok()?;
        answer.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Jobs run one after another in the order they were sent; one whose sender is gone by
    /// its turn does not run; one that panics does not stop the others.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_in_order_and_abandoned_ones_are_skipped() {
        let writer = Writer::start().unwrap();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let job = |i: usize, pause: Duration| {
            let ran = ran.clone();
            move || {
                std::thread::sleep(pause);
                ran.lock().unwrap().push(i);
                i
            }
        };
        // The first holds the thread while the others queue; the second is dropped meanwhile.
        let first = writer.run(job(0, Duration::from_millis(100)));
        let second = writer.run(job(1, Duration::ZERO));
        let third = writer.run(job(2, Duration::ZERO));
        let abandon = async {
            tokio::select! {
                _ = second => unreachable!("the second job answered before the first ended"),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        };
        let (first, (), third) = tokio::join!(first, abandon, third);
        assert_eq!((first, third), (Some(0), Some(2)));
        assert_eq!(*ran.lock().unwrap(), [0, 2]);
        // A job that panics answers nothing; the next one still runs.
        assert_eq!(
            writer.run(|| -> usize { panic!("a job failed") }).await,
            None
        );
        assert_eq!(writer.run(job(3, Duration::ZERO)).await, Some(3));
    }
}

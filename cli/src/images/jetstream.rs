//! The picture-job queue on NATS JetStream (`vitrine images work --nats URL`, or `[image_jobs]
//! nats` in `vitrine up`'s runtime config). The app still takes the deliveries (its SQLite
//! table is where a job is acknowledged and where its state is shown); a relay claims ready
//! jobs from it, publishes each to the work-queue stream [`STREAM`] (the job id and its
//! queueing time as `Nats-Msg-Id`, so a relay that died before saying so publishes it again
//! without a duplicate) and marks it `published`. Workers on any machine pull from the durable
//! consumer [`CONSUMER`], report each outcome to the app, and acknowledge the message, or ask
//! for it again after the app's retry delay, or drop it once the app calls the job dead.

use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use futures::StreamExt;
use serde_json::Value;

use super::work::App;

/// The stream holding the jobs (work-queue retention: a message goes once acknowledged).
pub const STREAM: &str = "VITRINE_IMAGE_JOBS";
/// The subject jobs are published on.
pub const SUBJECT: &str = "vitrine.image-jobs";
/// The durable consumer the workers share.
pub const CONSUMER: &str = "vitrine-image-workers";

/// The stream and its consumer.
pub struct Stream {
    js: jetstream::Context,
    consumer: PullConsumer,
}

/// A job pulled from the stream: the app's job (`id`, `product`), and its message.
pub struct Pulled {
    /// The job as the relay published it.
    pub job: Value,
    message: jetstream::Message,
}

impl Stream {
    /// Connects to the NATS server at `url`, creating the stream and the consumer if needed;
    /// a message not acknowledged within `lease` is delivered again.
    pub async fn connect(url: &str, lease: Duration) -> Result<Self> {
        let client = async_nats::connect(url)
            .await
            .with_context(|| format!("cannot connect to NATS at {url}"))?;
        let js = jetstream::new(client);
        let stream = js
            .get_or_create_stream(jetstream::stream::Config {
                name: STREAM.into(),
                subjects: vec![SUBJECT.into()],
                retention: jetstream::stream::RetentionPolicy::WorkQueue,
                storage: jetstream::stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot create the JetStream stream {STREAM} at {url}"))?;
        let consumer = stream
            .get_or_create_consumer(
                CONSUMER,
                jetstream::consumer::pull::Config {
                    durable_name: Some(CONSUMER.into()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: lease,
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("cannot create the consumer {CONSUMER} of {STREAM}"))?;
        Ok(Self { js, consumer })
    }

    /// Moves every job the app has ready into the stream; how many.
    pub async fn relay(&self, app: &App, lease: u64) -> Result<u64> {
        let mut moved = 0;
        while let Some(job) = app.claim(lease).await? {
            let id = job["id"].as_str().unwrap_or_default();
            let mut headers = async_nats::HeaderMap::new();
            let key = format!("{id}@{}", job["not_before"]);
            headers.insert(async_nats::header::NATS_MESSAGE_ID, key.as_str());
            let payload = serde_json::to_vec(&job)?;
            self.js
                .publish_with_headers(SUBJECT, headers, payload.into())
                .await?
                .await
                .with_context(|| format!("JetStream did not store job {id}"))?;
            app.published(id).await?;
            moved += 1;
        }
        Ok(moved)
    }

    /// The next job, waiting up to `wait` for one.
    pub async fn next(&self, wait: Duration) -> Result<Option<Pulled>> {
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(1)
            .expires(wait)
            .messages()
            .await?;
        let Some(message) = batch.next().await else {
            return Ok(None);
        };
        let message = message.map_err(|e| anyhow::anyhow!("pulling a job: {e}"))?;
        let job = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
        Ok(Some(Pulled { job, message }))
    }
}

impl Pulled {
    /// Settles the message by what the app made of the job's outcome (`told`: the job as the
    /// app now has it; an HTTP error; or no answer).
    pub async fn settle(self, told: &Result<Result<Value, (u16, String)>>) -> Result<()> {
        let kind = match told {
            Ok(Ok(job)) if job["state"] == "published" => {
                let now = chrono::Utc::now().timestamp();
                let wait = job["not_before"].as_i64().unwrap_or(now) - now;
                AckKind::Nak(Some(Duration::from_secs(wait.max(0) as u64)))
            }
            // Done, dead, or no longer this worker's to report (another delivery did): gone.
            Ok(Ok(_)) => AckKind::Ack,
            Ok(Err((409 | 404, _))) => AckKind::Term,
            // The app did not take the outcome: the job again shortly.
            _ => AckKind::Nak(Some(Duration::from_secs(5))),
        };
        self.message
            .ack_with(kind)
            .await
            .map_err(|e| anyhow::anyhow!("acknowledging a job: {e}"))
    }
}

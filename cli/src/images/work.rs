//! `vitrine images work`: a picture-enhancement worker of the catalogue webhook's job queue
//! (functions/catalog-webhook). It claims jobs from the app (`POST /api/admin/image-jobs/claim`),
//! enhances the product's own picture (`GET /images/products/{id}/original`) with a worker's
//! model at bulk priority, stores the result (`PUT /images/products/{id}/enhanced`, naming the
//! picture it was made from) and reports the job done or failed. Work is idempotent: a
//! product whose enhanced picture already comes from its current picture and this model is
//! not enhanced again, so a job worked twice (a worker killed after enhancing, its lease run
//! out) costs nothing more. Products whose picture is drawn have nothing to enhance.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use image::codecs::jpeg::JpegEncoder;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::client::Enhancer;
use super::jetstream::{Pulled, Stream};
use super::regenerate::{self, BULK_PRIORITY};

/// Lease of the jobs `vitrine up` works in the background (seconds): a job of a process that
/// was killed is worked again this long after.
const BACKGROUND_LEASE: u64 = 120;

/// The options of `vitrine images work`.
#[derive(Args)]
pub struct WorkArgs {
    /// The application's URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Bearer token of the app's admin endpoints.
    #[arg(long, env = "VITRINE_ADMIN_TOKEN", default_value = "dev-admin-token")]
    token: String,
    /// Enhancement model.
    #[arg(long, default_value = "image-enhance-x2")]
    model: String,
    /// A running inference worker's URL; default: start one here on `--models`.
    #[arg(long)]
    worker: Option<String>,
    /// The model's beautify steps before enhancing, comma-separated: denoise, white_balance,
    /// exposure (docs/images.md).
    #[arg(long)]
    beautify: Option<String>,
    /// Model repository of the worker started here.
    #[arg(long, default_value = ".vitrine/models")]
    models: PathBuf,
    /// Seconds a claimed job is this worker's; past it, another worker may claim it.
    #[arg(long, default_value_t = 300)]
    lease: u64,
    /// Stop once no job is ready, instead of waiting for more.
    #[arg(long)]
    drain: bool,
    /// Work the jobs from this NATS server's JetStream stream (`nats://host:port`) instead of
    /// claiming them from the app (`vitrine images relay` moves them there).
    #[arg(long)]
    nats: Option<String>,
}

/// The options of `vitrine images relay`.
#[derive(Args)]
pub struct RelayArgs {
    /// The application's URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Bearer token of the app's admin endpoints.
    #[arg(long, env = "VITRINE_ADMIN_TOKEN", default_value = "dev-admin-token")]
    token: String,
    /// The NATS server (`nats://host:port`, JetStream enabled).
    #[arg(long)]
    nats: String,
    /// Seconds a message may go unacknowledged before it is delivered again (the workers'
    /// lease; set when the consumer is created).
    #[arg(long, default_value_t = 300)]
    lease: u64,
    /// Stop once no job is ready, instead of waiting for more.
    #[arg(long)]
    drain: bool,
}

/// Moves the app's ready jobs into the JetStream stream until stopped (or, with `--drain`,
/// until none is ready).
pub async fn relay(args: RelayArgs) -> Result<()> {
    let app = App::new(&args.url, args.token.clone());
    let stream = Stream::connect(&args.nats, Duration::from_secs(args.lease)).await?;
    let mut total = 0;
    loop {
        let moved = stream.relay(&app, args.lease).await?;
        total += moved;
        if moved > 0 {
            println!("{moved} jobs moved to JetStream ({total} in all)");
        } else if args.drain {
            break;
        } else {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    println!(
        "{total} jobs moved to the stream {}",
        super::jetstream::STREAM
    );
    Ok(())
}

/// What became of one job.
enum Outcome {
    Enhanced,
    AlreadyEnhanced,
    Drawn,
}

/// The app's admin API and pictures.
pub struct App {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl App {
    /// The app at `url` (`http://host:port`), called with the admin `token`.
    fn new(url: &str, token: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.trim_end_matches('/').to_string(),
            token,
        }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    /// Claims the next ready job.
    pub async fn claim(&self, lease: u64) -> Result<Option<Value>> {
        let response = self
            .post(&format!("/api/admin/image-jobs/claim?lease={lease}"))
            .send()
            .await
            .with_context(|| format!("claiming a job from {}", self.url))?;
        match response.status() {
            StatusCode::NO_CONTENT => Ok(None),
            StatusCode::OK => Ok(Some(response.json().await?)),
            status => bail!("claiming a job: {status}: {}", response.text().await?),
        }
    }

    /// Marks a claimed job as handed to the JetStream stream.
    pub async fn published(&self, id: &str) -> Result<()> {
        let response = self
            .post(&format!("/api/admin/image-jobs/{id}/published"))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "marking job {id} published: {}: {}",
                response.status(),
                response.text().await?
            );
        }
        Ok(())
    }

    /// Reports a job done, or failed with `error`: the job as the app now has it, or the
    /// app's HTTP error.
    async fn finish(&self, id: &str, error: Option<&str>) -> Result<Result<Value, (u16, String)>> {
        let request = match error {
            None => self.post(&format!("/api/admin/image-jobs/{id}/done")),
            Some(e) => self
                .post(&format!("/api/admin/image-jobs/{id}/failed"))
                .json(&json!({ "error": e })),
        };
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            return Ok(Err((status.as_u16(), response.text().await?)));
        }
        Ok(Ok(response.json().await?))
    }
}

/// Where jobs come from.
enum Queue {
    /// Claimed from the app.
    App,
    /// Pulled from NATS JetStream; with `relay`, the app's ready jobs are moved there first.
    Stream { stream: Box<Stream>, relay: bool },
}

/// A job to work, with its stream message when it came from one.
struct Job {
    job: Value,
    pulled: Option<Pulled>,
}

impl Queue {
    /// The next job; `None` when none is ready within a moment.
    async fn next(&self, app: &App, lease: u64) -> Result<Option<Job>> {
        match self {
            Queue::App => Ok(app.claim(lease).await?.map(|job| Job { job, pulled: None })),
            Queue::Stream { stream, relay } => {
                if *relay {
                    stream.relay(app, lease).await?;
                }
                Ok(stream
                    .next(Duration::from_secs(1))
                    .await?
                    .map(|pulled| Job {
                        job: pulled.job.clone(),
                        pulled: Some(pulled),
                    }))
            }
        }
    }
}

/// Works jobs until stopped (or, with `--drain`, until none is ready); prints a line per job.
pub async fn run(args: WorkArgs) -> Result<()> {
    let enhancer = Enhancer::connect(args.worker.as_deref(), &args.models, &args.model)
        .await?
        .beautify(args.beautify.clone())
        .await?;
    let app = App::new(&args.url, args.token.clone());
    let queue = match &args.nats {
        None => Queue::App,
        Some(url) => Queue::Stream {
            stream: Box::new(Stream::connect(url, Duration::from_secs(args.lease)).await?),
            relay: false,
        },
    };
    let counts = work_jobs(&app, &queue, &enhancer, args.lease, args.drain, |line| {
        println!("{line}")
    })
    .await?;
    println!(
        "{} enhanced, {} with nothing to do, {} failed",
        counts[0], counts[1], counts[2]
    );
    Ok(())
}

/// When the application has the picture-job queue (`/api/admin/image-jobs/...`), works its
/// jobs in the background through `addr` with `image-enhance-x2` of the worker at `worker`,
/// logging a line per job; waits for the model until it is installed.
/// `admin_token` is the app's token when given on the command line (`--variable`); with
/// `nats`, the jobs go through that server's JetStream (this process relays and works them).
pub fn in_background(
    manifest: &vitrine_runtime::Manifest,
    addr: std::net::SocketAddr,
    worker: String,
    admin_token: Option<String>,
    nats: Option<String>,
) {
    let queued = manifest.triggers.iter().any(|t| {
        t.route
            .as_ref()
            .is_some_and(|r| r.as_str().starts_with("/api/admin/image-jobs"))
    });
    // As the app resolves it: command line, then environment, then the manifest's default.
    let token = admin_token
        .or_else(|| std::env::var("SPIN_VARIABLE_ADMIN_TOKEN").ok())
        .or_else(|| manifest.variables.get("admin_token")?.default.clone());
    let (true, Some(token)) = (queued, token) else {
        return;
    };
    tokio::spawn(async move {
        let model = "image-enhance-x2";
        let mut told = false;
        let enhancer = loop {
            match Enhancer::connect(Some(&worker), std::path::Path::new(""), model).await {
                Ok(enhancer) => break enhancer,
                Err(e) if !told => {
                    told = true;
                    tracing::info!("picture jobs wait for {model} ({e:#}); install it with `vitrine images install-models`");
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
        };
        let app = App::new(&format!("http://{addr}"), token);
        let queue = match nats {
            None => Queue::App,
            Some(url) => match Stream::connect(&url, Duration::from_secs(BACKGROUND_LEASE)).await {
                Ok(stream) => Queue::Stream {
                    stream: Box::new(stream),
                    relay: true,
                },
                Err(e) => {
                    tracing::warn!("picture jobs stay queued: {e:#}");
                    return;
                }
            },
        };
        tracing::info!("working picture jobs with {model}");
        if let Err(e) = work_jobs(&app, &queue, &enhancer, BACKGROUND_LEASE, false, |line| {
            tracing::info!("picture job {line}")
        })
        .await
        {
            tracing::warn!("picture jobs stopped: {e:#} (run `vitrine images work`)");
        }
    });
}

/// Works jobs until stopped (with `drain`, until none is ready), telling `report` a line per
/// job; how many were enhanced, had nothing to do, failed.
async fn work_jobs(
    app: &App,
    queue: &Queue,
    enhancer: &Enhancer,
    lease: u64,
    drain: bool,
    report: impl Fn(&str),
) -> Result<[u64; 3]> {
    let model = format!("{}/{}", enhancer.model, enhancer.version().await?);
    let mut counts = [0u64; 3];
    loop {
        let Job { job, pulled } = match queue.next(app, lease).await {
            Ok(Some(job)) => job,
            Ok(None) if drain => break,
            Ok(None) => {
                if matches!(queue, Queue::App) {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                continue;
            }
            // The app restarting: try again shortly (claimed jobs come back when their
            // lease runs out).
            Err(e) if !drain => {
                report(&format!("{e:#}; retrying in 5 s"));
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let id = job["id"].as_str().unwrap_or_default().to_string();
        let product = job["product"].as_str().unwrap_or_default().to_string();
        let outcome = work(app, enhancer, &model, &product).await;
        let told = match &outcome {
            Ok(_) => app.finish(&id, None).await,
            Err(e) => app.finish(&id, Some(&format!("{e:#}"))).await,
        };
        let (slot, line) = match outcome {
            Ok(Outcome::Enhanced) => (0, format!("{id}: {product} enhanced with {model}")),
            Ok(Outcome::AlreadyEnhanced) => (
                1,
                format!("{id}: {product} already enhanced from its current picture"),
            ),
            Ok(Outcome::Drawn) => (
                1,
                format!("{id}: {product} has a drawn picture: nothing to enhance"),
            ),
            Err(e) => (
                2,
                format!(
                    "{id}: {product} failed (attempt {}): {e:#}",
                    job["attempts"]
                ),
            ),
        };
        counts[slot] += 1;
        report(&line);
        match &told {
            Err(e) => report(&format!(
                "{id}: reporting the outcome failed ({e:#}): the job comes back"
            )),
            Ok(Err((status, message))) => report(&format!(
                "{id}: the app refused the outcome: {status} {message}"
            )),
            Ok(Ok(_)) => {}
        }
        if let Some(pulled) = pulled {
            if let Err(e) = pulled.settle(&told).await {
                report(&format!("{id}: {e:#}: the stream delivers it again"));
            }
        }
    }
    Ok(counts)
}

/// Enhances `product`'s own picture unless already done from it with `model`.
async fn work(app: &App, enhancer: &Enhancer, model: &str, product: &str) -> Result<Outcome> {
    let url = format!("{}/images/products/{product}", app.url);
    let original = app.http.get(format!("{url}/original")).send().await?;
    let status = original.status();
    if status == StatusCode::NOT_FOUND {
        let message = original.text().await?;
        if message.contains("no picture of its own") {
            return Ok(Outcome::Drawn);
        }
        bail!("{message}");
    }
    if !status.is_success() {
        bail!("GET {url}/original: {status}: {}", original.text().await?);
    }
    let source = original
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .context("the original picture has no ETag")?
        .to_string();
    let bytes = original.bytes().await?;
    let current = app.http.get(format!("{url}/enhanced")).send().await?;
    let header = |name: &str| {
        current
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if current.status().is_success()
        && header("x-vitrine-source").as_deref() == Some(source.as_str())
        && header("x-vitrine-model").as_deref() == Some(model)
    {
        return Ok(Outcome::AlreadyEnhanced);
    }
    let picture = regenerate::decode(&bytes)?;
    let better = regenerate::enhance(enhancer, &picture, BULK_PRIORITY).await?;
    // Opaque pictures as JPEG (an enhanced photograph as PNG is several megabytes).
    let (content_type, body) = if better.color().has_alpha() {
        let provenance = format!("{source} {model}");
        (
            "image/png",
            regenerate::encode(&better, picture.icc.as_deref(), &provenance)?,
        )
    } else {
        let mut out = Vec::new();
        better
            .to_rgb8()
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, 92))?;
        ("image/jpeg", out)
    };
    let stored = app
        .http
        .put(format!("{url}/enhanced"))
        .bearer_auth(&app.token)
        .header("content-type", content_type)
        .header("x-vitrine-source", &source)
        .header("x-vitrine-model", model)
        .body(body)
        .send()
        .await?;
    if !stored.status().is_success() {
        // 409: the picture changed meanwhile; the retry enhances the new one.
        bail!(
            "PUT {url}/enhanced: {}: {}",
            stored.status(),
            stored.text().await?
        );
    }
    Ok(Outcome::Enhanced)
}

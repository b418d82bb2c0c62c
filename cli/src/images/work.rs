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
use super::regenerate::{self, BULK_PRIORITY};

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
    /// Model repository of the worker started here.
    #[arg(long, default_value = ".vitrine/models")]
    models: PathBuf,
    /// Seconds a claimed job is this worker's; past it, another worker may claim it.
    #[arg(long, default_value_t = 300)]
    lease: u64,
    /// Stop once no job is ready, instead of waiting for more.
    #[arg(long)]
    drain: bool,
}

/// What became of one job.
enum Outcome {
    Enhanced,
    AlreadyEnhanced,
    Drawn,
}

/// The app's admin API and pictures.
struct App {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl App {
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    /// Claims the next ready job.
    async fn claim(&self, lease: u64) -> Result<Option<Value>> {
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

    /// Reports a job done, or failed with `error`.
    async fn finish(&self, id: &str, error: Option<&str>) -> Result<()> {
        let request = match error {
            None => self.post(&format!("/api/admin/image-jobs/{id}/done")),
            Some(e) => self
                .post(&format!("/api/admin/image-jobs/{id}/failed"))
                .json(&json!({ "error": e })),
        };
        let response = request.send().await?;
        if !response.status().is_success() {
            bail!("{}: {}", response.status(), response.text().await?);
        }
        Ok(())
    }
}

/// Works jobs until stopped (or, with `--drain`, until none is ready); prints a line per job.
pub async fn run(args: WorkArgs) -> Result<()> {
    let enhancer = Enhancer::connect(args.worker.as_deref(), &args.models, &args.model).await?;
    let model = format!("{}/{}", enhancer.model, enhancer.version().await?);
    let app = App {
        http: reqwest::Client::new(),
        url: args.url.trim_end_matches('/').to_string(),
        token: args.token.clone(),
    };
    let (mut enhanced, mut skipped, mut failed) = (0u64, 0u64, 0u64);
    loop {
        let job = match app.claim(args.lease).await {
            Ok(Some(job)) => job,
            Ok(None) if args.drain => break,
            Ok(None) => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            // The app restarting: try again shortly (claimed jobs come back when their
            // lease runs out).
            Err(e) if !args.drain => {
                eprintln!("{e:#}; retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let id = job["id"].as_str().unwrap_or_default().to_string();
        let product = job["product"].as_str().unwrap_or_default().to_string();
        let outcome = work(&app, &enhancer, &model, &product).await;
        let report = match &outcome {
            Ok(_) => app.finish(&id, None).await,
            Err(e) => app.finish(&id, Some(&format!("{e:#}"))).await,
        };
        match outcome {
            Ok(Outcome::Enhanced) => {
                enhanced += 1;
                println!("{id}: {product} enhanced with {model}");
            }
            Ok(Outcome::AlreadyEnhanced) => {
                skipped += 1;
                println!("{id}: {product} already enhanced from its current picture");
            }
            Ok(Outcome::Drawn) => {
                skipped += 1;
                println!("{id}: {product} has a drawn picture: nothing to enhance");
            }
            Err(e) => {
                failed += 1;
                println!(
                    "{id}: {product} failed (attempt {}): {e:#}",
                    job["attempts"]
                );
            }
        }
        if let Err(e) = report {
            eprintln!("{id}: reporting the outcome failed ({e:#}): the job comes back when its lease runs out");
        }
    }
    println!("{enhanced} enhanced, {skipped} with nothing to do, {failed} failed");
    Ok(())
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

//! An image-enhancement model over the Open Inference Protocol (binary tensor extension): a
//! worker given by URL, or one started in this process on a local model repository.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use image::RgbImage;
use vitrine_oip::binary::{self, Tensor};
use vitrine_oip::DataType;

/// Times a request that got no answer is sent again (after 1, 2, 4 and 8 s).
const SEND_RETRIES: u32 = 4;

/// A model of a worker, ready to enhance images.
pub struct Enhancer {
    http: reqwest::Client,
    infer_url: String,
    /// The model's name.
    pub model: String,
    /// How many times larger the model makes an image.
    pub scale: u32,
    /// The model's `beautify` steps asked for with each image (`white_balance,exposure`).
    beautify: Option<String>,
}

impl Enhancer {
    /// `model` on the worker at `url`, or on a worker started here on `models` when `url` is
    /// `None`. Probes the model once to learn its scale.
    pub async fn connect(url: Option<&str>, models: &Path, model: &str) -> Result<Self> {
        let url = match url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => local_worker(models, model).await?,
        };
        let mut enhancer = Self {
            http: reqwest::Client::new(),
            infer_url: format!("{url}/v2/models/{model}/infer"),
            model: model.to_string(),
            scale: 1,
            beautify: None,
        };
        let probe = enhancer.enhance(&RgbImage::new(8, 8), None).await?;
        enhancer.scale = probe.width() / 8;
        if enhancer.scale < 1 || probe.width() % 8 != 0 {
            bail!(
                "{model} answered an 8x8 image with {}x{}",
                probe.width(),
                probe.height()
            );
        }
        Ok(enhancer)
    }

    /// Asks for the model's `beautify` steps (denoise, white_balance, exposure;
    /// comma-separated) with each image; checked by the model at once.
    pub async fn beautify(mut self, steps: Option<String>) -> Result<Self> {
        self.beautify = steps;
        if self.beautify.is_some() {
            self.enhance(&RgbImage::new(8, 8), None).await?;
        }
        Ok(self)
    }

    /// The model's served version, from its metadata, and the beautify steps asked for
    /// (`1`, `1+white_balance`): what makes the same input give the same output.
    pub async fn version(&self) -> Result<String> {
        let url = self.infer_url.trim_end_matches("/infer");
        let metadata: serde_json::Value =
            crate::http::send(self.http.get(url), &format!("GET {url}"))
                .await?
                .json()
                .await?;
        let version = metadata["versions"][0]
            .as_str()
            .with_context(|| format!("{url} names no version: {metadata}"))?;
        Ok(match &self.beautify {
            Some(steps) => format!("{version}+{steps}"),
            None => version.to_string(),
        })
    }

    /// The image enhanced; `priority` is the protocol's request priority (1 is the highest).
    pub async fn enhance(&self, image: &RgbImage, priority: Option<u32>) -> Result<RgbImage> {
        let (w, h) = image.dimensions();
        let input = Tensor {
            name: "image".into(),
            datatype: DataType::U8,
            shape: vec![1, h.into(), w.into(), 3],
            data: image.as_raw().clone(),
        };
        let mut parameters = vitrine_oip::messages::Parameters::new();
        if let Some(priority) = priority {
            parameters.insert("priority".into(), priority.into());
        }
        if let Some(steps) = &self.beautify {
            parameters.insert("beautify".into(), steps.clone().into());
        }
        let (body, header_length) = binary::encode_request(&[input], parameters);
        // Shared, not copied, by each attempt below.
        let body = bytes::Bytes::from(body);
        // A worker that crashed and is restarting (its pool restarts it) drops or refuses
        // connections for a few seconds: inference has no side effects, so the request is
        // sent again then (never after an answer, even an error).
        let mut attempt = 0;
        let response = loop {
            let sent = self
                .http
                .post(&self.infer_url)
                .header(binary::HEADER_LENGTH, header_length)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Err(_) if attempt < SEND_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                }
                other => break other.with_context(|| format!("POST {}", self.infer_url))?,
            }
        };
        let status = response.status();
        let header = response
            .headers()
            .get(binary::HEADER_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!(
                "{} answered {status}: {}",
                self.model,
                String::from_utf8_lossy(&body)
            );
        }
        let outputs = binary::decode_response(&body, header)?;
        let [out] = &outputs[..] else {
            bail!(
                "{} answered {} outputs, expected one",
                self.model,
                outputs.len()
            );
        };
        let &[1, oh, ow, 3] = &out.shape[..] else {
            bail!("{} answered shape {:?}", self.model, out.shape);
        };
        RgbImage::from_raw(ow as u32, oh as u32, out.data.clone())
            .context("the answer's pixels do not fill its shape")
    }
}

/// Starts a worker on `models` on a loopback port; returns its URL. The model must be there.
async fn local_worker(models: &Path, model: &str) -> Result<String> {
    let worker = vitrine_worker::Worker::open(models, None, Duration::from_secs(3600))
        .with_context(|| format!("cannot open the model repository {}", models.display()))?;
    let entry = worker
        .repository
        .index()
        .into_iter()
        .find(|e| e.name == model);
    match entry {
        Some(e) if e.state == "READY" => {}
        Some(e) => bail!("{model} in {} cannot load: {}", models.display(), e.reason),
        None => bail!(
            "{model} is not in {}: run `vitrine images install-models` first (or pass --worker URL)",
            models.display()
        ),
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(vitrine_worker::serve(
        listener,
        worker,
        std::future::pending(),
    ));
    Ok(url)
}

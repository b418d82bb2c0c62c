//! `vitrine images regenerate`: enhances every image under a source location into a
//! destination, through an enhancement model at the protocol's bulk priority, so interactive
//! requests on the same worker go first.
//!
//! - **Locations** are folders or object-store URLs (`s3://`, `gs://`, `az://`), through the
//!   `object_store` crate; the listing streams, so memory holds only the images in flight
//!   (`--concurrency`) whatever the library's size.
//! - **Idempotent outputs.** Each output is a PNG at the source's path (extension `.png`) that
//!   records the source's sha256 and the model's name and version in a `tEXt` chunk
//!   ([`PROVENANCE`]). An output already there with the same record is never computed again.
//! - **Resumable.** A journal (SQLite in the state folder, one per source, destination and
//!   model) records each image once its output is stored. A rerun skips journalled images
//!   without reading them, and checks the destination for the rest, so an image whose output
//!   was stored just before a `kill -9` is not computed twice, and none is skipped.
//! - **Nothing is lost.** An image that cannot be read, decoded or enhanced is reported with
//!   the reason, kept in the journal's failures, and tried again by the next run.

use std::io::Cursor;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use image::{DynamicImage, ImageDecoder};
use indicatif::{ProgressBar, ProgressStyle};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, PutPayload};
use rusqlite::OptionalExtension;
use sha2::{Digest, Sha256};

use super::client::Enhancer;

/// The `tEXt` keyword of an output's provenance: `sha256:<source digest> model:<name>/<version>`.
pub const PROVENANCE: &str = "vitrine-source";
/// Sources larger than this are reported, not read.
const MAX_SOURCE_BYTES: u64 = 64 << 20;
/// The protocol priority of regeneration requests (the models' second, lower level).
pub const BULK_PRIORITY: u32 = 2;
/// File extensions taken as images; other objects are counted and left alone.
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

#[derive(Args)]
pub struct RegenerateArgs {
    /// Where the images are: a folder, or a URL `s3://bucket/prefix`, `gs://…`, `az://…`
    /// (credentials and endpoints from the usual AWS_*, GOOGLE_* and AZURE_* variables).
    #[arg(long)]
    source: String,
    /// Where the enhanced images go (same forms); each at its source's path, as PNG.
    #[arg(long)]
    dest: String,
    /// The enhancement model.
    #[arg(long, default_value = "image-enhance-x2")]
    model: String,
    /// Images in flight at once. Keep it below the model's instance count (2 for the built-in
    /// models) so that interactive requests find a free instance.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// A running worker to use; default: one started here on --models.
    #[arg(long)]
    worker: Option<String>,
    /// The model's beautify steps before enhancing, comma-separated: denoise, white_balance,
    /// exposure (docs/images.md).
    #[arg(long)]
    beautify: Option<String>,
    /// Model repository for the worker started here.
    #[arg(long, default_value = ".vitrine/models")]
    models: PathBuf,
    /// Where the journal is kept (`regenerate/<digest>.sqlite`).
    #[arg(long, default_value = ".vitrine")]
    state_dir: PathBuf,
}

/// A location opened: its store and the prefix inside it.
struct Location {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// Where it is, as a URL ending in `/` (a folder's canonical path), for comparing places.
    place: String,
}

/// Opens a folder (created if missing when `create`) or an object-store URL.
fn open(location: &str, create: bool) -> Result<Location> {
    let url = match url::Url::parse(location) {
        Ok(url) if url.scheme().len() > 1 => url,
        // A plain path (or a Windows drive letter): a folder.
        _ => {
            if create {
                std::fs::create_dir_all(location)
                    .with_context(|| format!("cannot create the folder {location}"))?;
            }
            let dir =
                std::fs::canonicalize(location).with_context(|| format!("no folder {location}"))?;
            url::Url::from_directory_path(&dir)
                .map_err(|()| anyhow::anyhow!("{} is not an absolute folder", dir.display()))?
        }
    };
    let bad = |e: object_store::Error| anyhow::anyhow!("cannot open {location}: {e}");
    let (store, prefix): (Arc<dyn ObjectStore>, Path) = match url.scheme() {
        "file" => {
            let dir = url
                .to_file_path()
                .map_err(|()| anyhow::anyhow!("{location} is not a local path"))?;
            if create {
                std::fs::create_dir_all(&dir)?;
            }
            anyhow::ensure!(dir.is_dir(), "no folder {}", dir.display());
            let store = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(bad)?;
            (Arc::new(store), Path::default())
        }
        "s3" | "s3a" => {
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(bad)?;
            (Arc::new(store), Path::from(url.path().trim_matches('/')))
        }
        "gs" => {
            let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(bad)?;
            (Arc::new(store), Path::from(url.path().trim_matches('/')))
        }
        "az" | "azure" | "abfs" | "abfss" => {
            let store = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(bad)?;
            (Arc::new(store), Path::from(url.path().trim_matches('/')))
        }
        other => {
            bail!("{location}: unsupported scheme '{other}' (a folder, s3://, gs:// or az://)")
        }
    };
    let mut place = url.to_string();
    if !place.ends_with('/') {
        place.push('/');
    }
    Ok(Location {
        store,
        prefix,
        place,
    })
}

/// What happened to one object.
enum Outcome {
    /// Enhanced and stored: output megapixels.
    Enhanced(f64),
    /// Its output was already there (journalled, or found with the same provenance).
    AlreadyDone,
    /// Not an image by its extension.
    NotImage,
    /// Could not be done; the reason.
    Failed(String),
}

/// The journal of one regeneration (source, destination, model).
struct Journal(Mutex<rusqlite::Connection>);

impl Journal {
    fn open(path: &FsPath) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let db = rusqlite::Connection::open(path)
            .with_context(|| format!("cannot open the journal {}", path.display()))?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS done (
                 key TEXT PRIMARY KEY, source_tag TEXT NOT NULL, output TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS failed (
                 key TEXT PRIMARY KEY, source_tag TEXT NOT NULL, reason TEXT NOT NULL);",
        )?;
        Ok(Self(Mutex::new(db)))
    }

    fn is_done(&self, key: &str, tag: &str) -> Result<bool> {
        let db = self.0.lock().expect("journal lock");
        let found: Option<String> = db
            .query_row("SELECT source_tag FROM done WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(found.as_deref() == Some(tag))
    }

    fn record_done(&self, key: &str, tag: &str, output: &str) -> Result<()> {
        let db = self.0.lock().expect("journal lock");
        db.execute(
            "INSERT OR REPLACE INTO done (key, source_tag, output) VALUES (?1, ?2, ?3)",
            [key, tag, output],
        )?;
        db.execute("DELETE FROM failed WHERE key = ?1", [key])?;
        Ok(())
    }

    fn record_failure(&self, key: &str, tag: &str, reason: &str) -> Result<()> {
        let db = self.0.lock().expect("journal lock");
        db.execute(
            "INSERT OR REPLACE INTO failed (key, source_tag, reason) VALUES (?1, ?2, ?3)",
            [key, tag, reason],
        )?;
        Ok(())
    }
}

/// What identifies a version of a source object without reading it.
fn source_tag(meta: &ObjectMeta) -> String {
    match &meta.e_tag {
        Some(tag) => format!("etag:{tag} size:{}", meta.size),
        None => format!(
            "modified:{} size:{}",
            meta.last_modified.timestamp_nanos_opt().unwrap_or(0),
            meta.size
        ),
    }
}

struct Run {
    source: Location,
    dest: Location,
    enhancer: Enhancer,
    version: String,
    journal: Journal,
}

impl Run {
    async fn process(&self, meta: ObjectMeta) -> (String, Outcome) {
        let key = meta.location.to_string();
        let tag = source_tag(&meta);
        let prefix = self.source.prefix.as_ref();
        let relative = key
            .strip_prefix(prefix)
            .map_or(key.as_str(), |rest| rest.trim_start_matches('/'))
            .to_string();
        let outcome = match self.enhance_one(&meta, &key, &tag, &relative).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed(format!("{e:#}")),
        };
        if let Outcome::Failed(reason) = &outcome {
            if let Err(e) = self.journal.record_failure(&key, &tag, reason) {
                tracing::warn!(key, error = %e, "cannot journal a failure");
            }
        }
        (relative, outcome)
    }

    /// Enhances the object `meta` (journal key `key`, version `tag`) unless that is done.
    async fn enhance_one(
        &self,
        meta: &ObjectMeta,
        key: &str,
        tag: &str,
        relative: &str,
    ) -> Result<Outcome> {
        let extension = relative
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase());
        if !extension.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str())) {
            return Ok(Outcome::NotImage);
        }
        if self.journal.is_done(key, tag)? {
            return Ok(Outcome::AlreadyDone);
        }
        if meta.size > MAX_SOURCE_BYTES {
            bail!(
                "{} bytes, more than the {MAX_SOURCE_BYTES} accepted",
                meta.size
            );
        }
        let bytes = self.source.store.get(&meta.location).await?.bytes().await?;
        let provenance = format!(
            "sha256:{:x} model:{}/{}",
            Sha256::digest(&bytes),
            self.enhancer.model,
            self.version
        );
        let stem = relative.rsplit_once('.').map_or(relative, |(s, _)| s);
        let output = match self.dest.prefix.as_ref() {
            "" => Path::parse(format!("{stem}.png")),
            prefix => Path::parse(format!("{prefix}/{stem}.png")),
        }?;
        if self.output_has(&output, &provenance).await? {
            self.journal.record_done(key, tag, output.as_ref())?;
            return Ok(Outcome::AlreadyDone);
        }
        let picture = decode(&bytes)?;
        let enhanced = self.enhance_picture(&picture).await?;
        let png = encode(&enhanced, picture.icc.as_deref(), &provenance)?;
        let megapixels = f64::from(enhanced.width()) * f64::from(enhanced.height()) / 1e6;
        self.dest.store.put(&output, PutPayload::from(png)).await?;
        self.journal.record_done(key, tag, output.as_ref())?;
        Ok(Outcome::Enhanced(megapixels))
    }

    /// Whether `output` exists and records `provenance`.
    async fn output_has(&self, output: &Path, provenance: &str) -> Result<bool> {
        let existing = match self.dest.store.get(output).await {
            Ok(found) => found.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let decoder = png::Decoder::new(Cursor::new(existing));
        let Ok(reader) = decoder.read_info() else {
            return Ok(false);
        };
        Ok(reader
            .info()
            .uncompressed_latin1_text
            .iter()
            .any(|t| t.keyword == PROVENANCE && t.text == provenance))
    }

    async fn enhance_picture(&self, picture: &Picture) -> Result<DynamicImage> {
        enhance(&self.enhancer, picture, BULK_PRIORITY).await
    }
}

/// `picture` enhanced at `priority`: colour through the model, alpha (if any) resized with
/// Lanczos-3.
pub(super) async fn enhance(
    enhancer: &super::client::Enhancer,
    picture: &Picture,
    priority: u32,
) -> Result<DynamicImage> {
    let rgb = picture.image.to_rgb8();
    let enhanced = enhancer.enhance(&rgb, Some(priority)).await?;
    if !picture.image.color().has_alpha() {
        return Ok(DynamicImage::ImageRgb8(enhanced));
    }
    let rgba = picture.image.to_rgba8();
    let alpha = image::GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        image::Luma([rgba.get_pixel(x, y)[3]])
    });
    let (w, h) = enhanced.dimensions();
    let alpha = image::imageops::resize(&alpha, w, h, image::imageops::FilterType::Lanczos3);
    let rgba = image::RgbaImage::from_fn(w, h, |x, y| {
        let [r, g, b] = enhanced.get_pixel(x, y).0;
        image::Rgba([r, g, b, alpha.get_pixel(x, y)[0]])
    });
    Ok(DynamicImage::ImageRgba8(rgba))
}

/// A decoded source: the pixels turned upright by their EXIF orientation, and the colour
/// profile to carry over.
pub(super) struct Picture {
    pub(super) image: DynamicImage,
    pub(super) icc: Option<Vec<u8>>,
}

/// Decodes a picture, turned upright by its EXIF orientation.
pub(super) fn decode(bytes: &[u8]) -> Result<Picture> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .context("cannot read the image")?;
    let mut decoder = reader.into_decoder().context("not a readable image")?;
    let orientation = decoder.orientation().context("bad orientation")?;
    let icc = decoder.icc_profile().unwrap_or(None);
    let mut image = DynamicImage::from_decoder(decoder).context("cannot decode the image")?;
    image.apply_orientation(orientation);
    Ok(Picture { image, icc })
}

/// 8-bit PNG of `image` with its colour profile and the provenance record.
pub(super) fn encode(
    image: &DynamicImage,
    icc: Option<&[u8]>,
    provenance: &str,
) -> Result<Vec<u8>> {
    let (color, pixels) = match image {
        DynamicImage::ImageRgba8(rgba) => (png::ColorType::Rgba, rgba.as_raw().as_slice()),
        DynamicImage::ImageRgb8(rgb) => (png::ColorType::Rgb, rgb.as_raw().as_slice()),
        _ => bail!("unexpected enhanced image layout"),
    };
    let mut out = Vec::new();
    let mut info = png::Info::with_size(image.width(), image.height());
    info.color_type = color;
    info.bit_depth = png::BitDepth::Eight;
    info.icc_profile = icc.map(|p| p.to_vec().into());
    let mut encoder = png::Encoder::with_info(&mut out, info)?;
    encoder.add_text_chunk(PROVENANCE.to_string(), provenance.to_string())?;
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    writer.finish()?;
    Ok(out)
}

/// Runs a regeneration and prints its report.
pub async fn run(args: RegenerateArgs) -> Result<()> {
    let source = open(&args.source, false)?;
    let dest_existed = FsPath::new(&args.dest).exists();
    let dest = open(&args.dest, true)?;
    if dest.place.starts_with(&source.place) {
        if !dest_existed {
            // The empty folder `open` just made.
            let _ = std::fs::remove_dir(&args.dest);
        }
        bail!(
            "the destination {} is inside the source {}: its outputs would be listed and enhanced again",
            args.dest,
            args.source
        );
    }
    let enhancer = Enhancer::connect(args.worker.as_deref(), &args.models, &args.model)
        .await?
        .beautify(args.beautify.clone())
        .await?;
    let version = enhancer.version().await?;
    let digest = Sha256::digest(format!(
        "{}\n{}\n{}/{version}",
        args.source, args.dest, args.model
    ));
    let journal_path = args
        .state_dir
        .join("regenerate")
        .join(format!("{}.sqlite", &format!("{digest:x}")[..24]));
    let journal = Journal::open(&journal_path)?;
    let run = Arc::new(Run {
        source,
        dest,
        enhancer,
        version,
        journal,
    });

    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} images, {elapsed} ({eta} left) {msg}")
            .expect("valid template"),
    );
    // Count the objects beside the work (the listing streams; nothing is kept), for the ETA.
    let counting = {
        let (store, prefix, bar) = (
            run.source.store.clone(),
            run.source.prefix.clone(),
            bar.clone(),
        );
        tokio::spawn(async move {
            let total = store
                .list(Some(&prefix))
                .try_fold(0u64, |n, _| async move { Ok(n + 1) })
                .await;
            if let Ok(total) = total {
                bar.set_length(total);
            }
        })
    };
    let started = Instant::now();
    let (mut enhanced, mut megapixels, mut already, mut not_images) = (0u64, 0.0f64, 0u64, 0u64);
    let mut failures = Vec::new();
    let listing = run.source.store.list(Some(&run.source.prefix));
    let mut results = listing
        .map(|meta| {
            let run = run.clone();
            async move {
                match meta {
                    Ok(meta) => run.process(meta).await,
                    Err(e) => (
                        "(listing)".to_string(),
                        Outcome::Failed(format!("listing failed: {e}")),
                    ),
                }
            }
        })
        .buffer_unordered(args.concurrency.max(1));
    while let Some((relative, outcome)) = results.next().await {
        match outcome {
            Outcome::Enhanced(mpx) => {
                enhanced += 1;
                megapixels += mpx;
            }
            Outcome::AlreadyDone => already += 1,
            Outcome::NotImage => not_images += 1,
            Outcome::Failed(reason) => {
                bar.println(format!("failed: {relative}: {reason}"));
                failures.push((relative, reason));
            }
        }
        let seconds = started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{:.2} img/s, {:.2} Mpx/s",
            enhanced as f64 / seconds,
            megapixels / seconds
        ));
        bar.inc(1);
    }
    counting.abort();
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "enhanced {enhanced} ({megapixels:.1} Mpx) with {}/{} in {seconds:.1} s ({:.3} img/s, {:.3} Mpx/s); already done {already}; not images {not_images}; failed {}",
        run.enhancer.model,
        run.version,
        enhanced as f64 / seconds,
        megapixels / seconds,
        failures.len()
    );
    for (relative, reason) in &failures {
        println!("failed {relative}: {reason}");
    }
    println!("journal: {}", journal_path.display());
    if !failures.is_empty() {
        bail!(
            "{} images failed (listed above; a rerun tries them again)",
            failures.len()
        );
    }
    Ok(())
}

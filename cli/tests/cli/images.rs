//! `vitrine images` as a user runs it: install-models fetches, converts and fits the
//! enhancement models (once), and eval measures the default ×2 model on photographs it was not
//! fitted on, where it must beat bicubic upscaling by at least 1 dB PSNR.

use crate::commands::vitrine;

#[test]
fn install_models_then_eval_beats_bicubic_by_a_decibel() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let install = || {
        vitrine()
            .args(["images", "install-models", "--out"])
            .arg(&models)
            .arg("--state-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = install();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for model in [
        "image-enhance-x2-anime",
        "image-enhance-x4",
        "image-enhance-x4plus",
        "image-enhance-x2",
    ] {
        assert!(
            stdout.contains(&format!("{model}: installed")),
            "{model}: {stdout}"
        );
        assert!(
            models.join(model).join("1/model.safetensors").exists(),
            "{model}"
        );
    }
    assert!(stdout.contains("fitted on 10 photographs"), "{stdout}");
    // Installed models are kept.
    let again = install();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success());
    assert_eq!(stdout.matches("already in").count(), 4, "{stdout}");

    // Two held-out photographs (fetched with the training ones, never fitted on).
    let photos = dir.path().join("photos-scikit-image-0.26.0");
    let saved = dir.path().join("saved");
    let out = vitrine()
        .args(["images", "eval", "--models"])
        .arg(&models)
        .arg("--save")
        .arg(&saved)
        .arg("--photos")
        .arg(photos.join("astronaut.png"))
        .arg(photos.join("coffee.png"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("astronaut.png") && stdout.contains("coffee.png"),
        "{stdout}"
    );
    let gain: f64 = stdout
        .split("image-enhance-x2 vs bicubic: ")
        .nth(1)
        .and_then(|rest| rest.split(" dB").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no gain line in {stdout}"));
    assert!(gain >= 1.0, "only {gain} dB over bicubic:\n{stdout}");
    assert!(saved.join("astronaut-image-enhance-x2.png").exists());

    // A model that is not installed is named, with the way to install it.
    let out = vitrine()
        .args(["images", "eval", "--model", "image-enhance-x8", "--models"])
        .arg(&models)
        .arg("--photos")
        .arg(photos.join("coffee.png"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("image-enhance-x8 is not in") && stderr.contains("install-models"),
        "{stderr}"
    );
}

/// A small `srvgg` ×2 model with deterministic pseudo-random weights (same network as the
/// real ones, 16 features and 4 convolutions): fast enough for tests, slow enough that a
/// regeneration of a few dozen images can be interrupted.
fn small_model(repository: &std::path::Path) {
    let (features, convs) = (16usize, 4usize);
    let mut shapes: Vec<(String, Vec<usize>)> = Vec::new();
    let mut input = 3;
    for i in 0..=convs {
        shapes.push((
            format!("body.{}.weight", 2 * i),
            vec![features, input, 3, 3],
        ));
        shapes.push((format!("body.{}.bias", 2 * i), vec![features]));
        shapes.push((format!("body.{}.weight", 2 * i + 1), vec![features]));
        input = features;
    }
    let last = 2 * (convs + 1);
    shapes.push((format!("body.{last}.weight"), vec![12, features, 3, 3]));
    shapes.push((format!("body.{last}.bias"), vec![12]));
    // safetensors: an 8-byte header length, the JSON header, then the data.
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    let mut seed = 7u64;
    for (name, shape) in &shapes {
        let count: usize = shape.iter().product();
        let start = data.len();
        for _ in 0..count {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let value = ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1;
            data.extend(value.to_le_bytes());
        }
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header);
    file.extend(data);
    let dir = repository.join("small-x2");
    std::fs::create_dir_all(dir.join("1")).unwrap();
    std::fs::write(dir.join("1/model.safetensors"), file).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "architecture = \"srvgg\"\nmax_batch_size = 4\n\
             [[input]]\nname = \"image\"\ndatatype = \"UINT8\"\ndims = [-1, -1, 3]\n\
             [[output]]\nname = \"enhanced\"\ndatatype = \"UINT8\"\ndims = [-1, -1, 3]\n\
             [dynamic_batching]\npriority_levels = 2\n\
             [parameters]\nfeatures = {features}\nconvs = {convs}\nupscale = 2\noutscale = 2\n\
             tile = 272\ntile_overlap = 16\ntiles_per_pass = 1\nmax_pixels = 1048576\n"
        ),
    )
    .unwrap();
}

/// A picture `w × h` that differs with `seed`.
fn picture(seed: u32, w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let v = (x * (3 + seed % 5) + y * 7 + seed * 13) % 256;
        image::Rgb([v as u8, (255 - v) as u8, ((x * y + seed) % 256) as u8])
    })
}

/// The PNGs under `dir` (recursively) with their modification times.
fn outputs(
    dir: &std::path::Path,
) -> std::collections::BTreeMap<std::path::PathBuf, std::time::SystemTime> {
    let mut found = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "png") {
                found.insert(path.clone(), entry.metadata().unwrap().modified().unwrap());
            }
        }
    }
    found
}

/// The number after `label` in a report line.
fn count(report: &str, label: &str) -> usize {
    report
        .split(label)
        .nth(1)
        .and_then(|rest| {
            rest.trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no '{label}' in {report}"))
}

#[test]
fn regenerate_resumes_after_kill_9_without_redoing_or_skipping_and_reports_bad_images() {
    let dir = tempfile::tempdir().unwrap();
    let (models, source, dest, state) = (
        dir.path().join("models"),
        dir.path().join("source"),
        dir.path().join("dest"),
        dir.path().join("state"),
    );
    small_model(&models);
    // 36 good images in two folders (PNG and JPEG), one with transparency, one 16-bit grey,
    // a corrupt and a truncated image, and a file that is not an image.
    for i in 0..36u32 {
        let folder = source.join(if i % 2 == 0 { "tops" } else { "shoes/2026" });
        std::fs::create_dir_all(&folder).unwrap();
        let (name, format) = if i % 3 == 0 {
            (format!("p-{i:03}.jpg"), image::ImageFormat::Jpeg)
        } else {
            (format!("p-{i:03}.png"), image::ImageFormat::Png)
        };
        picture(i, 120, 96)
            .save_with_format(folder.join(name), format)
            .unwrap();
    }
    let rgba = image::RgbaImage::from_fn(40, 30, |x, _| image::Rgba([200, 10, 10, (x * 6) as u8]));
    rgba.save(source.join("transparent.png")).unwrap();
    let grey16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(30, 20, |x, y| {
        image::Luma([(x * 2000 + y * 100) as u16])
    });
    grey16.save(source.join("grey16.png")).unwrap();
    std::fs::write(
        source.join("corrupt.jpg"),
        b"\xff\xd8\xff\xe0 this is not a jpeg",
    )
    .unwrap();
    let mut whole = Vec::new();
    picture(99, 64, 64)
        .write_to(
            &mut std::io::Cursor::new(&mut whole),
            image::ImageFormat::Png,
        )
        .unwrap();
    std::fs::write(source.join("truncated.png"), &whole[..whole.len() / 2]).unwrap();
    std::fs::write(source.join("notes.txt"), "not an image").unwrap();
    let good = 38;

    let regenerate = || {
        let mut cmd = vitrine();
        cmd.args([
            "images",
            "regenerate",
            "--model",
            "small-x2",
            "--concurrency",
            "2",
            "--source",
        ])
        .arg(&source)
        .arg("--dest")
        .arg(&dest)
        .arg("--models")
        .arg(&models)
        .arg("--state-dir")
        .arg(&state);
        cmd
    };

    // First run, killed with SIGKILL once a few outputs are stored.
    let mut child = regenerate()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while outputs(&dest).len() < 6 {
        assert!(std::time::Instant::now() < deadline, "no outputs appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first run ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = outputs(&dest);
    assert!(
        before.len() < good,
        "the first run finished before the kill: {}",
        before.len()
    );

    // Second run: finishes the rest, recomputes nothing stored, reports the bad images.
    let out = regenerate().output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "two images fail: {report}");
    assert_eq!(count(&report, "already done"), before.len(), "{report}");
    assert_eq!(count(&report, "enhanced"), good - before.len(), "{report}");
    assert_eq!(count(&report, "not images"), 1, "{report}");
    assert_eq!(count(&report, "; failed"), 2, "{report}");
    assert!(report.contains("failed corrupt.jpg: "), "{report}");
    assert!(report.contains("failed truncated.png: "), "{report}");
    let after = outputs(&dest);
    assert_eq!(after.len(), good, "{report}");
    for (path, modified) in &before {
        assert_eq!(
            after.get(path),
            Some(modified),
            "{} was written again",
            path.display()
        );
    }
    // Every output is twice its source, transparency kept, at the source's path.
    let output = image::open(dest.join("shoes/2026/p-003.png")).unwrap();
    assert_eq!((output.width(), output.height()), (240, 192));
    let output = image::open(dest.join("transparent.png")).unwrap();
    assert!(output.color().has_alpha());
    let alpha = output.to_rgba8();
    assert!(alpha.get_pixel(2, 10)[3] < 30 && alpha.get_pixel(75, 10)[3] > 200);
    assert_eq!(image::open(dest.join("grey16.png")).unwrap().width(), 60);

    // Third run: everything is journalled; only the bad images are tried again.
    let out = regenerate().output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(count(&report, "enhanced"), 0, "{report}");
    assert_eq!(count(&report, "already done"), good, "{report}");
    // Without the journal, the outputs' provenance tells what is done.
    std::fs::remove_dir_all(&state).unwrap();
    let out = regenerate().output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(count(&report, "enhanced"), 0, "{report}");
    assert_eq!(count(&report, "already done"), good, "{report}");
    assert_eq!(outputs(&dest), after, "outputs rewritten without a journal");

    // A destination inside the source would have its outputs enhanced again: refused.
    let inside = source.join("enhanced");
    let out = vitrine()
        .args(["images", "regenerate", "--model", "small-x2", "--source"])
        .arg(&source)
        .arg("--dest")
        .arg(&inside)
        .arg("--models")
        .arg(&models)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("is inside the source"),
        "{stderr}"
    );
    assert!(!inside.exists());
}

/// An S3-compatible server (`s3s-fs`, from crates.io; `.ci/run` installs it) on a loopback
/// port, serving the buckets under `root`; stopped on drop.
struct S3Server {
    child: std::process::Child,
    url: String,
}

impl S3Server {
    fn start(root: &std::path::Path) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", "vitrine", "--secret-key", "vitrine-secret"])
            .arg(root)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("s3s-fs on PATH (cargo install s3s-fs@0.14.1 --features binary --locked)");
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let url = stdout
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.split("server is running at ")
                    .nth(1)
                    .map(|u| u.trim().to_string())
            })
            .expect("s3s-fs printed its address");
        Self { child, url }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn regenerate_reads_and_writes_an_s3_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let (models, root, state) = (
        dir.path().join("models"),
        dir.path().join("s3"),
        dir.path().join("state"),
    );
    small_model(&models);
    // The bucket "catalogue" with originals under a prefix, and an object outside it.
    let originals = root.join("catalogue/originals/dresses");
    std::fs::create_dir_all(&originals).unwrap();
    for i in 0..5u32 {
        picture(i, 64, 48)
            .save(originals.join(format!("d-{i}.png")))
            .unwrap();
    }
    picture(9, 64, 48)
        .save(root.join("catalogue/elsewhere.png"))
        .unwrap();
    let server = S3Server::start(&root);

    let regenerate = || {
        let mut cmd = vitrine();
        cmd.args(["images", "regenerate", "--model", "small-x2"])
            .args([
                "--source",
                "s3://catalogue/originals",
                "--dest",
                "s3://catalogue/enhanced",
            ])
            .arg("--models")
            .arg(&models)
            .arg("--state-dir")
            .arg(&state)
            .env("AWS_ENDPOINT", &server.url)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "vitrine")
            .env("AWS_SECRET_ACCESS_KEY", "vitrine-secret")
            .env("AWS_REGION", "us-east-1");
        cmd.output().unwrap()
    };
    let out = regenerate();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&report, "enhanced"), 5, "{report}");
    // Written through the S3 API, at the sources' paths under the destination prefix.
    let written = outputs(&root.join("catalogue/enhanced"));
    assert_eq!(written.len(), 5, "{written:?}");
    let output = image::open(root.join("catalogue/enhanced/dresses/d-3.png")).unwrap();
    assert_eq!((output.width(), output.height()), (128, 96));
    assert!(!root.join("catalogue/enhanced/elsewhere.png").exists());
    // A rerun finds them done.
    let out = regenerate();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert_eq!(count(&report, "already done"), 5, "{report}");
    assert_eq!(count(&report, "enhanced"), 0, "{report}");
}

/// Posts a catalogue event signed with the test secret; the status and JSON answer.
async fn deliver(
    app: &vitrine_tests::TestApp,
    id: &str,
    event: &str,
    product: &str,
) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"type": event, "timestamp": "2026-12-05T00:00:00Z", "data": {"id": product}})
        .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signature = vitrine_webhooks::sign(
        vitrine_tests::CATALOG_WEBHOOK_SECRET,
        id,
        now,
        body.as_bytes(),
    )
    .unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/catalog", app.url))
        .header("webhook-id", id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// The catalogue webhook's jobs in `state`, with the counts per state.
async fn jobs(app: &vitrine_tests::TestApp, state: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{}/api/admin/image-jobs?state={state}", app.url))
        .bearer_auth(vitrine_tests::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `vitrine images work --drain` on the small model, with `extra` arguments: success, output.
async fn work(
    app: &vitrine_tests::TestApp,
    models: &std::path::Path,
    extra: &[&str],
) -> (bool, String) {
    let mut cmd = vitrine();
    cmd.args([
        "images", "work", "--drain", "--model", "small-x2", "--url", &app.url,
    ])
    .arg("--models")
    .arg(models)
    .args(extra)
    .env("VITRINE_ADMIN_TOKEN", vitrine_tests::ADMIN_TOKEN);
    let (ok, stdout, stderr) = crate::commands::output(cmd).await;
    (ok, format!("{stdout}{stderr}"))
}

#[tokio::test]
async fn catalogue_events_queue_jobs_that_workers_enhance_once_and_dead_letter_poison(
) -> anyhow::Result<()> {
    let app = vitrine_tests::TestApp::start(&vitrine_tests::shop_manifest("")).await?;
    let models = tempfile::tempdir()?;
    small_model(models.path());
    let client = reqwest::Client::new();
    let product = |id: &str| format!("{}/images/products/{id}", app.url);
    // The shop's own pictures: an opaque photograph and a transparent PNG.
    let mut uploads = Vec::new();
    for (id, rgba) in [("p-00001", false), ("p-00002", true)] {
        let mut bytes = Vec::new();
        let image = if rgba {
            let mut p = image::RgbaImage::from_fn(30, 20, |x, y| {
                image::Rgba([x as u8 * 8, y as u8 * 12, 90, 255])
            });
            p.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
            image::DynamicImage::ImageRgba8(p)
        } else {
            image::DynamicImage::ImageRgb8(picture(3, 32, 24))
        };
        image.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )?;
        let put = client
            .put(product(id))
            .bearer_auth(vitrine_tests::ADMIN_TOKEN)
            .header("content-type", "image/png")
            .body(bytes.clone())
            .send()
            .await?;
        assert_eq!(put.status(), 200);
        uploads.push(bytes);
    }

    // Deliveries: queued once each; bad ones refused before anything is queued.
    assert_eq!(
        deliver(&app, "msg_1", "product.image_changed", "p-00001")
            .await
            .0,
        202
    );
    let (status, again) = deliver(&app, "msg_1", "product.image_changed", "p-00001").await;
    assert_eq!(
        (status, &again["duplicate"]),
        (200, &serde_json::json!(true))
    );
    assert_eq!(
        deliver(&app, "msg_2", "product.created", "p-00002").await.0,
        202
    );
    assert_eq!(
        deliver(&app, "msg_3", "product.updated", "p-00003").await.0,
        202
    );
    assert_eq!(
        deliver(&app, "msg_4", "product.updated", "p-99999").await.0,
        202
    );
    let (status, refused) = deliver(&app, "msg_5", "product.deleted", "p-00001").await;
    assert_eq!(status, 400);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("product.image_changed"),
        "{refused}"
    );
    let forged = client
        .post(format!("{}/webhooks/catalog", app.url))
        .header("webhook-id", "msg_6")
        .header("webhook-timestamp", "1")
        .header("webhook-signature", "v1,AAAA")
        .body("{}")
        .send()
        .await?;
    assert_eq!(forged.status(), 401);
    assert_eq!(jobs(&app, "queued").await["counts"]["queued"], 4);

    // A job claimed by a worker that then died comes back once its lease runs out.
    let claimed = client
        .post(format!("{}/api/admin/image-jobs/claim?lease=5", app.url))
        .bearer_auth(vitrine_tests::ADMIN_TOKEN)
        .send()
        .await?;
    assert_eq!(claimed.status(), 200);
    let lost = claimed.json::<serde_json::Value>().await?["id"].clone();
    assert_eq!(lost, "msg_1");

    let (ok, log) = work(&app, models.path(), &[]).await;
    assert!(ok, "{log}");
    assert!(log.contains("msg_2: p-00002 enhanced"), "{log}");
    assert!(log.contains("msg_3: p-00003 has a drawn picture"), "{log}");
    assert!(!log.contains("msg_1"), "msg_1 is still leased: {log}");
    // The unknown product fails both allowed attempts and lands in the dead-letter list.
    let dead = jobs(&app, "dead").await;
    assert_eq!(dead["jobs"][0]["id"], "msg_4", "{dead}");
    assert!(
        dead["jobs"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("no product `p-99999`"),
        "{dead}"
    );
    assert_eq!(dead["jobs"][0]["attempts"], 2);

    tokio::time::sleep(std::time::Duration::from_millis(5500)).await;
    let (ok, log) = work(&app, models.path(), &[]).await;
    assert!(ok && log.contains("msg_1: p-00001 enhanced"), "{log}");
    let counts = jobs(&app, "done").await["counts"].clone();
    assert_eq!(
        counts,
        serde_json::json!({"queued": 0, "working": 0, "published": 0, "done": 3, "dead": 1})
    );

    // The product's picture is now the enhanced one, twice the size; the original is kept.
    let served = client.get(product("p-00001")).send().await?;
    assert_eq!(served.headers()["content-type"], "image/jpeg");
    let enhanced = image::load_from_memory(&served.bytes().await?)?;
    assert_eq!((enhanced.width(), enhanced.height()), (64, 48));
    let original = client
        .get(format!("{}/original", product("p-00001")))
        .send()
        .await?;
    let source = original.headers()["etag"].to_str()?.to_string();
    assert_eq!(original.bytes().await?, uploads[0]);
    let record = client
        .get(format!("{}/enhanced", product("p-00001")))
        .send()
        .await?;
    assert_eq!(record.headers()["x-vitrine-source"].to_str()?, source);
    assert!(record.headers()["x-vitrine-model"]
        .to_str()?
        .starts_with("small-x2/"));
    let transparent = client.get(product("p-00002")).send().await?;
    assert_eq!(transparent.headers()["content-type"], "image/png");
    let transparent = image::load_from_memory(&transparent.bytes().await?)?.to_rgba8();
    assert_eq!(transparent.dimensions(), (60, 40));
    assert!(
        transparent.get_pixel(0, 0)[3] < 128,
        "the transparent corner stays transparent"
    );

    // The same picture again (a new delivery): nothing is enhanced twice.
    assert_eq!(
        deliver(&app, "msg_7", "product.updated", "p-00001").await.0,
        202
    );
    let (ok, log) = work(&app, models.path(), &[]).await;
    assert!(
        ok && log.contains("msg_7: p-00001 already enhanced"),
        "{log}"
    );
    // Beautify steps make another recipe: enhanced again, the steps in the model's record.
    assert_eq!(
        deliver(&app, "msg_8", "product.updated", "p-00001").await.0,
        202
    );
    let (ok, log) = work(&app, models.path(), &["--beautify", "exposure"]).await;
    assert!(
        ok && log.contains("msg_8: p-00001 enhanced with small-x2/1+exposure"),
        "{log}"
    );
    let (ok, log) = work(&app, models.path(), &["--beautify", "sharpen"]).await;
    assert!(
        !ok && log.contains("unknown beautify step 'sharpen'"),
        "{log}"
    );

    // An enhanced picture made from an older picture is refused; a dead job can be retried.
    let stale = client
        .put(format!("{}/enhanced", product("p-00001")))
        .bearer_auth(vitrine_tests::ADMIN_TOKEN)
        .header("content-type", "image/png")
        .header("x-vitrine-source", "\"0000000000000000\"")
        .header("x-vitrine-model", "x/1")
        .body(uploads[0].clone())
        .send()
        .await?;
    assert_eq!(stale.status(), 409);
    let retried = client
        .post(format!("{}/api/admin/image-jobs/msg_4/retry", app.url))
        .bearer_auth(vitrine_tests::ADMIN_TOKEN)
        .send()
        .await?;
    assert_eq!(retried.status(), 200);
    assert_eq!(jobs(&app, "queued").await["jobs"][0]["id"], "msg_4");
    let unauthorized = client
        .get(format!("{}/api/admin/image-jobs", app.url))
        .send()
        .await?;
    assert_eq!(unauthorized.status(), 401);
    Ok(())
}

#[tokio::test]
async fn catalogue_jobs_go_through_nats_jetstream_and_survive_its_kill_9() -> anyhow::Result<()> {
    let mut nats = vitrine_tests::LoopbackService::nats()?;
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let app = vitrine_tests::TestApp::start(&vitrine_tests::shop_manifest("")).await?;
    let models = tempfile::tempdir()?;
    small_model(models.path());
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(picture(5, 40, 30)).write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    let client = reqwest::Client::new();
    let put = client
        .put(format!("{}/images/products/p-00001", app.url))
        .bearer_auth(vitrine_tests::ADMIN_TOKEN)
        .header("content-type", "image/png")
        .body(bytes)
        .send()
        .await?;
    assert_eq!(put.status(), 200);
    for (id, product) in [("n_1", "p-00001"), ("n_2", "p-00003"), ("n_3", "p-99999")] {
        assert_eq!(deliver(&app, id, "product.updated", product).await.0, 202);
    }
    let relay = || {
        let mut cmd = vitrine();
        cmd.args([
            "images", "relay", "--drain", "--url", &app.url, "--nats", &url,
        ])
        .env("VITRINE_ADMIN_TOKEN", vitrine_tests::ADMIN_TOKEN);
        crate::commands::output(cmd)
    };
    let (ok, out, err) = relay().await;
    assert!(
        ok && out.contains("3 jobs moved to the stream VITRINE_IMAGE_JOBS"),
        "{out}{err}"
    );
    assert_eq!(jobs(&app, "published").await["counts"]["published"], 3);

    // The server dies with the jobs in its stream, and comes back: none is lost.
    nats.kill();
    nats.restart()?;
    let (ok, log) = work(&app, models.path(), &["--nats", &url]).await;
    assert!(ok, "{log}");
    assert!(log.contains("n_1: p-00001 enhanced"), "{log}");
    assert!(log.contains("n_2: p-00003 has a drawn picture"), "{log}");
    let dead = jobs(&app, "dead").await;
    let expected =
        serde_json::json!({"queued": 0, "working": 0, "published": 0, "done": 2, "dead": 1});
    assert_eq!(dead["counts"], expected, "{dead}");
    assert!(dead["jobs"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("no product `p-99999`"));
    let enhanced = client
        .get(format!("{}/images/products/p-00001", app.url))
        .send()
        .await?;
    assert_eq!(
        image::load_from_memory(&enhanced.bytes().await?)?.width(),
        80
    );

    // The stream took the three jobs and keeps none (work-queue retention).
    let js = async_nats::jetstream::new(async_nats::connect(&url).await?);
    let info = js
        .get_stream("VITRINE_IMAGE_JOBS")
        .await?
        .info()
        .await?
        .state
        .clone();
    assert_eq!((info.last_sequence, info.messages), (3, 0));

    // A dead job retried goes through the stream again (a new message, not a duplicate).
    let retried = client
        .post(format!("{}/api/admin/image-jobs/n_3/retry", app.url))
        .bearer_auth(vitrine_tests::ADMIN_TOKEN)
        .send()
        .await?;
    assert_eq!(retried.status(), 200);
    let (ok, out, _) = relay().await;
    assert!(ok && out.contains("1 jobs moved"), "{out}");
    let info = js
        .get_stream("VITRINE_IMAGE_JOBS")
        .await?
        .info()
        .await?
        .state
        .clone();
    assert_eq!(info.last_sequence, 4);
    Ok(())
}

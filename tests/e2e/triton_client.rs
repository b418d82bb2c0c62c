//! NVIDIA's Triton HTTP client (Python `tritonclient[http]`, installed by `.ci/run`) against a
//! worker serving the built-in models: a client written for Triton must work unchanged.

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_triton_http_client_works_unchanged() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import tritonclient.http, numpy"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs Python with tritonclient: `{python} -m pip install 'tritonclient[http]'` (.ci/run does it)"
    );
    // A private copy: the script unloads and reloads a model.
    let models = tempfile::tempdir().unwrap();
    for model in ["intent-mlp", "shapes-cnn"] {
        let from = vitrine_tests::test_models().join(model);
        std::fs::create_dir_all(models.path().join(model).join("1")).unwrap();
        for file in ["config.toml", "1/model.safetensors"] {
            std::fs::copy(from.join(file), models.path().join(model).join(file)).unwrap();
        }
    }
    let worker = vitrine_tests::TestWorker::start(models.path())
        .await
        .unwrap();
    let addr = worker.url.trim_start_matches("http://").to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/triton_client.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python).arg(script).arg(addr).output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "tritonclient failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

//! `infra/`: each kustomize overlay renders, and every object validates against its schema
//! and against the objects it names (`infra/validate.py`, with `kubectl kustomize` and PyPI's
//! `kubernetes-validate`, which `.ci/run` installs).

use std::path::Path;
use std::process::{Command, Output};

use vitrine_tests::workspace_root;

/// Runs the validator on `overlays` (all of `infra/overlays` when empty).
fn validate(overlays: &[&Path]) -> anyhow::Result<Output> {
    let root = workspace_root();
    let output = Command::new("python3")
        .arg(root.join("infra/validate.py"))
        .args(overlays)
        .current_dir(&root)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run python3: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    anyhow::ensure!(
        !stderr.contains("ModuleNotFoundError") && !stderr.contains("is installed"),
        "the validator's tools are missing (pip install kubernetes-validate; apt-get install \
         kubernetes-client): {stderr}"
    );
    Ok(output)
}

#[test]
fn every_overlay_renders_and_validates() -> anyhow::Result<()> {
    let output = validate(&[])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for overlay in ["infra/overlays/dev", "infra/overlays/prod"] {
        assert!(
            stdout.contains(&format!("{overlay}: ")) && stdout.contains("objects valid"),
            "{stdout}"
        );
    }
    Ok(())
}

#[test]
fn a_broken_overlay_is_refused_naming_each_problem() -> anyhow::Result<()> {
    // A copy of the base, and an overlay that breaks it four ways.
    let dir = tempfile::tempdir()?;
    let copied = Command::new("cp")
        .arg("-r")
        .arg(workspace_root().join("infra/base"))
        .arg(dir.path().join("base"))
        .status()?;
    assert!(copied.success());
    let overlay = dir.path().join("broken");
    std::fs::create_dir(&overlay)?;
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "bases:\n  - ../base\npatchesStrategicMerge:\n  - patch.yaml\n",
    )?;
    std::fs::write(
        overlay.join("patch.yaml"),
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: vitrine-worker
spec:
  template:
    spec:
      containers:
        - name: worker
          readinessProbe:
            httpGet:
              port: grpc
          resource:
            limits:
              cpu: 1
---
apiVersion: core.spinkube.dev/v1alpha1
kind: SpinApp
metadata:
  name: vitrine-functions
spec:
  replica: 3
  runtimeConfig:
    loadFromSecret: vitrine-runtime-cfg
"#,
    )?;
    let output = validate(&[&overlay])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    for named in [
        "Deployment/vitrine-worker: spec.template.spec.containers.0: Additional properties are not allowed ('resource'",
        "SpinApp/vitrine-functions: spec: Additional properties are not allowed ('replica'",
        "readinessProbe: no container port named `grpc`",
        "Secret `vitrine-runtime-cfg` is not defined",
    ] {
        assert!(stdout.contains(named), "`{named}` not in:\n{stdout}");
    }
    Ok(())
}

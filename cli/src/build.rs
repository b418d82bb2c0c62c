//! `vitrine build`: runs each component's `[component.<id>.build]` command, as `spin build` does.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use vitrine_runtime::manifest::{BuildConfig, Component};
use vitrine_runtime::Manifest;

/// Lines of a failed command's output repeated in the error.
const OUTPUT_TAIL: usize = 40;

/// Which components to build.
pub enum Select<'a> {
    /// Every component with a build command (optionally only these ids).
    All(&'a [String]),
    /// Only components whose source is missing or older than their `watch` files.
    Stale,
}

/// Builds the selected components, printing each command's output as it runs.
pub fn build(manifest: &Manifest, select: Select<'_>) -> Result<()> {
    if let Select::All(ids) = select {
        if let Some(unknown) = ids.iter().find(|id| !manifest.components.contains_key(*id)) {
            bail!("no component `{unknown}` in {}", manifest.path.display());
        }
    }
    for component in manifest.components.values() {
        let Some(build) = &component.build else {
            continue;
        };
        let wanted = match select {
            Select::All(ids) => ids.is_empty() || ids.contains(&component.id),
            Select::Stale => is_stale(component, build, manifest.dir()),
        };
        if wanted {
            run_build(component, build, manifest.dir())?;
        }
    }
    Ok(())
}

/// A source is stale when it is missing or any file matched by `watch` is newer.
fn is_stale(component: &Component, build: &BuildConfig, manifest_dir: &Path) -> bool {
    let Some(built) = modified(&component.source) else {
        return true;
    };
    let workdir = manifest_dir.join(build.workdir.as_deref().unwrap_or("."));
    build.watch.iter().any(|pattern| {
        glob::glob(&workdir.join(pattern).to_string_lossy())
            .into_iter()
            .flatten()
            .flatten()
            .any(|path| modified(&path).is_some_and(|m| m > built))
    })
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn run_build(component: &Component, build: &BuildConfig, manifest_dir: &Path) -> Result<()> {
    let workdir = manifest_dir.join(build.workdir.as_deref().unwrap_or("."));
    for command in build.commands.as_slice() {
        let what = format!("component `{}`", component.id);
        run_command(&what, command, &workdir, &build.environment)?;
    }
    Ok(())
}

/// Runs one build `command` for `what` (e.g. "component `catalog`") through the shell in
/// `workdir`, echoing its output live; a failure repeats the output's last lines.
pub fn run_command(
    what: &str,
    command: &str,
    workdir: &Path,
    environment: &BTreeMap<String, String>,
) -> Result<()> {
    ensure_rust_targets(command)?;
    eprintln!("Building {what}: {command}");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(workdir)
        .envs(environment)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{what}: cannot run `{command}` in {}", workdir.display()))?;
    // Echo both streams live and keep the last lines for the error message.
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let echo = |stream: Box<dyn std::io::Read + Send>| {
        let tail = tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("  {line}");
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == OUTPUT_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        })
    };
    let readers = [
        echo(Box::new(child.stdout.take().expect("piped stdout"))),
        echo(Box::new(child.stderr.take().expect("piped stderr"))),
    ];
    let status = child.wait()?;
    for reader in readers {
        let _ = reader.join();
    }
    if !status.success() {
        let tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        let output: Vec<&str> = tail.iter().map(String::as_str).collect();
        bail!(
            "building {what} failed: `{command}` exited with {status}\n{}",
            output.join("\n")
        );
    }
    Ok(())
}

/// Installs the Rust Wasm targets a cargo command names, or says how to.
fn ensure_rust_targets(command: &str) -> Result<()> {
    for target in ["wasm32-wasip2", "wasm32-wasip1"] {
        if !command.contains(target) {
            continue;
        }
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output();
        let Ok(installed) = installed else {
            bail!(
                "the Rust target {target} is needed but rustup was not found; \
                 install Rust with rustup, then run `rustup target add {target}`"
            );
        };
        if String::from_utf8_lossy(&installed.stdout)
            .lines()
            .any(|l| l.trim() == target)
        {
            continue;
        }
        eprintln!(
            "The Rust target {target} is not installed; running `rustup target add {target}`"
        );
        let status = Command::new("rustup")
            .args(["target", "add", target])
            .status()?;
        if !status.success() {
            bail!("`rustup target add {target}` failed; run it yourself, then retry");
        }
    }
    Ok(())
}

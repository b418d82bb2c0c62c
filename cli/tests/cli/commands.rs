//! The `vitrine` command as a user runs it: help, build failures, startup errors, serving and
//! a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

pub(crate) fn vitrine() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vitrine"));
    cmd.env("RUST_LOG", "info").env_remove("RUST_BACKTRACE");
    cmd
}

/// Runs `cmd` off the async threads; returns (success, stdout, stderr).
pub(crate) async fn output(mut cmd: Command) -> (bool, String, String) {
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `command`, which must succeed, and parses its standard output as JSON.
pub(crate) fn json_output(command: &mut std::process::Command) -> serde_json::Value {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) fn write_manifest(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("spin.toml");
    std::fs::write(&path, vitrine_tests::manifest(body)).unwrap();
    path
}

#[test]
fn help_lists_the_commands() {
    let out = vitrine().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("build") && text.contains("up"), "{text}");
}

#[test]
fn a_failing_build_names_the_component_and_shows_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"broken\"\n[component.broken]\nsource = \"broken.wasm\"\n[component.broken.build]\ncommand = \"echo compiler-says-no; exit 3\"\n",
    );
    let out = vitrine()
        .args(["build", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("`broken`") && stderr.contains("compiler-says-no"),
        "{stderr}"
    );
}

#[test]
fn startup_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "spin_manifest_version = 2\n[application]\nname = \"x\"\nflavour = 1\n",
    )
    .unwrap();
    let out = vitrine()
        .args(["up", "--skip-build", "-f"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("flavour") && stderr.contains("bad.toml"),
        "{stderr}"
    );

    let manifest = write_manifest(
        dir.path(),
        "[variables]\ntoken = { required = true, secret = true }\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n[component.probe]\nsource = \"PROBE\"\n",
    );
    let out = vitrine()
        .args(["up", "--skip-build", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("SPIN_VARIABLE_TOKEN"), "{stderr}");
}

/// A minimal HTTP/1.0 GET, returning the whole response.
/// A minimal HTTP/1.0 request with `body` and, if given, a bearer `token`; the whole response.
pub(crate) fn http_send(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let json = match body.is_empty() {
        true => "",
        false => "Content-Type: application/json\r\n",
    };
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}{json}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// `GET path` with a bearer `token`; the whole response.
pub(crate) fn http_get_with(addr: &str, path: &str, token: &str) -> String {
    http_send(addr, "GET", path, Some(token), "")
}

fn http_get(addr: &str, path: &str) -> String {
    http_send(addr, "GET", path, None, "")
}

#[test]
fn up_serves_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        "[variables]\nregion = { default = \"eu\" }\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n[component.probe]\nsource = \"PROBE\"\nvariables = { region = \"{{ region }}\" }\n",
    );
    let (mut child, addr, mut logs) = start_up(&["--variable", "region=us"], &manifest);
    let response = http_get(&addr, "/var/region");
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    assert!(response.contains(r#"{"value":"us"}"#), "{response}");
    let printed = http_get(&addr, "/print?hello-from-the-guest");
    assert!(printed.contains("hello-from-the-guest"), "{printed}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "vitrine up exited with {status}");
    let mut rest = String::new();
    logs.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("drained"), "{rest}");
    // Guest output reaches the log, line by line, with the component and request id.
    for stream in ["stdout", "stderr"] {
        let line = rest
            .lines()
            .find(|l| l.contains(&format!("{stream} says hello-from-the-guest")))
            .unwrap_or_else(|| panic!("no {stream} line in the log:\n{rest}"));
        assert!(
            line.contains("component=probe") && line.contains("request_id="),
            "{line}"
        );
    }
}

/// Starts `vitrine up` with `args`; returns the child, the address it serves on, and its logs
/// (read up to that announcement).
fn start_up(
    args: &[&str],
    manifest: &std::path::Path,
) -> (
    std::process::Child,
    String,
    BufReader<std::process::ChildStderr>,
) {
    let mut child = vitrine()
        .args([
            "up",
            "--skip-build",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
        ])
        .args(args)
        .arg("-f")
        .arg(manifest)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while logs.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.split("serving on http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().to_string();
            return (child, addr, logs);
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("vitrine up did not start");
}

/// Like [`start_up`], draining the logs in the background so the child never blocks on a full pipe.
pub(crate) fn up_with(args: &[&str], manifest: &std::path::Path) -> (std::process::Child, String) {
    let (child, addr, mut logs) = start_up(args, manifest);
    std::thread::spawn(move || std::io::copy(&mut logs, &mut std::io::sink()));
    (child, addr)
}

/// A minimal HTTP/1.0 POST of a JSON body, returning the whole response.
pub(crate) fn http_post(addr: &str, path: &str, body: &str) -> String {
    http_send(addr, "POST", path, None, body)
}

#[test]
fn up_serves_wasi_nn_from_local_workers_or_from_the_runtime_config() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        "[[trigger.http]]\nroute = \"/api/classify/...\"\ncomponent = \"classify\"\n[component.classify]\nsource = \"CLASSIFY\"\nai_models = [\"intent-mlp\"]\n",
    );
    let models = vitrine_tests::test_models();
    let body =
        r#"{"features": [0.3,-1.2,0.8,1.5,-0.4,0,2.1,-0.7,0.9,1.1,-1.8,0.2,0.6,-0.3,1.4,-0.9]}"#;

    // Default: `up` starts its own worker (two here) on the given repository.
    let (mut child, addr) = up_with(
        &["--nn-workers", "2", "--models", models.to_str().unwrap()],
        &manifest,
    );
    let local = http_post(&addr, "/api/classify/intent", body);
    assert!(
        local.contains(" 200 ") && local.contains("\"intent\""),
        "{local}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // A runtime config points at a remote worker instead; no local worker is needed.
    let mut worker = vitrine()
        .args(["worker", "--listen", "127.0.0.1:0", "--models"])
        .arg(&models)
        .arg("--state-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(worker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let worker_addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let config = dir.path().join("runtime-config.toml");
    std::fs::write(
        &config,
        format!("[wasi_nn]\nworkers = [\"http://{worker_addr}\"]\ntimeout_ms = 5000\n"),
    )
    .unwrap();
    let (mut child, addr) = up_with(
        &[
            "--nn-workers",
            "0",
            "--runtime-config-file",
            config.to_str().unwrap(),
        ],
        &manifest,
    );
    let remote = http_post(&addr, "/api/classify/intent", body);
    let json = |r: &str| r.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    assert_eq!(
        json(&remote),
        json(&local),
        "the remote worker gives the same answer"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    worker.kill().unwrap();
    worker.wait().unwrap();
}

/// `up --runtime-config-file` places key-value stores and databases as Spin's runtime config
/// does (a relative key-value `path` is relative to the file), and refuses tables, types and
/// fields it does not know, naming them and the file.
#[test]
fn up_places_stores_from_the_runtime_config() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n[component.probe]\nsource = \"PROBE\"\nkey_value_stores = [\"default\", \"carts\"]\n",
    );
    let config_dir = dir.path().join("config");
    std::fs::create_dir(&config_dir).unwrap();
    let config = config_dir.join("runtime-config.toml");
    std::fs::write(
        &config,
        "[key_value_store.carts]\ntype = \"spin\"\npath = \"stores/carts.db\"\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    let (mut child, addr) = up_with(
        &[
            "--runtime-config-file",
            config.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &manifest,
    );
    let response = http_send(&addr, "PUT", "/kv/carts/c1", None, "full");
    assert!(response.contains(" 200 "), "{response}");
    assert!(http_get(&addr, "/kv/carts/c1").contains("\"full\""));
    child.kill().unwrap();
    child.wait().unwrap();
    // The value lived in the placed file: without it, it is gone.
    let placed = config_dir.join("stores/carts.db");
    assert!(placed.exists(), "no store at {}", placed.display());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", placed.display()));
    }
    let args = [
        "--runtime-config-file",
        config.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let (mut child, addr) = up_with(&args, &manifest);
    assert!(http_get(&addr, "/kv/carts/c1").contains("\"exists\":false"));
    child.kill().unwrap();
    child.wait().unwrap();

    for (text, named) in [
        ("[llm_compute]\ntype = \"spin\"\n", "llm_compute"),
        (
            "[key_value_store.carts]\ntype = \"azure_cosmos\"\n",
            "azure_cosmos",
        ),
        ("[key_value_store.carts]\ntype = \"redis\"\n", "url"),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = vitrine()
            .args(["up", "--skip-build", "--runtime-config-file"])
            .arg(&config)
            .arg("-f")
            .arg(&manifest)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains("runtime-config.toml") && stderr.contains(named),
            "{text}: {stderr}"
        );
    }
}

/// CPU seconds (user + system) process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn endless_queries_stop_at_their_deadline_and_sigterm_still_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n[component.probe]\nsource = \"PROBE\"\nsqlite_databases = [\"default\"]\n[component.probe.tool.vitrine]\nrequest_timeout_ms = 500\n",
    );
    let state = dir.path().join("state");
    let (child, addr, logs) = start_up(&["--state-dir", state.to_str().unwrap()], &manifest);
    // Killed if an assertion fails, so a failing run leaves no process burning a core.
    struct Up(std::process::Child);
    impl Drop for Up {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut up = Up(child);
    let child = &mut up.0;
    let logs = std::thread::spawn(move || {
        let mut rest = String::new();
        let mut logs = logs;
        logs.read_to_string(&mut rest).unwrap();
        rest
    });

    // Three queries that would never end, at once: each is answered near its deadline.
    let endless = r#"{"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", "params": []}"#;
    let started = std::time::Instant::now();
    let (sender, answers) = std::sync::mpsc::channel();
    for _ in 0..3 {
        let (addr, sender) = (addr.clone(), sender.clone());
        std::thread::spawn(move || sender.send(http_post(&addr, "/sqlite/default", endless)));
    }
    let answers: Vec<String> = (0..3)
        .map(|_| {
            answers
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("no answer within 10 s")
        })
        .collect();
    for answer in &answers {
        let status = answer.split_whitespace().nth(1).unwrap_or("");
        assert!(
            status == "504" || (status == "500" && answer.contains("interrupted")),
            "{answer}"
        );
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Nothing keeps running: the process is (nearly) idle afterwards.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = cpu_seconds(child.id());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let used = cpu_seconds(child.id()) - before;
    assert!(
        used < 0.3,
        "{used:.2} CPU seconds in 2 s after the queries ended"
    );

    // SIGTERM: nothing is left to drain, so it exits at once.
    let stopping = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if stopping.elapsed() > std::time::Duration::from_secs(5) {
            let _ = child.kill();
            panic!("vitrine up still running 5 s after SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "vitrine up exited with {status}");
    assert!(logs.join().unwrap().contains("drained"));
}

/// `deploy` stores a release and `releases` lists it; a label never moves; `up --release`
/// serves the stored copy, not the current sources.
#[test]
fn deploy_releases_and_up_release() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("static");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("note.txt"), "first").unwrap();
    let manifest = write_manifest(
        dir.path(),
        "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n[component.probe]\nsource = \"PROBE\"\nfiles = [\"static/*\"]\n",
    );
    let run = |args: &[&str]| {
        let out = vitrine()
            .args(args)
            .arg("-f")
            .arg(&manifest)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, out) = run(&["deploy", "--skip-build", "--version", "v1"]);
    assert!(ok && out.starts_with("release v1: sha256:"), "{out}");
    let (ok, out) = run(&["releases"]);
    assert!(
        ok && out.contains("VERSION") && out.contains("\nv1 "),
        "{out}"
    );

    std::fs::write(files.join("note.txt"), "second").unwrap();
    let (ok, out) = run(&["deploy", "--skip-build", "--version", "v1"]);
    assert!(!ok && out.contains("already names release"), "{out}");
    let (ok, out) = run(&["deploy", "--skip-build", "--version", "v2"]);
    assert!(ok && out.starts_with("release v2: "), "{out}");

    let (mut child, addr) = up_with(&["--release", "v1"], &manifest);
    let served = http_get(&addr, "/file/static/note.txt");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(served.contains("\"first\""), "{served}");
}

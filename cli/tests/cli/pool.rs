//! The `wasi:nn` worker pool against real `vitrine worker` processes: requests spread over the
//! workers, a worker killed under load costs no request, and per-call timeouts hold.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use vitrine_runtime::nn_pool::{DataType, PoolError, PoolOptions, Tensor, WorkerPool};

struct WorkerProcess {
    child: Child,
    url: String,
    _state: tempfile::TempDir,
}

impl WorkerProcess {
    fn start() -> Self {
        let state = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vitrine"))
            .args(["worker", "--listen", "127.0.0.1:0", "--models"])
            .arg(vitrine_tests::test_models())
            .arg("--state-dir")
            .arg(state.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .expect("worker prints its address");
        Self {
            child,
            url: format!("http://{addr}"),
            _state: state,
        }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn inferences(&self) -> u64 {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect(self.url.trim_start_matches("http://")).unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text.lines()
            .find(|l| l.starts_with("vitrine_worker_inferences_total{model=\"intent-mlp\"}"))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn features(seed: usize) -> Vec<Tensor> {
    let data = (0..16)
        .flat_map(|i| (((seed * 31 + i * 7) % 13) as f32 / 6.0 - 1.0).to_le_bytes())
        .collect();
    vec![Tensor {
        name: "features".into(),
        datatype: DataType::F32,
        shape: vec![1, 16],
        data,
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_under_load_costs_no_request() {
    let mut a = WorkerProcess::start();
    let b = WorkerProcess::start();
    let pool =
        Arc::new(WorkerPool::new(&[a.url.clone(), b.url.clone()], PoolOptions::default()).unwrap());
    pool.start_health_checks();

    // 8 clients in a closed loop for 3 s; worker `a` is killed after 1 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut clients = Vec::new();
    for c in 0..8 {
        let pool = pool.clone();
        clients.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0, Vec::new());
            let mut i = c;
            while tokio::time::Instant::now() < deadline {
                match pool.infer("intent-mlp", features(i)).await {
                    Ok(out) => {
                        assert_eq!(out[0].shape, vec![1, 4]);
                        ok += 1;
                    }
                    Err(e) => failed.push(e.to_string()),
                }
                i += 8;
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let served_by_a = a.inferences();
    let served_by_b_before = b.inferences();
    a.kill();
    let mut total = 0;
    for client in clients {
        let (ok, failed) = client.await.unwrap();
        assert!(
            failed.is_empty(),
            "requests failed after a worker died: {failed:?}"
        );
        total += ok;
    }
    assert!(
        served_by_a > 0 && served_by_b_before > 0,
        "both workers took load ({served_by_a}, {served_by_b_before})"
    );
    assert!(
        b.inferences() > served_by_b_before,
        "the surviving worker took over"
    );
    assert!(total > 100, "only {total} requests in 3 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_cleanly_when_no_worker_answers() {
    // A port nobody listens on: the call fails fast with `unavailable`, not a hang.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let pool = WorkerPool::new(&[dead], PoolOptions::default()).unwrap();
    let err = pool.infer("intent-mlp", features(0)).await.unwrap_err();
    assert!(matches!(err, PoolError::Unavailable(_)), "{err:?}");

    // A worker that accepts but never answers: the per-call timeout ends the call.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let options = PoolOptions {
        timeout: Duration::from_millis(300),
        ..PoolOptions::default()
    };
    let pool = WorkerPool::new(&[url], options).unwrap();
    let started = std::time::Instant::now();
    let err = pool.infer("intent-mlp", features(0)).await.unwrap_err();
    assert!(matches!(err, PoolError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    assert!(WorkerPool::new(&["https://x:1".into()], PoolOptions::default()).is_err());
    assert!(WorkerPool::new(&[], PoolOptions::default()).is_err());
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // `pid (name) state ppid …`: the name may hold spaces, so split after `)`.
                    let rest = stat.rsplit_once(')')?.1;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// `vitrine up` serving the classify function with one local worker on the test models, in a
/// process group of its own (as a shell starts it). Returns the child, its application and
/// admin addresses, and its log as it grows.
struct UpWithWorker {
    child: std::process::Child,
    addr: String,
    admin: String,
    log: Arc<std::sync::Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl UpWithWorker {
    fn start() -> Self {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("spin.toml");
        std::fs::write(
            &manifest,
            vitrine_tests::manifest("[[trigger.http]]\nroute = \"/api/classify/...\"\ncomponent = \"classify\"\n[component.classify]\nsource = \"CLASSIFY\"\nai_models = [\"intent-mlp\"]\n"),
        )
        .unwrap();
        let mut child = crate::commands::vitrine()
            .args(["up", "--skip-build", "--listen", "127.0.0.1:0"])
            .args([
                "--admin-listen",
                "127.0.0.1:0",
                "--nn-workers",
                "1",
                "--models",
            ])
            .arg(vitrine_tests::test_models())
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("-f")
            .arg(&manifest)
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut logs = BufReader::new(child.stderr.take().unwrap());
        let (mut addr, mut admin) = (None, None);
        let mut line = String::new();
        while admin.is_none() && logs.read_line(&mut line).unwrap() > 0 {
            let after = |marker: &str| {
                line.split(marker)
                    .nth(1)
                    .map(|rest| rest.split(['/', ' ', '\n']).next().unwrap().to_string())
            };
            addr = addr.or_else(|| after("serving on http://"));
            // `up`'s own line (the worker logs a `metrics on` line of its own).
            admin = admin.or_else(|| after("health on http://"));
            line.clear();
        }
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while logs.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Self {
            child,
            addr: addr.expect("app address"),
            admin: admin.expect("admin address"),
            log,
            _dir: dir,
        }
    }
}

impl Drop for UpWithWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ctrl_c_to_the_terminal_group_drains_and_stops_the_local_workers() {
    let mut up = UpWithWorker::start();
    let workers = children_of(up.child.id());
    assert_eq!(workers.len(), 1, "one local worker: {workers:?}");
    // What a terminal's Ctrl-C does: SIGINT to the foreground process group, `up`'s.
    assert!(Command::new("kill")
        .args(["-INT", "--", &format!("-{}", up.child.id())])
        .status()
        .unwrap()
        .success());
    let status = up.child.wait().unwrap();
    assert!(status.success(), "vitrine up exited with {status}");
    let log = up.log.lock().unwrap().clone();
    assert!(log.contains("drained"), "{log}");
    // The worker was in a group of its own: it served through the drain and was stopped by
    // `up`, not by the signal, so the supervisor never saw it die.
    assert!(!log.contains("worker died"), "{log}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !std::path::Path::new(&format!("/proc/{}", workers[0])).exists(),
        "the worker outlived vitrine up"
    );
}

#[test]
fn a_local_worker_killed_under_load_is_restarted_and_requests_recover() {
    use crate::commands::http_post;
    let up = UpWithWorker::start();
    let (addr, admin) = (up.addr.clone(), up.admin.clone());
    let workers = children_of(up.child.id());
    assert_eq!(workers.len(), 1, "one local worker: {workers:?}");

    let body =
        r#"{"features": [0.3,-1.2,0.8,1.5,-0.4,0,2.1,-0.7,0.9,1.1,-1.8,0.2,0.6,-0.3,1.4,-0.9]}"#;
    let classify = || {
        let response = http_post(&addr, "/api/classify/intent", body);
        let ok = response.contains(" 200 ") && response.contains("\"intent\"");
        (ok, response)
    };
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        let (ok, response) = classify();
        assert!(ok, "{response}");
    }
    // kill -9 the worker under a closed-loop client; keep going until 2 s of successes.
    let killed = std::time::Instant::now();
    assert!(Command::new("kill")
        .args(["-KILL", &workers[0].to_string()])
        .status()
        .unwrap()
        .success());
    let (mut failures, mut last_failure, mut since_ok) = (Vec::new(), None, None);
    while killed.elapsed() < Duration::from_secs(30) {
        let (ok, response) = classify();
        let now = std::time::Instant::now();
        if ok {
            let first = *since_ok.get_or_insert(now);
            if now - first > Duration::from_secs(2) {
                break;
            }
        } else {
            since_ok = None;
            last_failure = Some(now);
            failures.push(response);
        }
    }
    let recovered = since_ok.expect("requests never succeeded again after the kill");
    let outage = last_failure.map_or(Duration::ZERO, |t| t - killed);
    eprintln!(
        "worker killed: {} failed requests, outage {outage:?}, recovered {:?} after the kill",
        failures.len(),
        recovered - killed
    );
    assert!(outage < Duration::from_secs(10), "outage {outage:?}");
    for failure in &failures {
        assert!(failure.contains(" 503 "), "{failure}");
        assert!(
            !failure.contains("127.0.0.1"),
            "an internal address leaked: {failure}"
        );
    }
    let new_workers = children_of(up.child.id());
    assert!(
        new_workers.len() == 1 && new_workers != workers,
        "{workers:?} -> {new_workers:?}"
    );
    let metrics = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&admin).unwrap();
        write!(stream, "GET /metrics HTTP/1.0\r\nHost: admin\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    };
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("vitrine_nn_worker_restarts_total{") && l.ends_with(" 1")),
        "{metrics}"
    );
    let log = up.log.lock().unwrap();
    assert!(log.contains("local inference worker restarted"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_model_is_served_by_the_first_worker_only() {
    let a = WorkerProcess::start();
    let b = WorkerProcess::start();
    let urls = [a.url.clone(), b.url.clone()];
    let spread = Arc::new(WorkerPool::new(&urls, PoolOptions::default()).unwrap());
    let pinned = Arc::new(
        WorkerPool::new(
            &urls,
            PoolOptions {
                pinned: ["intent-mlp".to_string()].into(),
                ..PoolOptions::default()
            },
        )
        .unwrap(),
    );
    // 40 concurrent calls each: an unpinned model spreads over both workers.
    async fn calls(pool: &Arc<WorkerPool>) {
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.infer("intent-mlp", features(i)).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    }
    calls(&spread).await;
    let (a_before, b_before) = (a.inferences(), b.inferences());
    assert!(a_before > 0 && b_before > 0, "({a_before}, {b_before})");
    calls(&pinned).await;
    assert_eq!(
        b.inferences(),
        b_before,
        "a pinned call reached the second worker"
    );
    assert!(a.inferences() > a_before);
}

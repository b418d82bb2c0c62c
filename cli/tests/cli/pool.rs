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

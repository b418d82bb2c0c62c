//! Guest stdout and stderr, forwarded line by line to the runtime's log with the component id
//! and request id.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Longest line kept before it is logged in pieces.
const MAX_LINE: usize = 16 * 1024;

/// A guest output stream (`stdout` or `stderr`) of one request.
#[derive(Clone)]
pub struct GuestLog {
    component: Arc<str>,
    request_id: Arc<str>,
    stream: &'static str,
}

impl GuestLog {
    /// Output of `stream` from `component` while serving `request_id`.
    pub fn new(component: Arc<str>, request_id: Arc<str>, stream: &'static str) -> Self {
        Self {
            component,
            request_id,
            stream,
        }
    }
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
        tracing::info!(
            target: "guest",
            component = %self.log.component,
            request_id = %self.log.request_id,
            stream = self.log.stream,
            "{}",
            text.trim_end_matches(['\r', '\n'])
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

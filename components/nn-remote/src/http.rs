//! Requests to the worker over `wasi:http/outgoing-handler`, blocking on the host's pollables.

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// Environment variable naming the worker (`http://host:port`).
pub const URL_VARIABLE: &str = "VITRINE_NN_URL";

/// A failed request: the HTTP status when the worker answered, and a message.
pub struct Failure {
    pub status: Option<u16>,
    pub message: String,
}

/// A successful answer.
pub struct Answer {
    pub body: Vec<u8>,
    pub header_length: Option<usize>,
}

fn failure(message: impl Into<String>) -> Failure {
    Failure {
        status: None,
        message: message.into(),
    }
}

/// `GET path` on the worker.
pub fn get(path: &str) -> Result<Answer, Failure> {
    send(Method::Get, path, None)
}

/// `POST path` with a body whose first `header_length` bytes are JSON and the rest binary tensors.
pub fn post(path: &str, body: Vec<u8>, header_length: usize) -> Result<Answer, Failure> {
    send(Method::Post, path, Some((body, header_length)))
}

fn send(method: Method, path: &str, body: Option<(Vec<u8>, usize)>) -> Result<Answer, Failure> {
    let url = std::env::var(URL_VARIABLE).map_err(|_| {
        failure(format!(
            "{URL_VARIABLE} is not set; it names the inference worker (http://host:port)"
        ))
    })?;
    let (scheme, authority) = match url.trim_end_matches('/').split_once("://") {
        Some(("http", authority)) => (Scheme::Http, authority.to_string()),
        Some(("https", authority)) => (Scheme::Https, authority.to_string()),
        _ => {
            return Err(failure(format!(
                "{URL_VARIABLE} `{url}` must look like http://host:port"
            )))
        }
    };
    let mut headers = vec![];
    if let Some((_, length)) = &body {
        headers.push((
            vitrine_oip::HEADER_LENGTH.to_string(),
            length.to_string().into_bytes(),
        ));
        headers.push((
            "content-type".to_string(),
            b"application/octet-stream".to_vec(),
        ));
    }
    let fields =
        Fields::from_list(&headers).map_err(|e| failure(format!("invalid header: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let invalid = |_| failure("the host refused the request parts");
    request.set_method(&method).map_err(invalid)?;
    request.set_scheme(Some(&scheme)).map_err(invalid)?;
    request.set_authority(Some(&authority)).map_err(invalid)?;
    request.set_path_with_query(Some(path)).map_err(invalid)?;
    let outgoing = request
        .body()
        .map_err(|_| failure("request body unavailable"))?;
    let pending = outgoing_handler::handle(request, None)
        .map_err(|e| failure(format!("cannot reach the worker: {e:?}")))?;
    {
        let stream = outgoing
            .write()
            .map_err(|_| failure("request body stream unavailable"))?;
        if let Some((bytes, _)) = &body {
            for chunk in bytes.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| failure(format!("sending the request: {e:?}")))?;
            }
        }
    }
    OutgoingBody::finish(outgoing, None)
        .map_err(|e| failure(format!("finishing the request: {e:?}")))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(failure(format!("the worker did not answer: {e:?}"))),
        _ => return Err(failure("the worker did not answer")),
    };
    let status = response.status();
    let header_length = response
        .headers()
        .get(&vitrine_oip::HEADER_LENGTH.to_string())
        .first()
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
    let incoming = response
        .consume()
        .map_err(|_| failure("response body unavailable"))?;
    let mut bytes = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|_| failure("response body stream unavailable"))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(failure(format!("reading the response: {e:?}"))),
            }
        }
    }
    if !(200..300).contains(&status) {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(Failure {
            status: Some(status),
            message,
        });
    }
    Ok(Answer {
        body: bytes,
        header_length,
    })
}

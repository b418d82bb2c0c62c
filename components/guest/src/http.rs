//! The answers: JSON bodies, `{"error": "…"}` errors, 405 with `allow`, and the admin
//! bearer-token check.

use serde_json::{json, Value};
use spin_sdk::http::{Method, Request, Response};

/// A JSON response.
pub fn json_response(status: u16, body: Value) -> Response {
    json_text_response(status, body.to_string())
}

/// A response with `status` and a body that is already JSON text.
pub fn json_text_response(status: u16, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body)
        .build()
}

/// An error: `{"error": message}` with `status`.
pub fn error(status: u16, message: impl Into<String>) -> Response {
    json_response(status, json!({ "error": message.into() }))
}

/// 405 naming the method, with `allow`.
pub fn not_allowed(method: &Method, allowed: &str) -> Response {
    let mut response = error(405, format!("{method} is not allowed; use {allowed}"));
    response.set_header("allow", allowed);
    response
}

/// A request header as text.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.header(name).and_then(|h| h.as_str())
}

/// Checks `authorization: Bearer <token>` against the Spin variable `variable` in constant
/// time. The refusal is a 401 with `www-authenticate: Bearer`, or a 500 when the variable is
/// not set (never an open door).
pub fn bearer_authorized(req: &Request, variable: &str) -> Result<(), Response> {
    use subtle::ConstantTimeEq;
    let expected = match spin_sdk::variables::get(variable) {
        Ok(token) if !token.trim().is_empty() => token,
        _ => return Err(error(500, format!("variable {variable} is not set"))),
    };
    let given = header(req, "authorization")
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .unwrap_or_default()
        .trim();
    if bool::from(given.as_bytes().ct_eq(expected.trim().as_bytes())) {
        return Ok(());
    }
    let message = if given.is_empty() {
        format!("this endpoint needs `authorization: Bearer <{variable}>`")
    } else {
        "the bearer token is not valid".to_string()
    };
    let mut response = error(401, message);
    response.set_header("www-authenticate", "Bearer");
    Err(response)
}

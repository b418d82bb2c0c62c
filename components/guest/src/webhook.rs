//! Standard Webhooks deliveries to an edge function: the signing secrets from a Spin variable
//! and the signature check ([`vitrine_webhooks`]), answered as every webhook answers.

use spin_sdk::http::{Request, Response};

use crate::http::{error, header};

/// Verifies a delivery's `webhook-id`, `webhook-timestamp` and `webhook-signature` against the
/// secrets in the Spin variable `secrets_variable` (one or more `whsec_…`, space-separated),
/// allowing `tolerance` seconds of clock difference. Returns the delivery's `webhook-id`;
/// otherwise the answer: `401` with `www-authenticate: Standard-Webhooks` naming what is wrong,
/// or `500` when the variable is missing or malformed (naming the secret's position, never its
/// value).
pub fn verify(req: &Request, secrets_variable: &str, tolerance: i64) -> Result<String, Response> {
    let secrets = spin_sdk::variables::get(secrets_variable)
        .map_err(|_| format!("variable {secrets_variable} is not set"))
        .and_then(|text| vitrine_webhooks::Secrets::parse(&text).map_err(|e| e.to_string()))
        .map_err(|message| error(500, message))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let id = header(req, "webhook-id");
    match secrets.verify(
        id,
        header(req, "webhook-timestamp"),
        header(req, "webhook-signature"),
        req.body(),
        now,
        tolerance,
    ) {
        Ok(()) => Ok(id.unwrap_or_default().to_string()),
        Err(e) => {
            let mut response = error(401, e.to_string());
            response.set_header("www-authenticate", "Standard-Webhooks");
            Err(response)
        }
    }
}

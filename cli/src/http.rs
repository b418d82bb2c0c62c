//! Calls to a running application from the commands that work on one.

use anyhow::{bail, Context, Result};

/// Sends `request` (described as `what`, e.g. `PUT http://…`) and returns the response if
/// its status is a success; otherwise an error with the status and the body.
pub async fn send(request: reqwest::RequestBuilder, what: &str) -> Result<reqwest::Response> {
    let response = request.send().await.with_context(|| what.to_string())?;
    if !response.status().is_success() {
        bail!(
            "{what} answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    Ok(response)
}

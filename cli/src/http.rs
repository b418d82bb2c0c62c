//! Calls to a running application from the commands that work on one.

use anyhow::{bail, Context, Result};
use clap::Args;

/// Where the application runs, and the token of its admin endpoints.
#[derive(Args)]
pub struct App {
    /// The application's address.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// Bearer token of the admin endpoints (the `admin_token` variable).
    #[arg(
        long,
        env = "VITRINE_ADMIN_TOKEN",
        default_value = "dev-admin-token",
        hide_env_values = true
    )]
    pub token: String,
}

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

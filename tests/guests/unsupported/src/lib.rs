//! A component that imports `fermyon:spin/mysql`, which the runtime does not provide: loading
//! it must fail at startup, naming the interface and the component.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_req: Request) -> anyhow::Result<impl IntoResponse> {
    let opened = spin_sdk::mysql::Connection::open("mysql://root@localhost/shop").is_ok();
    Ok(Response::new(200, format!("opened: {opened}\n")))
}

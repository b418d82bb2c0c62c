//! Host bindings generated from Spin's WIT (`wit/spin.wit`).

wasmtime::component::bindgen!({
    path: "wit",
    world: "fermyon:spin/host",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/key-value.store": crate::key_value::OpenStore,
        "fermyon:spin/sqlite.connection": crate::sqlite::GuestConnection,
    },
});

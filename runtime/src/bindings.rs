//! Host bindings generated from Spin's WIT (`wit/spin.wit`) and from `wasi:nn`.

wasmtime::component::bindgen!({
    path: "wit",
    world: "fermyon:spin/host",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/key-value.store": crate::key_value::OpenStore,
        "fermyon:spin/sqlite.connection": crate::sqlite::GuestConnection,
        "fermyon:spin/redis.connection": crate::redis::RedisConnection,
        "fermyon:spin/mqtt.connection": crate::mqtt::MqttConnection,
    },
});

/// Host bindings generated from `wasi:nn@0.2.0-rc-2024-10-28` (`../wit/wasi-nn.wit`).
pub mod nn {
    wasmtime::component::bindgen!({
        path: "../wit/wasi-nn.wit",
        world: "wasi:nn/ml",
        imports: { default: async | trappable },
        with: {
            "wasi:nn/tensor.tensor": crate::nn::TensorData,
            "wasi:nn/graph.graph": crate::nn::Graph,
            "wasi:nn/inference.graph-execution-context": crate::nn::ExecutionContext,
            "wasi:nn/errors.error": crate::nn::NnError,
        },
    });
}

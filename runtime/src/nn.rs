//! `wasi:nn@0.2.0-rc-2024-10-28` for components, forwarded to the inference worker pool.
//!
//! A component may load by name only the models listed in its `ai_models` (others: `security`);
//! loading raw graph bytes is `unsupported-operation`. `compute` sends the named input tensors
//! to a worker and returns every output the model produces.

use std::collections::BTreeSet;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::app::{AppError, InstanceState};
use crate::bindings::nn::wasi::nn::{errors, graph, inference, tensor};
use crate::capability::{AppContext, Capability};
use crate::manifest::Component;
use crate::nn_pool::{DataType, PoolError, Tensor, WorkerPool};

use errors::ErrorCode;
use tensor::TensorType;

/// The `wasi:nn` capability: the inference worker pool of the runtime configuration (none:
/// every load fails), which must serve every model some component lists in `ai_models`.
pub struct NnPool(Option<Arc<WorkerPool>>);

impl Capability for NnPool {
    type Component = Nn;

    fn configure_app(cx: &AppContext<'_>) -> Result<Self, AppError> {
        let pool = cx.config.nn_pool.clone();
        if let Some(pool) = &pool {
            pool.require(cx.manifest.components.values().flat_map(|c| &c.ai_models));
        }
        Ok(Self(pool))
    }

    fn configure_component(
        &self,
        component: &Component,
        _cx: &AppContext<'_>,
    ) -> Result<Nn, String> {
        Ok(Nn {
            pool: self.0.clone(),
            allowed: component.ai_models.as_slice().into(),
        })
    }

    fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        fn view(s: &mut InstanceState) -> NnView<'_> {
            let parts = s.parts::<NnPool>();
            NnView {
                table: parts.table,
                access: parts.component,
            }
        }
        use crate::bindings::nn::wasi::nn as wasi_nn;
        wasi_nn::tensor::add_to_linker::<_, NnHost>(linker, view)?;
        wasi_nn::graph::add_to_linker::<_, NnHost>(linker, view)?;
        wasi_nn::inference::add_to_linker::<_, NnHost>(linker, view)?;
        wasi_nn::errors::add_to_linker::<_, NnHost>(linker, view)
    }

    fn register_metrics(&self, registry: &mut Registry) {
        if let Some(pool) = &self.0 {
            pool.register_metrics(registry);
        }
    }

    fn readiness(&self) -> Result<(), String> {
        self.0.as_ref().map_or(Ok(()), |pool| pool.readiness())
    }
}

/// What one component may reach through `wasi:nn`.
#[derive(Clone)]
pub struct Nn {
    pool: Option<Arc<WorkerPool>>,
    allowed: Arc<[String]>,
}

/// A tensor resource: dimensions, element type and bytes.
pub struct TensorData {
    dimensions: Vec<u32>,
    ty: TensorType,
    data: Vec<u8>,
}

/// A graph resource: a model of the pool, by name.
pub struct Graph {
    model: String,
    /// The model's `BYTES` inputs: a `U8` tensor given for one carries BYTES elements.
    bytes_inputs: Arc<BTreeSet<String>>,
}

/// An execution context resource: bound to one graph.
pub struct ExecutionContext {
    model: String,
    bytes_inputs: Arc<BTreeSet<String>>,
}

/// An error resource: a code and a message.
pub struct NnError {
    code: ErrorCode,
    data: String,
}

/// The `wasi:nn` host, borrowed from the instance state.
pub struct NnView<'a> {
    /// The instance's resource table.
    pub table: &'a mut ResourceTable,
    /// The component's access.
    pub access: &'a Nn,
}

/// Marks [`NnView`] as the data the generated bindings work on.
pub struct NnHost;

impl HasData for NnHost {
    type Data<'a> = NnView<'a>;
}

type NnResult<T> = wasmtime::Result<Result<T, Resource<NnError>>>;

impl NnView<'_> {
    fn fail<T>(&mut self, code: ErrorCode, data: String) -> NnResult<T> {
        Ok(Err(self.table.push(NnError { code, data })?))
    }

    fn pool_error<T>(&mut self, err: PoolError) -> NnResult<T> {
        let code = match &err {
            PoolError::Invalid(_) => ErrorCode::InvalidArgument,
            PoolError::NotFound(_) => ErrorCode::NotFound,
            PoolError::Timeout(_) => ErrorCode::Timeout,
            PoolError::Busy(_) | PoolError::Unavailable(_) => ErrorCode::RuntimeError,
        };
        self.fail(code, err.to_string())
    }
}

vitrine_oip::wasi_nn_tensor_types!(TensorType);

impl tensor::Host for NnView<'_> {}

impl tensor::HostTensor for NnView<'_> {
    async fn new(
        &mut self,
        dimensions: Vec<u32>,
        ty: TensorType,
        data: Vec<u8>,
    ) -> wasmtime::Result<Resource<TensorData>> {
        Ok(self.table.push(TensorData {
            dimensions,
            ty,
            data,
        })?)
    }

    async fn dimensions(&mut self, tensor: Resource<TensorData>) -> wasmtime::Result<Vec<u32>> {
        Ok(self.table.get(&tensor)?.dimensions.clone())
    }

    async fn ty(&mut self, tensor: Resource<TensorData>) -> wasmtime::Result<TensorType> {
        Ok(self.table.get(&tensor)?.ty)
    }

    async fn data(&mut self, tensor: Resource<TensorData>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&tensor)?.data.clone())
    }

    async fn drop(&mut self, tensor: Resource<TensorData>) -> wasmtime::Result<()> {
        self.table.delete(tensor)?;
        Ok(())
    }
}

impl graph::Host for NnView<'_> {
    async fn load(
        &mut self,
        _builder: Vec<Vec<u8>>,
        _encoding: graph::GraphEncoding,
        _target: graph::ExecutionTarget,
    ) -> NnResult<Resource<Graph>> {
        self.fail(
            ErrorCode::UnsupportedOperation,
            "loading graph bytes is not supported; use load-by-name with a model listed in ai_models".into(),
        )
    }

    async fn load_by_name(&mut self, name: String) -> NnResult<Resource<Graph>> {
        if !self.access.allowed.contains(&name) {
            return self.fail(
                ErrorCode::Security,
                format!("model '{name}' is not in this component's ai_models"),
            );
        }
        let Some(pool) = self.access.pool.clone() else {
            return self.fail(
                ErrorCode::RuntimeError,
                "no inference workers are configured".into(),
            );
        };
        match pool.check_model(&name).await {
            Ok(bytes_inputs) => Ok(Ok(self.table.push(Graph {
                model: name,
                bytes_inputs,
            })?)),
            Err(err) => self.pool_error(err),
        }
    }
}

impl graph::HostGraph for NnView<'_> {
    async fn init_execution_context(
        &mut self,
        graph: Resource<Graph>,
    ) -> NnResult<Resource<ExecutionContext>> {
        let graph = self.table.get(&graph)?;
        let context = ExecutionContext {
            model: graph.model.clone(),
            bytes_inputs: graph.bytes_inputs.clone(),
        };
        Ok(Ok(self.table.push(context)?))
    }

    async fn drop(&mut self, graph: Resource<Graph>) -> wasmtime::Result<()> {
        self.table.delete(graph)?;
        Ok(())
    }
}

impl inference::Host for NnView<'_> {}

impl inference::HostGraphExecutionContext for NnView<'_> {
    async fn compute(
        &mut self,
        context: Resource<ExecutionContext>,
        inputs: Vec<(String, Resource<TensorData>)>,
    ) -> NnResult<Vec<(String, Resource<TensorData>)>> {
        let context = self.table.get(&context)?;
        let (model, bytes_inputs) = (context.model.clone(), context.bytes_inputs.clone());
        let mut tensors = Vec::with_capacity(inputs.len());
        for (name, handle) in inputs {
            // The list passes ownership of each tensor to the host.
            let tensor = self.table.delete(handle)?;
            let datatype = match to_oip(tensor.ty) {
                DataType::U8 if bytes_inputs.contains(&name) => DataType::Bytes,
                datatype => datatype,
            };
            let tensor = Tensor {
                name,
                datatype,
                shape: tensor.dimensions.iter().map(|d| u64::from(*d)).collect(),
                data: tensor.data,
            };
            if let Err(e) = tensor.check() {
                return self.fail(ErrorCode::InvalidArgument, e.to_string());
            }
            tensors.push(tensor);
        }
        let Some(pool) = self.access.pool.clone() else {
            return self.fail(
                ErrorCode::RuntimeError,
                "no inference workers are configured".into(),
            );
        };
        let outputs = match pool.infer(&model, tensors).await {
            Ok(outputs) => outputs,
            Err(err) => return self.pool_error(err),
        };
        let mut named = Vec::with_capacity(outputs.len());
        for out in outputs {
            let (Some(ty), Ok(dimensions)) = (
                from_oip(out.datatype),
                out.shape.iter().map(|d| u32::try_from(*d)).collect(),
            ) else {
                return self.fail(
                    ErrorCode::RuntimeError,
                    format!(
                        "output '{}' ({} {:?}) cannot be carried by wasi:nn",
                        out.name, out.datatype, out.shape
                    ),
                );
            };
            let resource = self.table.push(TensorData {
                dimensions,
                ty,
                data: out.data,
            })?;
            named.push((out.name, resource));
        }
        Ok(Ok(named))
    }

    async fn drop(&mut self, context: Resource<ExecutionContext>) -> wasmtime::Result<()> {
        self.table.delete(context)?;
        Ok(())
    }
}

impl errors::Host for NnView<'_> {}

impl errors::HostError for NnView<'_> {
    async fn code(&mut self, error: Resource<NnError>) -> wasmtime::Result<ErrorCode> {
        Ok(self.table.get(&error)?.code)
    }

    async fn data(&mut self, error: Resource<NnError>) -> wasmtime::Result<String> {
        Ok(self.table.get(&error)?.data.clone())
    }

    async fn drop(&mut self, error: Resource<NnError>) -> wasmtime::Result<()> {
        self.table.delete(error)?;
        Ok(())
    }
}

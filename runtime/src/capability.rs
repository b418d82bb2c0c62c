//! Host capabilities as pluggable parts, in the spirit of Spin's factors. A capability is set
//! up once per application from the manifest and runtime configuration
//! ([`Capability::configure_app`]), resolves what each component may do
//! ([`Capability::configure_component`]), prepares each new instance
//! ([`Capability::prepare_wasi`]), and links its WIT interfaces, whose host functions reach the
//! instance through [`InstanceState::parts`]. [`capabilities!`] lists them: a new
//! capability is its module plus one line there.

use prometheus_client::registry::Registry;
use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;

use crate::app::{AppError, InstanceState, RuntimeConfig};
use crate::manifest::{Component, Manifest};
use crate::variables::AppVariables;

/// What a capability sees while the application loads.
pub struct AppContext<'a> {
    /// The manifest.
    pub manifest: &'a Manifest,
    /// The runtime configuration.
    pub config: &'a RuntimeConfig,
    /// The application variables, resolved.
    pub variables: &'a AppVariables,
}

impl AppContext<'_> {
    /// Every label some component lists in the field `pick` reads, plus `default`.
    pub fn labels(
        &self,
        pick: fn(&Component) -> &Vec<String>,
    ) -> std::collections::BTreeSet<String> {
        self.manifest
            .components
            .values()
            .flat_map(|c| pick(c).iter().cloned())
            .chain(["default".to_string()])
            .collect()
    }
}

/// One host capability: a WIT interface (or a family of them) and its backend.
pub trait Capability: Sized + Send + Sync + 'static {
    /// What one component may do with it, resolved at load and shared by its instances.
    type Component: Send + Sync + 'static;

    /// Sets the capability up for the application (stores opened, settings resolved).
    fn configure_app(cx: &AppContext<'_>) -> Result<Self, AppError>;

    /// Resolves one component's access from its manifest entry; the error is about that
    /// component.
    fn configure_component(
        &self,
        component: &Component,
        cx: &AppContext<'_>,
    ) -> Result<Self::Component, String>;

    /// Links the capability's interfaces.
    fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()>;

    /// Adds the capability's part of a new instance's WASI context (nothing by default).
    fn prepare_wasi(_component: &Self::Component, _wasi: &mut WasiCtxBuilder) {}

    /// Adds the capability's metrics to the runtime's registry (none by default).
    fn register_metrics(&self, _registry: &mut Registry) {}

    /// Whether the capability can serve now; `Err` says what it lacks (ready by default).
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Reaches capability `C`'s per-component state in a [`ComponentHost`].
pub trait HasComponent<C: Capability> {
    /// The state.
    fn component(&self) -> &C::Component;
}

/// Declares the runtime's capabilities: [`Capabilities`] (their application state) and
/// [`ComponentHost`] (their state for one component), each with one field per capability.
macro_rules! capabilities {
    ($($field:ident: $capability:ty),* $(,)?) => {
        /// Every capability, set up for one application.
        pub struct Capabilities {
            $(
                #[doc = concat!("`", stringify!($field), "`.")]
                pub $field: $capability,
            )*
        }

        /// Every capability's state for one component, shared by its instances.
        pub struct ComponentHost {
            $($field: <$capability as Capability>::Component,)*
        }

        $(
            impl HasComponent<$capability> for ComponentHost {
                fn component(&self) -> &<$capability as Capability>::Component {
                    &self.$field
                }
            }
        )*

        impl Capabilities {
            /// Sets every capability up for the application.
            pub fn configure(cx: &AppContext<'_>) -> Result<Self, AppError> {
                Ok(Self {
                    $($field: <$capability as Capability>::configure_app(cx)?,)*
                })
            }

            /// Resolves one component's state in every capability.
            pub fn configure_component(
                &self,
                component: &Component,
                cx: &AppContext<'_>,
            ) -> Result<ComponentHost, String> {
                Ok(ComponentHost {
                    $($field: self.$field.configure_component(component, cx)?,)*
                })
            }

            /// Links every capability's interfaces.
            pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
                $(<$capability as Capability>::add_to_linker(linker)?;)*
                Ok(())
            }

            /// Adds every capability's part of a new instance's WASI context.
            pub fn prepare_wasi(host: &ComponentHost, wasi: &mut WasiCtxBuilder) {
                $(<$capability as Capability>::prepare_wasi(&host.$field, wasi);)*
            }

            /// Adds every capability's metrics.
            pub fn register_metrics(&self, registry: &mut Registry) {
                $(self.$field.register_metrics(registry);)*
            }

            /// `Ok` when every capability can serve.
            pub fn readiness(&self) -> Result<(), String> {
                $(self.$field.readiness()?;)*
                Ok(())
            }
        }
    };
}

capabilities! {
    variables: crate::variables::Variables,
    key_value: crate::key_value::KeyValueStores,
    sqlite: crate::sqlite::Databases,
    outbound_http: crate::outbound_http::OutboundHttpPolicy,
    redis: crate::redis::OutboundRedis,
    mqtt: crate::mqtt::OutboundMqtt,
    nn: crate::nn::NnPool,
}

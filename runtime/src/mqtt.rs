//! Outbound MQTT (`fermyon:spin/mqtt@2.0.0`), as Spin serves it: a component opens
//! `mqtt://host[:port]?client_id=…` addresses its `allowed_outbound_hosts` allow (port 1883 by
//! default; others: `connection-failed`), and `publish` returns once the broker has the message
//! as far as the QoS asks (sent, acknowledged, or completed).

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::app::{AppError, InstanceState};
use crate::bindings::fermyon::spin::mqtt::{self as host, Error, Qos};
use crate::capability::{AppContext, Capability};
use crate::manifest::Component;
use crate::outbound_http::{AllowList, OutboundHttpPolicy};

/// Messages the client queues before `publish` waits.
const CHANNEL_CAPACITY: usize = 1000;

/// The outbound MQTT capability.
pub struct OutboundMqtt;

/// An open connection: the resource behind `mqtt.connection`.
pub struct MqttConnection {
    client: AsyncClient,
    events: Arc<tokio::sync::Mutex<EventLoop>>,
}

/// The `fermyon:spin/mqtt` host, borrowed from the instance state.
pub struct MqttView<'a> {
    table: &'a mut ResourceTable,
    allowed: &'a AllowList,
}

/// Marks [`MqttView`] as the data the generated bindings work on.
pub struct MqttHost;

impl HasData for MqttHost {
    type Data<'a> = MqttView<'a>;
}

impl Capability for OutboundMqtt {
    /// Nothing of its own: the allow-list is the outbound HTTP capability's.
    type Component = ();

    fn configure_app(_cx: &AppContext<'_>) -> Result<Self, AppError> {
        Ok(OutboundMqtt)
    }

    fn configure_component(
        &self,
        _component: &Component,
        _cx: &AppContext<'_>,
    ) -> Result<(), String> {
        Ok(())
    }

    fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        fn view(s: &mut InstanceState) -> MqttView<'_> {
            let parts = s.parts::<OutboundHttpPolicy>();
            MqttView {
                table: parts.table,
                allowed: parts.component.allowed(),
            }
        }
        host::add_to_linker::<_, MqttHost>(linker, view)
    }
}

impl host::Host for MqttView<'_> {}

impl host::HostConnection for MqttView<'_> {
    async fn open(
        &mut self,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> wasmtime::Result<Result<Resource<MqttConnection>, Error>> {
        let Ok(mut options) = MqttOptions::parse_url(&address) else {
            return Ok(Err(Error::InvalidAddress));
        };
        let (host, port) = options.broker_address();
        if !self.allowed.allows_address("mqtt", &host, port) {
            tracing::warn!(%address, "mqtt address refused by allowed_outbound_hosts");
            return Ok(Err(Error::ConnectionFailed(format!(
                "address {address} is not permitted"
            ))));
        }
        options.set_credentials(username, password);
        options.set_keep_alive(Duration::from_secs(keep_alive_interval_in_secs.max(1)));
        let (client, events) = AsyncClient::new(options, CHANNEL_CAPACITY);
        Ok(Ok(self.table.push(MqttConnection {
            client,
            events: Arc::new(tokio::sync::Mutex::new(events)),
        })?))
    }

    async fn publish(
        &mut self,
        connection: Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        qos: Qos,
    ) -> wasmtime::Result<Result<(), Error>> {
        let conn = self.table.get(&connection)?;
        let (client, events) = (conn.client.clone(), conn.events.clone());
        let qos = match qos {
            Qos::AtMostOnce => QoS::AtMostOnce,
            Qos::AtLeastOnce => QoS::AtLeastOnce,
            Qos::ExactlyOnce => QoS::ExactlyOnce,
        };
        if let Err(e) = client.publish(topic, qos, false, payload).await {
            return Ok(Err(Error::Other(e.to_string())));
        }
        // Drive the connection until the message is as far as the QoS asks.
        let mut events = events.lock().await;
        loop {
            let event = match events.poll().await {
                Ok(event) => event,
                Err(e) => return Ok(Err(Error::ConnectionFailed(e.to_string()))),
            };
            match (qos, event) {
                (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_)))
                | (QoS::AtLeastOnce, Event::Incoming(Incoming::PubAck(_)))
                | (QoS::ExactlyOnce, Event::Incoming(Incoming::PubComp(_))) => return Ok(Ok(())),
                _ => continue,
            }
        }
    }

    async fn drop(&mut self, connection: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

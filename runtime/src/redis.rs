//! Outbound Redis (`fermyon:spin/redis@2.0.0`), as Spin serves it: a component opens
//! `redis://host[:port]` addresses its `allowed_outbound_hosts` allow (port 6379 by default);
//! any other address is `invalid-address`. Commands run on a multiplexed connection and stop
//! with the request (their futures are dropped at its deadline).

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncCommands, FromRedisValue, Value};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::app::{AppError, InstanceState};
use crate::bindings::fermyon::spin::redis::{self as host, Error, RedisParameter, RedisResult};
use crate::capability::{AppContext, Capability};
use crate::manifest::Component;
use crate::outbound_http::{AllowList, OutboundHttpPolicy};

/// The outbound Redis capability.
pub struct OutboundRedis;

/// An open connection: the resource behind `redis.connection`.
pub struct RedisConnection {
    conn: MultiplexedConnection,
}

/// The `fermyon:spin/redis` host, borrowed from the instance state.
pub struct RedisView<'a> {
    table: &'a mut ResourceTable,
    allowed: &'a AllowList,
}

/// Marks [`RedisView`] as the data the generated bindings work on.
pub struct RedisHost;

impl HasData for RedisHost {
    type Data<'a> = RedisView<'a>;
}

impl Capability for OutboundRedis {
    /// Nothing of its own: the allow-list is the outbound HTTP capability's.
    type Component = ();

    fn configure_app(_cx: &AppContext<'_>) -> Result<Self, AppError> {
        Ok(OutboundRedis)
    }

    fn configure_component(
        &self,
        _component: &Component,
        _cx: &AppContext<'_>,
    ) -> Result<(), String> {
        Ok(())
    }

    fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        fn view(s: &mut InstanceState) -> RedisView<'_> {
            let parts = s.parts::<OutboundHttpPolicy>();
            RedisView {
                table: parts.table,
                allowed: parts.component.allowed(),
            }
        }
        host::add_to_linker::<_, RedisHost>(linker, view)
    }
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

impl RedisView<'_> {
    fn conn(
        &mut self,
        connection: &Resource<RedisConnection>,
    ) -> wasmtime::Result<MultiplexedConnection> {
        Ok(self.table.get(connection)?.conn.clone())
    }
}

impl host::Host for RedisView<'_> {}

impl host::HostConnection for RedisView<'_> {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<RedisConnection>, Error>> {
        let Ok(client) = ::redis::Client::open(address.as_str()) else {
            return Ok(Err(Error::InvalidAddress));
        };
        let allowed = match &client.get_connection_info().addr {
            ::redis::ConnectionAddr::Tcp(host, port) => {
                self.allowed.allows_address("redis", host, *port)
            }
            ::redis::ConnectionAddr::TcpTls { host, port, .. } => {
                self.allowed.allows_address("rediss", host, *port)
            }
            _ => false,
        };
        if !allowed {
            tracing::warn!(%address, "redis address refused by allowed_outbound_hosts");
            return Ok(Err(Error::InvalidAddress));
        }
        let conn = match client.get_multiplexed_async_connection().await {
            Ok(conn) => conn,
            Err(e) => return Ok(Err(other(e))),
        };
        Ok(Ok(self.table.push(RedisConnection { conn })?))
    }

    async fn publish(
        &mut self,
        connection: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut conn = self.conn(&connection)?;
        Ok(conn.publish(&channel, &payload).await.map_err(other))
    }

    async fn get(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let mut conn = self.conn(&connection)?;
        Ok(conn.get(&key).await.map_err(other))
    }

    async fn set(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut conn = self.conn(&connection)?;
        Ok(conn.set(&key, &value).await.map_err(other))
    }

    async fn incr(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, Error>> {
        let mut conn = self.conn(&connection)?;
        Ok(conn.incr(&key, 1).await.map_err(other))
    }

    async fn del(
        &mut self,
        connection: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut conn = self.conn(&connection)?;
        Ok(conn.del(&keys).await.map_err(other))
    }

    async fn sadd(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut conn = self.conn(&connection)?;
        Ok(conn.sadd(&key, &values).await.map_err(|e| {
            if e.kind() == ::redis::ErrorKind::TypeError {
                Error::TypeError
            } else {
                other(e)
            }
        }))
    }

    async fn smembers(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let mut conn = self.conn(&connection)?;
        Ok(conn.smembers(&key).await.map_err(other))
    }

    async fn srem(
        &mut self,
        connection: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut conn = self.conn(&connection)?;
        Ok(conn.srem(&key, &values).await.map_err(other))
    }

    async fn execute(
        &mut self,
        connection: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<RedisResult>, Error>> {
        let mut conn = self.conn(&connection)?;
        let mut cmd = ::redis::cmd(&command);
        for argument in arguments {
            match argument {
                RedisParameter::Int64(v) => cmd.arg(v),
                RedisParameter::Binary(v) => cmd.arg(v),
            };
        }
        Ok(cmd
            .query_async::<Results>(&mut conn)
            .await
            .map(|r| r.0)
            .map_err(other))
    }

    async fn drop(&mut self, connection: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

/// The flattened results of `execute`, converted as Spin converts them.
struct Results(Vec<RedisResult>);

impl FromRedisValue for Results {
    fn from_redis_value(value: &Value) -> ::redis::RedisResult<Self> {
        fn unsupported(what: &str) -> ::redis::RedisError {
            (
                ::redis::ErrorKind::TypeError,
                "Could not convert Redis response",
                format!("Redis {what} is not supported"),
            )
                .into()
        }
        fn append(out: &mut Vec<RedisResult>, value: &Value) -> ::redis::RedisResult<()> {
            match value {
                Value::Nil => out.push(RedisResult::Nil),
                Value::Int(v) => out.push(RedisResult::Int64(*v)),
                Value::BulkString(bytes) => out.push(RedisResult::Binary(bytes.clone())),
                Value::SimpleString(s) => out.push(RedisResult::Status(s.clone())),
                Value::Okay => out.push(RedisResult::Status("OK".into())),
                Value::Array(items) | Value::Set(items) => {
                    return items.iter().try_for_each(|item| append(out, item))
                }
                Value::Double(v) => out.push(RedisResult::Binary(v.to_string().into_bytes())),
                Value::Boolean(v) => out.push(RedisResult::Int64(i64::from(*v))),
                Value::BigNumber(v) => out.push(RedisResult::Binary(v.to_string().into_bytes())),
                Value::Map(_) => return Err(unsupported("Map type")),
                Value::Attribute { .. } => return Err(unsupported("Attribute type")),
                Value::VerbatimString { .. } => {
                    return Err(unsupported("string with format attribute"))
                }
                Value::Push { .. } => return Err(unsupported("Pub/Sub types")),
                Value::ServerError(e) => {
                    return Err((
                        ::redis::ErrorKind::ResponseError,
                        "Server error",
                        format!("{e:?}"),
                    )
                        .into())
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        append(&mut out, value)?;
        Ok(Results(out))
    }
}

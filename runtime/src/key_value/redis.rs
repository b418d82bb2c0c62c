//! Key-value stores on a Redis server (runtime config `type = "redis"`), kept as Spin keeps
//! them: keys as they are, with no prefix per label (give each store its own database number
//! or server), values as Redis strings, `get-keys` by `KEYS *`, failures as `error::other`
//! with Redis's message. One multiplexed connection per store, opened at first use and
//! re-opened in the background after a failure; a command stops at the request's deadline.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Client, RedisError};
use tokio::sync::OnceCell;

use crate::bindings::fermyon::spin::key_value::Error;

/// How long an attempt to connect may take. A failed attempt is not retried at once (the
/// `redis` crate's backoff waits seconds): the next command tries again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How old the last check of the server may be before readiness starts another.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// One store on a Redis server.
pub struct RedisStore {
    client: Client,
    connection: OnceCell<ConnectionManager>,
    /// The outcome of the last command or check, and when it was seen.
    health: Mutex<Option<(Instant, Result<(), String>)>>,
    /// Whether a readiness check is running.
    checking: Mutex<bool>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisStore({self})")
    }
}

/// The server's address, without credentials.
impl fmt::Display for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.client.get_connection_info();
        write!(f, "Redis at {}", info.addr)?;
        match info.redis.db {
            0 => Ok(()),
            db => write!(f, ", database {db}"),
        }
    }
}

impl RedisStore {
    /// A store on the server at `url` (checked here; nothing is connected yet).
    pub fn new(url: &str) -> Result<Self, RedisError> {
        Ok(Self {
            client: Client::open(url)?,
            connection: OnceCell::new(),
            health: Mutex::new(None),
            checking: Mutex::new(false),
        })
    }

    /// The store's connection, opened now if it is not yet.
    async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_number_of_retries(0);
        self.connection
            .get_or_try_init(|| self.client.get_connection_manager_with_config(config))
            .await
            .cloned()
    }

    /// Runs `command` on the connection, stopped at `deadline` (`Ok(None)`); what the server
    /// answered is remembered for [`Self::readiness`].
    async fn attempt<R, F>(
        &self,
        deadline: Instant,
        command: impl FnOnce(ConnectionManager) -> F,
    ) -> Option<Result<R, String>>
    where
        F: std::future::Future<Output = Result<R, RedisError>>,
    {
        let answer = tokio::time::timeout_at(deadline.into(), async {
            command(self.connection().await?).await
        })
        .await
        .ok()?
        .map_err(|e| e.to_string());
        self.remember(answer.as_ref().map(drop).map_err(Clone::clone));
        Some(answer)
    }

    /// [`Self::attempt`] as the key-value interface reports it.
    async fn run<R, F>(
        &self,
        deadline: Instant,
        command: impl FnOnce(ConnectionManager) -> F,
    ) -> Result<R, Error>
    where
        F: std::future::Future<Output = Result<R, RedisError>>,
    {
        match self.attempt(deadline, command).await {
            Some(answer) => answer.map_err(Error::Other),
            None => Err(Error::Other("the request's deadline passed".into())),
        }
    }

    fn remember(&self, outcome: Result<(), String>) {
        *self.health.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), outcome));
    }

    /// The value of `key`, if any.
    pub async fn get(&self, key: &str, deadline: Instant) -> Result<Option<Vec<u8>>, Error> {
        self.run(deadline, |mut c| async move { c.get(key).await })
            .await
    }

    /// Sets `key` to `value`.
    pub async fn set(&self, key: &str, value: &[u8], deadline: Instant) -> Result<(), Error> {
        self.run(deadline, |mut c| async move { c.set(key, value).await })
            .await
    }

    /// Deletes `key` (nothing if it does not exist).
    pub async fn delete(&self, key: &str, deadline: Instant) -> Result<(), Error> {
        self.run(deadline, |mut c| async move { c.del(key).await })
            .await
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str, deadline: Instant) -> Result<bool, Error> {
        self.run(deadline, |mut c| async move { c.exists(key).await })
            .await
    }

    /// Every key of the server's database.
    pub async fn keys(&self, deadline: Instant) -> Result<Vec<String>, Error> {
        self.run(deadline, |mut c| async move { c.keys("*").await })
            .await
    }

    /// `Ok` if the last command or check reached the server. When that is older than
    /// [`CHECK_EVERY`] (or there is none), a check (`PING`) starts in the background, so the
    /// next call knows; a store never checked is not ready.
    pub fn readiness(self: &std::sync::Arc<Self>) -> Result<(), String> {
        let last = self
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if last
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= CHECK_EVERY)
        {
            self.check_in_background();
        }
        match last {
            Some((_, outcome)) => outcome,
            None => Err("not checked yet".into()),
        }
    }

    fn check_in_background(self: &std::sync::Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut checking = self.checking.lock().unwrap_or_else(|e| e.into_inner());
            if *checking {
                return;
            }
            *checking = true;
        }
        let store = std::sync::Arc::clone(self);
        runtime.spawn(async move {
            let wait = CONNECT_TIMEOUT * 2;
            let ping = store
                .attempt(Instant::now() + wait, |mut c| async move {
                    ::redis::cmd("PING").query_async::<()>(&mut c).await
                })
                .await;
            if ping.is_none() {
                store.remember(Err(format!("no answer to PING within {wait:?}")));
            }
            *store.checking.lock().unwrap_or_else(|e| e.into_inner()) = false;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_shown_without_credentials() {
        let store = RedisStore::new("redis://user:s3cret@127.0.0.1:6399/3").unwrap();
        let shown = format!("{store} {store:?}");
        assert!(
            shown.contains("127.0.0.1:6399") && shown.contains("database 3"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(RedisStore::new("http://127.0.0.1:6379").is_err());
        assert!(RedisStore::new("not a url").is_err());
    }

    #[tokio::test]
    async fn a_store_nobody_answers_is_not_ready_and_fails_within_the_deadline() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store =
            std::sync::Arc::new(RedisStore::new(&format!("redis://127.0.0.1:{port}")).unwrap());
        assert_eq!(store.readiness(), Err("not checked yet".to_string()));
        let started = Instant::now();
        let deadline = started + Duration::from_millis(300);
        let result = store.get("k", deadline).await;
        assert!(matches!(result, Err(Error::Other(_))), "{result:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // The refused connection was seen: readiness says so.
        let mut readiness = store.readiness();
        for _ in 0..100 {
            if readiness.is_err() && readiness != Err("not checked yet".to_string()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            readiness = store.readiness();
        }
        let error = readiness.unwrap_err();
        assert!(error != "not checked yet", "{error}");
    }
}

//! What every Vitrine edge function shares, so they all behave alike: the HTTP answers
//! ([`http`]: JSON bodies, JSON errors, 405 with `allow`, the admin bearer check) and the
//! lazily created SQLite tables ([`sqlite`]).

pub mod http;
pub mod sqlite;

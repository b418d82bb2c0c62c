//! Several releases served at once, and the split of requests between them.
//!
//! A [`Split`] gives each live release a weight in percent (summing to 100). A request goes to
//! the release its tester names in the `x-vitrine-release` header, if that one is live;
//! otherwise to the release its bucket (0–99) falls in, walking the releases in label order.
//! The bucket is the FNV-1a hash of the request's sticky key ([`StickyKey`]: the
//! `x-shopper-id` header unless configured), so a shopper stays
//! on one release on every instance, or of the request's id when it has none. Switching
//! replaces the split at once: requests already running keep the release they started on,
//! which is dropped when its last one ends.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::app::App;

/// The header with which a tester picks a live release.
pub const OVERRIDE_HEADER: &str = "x-vitrine-release";

/// Where a request's sticky key (the shopper's id) is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// A request header.
    Header(http::HeaderName),
    /// A cookie.
    Cookie(String),
    /// A query parameter (its value as sent, not decoded).
    Query(String),
}

impl Default for StickyKey {
    /// The `x-shopper-id` header.
    fn default() -> Self {
        Self::Header(http::HeaderName::from_static("x-shopper-id"))
    }
}

impl std::str::FromStr for StickyKey {
    type Err = String;

    /// `header:NAME`, `cookie:NAME` or `query:NAME`.
    fn from_str(text: &str) -> Result<Self, String> {
        let wrong = || format!("`{text}` is not header:NAME, cookie:NAME or query:NAME");
        let (kind, name) = text.split_once(':').ok_or_else(wrong)?;
        if name.is_empty() {
            return Err(wrong());
        }
        match kind {
            "header" => http::HeaderName::try_from(name)
                .map(Self::Header)
                .map_err(|_| format!("`{name}` is not a header name")),
            "cookie" => Ok(Self::Cookie(name.to_string())),
            "query" => Ok(Self::Query(name.to_string())),
            _ => Err(wrong()),
        }
    }
}

impl StickyKey {
    /// The key of a request with `headers` and `query`, if it has one.
    pub fn of<'a>(&self, headers: &'a http::HeaderMap, query: Option<&'a str>) -> Option<&'a [u8]> {
        match self {
            Self::Header(name) => headers.get(name).map(|v| v.as_bytes()),
            Self::Cookie(name) => headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_bytes()),
            Self::Query(name) => query?
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_bytes()),
        }
        .filter(|key| !key.is_empty())
    }
}

/// One release, loaded and ready to serve.
pub struct Release {
    /// Its label.
    pub label: String,
    /// The application, pre-instantiated.
    pub app: Arc<App>,
}

/// The live releases and their weights (percent, summing to 100).
#[derive(Clone)]
pub struct Split {
    releases: BTreeMap<String, (Arc<Release>, u32)>,
}

impl Split {
    /// All traffic to `release`.
    pub fn single(release: Release) -> Self {
        let label = release.label.clone();
        Self {
            releases: BTreeMap::from([(label, (Arc::new(release), 100))]),
        }
    }

    /// A split of `releases` by weight; the weights must sum to 100 (releases weighted 0 are
    /// left out).
    pub fn weighted(releases: Vec<(Arc<Release>, u32)>) -> Result<Self, String> {
        let total: u32 = releases.iter().map(|(_, w)| *w).sum();
        if total != 100 {
            return Err(format!("the weights add up to {total}, not 100"));
        }
        let mut split = BTreeMap::new();
        for (release, weight) in releases.into_iter().filter(|(_, w)| *w > 0) {
            let label = release.label.clone();
            if split.insert(label.clone(), (release, weight)).is_some() {
                return Err(format!("release `{label}` is named twice"));
            }
        }
        Ok(Self { releases: split })
    }

    /// The live releases with their weights, in label order.
    pub fn weights(&self) -> impl Iterator<Item = (&Arc<Release>, u32)> {
        self.releases.values().map(|(r, w)| (r, *w))
    }

    /// The live release labelled `label`.
    pub fn get(&self, label: &str) -> Option<&Arc<Release>> {
        self.releases.get(label).map(|(r, _)| r)
    }

    /// The release for a request with sticky `key` (or, without one, `fallback`, its id) and
    /// the tester's `wanted` release.
    pub fn pick(&self, wanted: Option<&str>, key: Option<&[u8]>, fallback: &[u8]) -> &Arc<Release> {
        if let Some(release) = wanted.and_then(|label| self.get(label)) {
            return release;
        }
        let bucket = (fnv1a(key.unwrap_or(fallback)) % 100) as u32;
        let mut upto = 0;
        for (release, weight) in self.releases.values() {
            upto += weight;
            if bucket < upto {
                return release;
            }
        }
        // Unreachable while the weights sum to 100; the last release otherwise.
        &self
            .releases
            .values()
            .next_back()
            .expect("a split has a release")
            .0
    }
}

/// 64-bit FNV-1a: a hash every instance computes alike.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The split in force, replaced atomically.
pub struct Traffic(RwLock<Arc<Split>>);

impl Traffic {
    /// Traffic split as `split` says.
    pub fn new(split: Split) -> Self {
        Self(RwLock::new(Arc::new(split)))
    }

    /// The split in force now.
    pub fn current(&self) -> Arc<Split> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `split` in force for the requests that start from now.
    pub fn set(&self, split: Split) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(split);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_keys_come_from_headers_cookies_or_queries() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-shopper-id", "s1".parse().unwrap());
        headers.append(http::header::COOKIE, "a=1; shopper=s2".parse().unwrap());
        let key = |spec: &str, query| {
            let key: StickyKey = spec.parse().unwrap();
            key.of(&headers, query)
                .map(|k| String::from_utf8_lossy(k).into_owned())
        };
        assert_eq!(key("header:x-shopper-id", None).as_deref(), Some("s1"));
        assert_eq!(key("cookie:shopper", None).as_deref(), Some("s2"));
        assert_eq!(
            key("query:shopper", Some("x=1&shopper=s3")).as_deref(),
            Some("s3")
        );
        assert_eq!(key("query:shopper", Some("shopper=")), None);
        assert_eq!(key("cookie:missing", None), None);
        assert!("shopper".parse::<StickyKey>().is_err());
        assert!("header:bad name".parse::<StickyKey>().is_err());
        assert!("body:x".parse::<StickyKey>().is_err());
    }

    #[test]
    fn buckets_are_stable_and_spread() {
        // Same key, same bucket; keys spread over the buckets about evenly.
        assert_eq!(fnv1a(b"shopper-42"), fnv1a(b"shopper-42"));
        let mut counts = [0u32; 100];
        for n in 0..100_000 {
            counts[(fnv1a(format!("shopper-{n}").as_bytes()) % 100) as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 850 && *max < 1150, "{min}..{max}");
    }
}

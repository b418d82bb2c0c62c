//! Several releases served at once, and the split of requests between them.
//!
//! A [`Split`] gives each live release a weight in percent (summing to 100). A request goes to
//! the release its tester names in the `x-vitrine-release` header, if that one is live;
//! otherwise to the release its bucket (0–99) falls in, walking the releases in label order.
//! The bucket is the FNV-1a hash of the request's sticky key (the `x-shopper-id` header), so a
//! shopper stays
//! on one release on every instance, or of the request's id when it has none. Switching
//! replaces the split at once: requests already running keep the release they started on,
//! which is dropped when its last one ends.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::app::App;

/// The header with which a tester picks a live release.
pub const OVERRIDE_HEADER: &str = "x-vitrine-release";

/// The header holding a request's sticky key (the shopper's id).
pub const STICKY_HEADER: &str = "x-shopper-id";

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

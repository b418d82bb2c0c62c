//! A shopper's profile and how close shortlisted products are to their taste embedding, kept
//! between requests (`vitrine_shoppers::derived`) until the shopper's events or the catalogue
//! change.
//!
//! Building a profile reads the shopper's events and their products' embeddings (~2 ms for a
//! few hundred events); comparing the ~600 shortlisted products with the taste embedding reads
//! theirs (~3 ms, 900 KB). Kept, both cost one read of a few kilobytes. A profile depends on
//! the events up to the request's moment, not on the moment itself ([`profile`]), so the key
//! is the state of the shopper's events and the catalogue's revision; closeness is kept per
//! position in that revision's candidates and extended as other requests shortlist other
//! products.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use spin_sdk::sqlite::{Connection, Error};
use vitrine_catalog::embeddings;
use vitrine_shoppers::derived;
use vitrine_shoppers::profile::{self, Profile};

use crate::assemble::Item;

/// The name its bodies are kept under.
const PURPOSE: &str = "lookbook-taste";
/// Bumped when [`Taste`] changes shape, so that a body kept by an older build is rebuilt.
const FORMAT: u32 = 1;

/// A shopper's profile, with the closeness to their taste embedding of the candidates compared
/// so far.
#[derive(Serialize, Deserialize)]
pub struct Taste {
    /// The profile.
    pub profile: Profile,
    /// Cosine to the taste embedding by position in the candidates (`None`: the product has no
    /// embedding).
    closeness: BTreeMap<u32, Option<f32>>,
    /// The key it is kept under; `None` when it is not kept.
    #[serde(skip)]
    key: Option<String>,
    /// Whether closeness was added since it was read.
    #[serde(skip)]
    grown: bool,
}

impl Taste {
    /// The taste of `shopper` at `now`. `events` is their [`derived::events_state`]; `revision`
    /// the catalogue's. With `keep`, a kept one is used when it is current (unless `fresh`),
    /// and what is built is kept; without (`as_of` requests), it is built and not kept.
    pub fn load(
        db: &Connection,
        shopper: &str,
        now: i64,
        events: &str,
        revision: i64,
        keep: bool,
        fresh: bool,
    ) -> Result<Taste, Error> {
        let key = keep.then(|| format!("{FORMAT}:{revision}:{events}"));
        if let Some(key) = key.as_deref().filter(|_| !fresh) {
            // What is kept only saves work: when it cannot be read, the profile is built.
            match derived::get(db, shopper, PURPOSE, key) {
                Ok(Some(body)) => match postcard::from_bytes::<Taste>(&body) {
                    Ok(taste) => {
                        return Ok(Taste {
                            key: Some(key.to_string()),
                            ..taste
                        })
                    }
                    Err(e) => eprintln!("kept lookbook taste unreadable, building it: {e}"),
                },
                Ok(None) => {}
                Err(e) => eprintln!("kept lookbook taste unreadable, building it: {e}"),
            }
        }
        Ok(Taste {
            profile: profile::build(db, shopper, now)?,
            closeness: BTreeMap::new(),
            grown: key.is_some(),
            key,
        })
    }

    /// The cosine of each of `items` to the taste embedding (`None` without a taste embedding
    /// or for a product without an embedding), reading the embeddings of the products not
    /// compared before.
    pub fn closeness(
        &mut self,
        db: &Connection,
        items: &[Item],
    ) -> Result<Vec<Option<f32>>, Error> {
        let Some(taste) = &self.profile.taste else {
            return Ok(vec![None; items.len()]);
        };
        let new: Vec<&Item> = items
            .iter()
            .filter(|i| !self.closeness.contains_key(&i.position))
            .collect();
        if !new.is_empty() {
            let ids: Vec<&str> = new.iter().map(|i| i.id).collect();
            let vectors = embeddings::of_products(db, &ids)?;
            for item in new {
                let closeness = vectors
                    .get(item.id)
                    .map(|v| embeddings::similarity(taste, v));
                self.closeness.insert(item.position, closeness);
            }
            self.grown = true;
        }
        Ok(items
            .iter()
            .map(|i| self.closeness.get(&i.position).copied().flatten())
            .collect())
    }

    /// Keeps it for the next requests, if it is kept and has grown since it was read.
    pub fn keep(&self, db: &Connection, now: i64) -> Result<(), Error> {
        let Some(key) = self.key.as_deref().filter(|_| self.grown) else {
            return Ok(());
        };
        let body = postcard::to_allocvec(self)
            .map_err(|e| Error::Io(format!("lookbook taste not encoded: {e}")))?;
        derived::put(db, &self.profile.shopper, PURPOSE, key, body, now)
    }
}

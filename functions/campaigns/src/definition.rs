//! A campaign's definition (`PUT /api/admin/campaigns/{id}`), checked field by field: errors
//! name the field (`arms[1].id`, `epsilon`, …).

use serde::{Deserialize, Serialize};

/// The placeholders a message may use.
pub const PLACEHOLDERS: [&str; 4] = ["shopper", "offer", "arm", "campaign"];

/// A campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// Shown to people.
    pub name: String,
    /// Where it is shown.
    pub channel: Channel,
    /// How arms are chosen.
    #[serde(default)]
    pub policy: PolicyKind,
    /// Exploration floor: no arm's probability falls below `epsilon / arms`.
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// Share of shoppers (by a hash of their id) who never see the campaign, for measurement.
    #[serde(default)]
    pub holdout: f64,
    /// How long after a decision its feedback still counts, hours.
    #[serde(default = "default_attribution")]
    pub attribution_hours: u32,
    /// When it starts (RFC 3339); none: already.
    #[serde(default)]
    pub start: Option<String>,
    /// When it ends (RFC 3339); none: never.
    #[serde(default)]
    pub end: Option<String>,
    /// Who may see it.
    #[serde(default)]
    pub eligibility: Eligibility,
    /// How often one shopper may see it.
    #[serde(default)]
    pub caps: Caps,
    /// How much of it may be shown.
    #[serde(default)]
    pub budget: Budget,
    /// When, in the shopper's local time, it is not shown.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// What may be shown.
    pub arms: Vec<Arm>,
}

fn default_epsilon() -> f64 {
    0.05
}

fn default_attribution() -> u32 {
    72
}

/// A channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// On-site banner.
    Banner,
    /// Push notification.
    Push,
    /// Email.
    Email,
}

/// A learning policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Every arm alike.
    Uniform,
    /// Beta–Bernoulli Thompson sampling per arm.
    #[default]
    Thompson,
    /// LinUCB over the context features.
    Linucb,
}

/// Who may see a campaign; an empty list allows all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eligibility {
    /// Locales (`fr-FR`).
    #[serde(default)]
    pub locales: Vec<String>,
    /// Pages (`home`, `product`, `cart`, …).
    #[serde(default)]
    pub pages: Vec<String>,
    /// Lowest cart value.
    #[serde(default)]
    pub min_cart: f64,
    /// Countries (`context.country`, ISO 3166 codes such as `FR`).
    #[serde(default)]
    pub countries: Vec<String>,
    /// Segments (`context.segment`, as the shop names them: `vip`, `new`, …).
    #[serde(default)]
    pub segments: Vec<String>,
    /// Categories one of which must be among the shopper's three strongest category
    /// affinities (from their profile: only shoppers who consented to personalization).
    #[serde(default)]
    pub categories: Vec<String>,
}

/// Frequency caps per shopper; none by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caps {
    /// Times a shopper may see the campaign in 24 hours.
    pub per_shopper_per_day: Option<u32>,
    /// Times a shopper may see it in all.
    pub per_shopper: Option<u32>,
}

/// A campaign's budget; none by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Impressions (decisions that showed an arm), over all versions of the campaign.
    pub impressions: Option<u64>,
    /// Discounts granted: the `discount` of the arm of each converted decision, summed over
    /// all versions of the campaign.
    pub discount_spend: Option<f64>,
}

/// Whether `id` may name a campaign, an arm or an experiment: 1–64 letters, digits, `-` or
/// `_` (so it is safe in a URL path and a log line).
pub fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

/// A JSON body as a `T`. The error names the field (`context.cart: invalid type: …`); one
/// about the body as a whole starts with `whole`.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], whole: &str) -> Result<T, String> {
    let mut json = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut json).map_err(|e| match e.path().to_string().as_str() {
        "." => format!("{whole}{}", e.inner()),
        path => format!("{path}: {}", e.inner()),
    })
}

/// A daily quiet period in the shopper's local time (`"21:00"` to `"08:00"` wraps midnight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Start, `HH:MM`.
    pub from: String,
    /// End (excluded), `HH:MM`.
    pub to: String,
}

impl QuietHours {
    /// Whether `minute` (of the day, local) falls in the quiet period.
    pub fn contains(&self, minute: u32) -> bool {
        let (Some(from), Some(to)) = (minutes(&self.from), minutes(&self.to)) else {
            return false;
        };
        match from <= to {
            true => from <= minute && minute < to,
            false => minute >= from || minute < to,
        }
    }
}

/// `HH:MM` as minutes of the day.
fn minutes(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.len() == 5).then_some(h * 60 + m)
}

/// One arm: an offer and its message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Its id, unique in the campaign.
    pub id: String,
    /// The offer (`10% off`).
    pub offer: String,
    /// The message, with `{shopper}`, `{offer}`, `{arm}`, `{campaign}` placeholders.
    pub message: String,
    /// What one conversion with this arm costs in discount (currency units; default 0):
    /// counted against `budget.discount_spend`.
    #[serde(default)]
    pub discount: f64,
}

impl Definition {
    /// Reads and checks a definition; the error names the field.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let definition: Definition = parse_json(body, "invalid campaign: ")?;
        definition.check()?;
        Ok(definition)
    }

    fn check(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name: must not be empty".into());
        }
        if !(0.0..=1.0).contains(&self.epsilon) {
            return Err(format!("epsilon: {} is not within 0..1", self.epsilon));
        }
        if !(0.0..=0.5).contains(&self.holdout) {
            return Err(format!("holdout: {} is not within 0..0.5", self.holdout));
        }
        let time = |field: &str, value: &Option<String>| -> Result<Option<i64>, String> {
            value
                .as_deref()
                .map(|t| {
                    chrono::DateTime::parse_from_rfc3339(t)
                        .map(|t| t.timestamp())
                        .map_err(|e| format!("{field}: `{t}` is not an RFC 3339 time: {e}"))
                })
                .transpose()
        };
        if let (Some(start), Some(end)) = (time("start", &self.start)?, time("end", &self.end)?) {
            if end <= start {
                return Err("end: must be after start".into());
            }
        }
        if !self.eligibility.min_cart.is_finite() || self.eligibility.min_cart < 0.0 {
            return Err("eligibility.min_cart: must be 0 or more".into());
        }
        for (field, value) in [
            (
                "caps.per_shopper_per_day",
                self.caps.per_shopper_per_day.map(u64::from),
            ),
            ("caps.per_shopper", self.caps.per_shopper.map(u64::from)),
            ("budget.impressions", self.budget.impressions),
        ] {
            if value == Some(0) {
                return Err(format!(
                    "{field}: must be at least 1 (leave it out for no limit)"
                ));
            }
        }
        if let Some(spend) = self.budget.discount_spend {
            if !(spend.is_finite() && spend > 0.0) {
                return Err(format!(
                    "budget.discount_spend: {spend} must be above 0 (leave it out for no limit)"
                ));
            }
        }
        if let Some(q) = &self.quiet_hours {
            for (field, value) in [("quiet_hours.from", &q.from), ("quiet_hours.to", &q.to)] {
                if minutes(value).is_none() {
                    return Err(format!("{field}: `{value}` is not a time of day HH:MM"));
                }
            }
        }
        if self.arms.is_empty() {
            return Err("arms: at least one arm is needed".into());
        }
        if self.arms.len() > 32 {
            return Err(format!("arms: {} arms, at most 32", self.arms.len()));
        }
        for (i, arm) in self.arms.iter().enumerate() {
            if !is_id(&arm.id) {
                return Err(format!(
                    "arms[{i}].id: `{}` must be 1–64 letters, digits, `-` or `_`",
                    arm.id
                ));
            }
            if self.arms[..i].iter().any(|a| a.id == arm.id) {
                return Err(format!("arms[{i}].id: `{}` is used twice", arm.id));
            }
            if !(arm.discount.is_finite() && arm.discount >= 0.0) {
                return Err(format!(
                    "arms[{i}].discount: {} must be 0 or more",
                    arm.discount
                ));
            }
            let mut rest = arm.message.as_str();
            while let Some(open) = rest.find('{') {
                let after = &rest[open + 1..];
                let Some(close) = after.find('}') else {
                    return Err(format!("arms[{i}].message: a `{{` is not closed"));
                };
                let name = &after[..close];
                if !PLACEHOLDERS.contains(&name) {
                    return Err(format!(
                        "arms[{i}].message: unknown placeholder `{{{name}}}` (known: {})",
                        PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                    ));
                }
                rest = &after[close + 1..];
            }
        }
        Ok(())
    }

    /// When it starts and ends (Unix seconds), as checked.
    pub fn schedule(&self) -> (Option<i64>, Option<i64>) {
        let at = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp())
        };
        (at(&self.start), at(&self.end))
    }
}

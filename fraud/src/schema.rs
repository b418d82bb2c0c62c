//! The records of a transaction graph, one CSV file each (format: docs/fraud-data.md).
//!
//! Node ids carry their kind as a prefix: `C` customers, `A` accounts, `K` cards, `D` devices,
//! `M` merchants. A transaction goes from an account to an account or a merchant.

use serde::{Deserialize, Serialize};

/// A bank customer (`customers.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// `C000001`…
    pub customer_id: String,
    /// `retail` or `business`.
    pub segment: String,
    /// ISO 3166 country code.
    pub country: String,
    /// RFC 3339 time the customer joined.
    pub joined_at: String,
}

/// An account (`accounts.csv`), with its ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// `A000001`…
    pub account_id: String,
    /// Owner.
    pub customer_id: String,
    /// `checking`, `savings` or `business`.
    pub kind: String,
    /// RFC 3339 opening time.
    pub opened_at: String,
    /// 1 if the account launders money or serves as a mule, else 0.
    pub is_laundering: u8,
    /// The typology that made it so (empty for normal accounts).
    pub typology: String,
}

/// The ids of the accounts labelled as laundering.
pub fn laundering_ids(accounts: &[Account]) -> std::collections::HashSet<&str> {
    (accounts.iter())
        .filter(|a| a.is_laundering == 1)
        .map(|a| a.account_id.as_str())
        .collect()
}

/// A payment card (`cards.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    /// `K000001`…
    pub card_id: String,
    /// The account it draws on.
    pub account_id: String,
}

/// A device seen logging in (`devices.csv`); shared devices appear once per customer using them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// `D000001`…
    pub device_id: String,
    /// A customer who used it.
    pub customer_id: String,
    /// `ios`, `android` or `web`.
    pub platform: String,
}

/// A merchant (`merchants.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Merchant {
    /// `M00001`…
    pub merchant_id: String,
    /// Merchant category (`grocery`, `electronics`, …).
    pub category: String,
    /// ISO 3166 country code.
    pub country: String,
    /// Whether it sells online only (1) or also in person (0).
    pub online: u8,
}

/// A transaction (`transactions.csv`), with its ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// `T00000001`…, in time order.
    pub transaction_id: String,
    /// RFC 3339 time.
    pub timestamp: String,
    /// Paying account.
    pub source: String,
    /// Receiving account (`A…`) or merchant (`M…`).
    pub target: String,
    /// Amount in `currency`, two decimals.
    pub amount: f64,
    /// ISO 4217 code.
    pub currency: String,
    /// `card_present`, `online`, `mobile`, `transfer`, `salary` or `atm`.
    pub channel: String,
    /// The merchant's category, or `transfer`.
    pub merchant_category: String,
    /// Card used (card payments only).
    pub card_id: String,
    /// Device used (online and mobile only).
    pub device_id: String,
    /// 1 for fraud or laundering, else 0.
    pub is_fraud: u8,
    /// `card_testing`, `account_takeover`, `mule_ring`, `fan_in`, `fan_out`, `cycle`,
    /// `scatter_gather`, `gather_scatter`, `bipartite`, `stack`, or empty.
    pub typology: String,
    /// Groups the transactions of one fraud or laundering instance (empty for normal ones).
    pub pattern_id: String,
}

/// The typology named for a transaction when the model was trained on none of the likely ones
/// (data without typology labels).
pub const UNKNOWN_TYPOLOGY: &str = "unknown";

/// Every fraud and laundering typology the generator plants.
pub const TYPOLOGIES: &[&str] = &[
    "card_testing",
    "account_takeover",
    "mule_ring",
    "fan_in",
    "fan_out",
    "cycle",
    "scatter_gather",
    "gather_scatter",
    "bipartite",
    "stack",
];

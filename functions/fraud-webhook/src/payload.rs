//! The transaction webhook payload, in the Standard Webhooks envelope:
//!
//! ```json
//! {"type": "transaction.created", "timestamp": "2026-03-01T10:00:00Z",
//!  "data": {"transaction_id": "T1", "timestamp": "2026-03-01T09:59:58Z",
//!           "source": "A000001", "target": "M00012", "amount": 42.5, "currency": "EUR",
//!           "channel": "online", "device_id": "D000003"}}
//! ```
//!
//! `data.timestamp` is RFC 3339 or Unix seconds, from [`EARLIEST_TIME`] to a day after the
//! server's clock; `amount` is at most the configured maximum; `device_id` and `currency` are
//! optional. Every problem is reported with the field it concerns.

use serde::Deserialize;

/// Channels the model knows, in the order of their codes; `atm` counts as `other`. The codes
/// are the model's (`vitrine_fraud::graph::CHANNELS`, which this Wasm crate cannot depend on:
/// it pulls in candle); keep the two lists in step.
pub const CHANNELS: &[&str] = &[
    "card_present",
    "online",
    "mobile",
    "transfer",
    "salary",
    "other",
];

/// Longest id accepted (the model's tensors hold 64 bytes).
pub const MAX_ID_BYTES: usize = 64;
/// The earliest transaction time accepted: 2000-01-01T00:00:00Z.
pub const EARLIEST_TIME: i64 = 946_684_800;
/// How far after the server's clock a transaction time may be (clock skew, time zones).
pub const FUTURE_SECONDS: i64 = 86_400;

/// A validated transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// The partner's transaction id.
    pub id: String,
    /// Unix seconds.
    pub time: i64,
    /// Paying account.
    pub source: String,
    /// Receiving account or merchant (`M…`).
    pub target: String,
    /// Amount.
    pub amount: f64,
    /// ISO 4217 code, upper case (empty when not given).
    pub currency: String,
    /// Index in [`CHANNELS`].
    pub channel_code: usize,
    /// Device used, or empty.
    pub device_id: String,
}

impl Transaction {
    /// A canonical text of every field, to tell a repeated transaction from a different one
    /// reusing its id.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            self.id,
            self.time,
            self.source,
            self.target,
            self.amount,
            self.currency,
            self.channel_code,
            self.device_id
        )
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Option<String>,
    data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Data {
    transaction_id: Option<String>,
    timestamp: Option<serde_json::Value>,
    source: Option<String>,
    target: Option<String>,
    amount: Option<serde_json::Value>,
    currency: Option<String>,
    channel: Option<String>,
    device_id: Option<String>,
    // Accepted for the partner's records; not used by the model.
    #[serde(rename = "card_id")]
    _card_id: Option<serde::de::IgnoredAny>,
    #[serde(rename = "merchant_category")]
    _merchant_category: Option<serde::de::IgnoredAny>,
}

fn id(value: Option<String>, field: &str, required: bool) -> Result<String, String> {
    let value = value.unwrap_or_default();
    if required && value.trim().is_empty() {
        return Err(format!("data.{field} is required"));
    }
    if value.len() > MAX_ID_BYTES || value.contains('\0') {
        return Err(format!(
            "data.{field} must be at most {MAX_ID_BYTES} bytes without NUL characters"
        ));
    }
    Ok(value)
}

/// Parses and validates a delivery body received at `now` (Unix seconds); amounts above
/// `max_amount` are refused.
pub fn parse(body: &[u8], now: i64, max_amount: f64) -> Result<Transaction, String> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| format!("body is not a JSON object: {e}"))?;
    match envelope.kind.as_deref() {
        Some("transaction.created") => {}
        Some(other) => {
            return Err(format!(
                "unsupported event type '{other}' (this endpoint takes transaction.created)"
            ))
        }
        None => return Err("missing field 'type' (transaction.created)".into()),
    }
    let data: Data = serde_json::from_value(envelope.data.ok_or("missing field 'data'")?)
        .map_err(|e| format!("data: {e}"))?;
    let time = match data.timestamp {
        Some(serde_json::Value::String(text)) => chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.timestamp())
            .map_err(|_| format!("data.timestamp '{text}' is not RFC 3339"))?,
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .ok_or("data.timestamp must be whole Unix seconds")?,
        Some(_) => return Err("data.timestamp must be RFC 3339 text or Unix seconds".into()),
        None => return Err("data.timestamp is required".into()),
    };
    let amount = match data.amount {
        Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(f64::NAN),
        Some(_) => f64::NAN,
        None => return Err("data.amount is required".into()),
    };
    if !amount.is_finite() || amount < 0.0 {
        return Err("data.amount must be a non-negative number".into());
    }
    if amount > max_amount {
        return Err(format!(
            "data.amount {amount} is above the maximum of {max_amount} (variable max_amount)"
        ));
    }
    let channel = data.channel.ok_or("data.channel is required")?;
    let channel_code = match channel.as_str() {
        "atm" => CHANNELS.len() - 1,
        name => CHANNELS.iter().position(|c| *c == name).ok_or_else(|| {
            format!(
                "data.channel '{channel}' is not one of {}, atm",
                CHANNELS.join(", ")
            )
        })?,
    };
    let currency = data.currency.unwrap_or_default().to_ascii_uppercase();
    if !currency.is_empty()
        && (currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(format!(
            "data.currency '{currency}' is not an ISO 4217 code"
        ));
    }
    let tx = Transaction {
        id: id(data.transaction_id, "transaction_id", true)?,
        time,
        source: id(data.source, "source", true)?,
        target: id(data.target, "target", true)?,
        amount,
        currency,
        channel_code,
        device_id: id(data.device_id, "device_id", false)?,
    };
    if !(EARLIEST_TIME..=now.saturating_add(FUTURE_SECONDS)).contains(&tx.time) {
        return Err(format!(
            "data.timestamp {} is outside the accepted window (from 2000-01-01 to a day from now)",
            tx.time
        ));
    }
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(data: &str) -> Vec<u8> {
        format!(r#"{{"type": "transaction.created", "data": {data}}}"#).into_bytes()
    }

    /// 2026-06-01, the clock the tests parse at.
    const NOW: i64 = 1_780_272_000;

    fn parse(body: &[u8]) -> Result<Transaction, String> {
        super::parse(body, NOW, 1e9)
    }

    #[test]
    fn a_valid_transaction_parses() {
        let tx = parse(&body(
            r#"{"transaction_id": "T1", "timestamp": "2026-03-01T10:00:00Z", "source": "A1",
                "target": "M2", "amount": 12.5, "currency": "eur", "channel": "atm"}"#,
        ))
        .unwrap();
        assert_eq!(tx.time, 1_772_359_200);
        assert_eq!((tx.channel_code, tx.currency.as_str()), (5, "EUR"));
        assert_eq!(tx.device_id, "");
        let unix = parse(&body(
            r#"{"transaction_id": "T1", "timestamp": 1772359200, "source": "A1",
                "target": "M2", "amount": "12.5", "currency": "EUR", "channel": "atm"}"#,
        ))
        .unwrap();
        assert_eq!(unix.fingerprint(), tx.fingerprint());
    }

    #[test]
    fn problems_name_their_field() {
        let cases = [
            (
                r#"{"timestamp": 1, "source": "A", "target": "B", "amount": 1, "channel": "online"}"#,
                "data.transaction_id",
            ),
            (
                r#"{"transaction_id": "T", "timestamp": "yesterday", "source": "A", "target": "B", "amount": 1, "channel": "online"}"#,
                "data.timestamp",
            ),
            (
                r#"{"transaction_id": "T", "timestamp": 1, "source": "A", "target": "B", "amount": -3, "channel": "online"}"#,
                "data.amount",
            ),
            (
                r#"{"transaction_id": "T", "timestamp": 1, "source": "A", "target": "B", "amount": 1, "channel": "pigeon"}"#,
                "data.channel",
            ),
            (
                r#"{"transaction_id": "T", "timestamp": 1, "target": "B", "amount": 1, "channel": "online"}"#,
                "data.source",
            ),
            (
                r#"{"transaction_id": "T", "timestamp": 1, "source": "A", "target": "B", "amount": 1, "channel": "online", "colour": "red"}"#,
                "colour",
            ),
        ];
        for (data, field) in cases {
            let err = parse(&body(data)).unwrap_err();
            assert!(err.contains(field), "{err} should name {field}");
        }
        assert!(parse(b"not json").unwrap_err().contains("JSON"));
        let at = |time: i64, amount: f64| {
            body(&format!(
                r#"{{"transaction_id": "T", "timestamp": {time}, "source": "A", "target": "B", "amount": {amount}, "channel": "online"}}"#
            ))
        };
        // Times outside 2000-01-01 .. now + 1 day, and amounts over the maximum.
        for (time, amount, says) in [
            (EARLIEST_TIME - 1, 1.0, "data.timestamp"),
            (NOW + FUTURE_SECONDS + 1, 1.0, "data.timestamp"),
            (NOW, 1e9 + 1.0, "max_amount"),
        ] {
            let err = parse(&at(time, amount)).unwrap_err();
            assert!(err.contains(says), "{err} should name {says}");
        }
        assert!(parse(&at(EARLIEST_TIME, 0.0)).is_ok());
        assert!(parse(&at(NOW + FUTURE_SECONDS, 1e9)).is_ok());
        assert!(parse(br#"{"type": "order.created", "data": {}}"#)
            .unwrap_err()
            .contains("order.created"));
    }
}

//! Import of a user's own accounts and transactions into the documented format.
//!
//! Column names are mapped (`source=payer_id`); timestamps are RFC 3339 or integer time steps;
//! labels are 0/1 or true/false. A malformed row is an error naming the file, line and field,
//! or, with `skip_bad_rows`, is left out and reported. Nothing is dropped silently: accounts
//! that appear only in transactions are added (unlabelled) and counted in the report; ids that
//! start with `M` are merchants, as in the documented format.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};

use crate::schema::{Account, Transaction};

/// How to read the user's files.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Our column name → the user's (`source` → `payer_id`); a key may be prefixed with
    /// `accounts.` or `transactions.` to apply to one file only.
    pub columns: BTreeMap<String, String>,
    /// Leave malformed rows out and report them, instead of stopping at the first.
    pub skip_bad_rows: bool,
    /// Length of one integer time step, in seconds (integer timestamps count steps from
    /// 2026-01-01T00:00:00Z).
    pub time_step_seconds: i64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            columns: BTreeMap::new(),
            skip_bad_rows: false,
            time_step_seconds: 86_400,
        }
    }
}

/// A malformed row: where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: field `{field}`: {problem}")]
pub struct RowError {
    /// The file.
    pub file: String,
    /// Line number in the file (the header is line 1).
    pub line: u64,
    /// Our name of the field (the user's column name in parentheses when mapped).
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// Labels each unlabelled transfer between two accounts labelled as laundering as laundering
/// (`is_fraud = 1`, typology kept): transaction training targets for data that labels only
/// accounts. Returns how many were labelled.
pub fn derive_transaction_labels(transactions: &mut [Transaction], accounts: &[Account]) -> usize {
    let laundering = crate::schema::laundering_ids(accounts);
    let mut labelled = 0;
    for t in transactions.iter_mut().filter(|t| t.is_fraud == 0) {
        if laundering.contains(t.source.as_str()) && laundering.contains(t.target.as_str()) {
            t.is_fraud = 1;
            labelled += 1;
        }
    }
    labelled
}

/// Moves the extra account columns that alone separate the laundering accounts from the others
/// (ROC-AUC 1 or 0 over the labelled accounts: a label under another name, or derived from it)
/// out of the attributes, into [`Imported::leaking_attributes`].
fn drop_leaking_attributes(out: &mut Imported) {
    let labels: Vec<bool> = out.accounts.iter().map(|a| a.is_laundering == 1).collect();
    let positives = labels.iter().filter(|l| **l).count();
    // Too few of either kind, and a column may separate them by chance.
    if positives < 5 || labels.len() - positives < 5 {
        return;
    }
    let leaks: Vec<usize> = (0..out.attribute_names.len())
        .filter(|c| {
            let values: Vec<f32> = out.attributes.iter().map(|a| a[*c] as f32).collect();
            let auc = crate::metrics::roc_auc(&values, &labels);
            auc == 1.0 || auc == 0.0
        })
        .collect();
    for c in leaks.iter().rev() {
        out.leaking_attributes
            .insert(0, out.attribute_names.remove(*c));
        out.attributes.iter_mut().for_each(|a| {
            a.remove(*c);
        });
    }
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A row is malformed.
    #[error(transparent)]
    Row(#[from] RowError),
    /// A required column is missing from the header.
    #[error("{file}: no column `{column}`{hint} (columns: {found})")]
    MissingColumn {
        /// The file.
        file: String,
        /// The column looked for.
        column: String,
        /// How to map it.
        hint: String,
        /// The header's columns.
        found: String,
    },
    /// The file could not be read as CSV.
    #[error("{file}: {message}")]
    Read {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
}

/// The imported data and what happened on the way.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// Accounts, in file order, then those only seen in transactions.
    pub accounts: Vec<Account>,
    /// Names of the accounts' extra numeric columns.
    pub attribute_names: Vec<String>,
    /// Each account's extra numeric values (empty for added accounts: unknown).
    pub attributes: Vec<Vec<f64>>,
    /// Transactions, sorted by time (stable).
    pub transactions: Vec<Transaction>,
    /// Rows left out with `skip_bad_rows`.
    pub skipped: Vec<RowError>,
    /// Accounts added because transactions name them.
    pub added_accounts: usize,
    /// Extra account columns left out because they give the label away: each alone separates
    /// the accounts labelled as laundering from the others.
    pub leaking_attributes: Vec<String>,
}

const ACCOUNT_COLUMNS: &[&str] = &[
    "account_id",
    "customer_id",
    "kind",
    "opened_at",
    "is_laundering",
    "typology",
];
const TRANSACTION_COLUMNS: &[&str] = &[
    "transaction_id",
    "timestamp",
    "source",
    "target",
    "amount",
    "currency",
    "channel",
    "merchant_category",
    "card_id",
    "device_id",
    "is_fraud",
    "typology",
    "pattern_id",
];

/// Reads `accounts` (optional) and `transactions` CSV files.
pub fn import(
    accounts: Option<&Path>,
    transactions: &Path,
    options: &ImportOptions,
) -> Result<Imported, ImportError> {
    let mut out = Imported::default();
    let mut known = BTreeSet::new();
    if let Some(path) = accounts {
        let mut file = Table::open(path, "accounts", options)?;
        let id = file.required("account_id")?;
        let optional: Vec<Option<usize>> = ACCOUNT_COLUMNS[1..]
            .iter()
            .map(|c| file.optional(c))
            .collect();
        let used: BTreeSet<usize> = std::iter::once(id)
            .chain(optional.iter().flatten().copied())
            .collect();
        let extra: Vec<(usize, String)> = file
            .header
            .iter()
            .enumerate()
            .filter(|(i, _)| !used.contains(i))
            .map(|(i, n)| (i, n.clone()))
            .collect();
        out.attribute_names = extra.iter().map(|(_, n)| n.clone()).collect();
        while let Some((line, record)) = file.next()? {
            let row = (|| {
                let account_id = file.text(&record, Some(id), line, "account_id", true)?;
                if known.contains(&account_id) {
                    return Err(file.error(
                        line,
                        "account_id",
                        format!("account `{account_id}` appears twice"),
                    ));
                }
                let is_laundering = file.label(&record, optional[3], line, "is_laundering")?;
                let attributes = extra
                    .iter()
                    .map(|(i, name)| {
                        let text = record.get(*i).unwrap_or("").trim();
                        text.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                            file.error(line, name, format!("`{text}` is not a number (extra account columns are numeric attributes)"))
                        })
                    })
                    .collect::<Result<Vec<f64>, RowError>>()?;
                let opened_at = match optional[2] {
                    Some(_)
                        if !file
                            .text(&record, optional[2], line, "opened_at", false)?
                            .is_empty() =>
                    {
                        file.time(&record, optional[2], line, "opened_at")?
                    }
                    _ => String::new(),
                };
                Ok((
                    Account {
                        account_id,
                        customer_id: file.text(&record, optional[0], line, "customer_id", false)?,
                        kind: file.text(&record, optional[1], line, "kind", false)?,
                        opened_at,
                        is_laundering,
                        typology: file.text(&record, optional[4], line, "typology", false)?,
                    },
                    attributes,
                ))
            })();
            match row {
                Ok((account, attributes)) => {
                    known.insert(account.account_id.clone());
                    out.accounts.push(account);
                    out.attributes.push(attributes);
                }
                Err(e) if options.skip_bad_rows => out.skipped.push(e),
                Err(e) => return Err(e.into()),
            }
        }
        drop_leaking_attributes(&mut out);
    }

    let mut file = Table::open(transactions, "transactions", options)?;
    let required: Vec<usize> = ["timestamp", "source", "target", "amount"]
        .iter()
        .map(|c| file.required(c))
        .collect::<Result<_, _>>()?;
    let optional: BTreeMap<&str, Option<usize>> = TRANSACTION_COLUMNS
        .iter()
        .map(|c| (*c, file.optional(c)))
        .collect();
    let mut ids = BTreeSet::new();
    let mut rows = Vec::new();
    while let Some((line, record)) = file.next()? {
        let row = (|| {
            let opt = |name: &str| optional[name];
            let transaction_id = match file.text(
                &record,
                opt("transaction_id"),
                line,
                "transaction_id",
                false,
            )? {
                id if id.is_empty() => format!("T{:08}", line - 1),
                id => id,
            };
            if !ids.insert(transaction_id.clone()) {
                return Err(file.error(
                    line,
                    "transaction_id",
                    format!("transaction `{transaction_id}` appears twice"),
                ));
            }
            let amount_text = file.text(&record, Some(required[3]), line, "amount", true)?;
            let amount = amount_text
                .parse::<f64>()
                .ok()
                .filter(|a| a.is_finite() && *a >= 0.0)
                .ok_or_else(|| {
                    file.error(
                        line,
                        "amount",
                        format!("`{amount_text}` is not a non-negative number"),
                    )
                })?;
            let text = |name: &str| file.text(&record, opt(name), line, name, false);
            Ok(Transaction {
                transaction_id,
                timestamp: file.time(&record, Some(required[0]), line, "timestamp")?,
                source: file.text(&record, Some(required[1]), line, "source", true)?,
                target: file.text(&record, Some(required[2]), line, "target", true)?,
                amount,
                currency: text("currency")?,
                channel: text("channel")?,
                merchant_category: text("merchant_category")?,
                card_id: text("card_id")?,
                device_id: text("device_id")?,
                is_fraud: file.label(&record, opt("is_fraud"), line, "is_fraud")?,
                typology: text("typology")?,
                pattern_id: text("pattern_id")?,
            })
        })();
        match row {
            Ok(t) => rows.push(t),
            Err(e) if options.skip_bad_rows => out.skipped.push(e),
            Err(e) => return Err(e.into()),
        }
    }
    // Accounts named only by transactions become (unlabelled) accounts, in order of appearance;
    // merchant ids (`M…`, as in the documented format) stay merchants.
    for t in &rows {
        for id in [&t.source, &t.target] {
            let merchant = id.starts_with('M');
            if !merchant && known.insert(id.clone()) {
                out.accounts.push(Account {
                    account_id: id.clone(),
                    customer_id: String::new(),
                    kind: String::new(),
                    opened_at: String::new(),
                    is_laundering: 0,
                    typology: String::new(),
                });
                out.attributes.push(Vec::new());
                out.added_accounts += 1;
            }
        }
    }
    rows.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
    out.transactions = rows;
    Ok(out)
}

/// One CSV file with the user's column mapping.
struct Table {
    name: String,
    kind: &'static str,
    reader: csv::Reader<std::fs::File>,
    header: Vec<String>,
    columns: BTreeMap<String, String>,
    time_step: i64,
}

impl Table {
    fn open(path: &Path, kind: &'static str, options: &ImportOptions) -> Result<Self, ImportError> {
        let name = path.display().to_string();
        let read = |e: csv::Error| ImportError::Read {
            file: name.clone(),
            message: e.to_string(),
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(path)
            .map_err(read)?;
        let header = reader
            .headers()
            .map_err(read)?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut columns = BTreeMap::new();
        for (ours, theirs) in &options.columns {
            match ours.split_once('.') {
                Some((file, field)) if file == kind => {
                    columns.insert(field.to_string(), theirs.clone());
                }
                Some(_) => {}
                None => {
                    columns
                        .entry(ours.clone())
                        .or_insert_with(|| theirs.clone());
                }
            }
        }
        Ok(Self {
            name,
            kind,
            reader,
            header,
            columns,
            time_step: options.time_step_seconds,
        })
    }

    fn column_name(&self, ours: &str) -> String {
        self.columns
            .get(ours)
            .cloned()
            .unwrap_or_else(|| ours.to_string())
    }

    fn optional(&self, ours: &str) -> Option<usize> {
        let theirs = self.column_name(ours);
        self.header.iter().position(|h| *h == theirs)
    }

    fn required(&self, ours: &str) -> Result<usize, ImportError> {
        self.optional(ours)
            .ok_or_else(|| ImportError::MissingColumn {
                file: self.name.clone(),
                column: self.column_name(ours),
                hint: format!(
                    " (named otherwise in yours: `vitrine fraud import --column {}.{ours}=<name>` \
                     converts the files to the documented format)",
                    self.kind
                ),
                found: self.header.join(", "),
            })
    }

    /// The next record and its line number.
    fn next(&mut self) -> Result<Option<(u64, csv::StringRecord)>, ImportError> {
        let mut record = csv::StringRecord::new();
        match self.reader.read_record(&mut record) {
            Ok(false) => Ok(None),
            Ok(true) => Ok(Some((record.position().map_or(0, |p| p.line()), record))),
            Err(e) => Err(ImportError::Read {
                file: self.name.clone(),
                message: e.to_string(),
            }),
        }
    }

    fn error(&self, line: u64, ours: &str, problem: String) -> RowError {
        let theirs = self.column_name(ours);
        let field = if theirs == ours {
            ours.to_string()
        } else {
            format!("{ours} ({theirs})")
        };
        RowError {
            file: self.name.clone(),
            line,
            field,
            problem,
        }
    }

    fn text(
        &self,
        record: &csv::StringRecord,
        column: Option<usize>,
        line: u64,
        ours: &str,
        required: bool,
    ) -> Result<String, RowError> {
        let Some(column) = column else {
            return Ok(String::new());
        };
        let value = record
            .get(column)
            .ok_or_else(|| {
                self.error(
                    line,
                    ours,
                    format!("missing: the row has {} fields", record.len()),
                )
            })?
            .trim();
        if required && value.is_empty() {
            return Err(self.error(line, ours, "is empty".into()));
        }
        Ok(value.to_string())
    }

    fn label(
        &self,
        record: &csv::StringRecord,
        column: Option<usize>,
        line: u64,
        ours: &str,
    ) -> Result<u8, RowError> {
        match self
            .text(record, column, line, ours, false)?
            .to_ascii_lowercase()
            .as_str()
        {
            "" | "0" | "false" => Ok(0),
            "1" | "true" => Ok(1),
            other => Err(self.error(
                line,
                ours,
                format!("`{other}` is not a label (0, 1, true or false)"),
            )),
        }
    }

    /// An RFC 3339 time, or an integer time step converted to one.
    fn time(
        &self,
        record: &csv::StringRecord,
        column: Option<usize>,
        line: u64,
        ours: &str,
    ) -> Result<String, RowError> {
        let text = self.text(record, column, line, ours, true)?;
        if let Ok(step) = text.parse::<i64>() {
            let origin = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            let at = step
                .checked_mul(self.time_step)
                .and_then(|s| origin.checked_add_signed(Duration::seconds(s)));
            return at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .ok_or_else(|| {
                    self.error(line, ours, format!("time step {step} is out of range"))
                });
        }
        DateTime::parse_from_rfc3339(&text)
            .map(|t| {
                t.with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::Secs, true)
            })
            .map_err(|e| {
                self.error(
                    line,
                    ours,
                    format!("`{text}` is neither RFC 3339 nor an integer time step ({e})"),
                )
            })
    }
}

impl Imported {
    /// Writes `accounts.csv` (the documented columns, then the numeric attributes) and
    /// `transactions.csv` into `dir`.
    pub fn write_csv(&self, dir: &Path) -> Result<(), crate::WriteError> {
        let fail = |path: &Path, e: &dyn std::fmt::Display| crate::WriteError {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, &e))?;
        let path = dir.join("accounts.csv");
        let mut writer = csv::Writer::from_path(&path).map_err(|e| fail(&path, &e))?;
        let header = ACCOUNT_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .chain(self.attribute_names.iter().cloned());
        writer.write_record(header).map_err(|e| fail(&path, &e))?;
        for (account, values) in self.accounts.iter().zip(&self.attributes) {
            let mut row = vec![
                account.account_id.clone(),
                account.customer_id.clone(),
                account.kind.clone(),
                account.opened_at.clone(),
                account.is_laundering.to_string(),
                account.typology.clone(),
            ];
            // Accounts added from transactions have no attributes: empty cells.
            row.extend(
                (0..self.attribute_names.len())
                    .map(|i| values.get(i).map(|v| v.to_string()).unwrap_or_default()),
            );
            writer.write_record(row).map_err(|e| fail(&path, &e))?;
        }
        writer.flush().map_err(|e| fail(&path, &e))?;
        crate::write(&dir.join("transactions.csv"), &self.transactions)
    }
}

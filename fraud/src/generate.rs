//! A synthetic bank: customers, accounts, cards, devices and merchants with realistic normal
//! behaviour, plus labelled fraud and laundering.
//!
//! Normal behaviour: monthly salaries from employers (heavy-tailed employer sizes), recurring
//! payees (rent, family), card spending at merchants whose popularity follows a Zipf law, with a
//! daily rhythm and per-account favourite merchants, and occasional person-to-person payments.
//! Planted on top, with transaction- and account-level ground truth and a `pattern_id` per
//! instance: card testing, account takeover (new device, new payee, drained balance), mule rings
//! sharing devices, and the AML typologies fan-in, fan-out, cycle, scatter-gather,
//! gather-scatter, bipartite and stack. Everything follows from the seed.

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use rand::distr::weighted::WeightedIndex;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};

use crate::schema::{Account, Card, Customer, Device, Merchant, Transaction};

/// How the bank's launderers and its normal customers behave: a configuration to train on and
/// another to test on, so that a model is measured on behaviour it was not fitted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Laundering transfers of 8,000–9,900 (structuring under a 10,000 reporting threshold),
    /// patterns of a few accounts over hours to two days, every laundering account labelled.
    #[default]
    Structuring,
    /// Laundering that blends in: amounts drawn like everyday transfers (median ~600, wide),
    /// sent by bank transfer or mobile app alike, patterns about twice as large and spread
    /// over up to five days; normal customers also form circles that pay each other round
    /// (legitimate cycles and reciprocity), collectors that many pay monthly (legitimate
    /// fan-in) and one-off transfers between people; one laundering account in ten is left
    /// unlabelled (missed by investigators: label noise).
    Blended,
    /// The blended bank's customers and label noise, with each laundering pattern drawn in
    /// the structuring or the blended style at random (its size, amounts, timing and
    /// channels): a bank to train on when the data to score may look like either.
    Varied,
}

impl Profile {
    /// The profile called `name`.
    pub fn parse(name: &str) -> Result<Self, GenerateError> {
        match name {
            "structuring" => Ok(Profile::Structuring),
            "blended" => Ok(Profile::Blended),
            "varied" => Ok(Profile::Varied),
            other => Err(GenerateError::Config(format!(
                "unknown profile `{other}`: use structuring, blended or varied"
            ))),
        }
    }
}

/// Share of laundering accounts left unlabelled by [`Profile::Blended`] and
/// [`Profile::Varied`].
const BLENDED_LABEL_NOISE: f64 = 0.1;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    /// Number of accounts (at least 100).
    pub accounts: usize,
    /// Seed: the same seed and settings give the same files.
    pub seed: u64,
    /// Days of activity.
    pub days: u32,
    /// First day of activity (UTC midnight).
    pub start: DateTime<Utc>,
    /// How launderers and normal customers behave.
    pub profile: Profile,
}

impl GenerateConfig {
    /// `accounts` accounts over 90 days from 2026-01-01.
    pub fn new(accounts: usize, seed: u64) -> Self {
        Self {
            accounts,
            seed,
            days: 90,
            start: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            profile: Profile::Structuring,
        }
    }
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The settings cannot produce a meaningful bank.
    #[error("{0}")]
    Config(String),
}

/// A generated bank.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Customers.
    pub customers: Vec<Customer>,
    /// Accounts with ground truth.
    pub accounts: Vec<Account>,
    /// Cards.
    pub cards: Vec<Card>,
    /// Devices (one row per device and customer).
    pub devices: Vec<Device>,
    /// Merchants.
    pub merchants: Vec<Merchant>,
    /// Transactions in time order, with ground truth.
    pub transactions: Vec<Transaction>,
}

/// Merchant categories: name, log-normal µ and σ of amounts, share of online merchants.
const CATEGORIES: &[(&str, f64, f64, f64)] = &[
    ("grocery", 3.4, 0.5, 0.1),
    ("restaurant", 3.2, 0.6, 0.05),
    ("fuel", 3.9, 0.3, 0.0),
    ("pharmacy", 3.0, 0.5, 0.2),
    ("fashion", 4.2, 0.7, 0.5),
    ("electronics", 5.0, 0.8, 0.6),
    ("home", 4.4, 0.8, 0.4),
    ("travel", 5.7, 0.7, 0.8),
    ("entertainment", 3.1, 0.6, 0.3),
    ("digital", 2.4, 0.8, 1.0),
];

const COUNTRIES: &[(&str, u32)] = &[
    ("DE", 70),
    ("FR", 8),
    ("NL", 7),
    ("AT", 6),
    ("PL", 5),
    ("ES", 4),
];

/// Share of spending at an account's favourite merchants.
const FAVOURITE_SHARE: f64 = 0.8;

/// One transaction before ids and timestamps are formatted.
struct Tx {
    at: i64,
    source: usize,
    target: Target,
    amount: f64,
    channel: &'static str,
    category: &'static str,
    card: Option<usize>,
    device: Option<usize>,
    label: Option<(&'static str, usize)>,
}

#[derive(Clone, Copy)]
enum Target {
    Account(usize),
    Merchant(usize),
}

struct Bank {
    rng: ChaCha8Rng,
    start: DateTime<Utc>,
    seconds: i64,
    customers: Vec<Customer>,
    accounts: Vec<Account>,
    account_customer: Vec<usize>,
    cards: Vec<Card>,
    card_account: Vec<usize>,
    devices: Vec<Device>,
    customer_devices: Vec<Vec<usize>>,
    device_count: usize,
    merchants: Vec<Merchant>,
    merchant_category: Vec<usize>,
    merchant_popularity: Option<WeightedIndex<f64>>,
    account_cards: Vec<Vec<usize>>,
    txs: Vec<Tx>,
    patterns: usize,
    profile: Profile,
}

/// Generates a bank, calling `progress` with a line per stage.
pub fn generate(
    config: &GenerateConfig,
    mut progress: impl FnMut(&str),
) -> Result<Dataset, GenerateError> {
    if config.accounts < 100 {
        return Err(GenerateError::Config(format!(
            "--accounts must be at least 100, got {}",
            config.accounts
        )));
    }
    if config.days < 14 {
        return Err(GenerateError::Config(format!(
            "--days must be at least 14, got {}",
            config.days
        )));
    }
    let mut bank = Bank::new(config);
    progress(&format!(
        "{} customers, {} accounts, {} cards, {} merchants",
        bank.customers.len(),
        bank.accounts.len(),
        bank.cards.len(),
        bank.merchants.len()
    ));
    bank.normal_activity(config.days);
    if config.profile != Profile::Structuring {
        bank.lookalikes(config.days);
    }
    progress(&format!(
        "{} normal transactions over {} days",
        bank.txs.len(),
        config.days
    ));
    let before = bank.txs.len();
    let n = config.accounts;
    let rings = bank.mule_rings((n / 1000).max(2));
    bank.account_takeovers((n / 500).max(3), &rings);
    bank.card_testing((n / 400).max(3));
    for typology in [
        "fan_in",
        "fan_out",
        "cycle",
        "scatter_gather",
        "gather_scatter",
        "bipartite",
        "stack",
    ] {
        for _ in 0..(n / 1500).max(2) {
            bank.laundering(typology);
        }
    }
    progress(&format!(
        "{} fraud and laundering transactions in {} patterns",
        bank.txs.len() - before,
        bank.patterns
    ));
    if config.profile != Profile::Structuring {
        let missed = bank.unlabel(BLENDED_LABEL_NOISE);
        progress(&format!("{missed} laundering accounts left unlabelled"));
    }
    Ok(bank.finish(config.start))
}

impl Bank {
    fn new(config: &GenerateConfig) -> Self {
        let mut bank = Bank {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            start: config.start,
            seconds: config.days as i64 * 86_400,
            customers: Vec::new(),
            accounts: Vec::new(),
            account_customer: Vec::new(),
            cards: Vec::new(),
            card_account: Vec::new(),
            devices: Vec::new(),
            customer_devices: Vec::new(),
            device_count: 0,
            merchants: Vec::new(),
            merchant_category: Vec::new(),
            merchant_popularity: None,
            account_cards: Vec::new(),
            txs: Vec::new(),
            patterns: 0,
            profile: config.profile,
        };
        let countries =
            WeightedIndex::new(COUNTRIES.iter().map(|c| c.1)).expect("weights are positive");
        while bank.accounts.len() < config.accounts {
            let business = bank.rng.random_bool(0.05);
            let joined = -bank.rng.random_range(30..5 * 365) * 86_400;
            let country = COUNTRIES[bank.rng.sample(&countries)].0;
            let c = bank.add_customer(
                if business { "business" } else { "retail" },
                country,
                joined,
            );
            let kinds: &[&str] = match (business, bank.rng.random_bool(0.3)) {
                (true, _) => &["business"],
                (false, true) => &["checking", "savings"],
                (false, false) => &["checking"],
            };
            for kind in kinds.iter().take(config.accounts - bank.accounts.len()) {
                let opened = joined + bank.rng.random_range(0..30) * 86_400;
                bank.add_account(c, kind, opened);
            }
            for _ in 0..(1 + bank.rng.random_bool(0.4) as usize) {
                let d = bank.new_device(c);
                bank.customer_devices[c].push(d);
            }
        }
        for a in 0..bank.accounts.len() {
            if bank.accounts[a].kind != "savings" {
                for _ in
                    0..(bank.rng.random_bool(0.9) as usize + bank.rng.random_bool(0.2) as usize)
                {
                    bank.add_card(a);
                }
            }
        }
        let merchants = (config.accounts / 25).max(20);
        for m in 0..merchants {
            let category = bank.rng.random_range(0..CATEGORIES.len());
            let online = bank.rng.random_bool(CATEGORIES[category].3) as u8;
            let country = COUNTRIES[bank.rng.sample(&countries)].0;
            bank.merchant_category.push(category);
            bank.merchants.push(Merchant {
                merchant_id: format!("M{:05}", m + 1),
                category: CATEGORIES[category].0.into(),
                country: country.into(),
                online,
            });
        }
        // Zipf popularity: a few merchants take most of the payments.
        let weights = (0..merchants).map(|m| 1.0 / (m as f64 + 1.0).powf(1.1));
        bank.merchant_popularity = Some(WeightedIndex::new(weights).expect("weights are positive"));
        bank
    }

    fn stamp(&self, at: i64) -> String {
        (self.start + Duration::seconds(at)).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    fn add_customer(&mut self, segment: &str, country: &str, joined: i64) -> usize {
        let c = self.customers.len();
        self.customers.push(Customer {
            customer_id: format!("C{:06}", c + 1),
            segment: segment.into(),
            country: country.into(),
            joined_at: self.stamp(joined),
        });
        self.customer_devices.push(Vec::new());
        c
    }

    fn add_account(&mut self, customer: usize, kind: &str, opened: i64) -> usize {
        let a = self.accounts.len();
        self.accounts.push(Account {
            account_id: format!("A{:06}", a + 1),
            customer_id: self.customers[customer].customer_id.clone(),
            kind: kind.into(),
            opened_at: self.stamp(opened),
            is_laundering: 0,
            typology: String::new(),
        });
        self.account_customer.push(customer);
        self.account_cards.push(Vec::new());
        a
    }

    fn add_card(&mut self, account: usize) -> usize {
        let k = self.cards.len();
        self.cards.push(Card {
            card_id: format!("K{:06}", k + 1),
            account_id: self.accounts[account].account_id.clone(),
        });
        self.card_account.push(account);
        self.account_cards[account].push(k);
        k
    }

    /// A new device, first used by `customer`.
    fn new_device(&mut self, customer: usize) -> usize {
        let d = self.device_count;
        self.device_count += 1;
        let platform = ["ios", "android", "web"][self.rng.random_range(0..3)];
        self.link_device(d, customer, platform);
        d
    }

    /// Records that `customer` uses device `d`.
    fn link_device(&mut self, d: usize, customer: usize, platform: &str) {
        self.devices.push(Device {
            device_id: format!("D{:06}", d + 1),
            customer_id: self.customers[customer].customer_id.clone(),
            platform: platform.into(),
        });
    }

    /// A second of the day following a daily rhythm: quiet nights, lunch and evening peaks.
    fn time_of_day(&mut self) -> i64 {
        const HOURS: [f64; 24] = [
            0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.6, 1.5, 2.5, 3.0, 3.5, 4.5, 5.5, 4.5, 3.5, 3.5, 4.0,
            5.0, 6.0, 5.5, 4.0, 2.5, 1.5, 0.8,
        ];
        let hour = self
            .rng
            .sample(WeightedIndex::new(HOURS).expect("weights are positive"));
        hour as i64 * 3600 + self.rng.random_range(0..3600)
    }

    fn pick_merchant(&mut self) -> usize {
        let popularity = self.merchant_popularity.as_ref().expect("merchants exist");
        self.rng.sample(popularity)
    }

    fn amount(&mut self, mu: f64, sigma: f64) -> f64 {
        let value = LogNormal::new(mu, sigma).unwrap().sample(&mut self.rng);
        (value * 100.0).round() / 100.0
    }

    fn normal_activity(&mut self, days: u32) {
        let n = self.accounts.len();
        let employers: Vec<usize> = (0..n)
            .filter(|a| self.accounts[*a].kind == "business")
            .collect();
        // A few employers pay most people (Zipf).
        let employer_sizes = WeightedIndex::new(
            (0..employers.len().max(1)).map(|i| 1.0 / (i as f64 + 1.0).powf(1.2)),
        )
        .expect("weights are positive");
        for a in 0..n {
            let kind = self.accounts[a].kind.clone();
            if kind == "savings" {
                // Savings receive a monthly transfer from the customer's checking account, if any.
                if a > 0 && self.account_customer[a - 1] == self.account_customer[a] {
                    let checking = a - 1;
                    let amount = self.amount(5.0, 0.6);
                    let day = self.rng.random_range(1..28);
                    self.monthly(days, day, checking, a, amount, "transfer", None);
                }
                continue;
            }
            // Salary from an employer: a few employers pay most people.
            if kind == "checking" && !employers.is_empty() && self.rng.random_bool(0.85) {
                let employer = employers[self.rng.sample(&employer_sizes)];
                let salary = self.amount(7.8, 0.35);
                let day = self.rng.random_range(24..29);
                self.monthly(days, day, employer, a, salary, "salary", None);
            }
            // Recurring payees: rent and family transfers to fixed accounts.
            for _ in 0..self.rng.random_range(1..4) {
                let payee = self.rng.random_range(0..n);
                if payee != a {
                    let amount = self.amount(5.6, 0.6);
                    let day = self.rng.random_range(1..10);
                    self.monthly(days, day, a, payee, amount, "transfer", None);
                }
            }
            // Card spending at favourite merchants (80%) and anywhere else.
            let cards = self.account_cards[a].clone();
            let favourites: Vec<usize> = (0..self.rng.random_range(4..10))
                .map(|_| self.pick_merchant())
                .collect();
            let contacts: Vec<usize> = (0..self.rng.random_range(1..5))
                .map(|_| self.rng.random_range(0..n))
                .collect();
            let activity = LogNormal::<f64>::new(-0.7, 0.7)
                .unwrap()
                .sample(&mut self.rng)
                .min(6.0);
            let business = kind == "business";
            for day in 0..days as i64 {
                if !cards.is_empty() && !business {
                    let count = Poisson::new(activity).unwrap().sample(&mut self.rng) as usize;
                    for _ in 0..count {
                        let merchant = if self.rng.random_bool(FAVOURITE_SHARE) {
                            *favourites.choose(&mut self.rng).unwrap()
                        } else {
                            self.pick_merchant()
                        };
                        let (_, mu, sigma, _) = CATEGORIES[self.merchant_category[merchant]];
                        let online = self.merchants[merchant].online == 1;
                        let device = if online { self.device_of(a) } else { None };
                        let at = day * 86_400 + self.time_of_day();
                        let amount = self.amount(mu, sigma);
                        let card = Some(*cards.choose(&mut self.rng).unwrap());
                        let channel = if online { "online" } else { "card_present" };
                        self.card_payment(at, card, merchant, amount, channel, device, None);
                    }
                }
                // Person-to-person payments to a few contacts.
                if self.rng.random_bool(0.04) {
                    let contact = *contacts.choose(&mut self.rng).unwrap();
                    if contact != a {
                        let at = day * 86_400 + self.time_of_day();
                        let amount = self.amount(3.5, 0.8);
                        let device = self.device_of(a);
                        self.transfer(at, a, contact, amount, "mobile", device, None);
                    }
                }
                // Large legitimate transfers, so that amount alone does not give laundering
                // away: businesses pay suppliers (median ~€8,000), people now and then buy a car
                // or pay a deposit (median ~€6,600).
                let (rate, mu) = if business { (0.07, 9.0) } else { (0.002, 8.8) };
                if !employers.is_empty() && self.rng.random_bool(rate) {
                    let payee = employers[self.rng.random_range(0..employers.len())];
                    if payee != a {
                        let at = day * 86_400 + self.time_of_day();
                        let amount = self.amount(mu, 0.5);
                        let device = self.device_of(a);
                        self.transfer(at, a, payee, amount, "transfer", device, None);
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn monthly(
        &mut self,
        days: u32,
        day_of_month: i64,
        source: usize,
        target: usize,
        amount: f64,
        channel: &'static str,
        label: Option<(&'static str, usize)>,
    ) {
        let mut day = day_of_month - 1;
        while day < days as i64 {
            let at = day * 86_400 + 6 * 3600 + self.rng.random_range(0..7200);
            let amount =
                (amount * (1.0 + self.rng.random_range(-0.02..0.02)) * 100.0).round() / 100.0;
            self.transfer(at, source, target, amount, channel, None, label);
            day += 30;
        }
    }

    /// Records a transfer between accounts.
    #[allow(clippy::too_many_arguments)]
    fn transfer(
        &mut self,
        at: i64,
        source: usize,
        target: usize,
        amount: f64,
        channel: &'static str,
        device: Option<usize>,
        label: Option<(&'static str, usize)>,
    ) {
        let target = Target::Account(target);
        let category = "transfer";
        self.txs.push(Tx {
            at,
            source,
            target,
            amount,
            channel,
            category,
            card: None,
            device,
            label,
        });
    }

    /// Records a card payment at a merchant.
    #[allow(clippy::too_many_arguments)]
    fn card_payment(
        &mut self,
        at: i64,
        card: Option<usize>,
        merchant: usize,
        amount: f64,
        channel: &'static str,
        device: Option<usize>,
        label: Option<(&'static str, usize)>,
    ) {
        let source = self.card_account[card.expect("a card payment has a card")];
        let category = CATEGORIES[self.merchant_category[merchant]].0;
        let target = Target::Merchant(merchant);
        self.txs.push(Tx {
            at,
            source,
            target,
            amount,
            channel,
            category,
            card,
            device,
            label,
        });
    }

    fn new_pattern(&mut self) -> usize {
        self.patterns += 1;
        self.patterns
    }

    fn mark(&mut self, account: usize, typology: &'static str) {
        let a = &mut self.accounts[account];
        if a.is_laundering == 0 {
            a.is_laundering = 1;
            a.typology = typology.into();
        }
    }

    fn random_time(&mut self, margin_days: i64) -> i64 {
        self.rng
            .random_range(0..self.seconds - margin_days * 86_400)
    }

    /// Rings of 3–6 new mule accounts whose owners share one or two devices; scam victims pay
    /// them, and each mule forwards what it receives to the ring's collector (its first mule)
    /// within hours. Returns the rings' accounts.
    fn mule_rings(&mut self, count: usize) -> Vec<Vec<usize>> {
        let normal = self.accounts.len();
        let mut rings = Vec::new();
        for _ in 0..count {
            let size = self.rng.random_range(3..7);
            let opened = -self.rng.random_range(1..20) * 86_400;
            let mut shared: Vec<usize> = Vec::new();
            let mut ring = Vec::new();
            for _ in 0..size {
                let c = self.add_customer("retail", "DE", opened);
                let a = self.add_account(c, "checking", opened);
                self.mark(a, "mule_ring");
                if shared.is_empty() {
                    shared.push(self.new_device(c));
                    if self.rng.random_bool(0.5) {
                        shared.push(self.new_device(c));
                    }
                } else {
                    for d in shared.clone() {
                        self.link_device(d, c, "android");
                    }
                }
                self.customer_devices[c] = shared.clone();
                ring.push(a);
            }
            rings.push(ring);
        }
        for ring in &rings {
            let pattern = self.new_pattern();
            for _ in 0..self.rng.random_range(3..8) {
                let victim = self.rng.random_range(0..normal);
                let mule = *ring.choose(&mut self.rng).unwrap();
                let at = self.random_time(2);
                let amount = self.amount(6.8, 0.5);
                let device = self.device_of(victim);
                self.transfer(
                    at,
                    victim,
                    mule,
                    amount,
                    "mobile",
                    device,
                    Some(("mule_ring", pattern)),
                );
            }
        }
        rings
    }

    /// One of the account owner's devices, if they have any.
    fn device_of(&mut self, account: usize) -> Option<usize> {
        let devices = &self.customer_devices[self.account_customer[account]];
        devices.choose(&mut self.rng).copied()
    }

    /// Forwards every inflow of a ring's mules to its collector within hours, from a shared device.
    fn forward_mule_inflows(&mut self, rings: &[Vec<usize>]) {
        let mut forwards = Vec::new();
        for tx in &self.txs {
            let Target::Account(to) = tx.target else {
                continue;
            };
            if let Some(ring) = rings.iter().find(|r| r[1..].contains(&to)) {
                forwards.push((tx.at, to, ring[0], tx.amount, tx.label.map(|l| l.1)));
            }
        }
        for (at, mule, collector, amount, pattern) in forwards {
            let pattern = match pattern {
                Some(p) => p,
                None => self.new_pattern(),
            };
            let delay = self.rng.random_range(600..6 * 3600);
            let kept = self.rng.random_range(0.02..0.1);
            let device = self.customer_devices[self.account_customer[mule]]
                .first()
                .copied();
            let amount = (amount * (1.0 - kept) * 100.0).round() / 100.0;
            self.transfer(
                at + delay,
                mule,
                collector,
                amount,
                "mobile",
                device,
                Some(("mule_ring", pattern)),
            );
        }
    }

    /// A fraudster logs in from a new device, adds a mule as payee and drains the balance in
    /// one to three transfers within the hour.
    fn account_takeovers(&mut self, count: usize, rings: &[Vec<usize>]) {
        let candidates: Vec<usize> = (0..self.accounts.len())
            .filter(|a| {
                self.accounts[*a].kind == "checking" && self.accounts[*a].is_laundering == 0
            })
            .collect();
        let mut attacks: Vec<(usize, i64)> = (0..count)
            .map(|_| {
                let victim = *candidates.choose(&mut self.rng).unwrap();
                let at = (self.random_time(3) + 10 * 86_400).min(self.seconds - 86_400);
                (victim, at)
            })
            .collect();
        attacks.sort_by_key(|(_, at)| *at);
        let balances = self.balances_at(&attacks);
        for ((victim, at), balance) in attacks.into_iter().zip(balances) {
            let ring = rings.choose(&mut self.rng).unwrap().clone();
            let mule = *ring.choose(&mut self.rng).unwrap();
            let fraud_device = self.new_device(self.account_customer[mule]);
            let pattern = self.new_pattern();
            let parts = self.rng.random_range(1..4);
            // Starting balances are not modelled: assume 1,500 on top of the net flow so far.
            let drained = (1500.0 + balance).max(300.0) * self.rng.random_range(0.85..0.98);
            let mut when = at;
            for _ in 0..parts {
                let amount = (drained / parts as f64 * 100.0).round() / 100.0;
                self.transfer(
                    when,
                    victim,
                    mule,
                    amount,
                    "mobile",
                    Some(fraud_device),
                    Some(("account_takeover", pattern)),
                );
                when += self.rng.random_range(60..1200);
            }
        }
        self.forward_mule_inflows(rings);
    }

    /// Each (account, time)'s net flow up to that time, in one pass over the transactions.
    fn balances_at(&mut self, queries: &[(usize, i64)]) -> Vec<f64> {
        self.txs.sort_by_key(|t| t.at);
        let mut running = vec![0.0; self.accounts.len()];
        let mut answers = Vec::with_capacity(queries.len());
        let mut next = 0;
        for &(account, at) in queries {
            while next < self.txs.len() && self.txs[next].at < at {
                let tx = &self.txs[next];
                running[tx.source] -= tx.amount;
                if let Target::Account(to) = tx.target {
                    running[to] += tx.amount;
                }
                next += 1;
            }
            answers.push(running[account]);
        }
        answers
    }

    /// A stolen card is tried with tiny online payments at digital merchants within minutes,
    /// then used for one or two large electronics purchases, from the fraudster's device.
    fn card_testing(&mut self, count: usize) {
        let digital: Vec<usize> = (0..self.merchants.len())
            .filter(|m| CATEGORIES[self.merchant_category[*m]].0 == "digital")
            .collect();
        let electronics: Vec<usize> = (0..self.merchants.len())
            .filter(|m| CATEGORIES[self.merchant_category[*m]].0 == "electronics")
            .collect();
        let testers = if digital.is_empty() {
            (0..self.merchants.len()).collect()
        } else {
            digital
        };
        let cashouts = if electronics.is_empty() {
            (0..self.merchants.len()).collect()
        } else {
            electronics
        };
        for _ in 0..count {
            let card = self.rng.random_range(0..self.cards.len());
            let account = self.card_account[card];
            let pattern = self.new_pattern();
            let fraud_device = self.new_device(self.account_customer[account]);
            let mut at = self.random_time(1);
            for _ in 0..self.rng.random_range(5..21) {
                at += self.rng.random_range(10..90);
                let merchant = *testers.choose(&mut self.rng).unwrap();
                let amount = (self.rng.random_range(0.5..2.0) * 100.0_f64).round() / 100.0;
                self.card_payment(
                    at,
                    Some(card),
                    merchant,
                    amount,
                    "online",
                    Some(fraud_device),
                    Some(("card_testing", pattern)),
                );
            }
            for _ in 0..self.rng.random_range(1..3) {
                at += self.rng.random_range(120..1800);
                let merchant = *cashouts.choose(&mut self.rng).unwrap();
                let amount = self.amount(6.5, 0.5);
                self.card_payment(
                    at,
                    Some(card),
                    merchant,
                    amount,
                    "online",
                    Some(fraud_device),
                    Some(("card_testing", pattern)),
                );
            }
        }
    }

    /// A pattern size from `low` up to `high` (exclusive); about twice as large in the
    /// blended style.
    fn size(&mut self, blended: bool, low: usize, high: usize) -> usize {
        match blended {
            false => self.rng.random_range(low..high),
            true => self.rng.random_range(low + 1..2 * high - 1),
        }
    }

    /// The first (or, for unordered patterns, each) amount of a laundering pattern.
    fn laundering_amount(&mut self, blended: bool) -> f64 {
        match blended {
            false => self.rng.random_range(8_000.0..9_900.0),
            true => self.amount(6.4, 0.9),
        }
    }

    /// Legitimate look-alikes of laundering shapes ([`Profile::Blended`]): circles of 3–6
    /// friends who pay each other round every couple of weeks (cycles, reciprocity),
    /// collectors (a club, a landlord) that 10–30 accounts pay every month (fan-in), and
    /// one-off transfers between people (a used car, a deposit returned).
    fn lookalikes(&mut self, days: u32) {
        let n = self.accounts.len();
        for _ in 0..(n / 60).max(1) {
            let size = self.rng.random_range(3..7);
            let circle: Vec<usize> = (0..size).map(|_| self.rng.random_range(0..n)).collect();
            let mut day = self.rng.random_range(0..14);
            while day < days as i64 {
                for i in 0..size {
                    let (from, to) = (circle[i], circle[(i + 1) % size]);
                    if from != to {
                        let at = day * 86_400 + self.time_of_day();
                        let amount = self.amount(4.0, 0.6);
                        let device = self.device_of(from);
                        self.transfer(at, from, to, amount, "mobile", device, None);
                    }
                }
                day += self.rng.random_range(10..20);
            }
        }
        for _ in 0..(n / 200).max(1) {
            let collector = self.rng.random_range(0..n);
            let members = self.rng.random_range(10..31);
            let fee = self.amount(4.5, 0.4);
            for _ in 0..members {
                let member = self.rng.random_range(0..n);
                if member != collector {
                    let day = self.rng.random_range(1..6);
                    self.monthly(days, day, member, collector, fee, "transfer", None);
                }
            }
        }
        for _ in 0..n / 2 {
            let (from, to) = (self.rng.random_range(0..n), self.rng.random_range(0..n));
            if from != to {
                let at = self.rng.random_range(0..self.seconds);
                let amount = self.amount(6.0, 1.0);
                let channel = ["transfer", "mobile"][self.rng.random_range(0..2)];
                let device = self.device_of(from);
                self.transfer(at, from, to, amount, channel, device, None);
            }
        }
    }

    /// Clears the laundering label of a `share` of the laundering accounts (not their
    /// transactions' labels): cases investigators missed. Returns how many.
    fn unlabel(&mut self, share: f64) -> usize {
        let mut missed = 0;
        for a in 0..self.accounts.len() {
            if self.accounts[a].is_laundering == 1 && self.rng.random_bool(share) {
                self.accounts[a].is_laundering = 0;
                self.accounts[a].typology.clear();
                missed += 1;
            }
        }
        missed
    }

    /// One instance of an AML typology among existing accounts, over a few days: in the
    /// structuring style, amounts kept under the 10,000 reporting threshold.
    fn laundering(&mut self, typology: &'static str) {
        let pattern = self.new_pattern();
        let blended = match self.profile {
            Profile::Structuring => false,
            Profile::Blended => true,
            Profile::Varied => self.rng.random_bool(0.5),
        };
        let n = self.accounts.len();
        let pick = |bank: &mut Bank, k: usize| -> Vec<usize> {
            let mut chosen = Vec::with_capacity(k);
            while chosen.len() < k {
                let a = bank.rng.random_range(0..n);
                if !chosen.contains(&a) && bank.accounts[a].kind != "savings" {
                    chosen.push(a);
                }
            }
            chosen
        };
        let mut edges: Vec<(usize, usize)> = Vec::new();
        match typology {
            "fan_in" | "fan_out" => {
                let k = self.size(blended, 5, 16);
                let group = pick(self, k + 1);
                for leaf in &group[1..] {
                    edges.push(if typology == "fan_in" {
                        (*leaf, group[0])
                    } else {
                        (group[0], *leaf)
                    });
                }
            }
            "cycle" => {
                let k = self.size(blended, 3, 9);
                let group = pick(self, k);
                for i in 0..k {
                    edges.push((group[i], group[(i + 1) % k]));
                }
            }
            "scatter_gather" => {
                let m = self.size(blended, 3, 9);
                let group = pick(self, m + 2);
                for mid in &group[2..] {
                    edges.push((group[0], *mid));
                    edges.push((*mid, group[1]));
                }
            }
            "gather_scatter" => {
                let m = self.size(blended, 3, 7);
                let group = pick(self, 2 * m + 1);
                for i in 0..m {
                    edges.push((group[1 + i], group[0]));
                    edges.push((group[0], group[1 + m + i]));
                }
            }
            "bipartite" => {
                let (l, r) = (self.size(blended, 3, 7), self.size(blended, 3, 7));
                let group = pick(self, l + r);
                for i in 0..l {
                    for j in 0..r {
                        if self.rng.random_bool(0.6) {
                            edges.push((group[i], group[l + j]));
                        }
                    }
                }
            }
            _ => {
                // stack: three layers, each node paying several nodes of the next layer.
                let widths = [
                    self.size(blended, 2, 5),
                    self.size(blended, 2, 5),
                    self.size(blended, 2, 5),
                ];
                let group = pick(self, widths.iter().sum());
                let (a, rest) = group.split_at(widths[0]);
                let (b, c) = rest.split_at(widths[1]);
                for (from, to) in [(a, b), (b, c)] {
                    for x in from {
                        for y in to {
                            edges.push((*x, *y));
                        }
                    }
                }
            }
        }
        let mut at = self.random_time(if blended { 40 } else { 12 });
        let ordered = matches!(
            typology,
            "cycle" | "scatter_gather" | "gather_scatter" | "stack"
        );
        let mut amount = self.laundering_amount(blended);
        for (i, (from, to)) in edges.iter().enumerate() {
            at += match (ordered, blended) {
                (true, false) => self.rng.random_range(3600..2 * 86_400),
                (false, false) => self.rng.random_range(600..86_400),
                (true, true) => self.rng.random_range(6 * 3600..5 * 86_400),
                (false, true) => self.rng.random_range(3600..4 * 86_400),
            };
            if ordered && i > 0 {
                amount *= self.rng.random_range(0.93..0.99);
            } else if !ordered {
                amount = self.laundering_amount(blended);
            }
            self.mark(*from, typology);
            self.mark(*to, typology);
            let device = self.device_of(*from);
            let channel = match blended {
                true => ["transfer", "mobile"][self.rng.random_range(0..2)],
                false => "transfer",
            };
            self.transfer(
                at.min(self.seconds - 1),
                *from,
                *to,
                (amount * 100.0).round() / 100.0,
                channel,
                device,
                Some((typology, pattern)),
            );
        }
    }

    fn finish(mut self, start: DateTime<Utc>) -> Dataset {
        let stamp =
            |at: i64| (start + Duration::seconds(at)).to_rfc3339_opts(SecondsFormat::Secs, true);
        self.txs.retain(|t| t.at >= 0 && t.at < self.seconds);
        self.txs.sort_by_key(|t| t.at);
        let accounts = &self.accounts;
        let transactions = self
            .txs
            .iter()
            .enumerate()
            .map(|(i, t)| Transaction {
                transaction_id: format!("T{:08}", i + 1),
                timestamp: stamp(t.at),
                source: accounts[t.source].account_id.clone(),
                target: match t.target {
                    Target::Account(a) => accounts[a].account_id.clone(),
                    Target::Merchant(m) => self.merchants[m].merchant_id.clone(),
                },
                amount: t.amount,
                currency: "EUR".into(),
                channel: t.channel.into(),
                merchant_category: t.category.into(),
                card_id: t
                    .card
                    .map(|k| self.cards[k].card_id.clone())
                    .unwrap_or_default(),
                device_id: t
                    .device
                    .map(|d| format!("D{:06}", d + 1))
                    .unwrap_or_default(),
                is_fraud: t.label.is_some() as u8,
                typology: t.label.map(|l| l.0.to_string()).unwrap_or_default(),
                pattern_id: t.label.map(|l| format!("P{:05}", l.1)).unwrap_or_default(),
            })
            .collect();
        Dataset {
            customers: self.customers,
            accounts: self.accounts,
            cards: self.cards,
            devices: self.devices,
            merchants: self.merchants,
            transactions,
        }
    }
}

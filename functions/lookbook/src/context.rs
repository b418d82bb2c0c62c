//! What a lookbook is asked for: the query parameters of `GET /api/lookbooks` and
//! `GET /lookbook`, checked, and what an occasion and a season mean for the looks.

use chrono::Datelike;

/// Most looks per lookbook.
pub const MAX_LOOKS: usize = 12;
/// Looks when `looks` is not given.
pub const DEFAULT_LOOKS: usize = 4;

/// An occasion: the styles that suit it, and whether a dress suits it better than separates.
pub struct Occasion {
    /// Its name in the API.
    pub name: &'static str,
    /// Styles that suit it, best first.
    pub styles: &'static [&'static str],
    /// Whether dresses suit it more than separates.
    pub dressy: bool,
}

/// The occasions a lookbook can be asked for.
pub const OCCASIONS: &[Occasion] = &[
    Occasion {
        name: "everyday",
        styles: &["casual", "minimalist", "classic"],
        dressy: false,
    },
    Occasion {
        name: "weekend",
        styles: &["casual", "minimalist", "streetwear", "classic"],
        dressy: false,
    },
    Occasion {
        name: "work",
        styles: &["workwear", "classic", "minimalist", "preppy"],
        dressy: false,
    },
    Occasion {
        name: "evening",
        styles: &["party", "edgy", "romantic"],
        dressy: true,
    },
    Occasion {
        name: "date",
        styles: &["romantic", "party", "classic"],
        dressy: true,
    },
    Occasion {
        name: "wedding",
        styles: &["romantic", "classic", "party"],
        dressy: true,
    },
    Occasion {
        name: "beach",
        styles: &["beach", "bohemian", "casual"],
        dressy: true,
    },
    Occasion {
        name: "travel",
        styles: &["casual", "minimalist", "sporty"],
        dressy: false,
    },
];

/// Seasons, northern order.
pub const SEASONS: [&str; 4] = ["spring", "summer", "autumn", "winter"];

/// A checked lookbook request.
#[derive(Debug, Clone, PartialEq)]
pub struct LookbookRequest {
    /// The shopper, if known.
    pub shopper: Option<String>,
    /// The occasion, if given.
    pub occasion: Option<&'static str>,
    /// The season (given, or today's at the locale's hemisphere).
    pub season: &'static str,
    /// Whether the season was given rather than taken from the date.
    pub season_given: bool,
    /// Most a look may cost, in cents.
    pub budget_cents: Option<i64>,
    /// How many looks.
    pub looks: usize,
    /// The shopper's locale (e.g. `en-AU`), if given.
    pub locale: Option<String>,
    /// The moment to assemble for (Unix seconds): events after it are ignored (`as_of`, for
    /// evaluation on held-out data); `None` is now.
    pub as_of: Option<i64>,
}

impl LookbookRequest {
    /// Parses a query string; `month` (1–12, today's) gives the default season unless `as_of`
    /// does. The error names the parameter.
    pub fn parse(query: &str, month: u32) -> Result<Self, String> {
        let mut request = LookbookRequest {
            shopper: None,
            occasion: None,
            season: "",
            season_given: false,
            budget_cents: None,
            looks: DEFAULT_LOOKS,
            locale: None,
            as_of: None,
        };
        let mut season = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim();
            match key.as_ref() {
                "shopper" => {
                    if value.is_empty() || value.len() > 128 {
                        return Err("shopper must be an id of 1 to 128 bytes".into());
                    }
                    request.shopper = Some(value.to_string());
                }
                "occasion" => {
                    let known = OCCASIONS.iter().find(|o| o.name == value).ok_or_else(|| {
                        let names: Vec<&str> = OCCASIONS.iter().map(|o| o.name).collect();
                        format!("occasion '{value}' is unknown; use one of {}", names.join(", "))
                    })?;
                    request.occasion = Some(known.name);
                }
                "season" => {
                    let value = if value == "fall" { "autumn" } else { value };
                    season = Some(SEASONS.iter().copied().find(|s| *s == value).ok_or_else(
                        || format!("season '{value}' is unknown; use one of {}", SEASONS.join(", ")),
                    )?);
                }
                "budget" => {
                    let euros: f64 = value
                        .parse()
                        .ok()
                        .filter(|b: &f64| b.is_finite() && *b > 0.0 && *b <= 1_000_000.0)
                        .ok_or("budget must be a number of euros above 0 and at most 1000000")?;
                    request.budget_cents = Some((euros * 100.0).round() as i64);
                }
                "looks" => {
                    request.looks = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LOOKS).contains(n))
                        .ok_or(format!("looks must be an integer from 1 to {MAX_LOOKS}"))?;
                }
                "locale" => {
                    let ok = (2..=16).contains(&value.len())
                        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                    if !ok {
                        return Err("locale must look like en-GB (2 to 16 letters, digits, '-')".into());
                    }
                    request.locale = Some(value.replace('_', "-"));
                }
                "as_of" => {
                    let time = chrono::DateTime::parse_from_rfc3339(value).map_err(|e| {
                        format!("as_of must be an RFC 3339 time like 2026-11-01T00:00:00Z: {e}")
                    })?;
                    request.as_of = Some(time.timestamp());
                }
                other => {
                    return Err(format!(
                        "unknown parameter '{other}'; use shopper, occasion, season, budget, looks, locale, as_of"
                    ))
                }
            }
        }
        // The season of the moment assembled for: `as_of`'s month, else today's.
        let month = request
            .as_of
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map_or(month, |t| t.month());
        request.season_given = season.is_some();
        request.season = season.unwrap_or_else(|| season_of(month, request.locale.as_deref()));
        Ok(request)
    }

    /// The occasion's definition.
    pub fn occasion(&self) -> Option<&'static Occasion> {
        self.occasion
            .and_then(|name| OCCASIONS.iter().find(|o| o.name == name))
    }
}

/// The season of a month at the locale's hemisphere (southern for AU, NZ, ZA, AR, BR, CL, UY).
pub fn season_of(month: u32, locale: Option<&str>) -> &'static str {
    let south = locale
        .and_then(|l| l.rsplit('-').next())
        .is_some_and(|region| {
            ["AU", "NZ", "ZA", "AR", "BR", "CL", "UY"]
                .contains(&region.to_ascii_uppercase().as_str())
        });
    let northern = match month {
        3..=5 => 0,
        6..=8 => 1,
        9..=11 => 2,
        _ => 3,
    };
    SEASONS[if south { (northern + 2) % 4 } else { northern }]
}

/// Today's month (1–12), for the default season.
pub fn this_month() -> u32 {
    chrono::Utc::now().month()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_and_named() {
        let r = LookbookRequest::parse("shopper=demo-1&occasion=weekend&budget=250.5&looks=3", 12)
            .unwrap();
        assert_eq!(r.shopper.as_deref(), Some("demo-1"));
        assert_eq!(r.occasion, Some("weekend"));
        assert_eq!((r.season, r.season_given), ("winter", false));
        assert_eq!(r.budget_cents, Some(25050));
        assert_eq!(r.looks, 3);
        let err = |q: &str| LookbookRequest::parse(q, 1).unwrap_err();
        assert!(err("occasion=gala").contains("occasion 'gala'"));
        assert!(err("looks=0").contains("looks"));
        assert!(err("looks=13").contains("looks"));
        assert!(err("budget=-3").contains("budget"));
        assert!(err("budget=abc").contains("budget"));
        assert!(err("ocasion=weekend").contains("unknown parameter 'ocasion'"));
        assert!(err("season=monsoon").contains("season"));
        assert!(err("as_of=yesterday").contains("as_of"));
        let past = LookbookRequest::parse("as_of=2026-07-01T00:00:00Z", 1).unwrap();
        assert_eq!((past.as_of, past.season), (Some(1_782_864_000), "summer"));
        assert_eq!(
            LookbookRequest::parse("season=fall", 1).unwrap().season,
            "autumn"
        );
        assert_eq!(
            LookbookRequest::parse("locale=en-AU", 12).unwrap().season,
            "summer"
        );
        assert_eq!(
            LookbookRequest::parse("shopper=a%20b", 12)
                .unwrap()
                .shopper
                .as_deref(),
            Some("a b")
        );
    }
}

//! Looks in words: a title, a two-sentence description, and why they were chosen.

use vitrine_shoppers::profile::Profile;

use crate::assemble::{Item, Look};
use crate::context::LookbookRequest;

/// `Minimalist weekend in black and camel`.
pub fn title(look: &Look, request: &LookbookRequest) -> String {
    let colours = look.colours();
    let palette = match colours.as_slice() {
        [] => String::new(),
        [one] => format!(" in {one}"),
        [one, two, ..] => format!(" in {one} and {two}"),
    };
    let moment = request.occasion.unwrap_or(request.season);
    format!("{} {moment}{palette}", capitalise(look.style))
}

/// Two sentences: the pieces, then the brands and the price.
pub fn description(look: &Look) -> String {
    let pieces: Vec<String> = look.items.iter().map(|(_, i)| piece(i)).collect();
    let first = match pieces.as_slice() {
        [] => String::new(),
        [one] => capitalise(one),
        [head, middle @ .., last] => {
            let with: Vec<&str> = middle.iter().map(String::as_str).collect();
            match with.is_empty() {
                true => format!("{} with {last}", capitalise(head)),
                false => format!("{} with {} and {last}", capitalise(head), with.join(", ")),
            }
        }
    };
    let mut brands: Vec<&str> = Vec::new();
    for (_, i) in &look.items {
        if !brands.contains(&i.brand) {
            brands.push(i.brand);
        }
    }
    let brands = match brands.as_slice() {
        [one] => one.to_string(),
        [head @ .., last] => format!("{} and {last}", head.join(", ")),
        [] => String::new(),
    };
    format!(
        "{first}. Pieces by {brands}, {} EUR for the look.",
        euros(look.total_cents())
    )
}

/// `a black linen shirt`, `white leather sneakers`.
fn piece(item: &Item) -> String {
    let colour = item.colours.first().copied().unwrap_or("");
    let what = format!(
        "{colour} {} {}",
        item.material,
        item.item_type.to_lowercase()
    );
    // Pairs (jeans, sneakers, earrings) take no article.
    let plural = item.item_type.ends_with('s') && !item.item_type.ends_with("ss");
    match (plural, colour.chars().next()) {
        (true, _) => what,
        (false, Some('a' | 'e' | 'i' | 'o' | 'u')) => format!("an {what}"),
        (false, _) => format!("a {what}"),
    }
}

/// Why the look was chosen: the shopper's affinities it matches and the context.
pub fn why(
    look: &Look,
    profile: Option<&Profile>,
    request: &LookbookRequest,
    consent: Consent,
) -> Vec<String> {
    let mut reasons = Vec::new();
    match (profile.filter(|p| p.events > 0), consent) {
        (Some(p), _) => {
            let share = p.affinity("style", look.style);
            if share > 0.0 {
                reasons.push(format!(
                    "{} is {:.0}% of your style interest",
                    capitalise(look.style),
                    share * 100.0
                ));
            }
            let colours = look.colours();
            if let Some(colour) = p.top("colour", 3).into_iter().find(|c| colours.contains(c)) {
                reasons.push(format!("{} is one of your most-chosen colours", capitalise(colour)));
            }
            if let Some(category) = p
                .top("category", 2)
                .into_iter()
                .find(|c| look.items.iter().any(|(_, i)| i.category == *c))
            {
                reasons.push(format!("You often look at {category}"));
            }
            if p.taste.is_some() {
                reasons.push("Close to the pieces you liked (taste embedding)".into());
            }
        }
        (None, Consent::Given) => {
            reasons.push("No product events yet: picked by occasion, season and popularity".into())
        }
        (None, Consent::NotGiven) => reasons.push(
            "Not personalized (no consent to personalization): picked by occasion, season and popularity"
                .into(),
        ),
        (None, Consent::Anonymous) => {
            reasons.push("No shopper given: picked by occasion, season and popularity".into())
        }
    }
    if let Some(occasion) = request.occasion() {
        if occasion.styles.contains(&look.style) {
            reasons.push(format!(
                "{} suits {}",
                capitalise(look.style),
                occasion.name
            ));
        }
    }
    reasons.push(match request.season_given {
        true => format!("Chosen for {}", request.season),
        false => format!("Chosen for {} (today's season)", request.season),
    });
    if let Some(budget) = request.budget_cents {
        reasons.push(format!("Within your budget of {} EUR", euros(budget)));
    }
    reasons
}

/// Whether the shopper consented to personalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// Consented.
    Given,
    /// A known shopper id without consent.
    NotGiven,
    /// No shopper id in the request.
    Anonymous,
}

/// Cents as euros with two decimals.
pub fn euros(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

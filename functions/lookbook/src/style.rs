//! Fashion rules the looks obey: which styles go together, which colours, and what suits a
//! season.
//!
//! Colours are neutrals (black, white, ivory, beige, camel, brown, grey, navy and the metals)
//! or accents with a hue on a colour wheel. A look may hold any neutrals and at most two
//! accents; two accents must be analogous (at most 45° apart) or complementary (150°–210°
//! apart). `multicolour` is an accent that goes with neutrals only.

/// Styles a look can be built around (`sustainable` is a tag, not a look).
pub const LOOK_STYLES: &[&str] = &[
    "minimalist",
    "classic",
    "casual",
    "streetwear",
    "romantic",
    "bohemian",
    "party",
    "beach",
    "vintage",
    "preppy",
    "workwear",
    "edgy",
    "y2k",
    "sporty",
];

/// Styles that sit well with `style` in one look (besides itself).
pub fn companions(style: &str) -> &'static [&'static str] {
    match style {
        "minimalist" => &["classic"],
        "classic" => &["minimalist", "preppy"],
        "casual" => &["minimalist", "streetwear", "classic", "sporty"],
        "streetwear" => &["casual", "sporty", "edgy", "y2k"],
        "romantic" => &["vintage", "bohemian", "party"],
        "bohemian" => &["romantic", "beach", "vintage"],
        "party" => &["romantic", "edgy"],
        "beach" => &["bohemian", "casual"],
        "vintage" => &["romantic", "classic"],
        "preppy" => &["classic"],
        "workwear" => &["classic", "minimalist"],
        "edgy" => &["streetwear", "party"],
        "y2k" => &["streetwear", "party"],
        "sporty" => &["casual", "streetwear"],
        _ => &[],
    }
}

/// For a style tag: the look styles it is (a bit per position in [`LOOK_STYLES`]; none if it is
/// not a look style), and those an item with it belongs in ([`fits`]).
pub fn bits(tag: &str) -> (u32, u32) {
    LOOK_STYLES
        .iter()
        .enumerate()
        .fold((0, 0), |(is, belongs), (n, style)| {
            let bit = 1 << n;
            (
                if *style == tag { is | bit } else { is },
                if fits(style, &[tag]) {
                    belongs | bit
                } else {
                    belongs
                },
            )
        })
}

/// Whether an item tagged `styles` belongs in a look of `style`.
pub fn fits(style: &str, styles: &[&str]) -> bool {
    styles
        .iter()
        .any(|s| *s == style || companions(style).contains(s))
}

/// A colour's hue in degrees, `None` for a neutral; `Some(-1.0)` marks `multicolour`.
pub fn hue(colour: &str) -> Option<f64> {
    Some(match colour {
        "red" => 0.0,
        "blush" => 15.0,
        "orange" => 30.0,
        "yellow" => 55.0,
        "olive" => 75.0,
        "sage" => 100.0,
        "green" => 130.0,
        "light blue" => 200.0,
        "blue" => 220.0,
        "purple" => 275.0,
        "lilac" => 285.0,
        "pink" => 330.0,
        "burgundy" => 345.0,
        "multicolour" => -1.0,
        _ => return None,
    })
}

/// Whether a set of colours makes a harmonious look (the rules at the top of this module).
pub fn harmonious<'a>(colours: impl IntoIterator<Item = &'a str>) -> bool {
    let mut accents: Vec<(&str, f64)> = Vec::new();
    for colour in colours {
        if let Some(h) = hue(colour) {
            if !accents.iter().any(|(c, _)| *c == colour) {
                accents.push((colour, h));
            }
        }
    }
    match accents.as_slice() {
        [] | [_] => true,
        [(_, a), (_, b)] if *a >= 0.0 && *b >= 0.0 => {
            let d = (a - b).abs();
            let d = d.min(360.0 - d);
            d <= 45.0 || (150.0..=180.0).contains(&d)
        }
        _ => false,
    }
}

/// Whether a product of this category, type and material suits the season (`None`: not at
/// all), and how well (0..=0.2).
pub fn season_fit(category: &str, item_type: &str, material: &str, season: &str) -> Option<f64> {
    let has = |words: &[&str]| {
        words
            .iter()
            .any(|w| material.contains(w) || item_type.contains(w))
    };
    let warm = [
        "wool",
        "cashmere",
        "flannel",
        "teddy",
        "Boots",
        "Beanie",
        "Puffer",
        "Turtleneck",
        "Cable-Knit",
        "suede",
        "shearling",
    ];
    let light = [
        "linen",
        "raffia",
        "chiffon",
        "Sandals",
        "Tank Top",
        "Camisole",
        "Sundress",
        "Shorts",
        "Sunglasses",
        "Crop Top",
        "Bucket Hat",
    ];
    match season {
        _ if category == "swimwear" || category == "activewear" => None,
        "summer" if category == "coats" || category == "knitwear" || has(&warm) => None,
        "summer" => Some(
            if has(&light) || has(&["cotton", "silk", "poplin", "jersey"]) {
                0.2
            } else {
                0.0
            },
        ),
        "winter" if has(&light) || material == "canvas" => None,
        "winter" => Some(
            if has(&warm) || category == "coats" || category == "knitwear" {
                0.2
            } else {
                0.0
            },
        ),
        "autumn" if has(&["raffia", "Sandals", "Tank Top", "Sundress"]) => None,
        "autumn" => Some(if has(&warm) || category == "jackets" {
            0.1
        } else {
            0.0
        }),
        _ if category == "coats" || has(&["cashmere", "Puffer", "teddy"]) => None,
        _ => Some(if has(&["linen", "cotton", "silk"]) {
            0.1
        } else {
            0.0
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_rules() {
        assert!(harmonious(["black", "white", "camel", "navy", "grey"]));
        assert!(harmonious(["black", "red", "burgundy"]), "analogous");
        assert!(harmonious(["navy", "blue", "orange"]), "complementary");
        assert!(!harmonious(["red", "green", "yellow"]), "three accents");
        assert!(
            !harmonious(["red", "blue"]),
            "neither analogous nor complementary"
        );
        assert!(harmonious(["multicolour", "black"]));
        assert!(!harmonious(["multicolour", "red"]));
    }

    #[test]
    fn style_rules() {
        assert!(fits("minimalist", &["classic", "party"]));
        assert!(!fits("minimalist", &["party", "edgy"]));
        assert!(LOOK_STYLES.iter().all(|s| !companions(s).is_empty()));
        // The bits say what `fits` says, for every tag and look style.
        for tag in LOOK_STYLES.iter().chain(&["sustainable", "unknown"]) {
            let (is, belongs) = bits(tag);
            for (n, style) in LOOK_STYLES.iter().enumerate() {
                assert_eq!(is & 1 << n != 0, style == tag, "{tag} is {style}");
                assert_eq!(
                    belongs & 1 << n != 0,
                    fits(style, &[tag]),
                    "{tag} in {style}"
                );
            }
        }
        assert_eq!(bits("sustainable"), (0, 0));
    }

    #[test]
    fn seasons_exclude_what_cannot_be_worn() {
        assert_eq!(season_fit("shoes", "Sandals", "leather", "winter"), None);
        assert!(season_fit("shoes", "Sandals", "leather", "summer").unwrap() > 0.0);
        assert_eq!(season_fit("coats", "Trench Coat", "cotton", "summer"), None);
        assert!(season_fit("coats", "Trench Coat", "cotton", "winter").unwrap() > 0.0);
        assert_eq!(season_fit("swimwear", "Bikini", "nylon", "summer"), None);
    }
}

//! The demo catalogue: a deterministic, believable fashion assortment generated on first use.

use serde_json::{json, Value};

/// Products in the demo catalogue.
pub const PRODUCT_COUNT: usize = 6000;

/// A small deterministic generator (SplitMix64), so every install gets the same catalogue.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    /// A standard normal sample (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-12);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
}

/// A category: its item types, materials, typical price, sizes and likely styles.
struct Category {
    name: &'static str,
    items: &'static [&'static str],
    materials: &'static [&'static str],
    base_price: f64,
    sizes: &'static [&'static str],
    styles: &'static [&'static str],
    weight: u32,
}

const APPAREL: &[&str] = &["XS", "S", "M", "L", "XL"];
const DENIM: &[&str] = &["24", "26", "28", "30", "32", "34", "36"];
const SHOES: &[&str] = &["36", "37", "38", "39", "40", "41", "42", "43", "44", "45"];
const ONE: &[&str] = &["one size"];

const CATEGORIES: &[Category] = &[
    Category {
        name: "dresses",
        items: &[
            "Midi Dress",
            "Maxi Dress",
            "Wrap Dress",
            "Slip Dress",
            "Shirt Dress",
            "Mini Dress",
            "Sundress",
        ],
        materials: &[
            "linen",
            "silk",
            "cotton poplin",
            "jersey",
            "satin",
            "crepe",
            "chiffon",
        ],
        base_price: 89.0,
        sizes: APPAREL,
        styles: &[
            "romantic",
            "bohemian",
            "minimalist",
            "party",
            "classic",
            "beach",
            "vintage",
        ],
        weight: 14,
    },
    Category {
        name: "tops",
        items: &[
            "T-Shirt", "Tank Top", "Blouse", "Camisole", "Crop Top", "Bodysuit", "Polo",
        ],
        materials: &[
            "organic cotton",
            "linen",
            "silk",
            "jersey",
            "modal",
            "ribbed cotton",
        ],
        base_price: 39.0,
        sizes: APPAREL,
        styles: &[
            "casual",
            "minimalist",
            "streetwear",
            "romantic",
            "y2k",
            "classic",
        ],
        weight: 14,
    },
    Category {
        name: "shirts",
        items: &[
            "Oxford Shirt",
            "Linen Shirt",
            "Poplin Shirt",
            "Overshirt",
            "Flannel Shirt",
            "Denim Shirt",
        ],
        materials: &["cotton oxford", "linen", "poplin", "flannel", "chambray"],
        base_price: 59.0,
        sizes: APPAREL,
        styles: &["classic", "preppy", "workwear", "casual", "minimalist"],
        weight: 9,
    },
    Category {
        name: "knitwear",
        items: &[
            "Crewneck Sweater",
            "Cardigan",
            "Turtleneck",
            "Knit Vest",
            "Cable-Knit Jumper",
        ],
        materials: &[
            "merino wool",
            "cashmere",
            "alpaca blend",
            "cotton knit",
            "mohair blend",
        ],
        base_price: 95.0,
        sizes: APPAREL,
        styles: &["classic", "minimalist", "preppy", "vintage", "casual"],
        weight: 9,
    },
    Category {
        name: "jeans",
        items: &[
            "Straight Jeans",
            "Wide-Leg Jeans",
            "Skinny Jeans",
            "Bootcut Jeans",
            "Mom Jeans",
            "Barrel Jeans",
        ],
        materials: &[
            "rigid denim",
            "stretch denim",
            "organic denim",
            "recycled denim",
        ],
        base_price: 79.0,
        sizes: DENIM,
        styles: &["casual", "streetwear", "vintage", "y2k", "classic"],
        weight: 9,
    },
    Category {
        name: "trousers",
        items: &[
            "Tailored Trousers",
            "Cargo Pants",
            "Chinos",
            "Wide-Leg Trousers",
            "Joggers",
            "Pleated Trousers",
        ],
        materials: &["wool blend", "cotton twill", "linen", "ripstop", "crepe"],
        base_price: 69.0,
        sizes: APPAREL,
        styles: &["workwear", "minimalist", "streetwear", "classic", "casual"],
        weight: 8,
    },
    Category {
        name: "skirts",
        items: &[
            "Midi Skirt",
            "Pleated Skirt",
            "Denim Skirt",
            "Slip Skirt",
            "Mini Skirt",
        ],
        materials: &["satin", "denim", "wool blend", "linen", "tulle"],
        base_price: 55.0,
        sizes: APPAREL,
        styles: &["romantic", "preppy", "y2k", "minimalist", "party"],
        weight: 6,
    },
    Category {
        name: "jackets",
        items: &[
            "Denim Jacket",
            "Leather Jacket",
            "Bomber Jacket",
            "Blazer",
            "Utility Jacket",
            "Puffer Jacket",
        ],
        materials: &[
            "denim",
            "lambskin leather",
            "recycled nylon",
            "wool blend",
            "cotton canvas",
        ],
        base_price: 139.0,
        sizes: APPAREL,
        styles: &["edgy", "streetwear", "classic", "workwear", "minimalist"],
        weight: 7,
    },
    Category {
        name: "coats",
        items: &["Trench Coat", "Wool Coat", "Parka", "Peacoat", "Teddy Coat"],
        materials: &[
            "wool",
            "cotton gabardine",
            "recycled down",
            "boiled wool",
            "faux shearling",
        ],
        base_price: 219.0,
        sizes: APPAREL,
        styles: &["classic", "minimalist", "preppy", "vintage"],
        weight: 5,
    },
    Category {
        name: "activewear",
        items: &[
            "Sports Bra",
            "Leggings",
            "Running Shorts",
            "Training Top",
            "Track Jacket",
        ],
        materials: &["recycled polyester", "nylon-elastane", "performance jersey"],
        base_price: 49.0,
        sizes: APPAREL,
        styles: &["sporty", "streetwear", "casual", "sustainable"],
        weight: 6,
    },
    Category {
        name: "swimwear",
        items: &["Swimsuit", "Bikini Set", "Swim Shorts", "Rash Guard"],
        materials: &["recycled nylon", "econyl", "textured lycra"],
        base_price: 59.0,
        sizes: APPAREL,
        styles: &["beach", "sporty", "minimalist", "y2k"],
        weight: 4,
    },
    Category {
        name: "shoes",
        items: &[
            "Sneakers",
            "Ankle Boots",
            "Loafers",
            "Sandals",
            "Heeled Mules",
            "Ballet Flats",
            "Chelsea Boots",
            "Running Shoes",
        ],
        materials: &[
            "leather",
            "suede",
            "canvas",
            "recycled mesh",
            "patent leather",
        ],
        base_price: 119.0,
        sizes: SHOES,
        styles: &[
            "classic",
            "streetwear",
            "sporty",
            "minimalist",
            "edgy",
            "party",
        ],
        weight: 10,
    },
    Category {
        name: "bags",
        items: &[
            "Tote Bag",
            "Crossbody Bag",
            "Shoulder Bag",
            "Backpack",
            "Clutch",
            "Bucket Bag",
        ],
        materials: &["leather", "canvas", "nylon", "raffia", "suede"],
        base_price: 129.0,
        sizes: ONE,
        styles: &["classic", "minimalist", "beach", "party", "workwear"],
        weight: 6,
    },
    Category {
        name: "accessories",
        items: &[
            "Silk Scarf",
            "Leather Belt",
            "Bucket Hat",
            "Sunglasses",
            "Beanie",
            "Baseball Cap",
        ],
        materials: &["silk", "leather", "cotton", "wool", "acetate"],
        base_price: 35.0,
        sizes: ONE,
        styles: &["classic", "streetwear", "beach", "vintage", "preppy"],
        weight: 6,
    },
    Category {
        name: "jewellery",
        items: &[
            "Hoop Earrings",
            "Pendant Necklace",
            "Signet Ring",
            "Chain Bracelet",
            "Stud Earrings",
        ],
        materials: &[
            "gold vermeil",
            "sterling silver",
            "recycled brass",
            "freshwater pearl",
        ],
        base_price: 65.0,
        sizes: ONE,
        styles: &["minimalist", "romantic", "party", "edgy", "vintage"],
        weight: 5,
    },
];

/// Brand name and price tier (a multiplier on the category's base price).
const BRANDS: &[(&str, f64)] = &[
    ("Maison Lune", 1.6),
    ("Nordvik", 1.2),
    ("Atelier Sable", 2.4),
    ("Copper & Pine", 0.9),
    ("Velour Studio", 1.1),
    ("Kōen", 1.4),
    ("Basalt", 1.0),
    ("Little Harbour", 0.7),
    ("Ondine", 1.3),
    ("Fieldnote", 0.85),
    ("Marlowe & Co", 1.8),
    ("Terra Loom", 1.15),
    ("Sundial", 0.75),
    ("Northern Thread", 1.05),
    ("Alba Rossi", 2.8),
    ("Pulse Athletic", 0.95),
    ("Wren", 0.8),
    ("Cobalt Lane", 1.0),
    ("Saltwater", 0.9),
    ("Hinterland", 1.25),
    ("Rue Margot", 1.7),
    ("Everyday Standard", 0.6),
    ("Kestrel", 1.35),
    ("Palo Verde", 1.1),
    ("Ivory Row", 2.0),
    ("Mistral", 1.2),
    ("Oak & Ember", 1.0),
    ("Studio Nine", 1.45),
];

const COLOURS: &[&str] = &[
    "black",
    "white",
    "ivory",
    "beige",
    "camel",
    "brown",
    "grey",
    "navy",
    "blue",
    "light blue",
    "green",
    "olive",
    "sage",
    "red",
    "burgundy",
    "pink",
    "blush",
    "yellow",
    "orange",
    "purple",
    "lilac",
    "silver",
    "gold",
    "multicolour",
];

const ADJECTIVES: &[&str] = &[
    "Relaxed",
    "Cropped",
    "Oversized",
    "Tailored",
    "Classic",
    "Soft",
    "Structured",
    "Draped",
    "Textured",
    "Striped",
    "Floral",
    "Washed",
    "Ribbed",
    "Essential",
    "Pleated",
    "Belted",
];

const OCCASIONS: &[&str] = &[
    "long summer evenings",
    "the office",
    "weekends in the city",
    "travel",
    "dinner dates",
    "layering through the seasons",
    "beach days",
    "everyday wear",
    "special occasions",
];

const FITS: &[&str] = &[
    "a relaxed fit",
    "a slim fit",
    "a regular fit",
    "an oversized silhouette",
    "a cropped length",
    "a fluid drape",
];

/// Rounds a price to a believable shop price, in cents (…,95 or …,00).
fn shop_price(raw: f64) -> i64 {
    let whole = raw.max(4.0).round() as i64;
    if whole >= 150 {
        (whole / 5 * 5) * 100
    } else {
        whole * 100 - 5
    }
}

/// The demo products as a JSON array, ready for `json_each` inserts.
pub fn products() -> Value {
    let mut rng = Rng(0x5EED_F00D);
    let total_weight: u32 = CATEGORIES.iter().map(|c| c.weight).sum();
    let mut out = Vec::with_capacity(PRODUCT_COUNT);
    for n in 1..=PRODUCT_COUNT {
        let mut roll = (rng.next() % u64::from(total_weight)) as u32;
        let category = CATEGORIES
            .iter()
            .find(|c| {
                if roll < c.weight {
                    true
                } else {
                    roll -= c.weight;
                    false
                }
            })
            .expect("weights cover the roll");
        let (brand, tier) = *rng.pick(BRANDS);
        let item = *rng.pick(category.items);
        let material = *rng.pick(category.materials);
        let adjective = *rng.pick(ADJECTIVES);
        let primary = *rng.pick(COLOURS);
        let mut colours = vec![primary];
        if rng.unit() < 0.35 {
            let second = *rng.pick(COLOURS);
            if second != primary {
                colours.push(second);
            }
        }
        let mut styles: Vec<&str> = Vec::new();
        for _ in 0..2 + rng.below(2) {
            let s = *rng.pick(category.styles);
            if !styles.contains(&s) {
                styles.push(s);
            }
        }
        let sustainable =
            material.contains("recycled") || material.contains("organic") || material == "econyl";
        if sustainable && !styles.contains(&"sustainable") {
            styles.push("sustainable");
        }
        let price = shop_price(category.base_price * tier * (0.25 * rng.normal()).exp());
        let rating = (3.3 + 1.7 * rng.unit().sqrt()).min(5.0);
        let reviews = (rng.unit().powi(3) * 2400.0) as i64;
        let id = format!("p-{n:05}");
        out.push(json!({
            "id": id,
            "title": format!("{brand} {adjective} {} {item}", title_case(material)),
            "description": format!(
                "{adjective} {} in {primary} {material}, with {}. Made for {}. Part of our {} edit.",
                item.to_lowercase(),
                rng.pick(FITS),
                rng.pick(OCCASIONS),
                styles[0],
            ),
            "category": category.name,
            "item_type": item,
            "brand": brand,
            "price_cents": price,
            "currency": "EUR",
            "colours": colours,
            "style_tags": styles,
            "material": material,
            "sizes": category.sizes,
            "image": format!("/images/products/{id}"),
            "rating": (rating * 10.0).round() / 10.0,
            "review_count": reviews,
            "stock": rng.below(120),
            "created_at": format!("2026-{:02}-{:02}", 1 + rng.below(11), 1 + rng.below(28)),
        }));
    }
    Value::Array(out)
}

fn title_case(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_deterministic_and_varied() {
        let a = products();
        assert_eq!(a, products());
        let items = a.as_array().unwrap();
        assert_eq!(items.len(), PRODUCT_COUNT);
        let categories: std::collections::BTreeSet<_> = items
            .iter()
            .map(|p| p["category"].as_str().unwrap())
            .collect();
        assert_eq!(categories.len(), CATEGORIES.len());
        assert!(items.iter().all(|p| p["price_cents"].as_i64().unwrap() > 0));
        let dresses = items.iter().filter(|p| p["category"] == "dresses").count();
        assert!(dresses > 300, "{dresses}");
    }
}

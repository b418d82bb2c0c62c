//! A product drawn from its attributes, as SVG: the category's silhouette (refined by item
//! type), filled with the product's colour or pattern (stripes, florals, check, multicolour),
//! a material texture (denim twill, knit ribs, linen slub), shading for volume, and a soft
//! studio background with a shadow. Deterministic: the product id seeds the small variations
//! (background tint, tilt, scale) that keep two products of a category from looking the same.

/// What a drawing is made from.
pub struct Product<'a> {
    /// Product id (seeds the variations).
    pub id: &'a str,
    /// Title (pattern words: `Striped`, `Floral`).
    pub title: &'a str,
    /// Category.
    pub category: &'a str,
    /// Item type.
    pub item_type: &'a str,
    /// Colours, main first.
    pub colours: &'a [String],
    /// Material.
    pub material: &'a str,
}

/// A product's attributes as stored in the catalogue: what its drawing is made from.
pub struct Attributes {
    id: String,
    title: String,
    category: String,
    item_type: String,
    /// Colours, main first.
    pub colours: Vec<String>,
    material: String,
}

impl Attributes {
    /// The attributes of product `id`, `None` if there is no such product.
    pub fn load(
        db: &spin_sdk::sqlite::Connection,
        id: &str,
    ) -> Result<Option<Self>, spin_sdk::sqlite::Error> {
        let rows = db.execute(
            "SELECT title, category, item_type, colours, material FROM products WHERE id = ?",
            &[spin_sdk::sqlite::Value::Text(id.to_string())],
        )?;
        let Some(row) = rows.rows.first() else {
            return Ok(None);
        };
        let text = |i| row.get::<&str>(i).unwrap_or_default().to_string();
        Ok(Some(Attributes {
            id: id.to_string(),
            title: text(0),
            category: text(1),
            item_type: text(2),
            colours: serde_json::from_str(&text(3)).unwrap_or_default(),
            material: text(4),
        }))
    }

    /// The product to draw.
    pub fn product(&self) -> Product<'_> {
        Product {
            id: &self.id,
            title: &self.title,
            category: &self.category,
            item_type: &self.item_type,
            colours: &self.colours,
            material: &self.material,
        }
    }
}

/// sRGB of a catalogue colour name.
pub fn rgb(colour: &str) -> (u8, u8, u8) {
    match colour {
        "black" => (0x23, 0x23, 0x26),
        "white" => (0xf7, 0xf7, 0xf4),
        "ivory" => (0xf2, 0xea, 0xd3),
        "beige" => (0xd8, 0xc4, 0xa2),
        "camel" => (0xc1, 0x9a, 0x6b),
        "brown" => (0x6f, 0x4e, 0x37),
        "grey" => (0x8f, 0x92, 0x96),
        "navy" => (0x1f, 0x2a, 0x48),
        "blue" => (0x2f, 0x5f, 0xa7),
        "light blue" => (0x9c, 0xc3, 0xe6),
        "green" => (0x2e, 0x7d, 0x4f),
        "olive" => (0x6b, 0x6b, 0x2e),
        "sage" => (0x9c, 0xaf, 0x88),
        "red" => (0xc0, 0x39, 0x2b),
        "burgundy" => (0x7b, 0x1e, 0x32),
        "pink" => (0xe8, 0x7a, 0xa4),
        "blush" => (0xef, 0xc6, 0xc0),
        "yellow" => (0xef, 0xc8, 0x4a),
        "orange" => (0xe8, 0x83, 0x3a),
        "purple" => (0x6c, 0x3d, 0x91),
        "lilac" => (0xc3, 0xa6, 0xd8),
        "silver" => (0xc4, 0xc6, 0xcc),
        "gold" => (0xd4, 0xaf, 0x37),
        _ => (0x9a, 0x8c, 0x7a),
    }
}

fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// `colour` mixed towards `target` by `t` (0..=1).
fn mix((r, g, b): (u8, u8, u8), target: u8, t: f64) -> (u8, u8, u8) {
    let m = |c: u8| (f64::from(c) + (f64::from(target) - f64::from(c)) * t).round() as u8;
    (m(r), m(g), m(b))
}

fn luminance((r, g, b): (u8, u8, u8)) -> f64 {
    0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b)
}

/// The silhouette (closed path) and its detail lines (stroked) in a 400×400 box.
fn silhouette(category: &str, item: &str) -> (String, String) {
    let has = |w: &str| item.contains(w);
    let (shape, details): (&str, &str) = match category {
        "dresses" => {
            let hem = if has("Maxi") { 366 } else if has("Mini") { 280 } else { 336 };
            let width = if has("Maxi") { 96 } else { 92 };
            return (
                format!(
                    "M172 62 L182 62 L188 112 Q200 122 212 112 L218 62 L228 62 L236 150 Q238 170 \
                     232 186 L{} {hem} Q200 {} {} {hem} L168 186 Q162 170 164 150 Z",
                    200 + width,
                    hem + 18,
                    200 - width
                ),
                "M166 186 Q200 196 234 186".into(),
            );
        }
        "tops" | "swimwear" | "activewear"
            if has("Tank") || has("Camisole") || has("Bra") || has("Bodysuit") || has("Swimsuit") || has("Bikini") =>
        {
            let hem = if has("Bra") || has("Bikini") { 200 } else if has("Bodysuit") || has("Swimsuit") { 300 } else { 322 };
            return (
                format!("M160 70 L172 70 Q200 112 228 70 L240 70 L256 150 L256 {hem} L144 {hem} L144 150 Z"),
                "M150 150 Q200 160 250 150".into(),
            );
        }
        "tops" | "activewear" | "swimwear"
            if has("Top") || has("T-Shirt") || has("Polo") || has("Rash Guard") =>
        {
            let hem = if has("Crop") { 232 } else { 322 };
            return (
                format!(
                    "M138 84 L176 70 Q200 92 224 70 L262 84 L312 140 L280 166 L258 140 L258 {hem} \
                     L142 {hem} L142 140 L120 166 L88 140 Z"
                ),
                if has("Polo") { "M182 74 L200 116 L218 74 M200 92 L200 130".into() } else { "M176 70 Q200 100 224 70".into() },
            );
        }
        "tops" | "shirts" => (
            "M138 84 L176 70 L200 96 L224 70 L262 84 L296 150 L318 300 L290 306 L262 170 L262 330 \
             L138 330 L138 170 L110 306 L82 300 L104 150 Z",
            "M176 70 L188 112 L200 96 L212 112 L224 70 M200 96 L200 330 M292 286 L316 282 M108 286 L84 282",
        ),
        "knitwear" => (
            "M136 86 Q200 106 264 86 L298 112 L326 300 L294 306 L266 170 L266 322 L134 322 L134 170 \
             L106 306 L74 300 L102 112 Z",
            if has("Cardigan") || has("Vest") {
                "M180 96 L200 170 L220 96 M200 170 L200 322 M134 306 L266 306"
            } else {
                "M174 92 Q200 116 226 92 M134 306 L266 306 M98 286 L128 282 M302 286 L272 282"
            },
        ),
        "jackets" | "coats" | "activewear" if category != "activewear" || has("Jacket") => {
            let hem = if category == "coats" { 350 } else { 296 };
            return (
                format!(
                    "M132 80 L178 66 L200 150 L222 66 L268 80 L304 140 L322 300 L292 306 L272 180 \
                     L272 {hem} L128 {hem} L128 180 L108 306 L78 300 L96 140 Z"
                ),
                format!(
                    "M178 66 L186 168 L200 150 L214 168 L222 66 M200 150 L200 {hem} M150 {} L180 {}",
                    hem - 70,
                    hem - 70
                ),
            );
        }
        "jeans" | "trousers" | "activewear" | "swimwear" => {
            let hem = if has("Shorts") { 196 } else { 338 };
            let (outer, inner) = if has("Wide") || has("Bootcut") { (280, 212) } else if has("Skinny") || has("Leggings") { (262, 206) } else { (274, 216) };
            return (
                format!(
                    "M142 66 L258 66 L{outer} {hem} L{inner} {hem} L200 150 L{} {hem} L{} {hem} Z",
                    400 - inner,
                    400 - outer
                ),
                if category == "jeans" {
                    "M142 82 L258 82 M150 82 Q160 120 196 118 M250 82 Q240 120 204 118 M200 82 L200 150".into()
                } else {
                    "M142 82 L258 82 M200 82 L200 150".into()
                },
            );
        }
        "skirts" => {
            let hem = if has("Mini") { 232 } else { 300 };
            return (
                format!("M156 104 L244 104 L292 {hem} Q200 {} 108 {hem} Z", hem + 20),
                if has("Pleated") {
                    "M156 118 L244 118 M180 118 L160 300 M200 118 L200 310 M220 118 L240 300".into()
                } else {
                    "M156 118 L244 118".into()
                },
            );
        }
        "shoes" if has("Boots") => (
            "M96 302 L102 132 L172 132 L178 232 L296 258 Q328 264 330 292 L330 302 Z",
            "M96 290 L330 290 M108 150 L166 150",
        ),
        "shoes" if has("Sandals") => (
            "M80 292 Q200 276 330 288 L330 302 L80 304 Z M120 290 Q150 220 190 284 Z M220 284 Q260 230 300 288 Z",
            "M80 296 L330 296",
        ),
        "shoes" if has("Mules") => (
            "M88 300 L96 238 Q140 228 190 246 L300 282 Q322 290 320 300 L150 290 L136 300 Z",
            "M96 238 L110 300",
        ),
        "shoes" => (
            "M80 294 L92 232 Q104 214 128 216 L170 222 Q196 238 228 250 L300 262 Q328 268 330 290 L330 304 L80 304 Z",
            "M80 290 L330 290 M150 226 L190 246 M140 236 L178 254",
        ),
        "bags" if has("Clutch") => (
            "M96 196 L304 196 L304 296 Q304 306 294 306 L106 306 Q96 306 96 296 Z",
            "M96 196 L200 250 L304 196",
        ),
        "bags" if has("Backpack") => (
            "M126 130 Q126 96 160 96 L240 96 Q274 96 274 130 L282 330 L118 330 Z",
            "M160 96 Q160 60 200 60 Q240 60 240 96 M140 200 L260 200 M150 200 L150 300 L250 300 L250 200",
        ),
        "bags" => (
            "M112 180 L288 180 L304 320 Q304 332 292 332 L108 332 Q96 332 96 320 Z",
            "M150 180 Q150 104 200 104 Q250 104 250 180 M112 200 L288 200",
        ),
        "accessories" if has("Scarf") => (
            "M150 56 Q200 70 250 56 L256 330 Q200 316 144 330 Z",
            "M150 330 L150 352 M164 328 L164 350 M178 326 L178 348 M192 324 L192 346 M206 324 L206 346 M220 326 L220 348 M234 328 L234 350 M248 330 L248 352",
        ),
        "accessories" if has("Belt") => (
            "M50 180 L350 180 L350 220 L50 220 Z",
            "M240 172 L290 172 L290 228 L240 228 Z M262 200 L300 200",
        ),
        "accessories" if has("Sunglasses") => (
            "M96 180 Q96 240 150 240 Q196 240 196 186 Z M204 186 Q204 240 250 240 Q304 240 304 180 Z",
            "M96 180 L304 180 M196 186 Q200 176 204 186 M96 180 L60 170 M304 180 L340 170",
        ),
        "accessories" => (
            if has("Cap") {
                "M118 240 Q118 130 200 130 Q282 130 282 240 L340 250 Q330 266 282 262 L118 262 Z"
            } else if has("Beanie") {
                "M120 260 Q120 120 200 120 Q280 120 280 260 Z"
            } else {
                "M136 210 Q140 130 200 130 Q260 130 264 210 L320 236 Q200 270 80 236 Z"
            },
            "M120 240 L280 240 M200 130 L200 120",
        ),
        "jewellery" if has("Necklace") => (
            "M188 214 L212 214 L200 250 Z",
            "M116 80 Q200 300 284 80",
        ),
        "jewellery" if has("Earrings") => (
            "M150 120 m-8 0 a8 8 0 1 0 16 0 a8 8 0 1 0 -16 0 M250 120 m-8 0 a8 8 0 1 0 16 0 a8 8 0 1 0 -16 0",
            if has("Hoop") { "M150 200 m-50 0 a50 50 0 1 0 100 0 a50 50 0 1 0 -100 0 M250 200 m-50 0 a50 50 0 1 0 100 0 a50 50 0 1 0 -100 0" } else { "M150 128 L150 150 M250 128 L250 150" },
        ),
        "jewellery" if has("Ring") => (
            "M176 120 L224 120 L236 140 L200 168 L164 140 Z",
            "M200 240 m-72 0 a72 72 0 1 0 144 0 a72 72 0 1 0 -144 0",
        ),
        "jewellery" => (
            "M200 250 m-10 0 a10 10 0 1 0 20 0 a10 10 0 1 0 -20 0",
            "M200 210 m-110 0 a110 50 0 1 0 220 0 a110 50 0 1 0 -220 0",
        ),
        _ => ("M120 120 L280 120 L280 300 L120 300 Z", ""),
    };
    (shape.to_string(), details.to_string())
}

/// The SVG of a product, `size` pixels square, on its studio background.
pub fn svg(p: &Product, size: u32) -> String {
    drawing(p, size, true)
}

/// The SVG of a product alone, on transparency (no background, no floor shadow): a piece
/// for composed pictures.
pub fn cutout(p: &Product, size: u32) -> String {
    drawing(p, size, false)
}

fn drawing(p: &Product, size: u32, studio: bool) -> String {
    let seed = vitrine_guest::fnv1a(p.id.as_bytes());
    let main = rgb(p.colours.first().map(String::as_str).unwrap_or("beige"));
    let second = p.colours.get(1).map(|c| rgb(c));
    let dark = luminance(main) < 60.0;
    let line = if dark {
        mix(main, 255, 0.35)
    } else {
        mix(main, 0, 0.35)
    };
    let (shape, details) = silhouette(p.category, p.item_type);
    let jewellery = p.category == "jewellery";
    let title = p.title;
    let material = p.material;
    let fill = if p.colours.first().is_some_and(|c| c == "multicolour") {
        "url(#multi)".to_string()
    } else if title.contains("Striped") {
        "url(#stripes)".to_string()
    } else if title.contains("Floral") {
        "url(#floral)".to_string()
    } else if material.contains("flannel") || material.contains("tweed") {
        "url(#check)".to_string()
    } else {
        hex(main)
    };
    let accent = hex(second.unwrap_or(if dark {
        mix(main, 255, 0.6)
    } else {
        mix(main, 0, 0.55)
    }));
    // Weave grain: fractal noise stretched along the material's threads (frequency across,
    // along, strength); smooth fibres get none.
    let grain = if ["denim", "chambray", "twill"]
        .iter()
        .any(|m| material.contains(m))
    {
        Some(("0.9 0.22", 0.55))
    } else if [
        "wool", "cashmere", "knit", "ribbed", "merino", "mohair", "tweed", "flannel",
    ]
    .iter()
    .any(|m| material.contains(m))
    {
        Some(("0.35 0.9", 0.5))
    } else if ["linen", "canvas", "raffia"]
        .iter()
        .any(|m| material.contains(m))
    {
        Some(("0.12 1.1", 0.45))
    } else if ["leather", "suede"].iter().any(|m| material.contains(m)) {
        Some(("0.09", 0.35))
    } else if ["silk", "satin", "metal", "gold", "silver"]
        .iter()
        .any(|m| material.contains(m))
    {
        None
    } else {
        Some(("0.8", 0.3))
    };
    let texture = if ["denim", "chambray", "twill"]
        .iter()
        .any(|m| material.contains(m))
    {
        "url(#twill)"
    } else if ["wool", "cashmere", "knit", "ribbed", "merino", "mohair"]
        .iter()
        .any(|m| material.contains(m))
    {
        "url(#ribs)"
    } else if material.contains("linen")
        || material.contains("canvas")
        || material.contains("raffia")
    {
        "url(#slub)"
    } else {
        "none"
    };
    // Variations from the id: background tint, tilt, scale.
    let hue = (seed % 360) as f64;
    let tilt = ((seed >> 9) % 9) as f64 - 4.0;
    let scale = 0.9 + ((seed >> 17) % 12) as f64 / 100.0;
    let tint = hsl(hue, 0.28, 0.90);
    let floral_petal = hex(second.unwrap_or(mix(main, 255, 0.55)));
    let floral_heart = hex(mix(main, 0, 0.3));
    let (body, strokes) = if jewellery {
        // Jewellery is metal wire and stones: the details are the piece.
        (
            format!("<path d=\"{shape}\" fill=\"{accent}\" stroke=\"{}\" stroke-width=\"3\"/>", hex(line)),
            format!("<path d=\"{details}\" fill=\"none\" stroke=\"{}\" stroke-width=\"9\" stroke-linecap=\"round\"/>", hex(main)),
        )
    } else {
        (
            format!(
                "{}<path d=\"{shape}\" fill=\"{fill}\"/><path d=\"{shape}\" fill=\"{texture}\"/>{}\
                 <path d=\"{shape}\" fill=\"url(#shade)\"/>",
                // A soft shadow of the piece on the backdrop (a composition casts its own).
                if studio {
                    format!("<path d=\"{shape}\" fill=\"#000\" opacity=\".22\" filter=\"url(#soft)\" transform=\"translate(6 10)\"/>")
                } else {
                    String::new()
                },
                grain.map_or(String::new(), |(frequency, strength)| format!(
                    "<clipPath id=\"cut\"><path d=\"{shape}\"/></clipPath>\
                     <filter id=\"grain\" x=\"0\" y=\"0\" width=\"400\" height=\"400\" filterUnits=\"userSpaceOnUse\">\
                     <feTurbulence type=\"fractalNoise\" baseFrequency=\"{frequency}\" numOctaves=\"2\" seed=\"{}\"/>\
                     <feColorMatrix values=\"1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 0 0 0 0 1\"/></filter>\
                     <rect width=\"400\" height=\"400\" clip-path=\"url(#cut)\" filter=\"url(#grain)\" opacity=\"{strength}\" style=\"mix-blend-mode:overlay\"/>",
                    seed % 1000
                ))
            ),
            format!(
                "<path d=\"{details}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" stroke-linecap=\"round\" stroke-linejoin=\"round\"/>\
                 <path d=\"{shape}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" stroke-linejoin=\"round\"/>",
                if p.category == "bags" && !p.item_type.contains("Clutch") { hex(main) } else { hex(line) },
                if p.category == "bags" { 10 } else { 3 },
                hex(line),
            ),
        )
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" viewBox=\"0 0 400 400\" role=\"img\">\
<title>{}</title><defs>\
<radialGradient id=\"bg\" cx=\"50%\" cy=\"40%\" r=\"75%\"><stop offset=\"0\" stop-color=\"#fbfaf7\"/><stop offset=\"1\" stop-color=\"{tint}\"/></radialGradient>\
<linearGradient id=\"shade\" x1=\"0\" x2=\"1\"><stop offset=\"0\" stop-color=\"#fff\" stop-opacity=\".22\"/><stop offset=\".45\" stop-color=\"#fff\" stop-opacity=\"0\"/><stop offset=\"1\" stop-color=\"#000\" stop-opacity=\".22\"/></linearGradient>\
<filter id=\"blur\"><feGaussianBlur stdDeviation=\"9\"/></filter><filter id=\"soft\"><feGaussianBlur stdDeviation=\"7\"/></filter>\
<pattern id=\"stripes\" width=\"26\" height=\"26\" patternUnits=\"userSpaceOnUse\"><rect width=\"26\" height=\"26\" fill=\"{m}\"/><rect width=\"26\" height=\"9\" fill=\"{accent}\"/></pattern>\
<pattern id=\"floral\" width=\"44\" height=\"44\" patternUnits=\"userSpaceOnUse\"><rect width=\"44\" height=\"44\" fill=\"{m}\"/>\
<g fill=\"{floral_petal}\"><circle cx=\"11\" cy=\"7\" r=\"4\"/><circle cx=\"15\" cy=\"11\" r=\"4\"/><circle cx=\"11\" cy=\"15\" r=\"4\"/><circle cx=\"7\" cy=\"11\" r=\"4\"/>\
<circle cx=\"33\" cy=\"29\" r=\"4\"/><circle cx=\"37\" cy=\"33\" r=\"4\"/><circle cx=\"33\" cy=\"37\" r=\"4\"/><circle cx=\"29\" cy=\"33\" r=\"4\"/></g>\
<circle cx=\"11\" cy=\"11\" r=\"2.5\" fill=\"{floral_heart}\"/><circle cx=\"33\" cy=\"33\" r=\"2.5\" fill=\"{floral_heart}\"/></pattern>\
<pattern id=\"check\" width=\"40\" height=\"40\" patternUnits=\"userSpaceOnUse\"><rect width=\"40\" height=\"40\" fill=\"{m}\"/>\
<rect width=\"40\" height=\"14\" fill=\"{accent}\" opacity=\".55\"/><rect width=\"14\" height=\"40\" fill=\"{accent}\" opacity=\".55\"/><rect x=\"26\" width=\"2\" height=\"40\" fill=\"#fff\" opacity=\".5\"/></pattern>\
<linearGradient id=\"multi\" x1=\"0\" y1=\"0\" x2=\"1\" y2=\"1\"><stop offset=\"0\" stop-color=\"#e8833a\"/><stop offset=\".3\" stop-color=\"#efc84a\"/><stop offset=\".55\" stop-color=\"#2e7d4f\"/><stop offset=\".8\" stop-color=\"#2f5fa7\"/><stop offset=\"1\" stop-color=\"#6c3d91\"/></linearGradient>\
<pattern id=\"twill\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\"><path d=\"M0 8 L8 0\" stroke=\"#fff\" stroke-opacity=\".16\" stroke-width=\"2\"/></pattern>\
<pattern id=\"ribs\" width=\"7\" height=\"7\" patternUnits=\"userSpaceOnUse\"><rect width=\"3\" height=\"7\" fill=\"#000\" opacity=\".09\"/></pattern>\
<pattern id=\"slub\" width=\"23\" height=\"17\" patternUnits=\"userSpaceOnUse\"><path d=\"M0 5 L9 5 M12 12 L23 12 M4 15 L8 15\" stroke=\"#fff\" stroke-opacity=\".2\" stroke-width=\"1.5\"/></pattern>\
</defs>{backdrop}\
<g transform=\"rotate({tilt} 200 200) translate(200 205) scale({scale:.2}) translate(-200 -205)\">{body}{strokes}</g></svg>",
        escape(p.title),
        m = hex(main),
        backdrop = if studio {
            "<rect width=\"400\" height=\"400\" fill=\"url(#bg)\"/>\
             <ellipse cx=\"200\" cy=\"362\" rx=\"130\" ry=\"14\" fill=\"#000\" opacity=\".16\" filter=\"url(#blur)\"/>"
        } else {
            ""
        },
    )
}

/// An sRGB hex colour from hue (degrees), saturation and lightness (0..=1).
fn hsl(h: f64, s: f64, l: f64) -> String {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let byte = |v: f64| ((v + m) * 255.0).round() as u8;
    hex((byte(r), byte(g), byte(b)))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product<'a>(
        id: &'a str,
        category: &'a str,
        item: &'a str,
        title: &'a str,
        colours: &'a [String],
    ) -> Product<'a> {
        Product {
            id,
            title,
            category,
            item_type: item,
            colours,
            material: "cotton",
        }
    }

    #[test]
    fn drawings_follow_the_attributes_and_vary_by_id() {
        let black = vec!["black".to_string()];
        let a = svg(
            &product(
                "p-1",
                "dresses",
                "Midi Dress",
                "Basalt Soft Cotton Midi Dress",
                &black,
            ),
            400,
        );
        assert!(a.starts_with("<svg") && a.ends_with("</svg>"));
        assert!(a.contains("fill=\"#232326\""), "black fill");
        assert_eq!(
            a,
            svg(
                &product(
                    "p-1",
                    "dresses",
                    "Midi Dress",
                    "Basalt Soft Cotton Midi Dress",
                    &black
                ),
                400
            )
        );
        let b = svg(
            &product(
                "p-2",
                "dresses",
                "Midi Dress",
                "Basalt Soft Cotton Midi Dress",
                &black,
            ),
            400,
        );
        assert_ne!(a, b, "the id varies the picture");
        let striped = svg(
            &product(
                "p-3",
                "tops",
                "T-Shirt",
                "Wren Striped Cotton T-Shirt",
                &black,
            ),
            120,
        );
        assert!(striped.contains("fill=\"url(#stripes)\"") && striped.contains("width=\"120\""));
        let shoe = svg(&product("p-4", "shoes", "Sneakers", "x", &black), 400);
        assert!(!shoe.contains(&silhouette("dresses", "Midi Dress").0));
        let tricky = svg(
            &product("p-5", "bags", "Tote Bag", "A <b>&</b>", &black),
            400,
        );
        assert!(tricky.contains("<title>A &lt;b&gt;&amp;&lt;/b&gt;</title>"));
    }

    #[test]
    fn materials_have_their_grain_and_items_their_shape() {
        let blue = vec!["blue".to_string()];
        let with = |item: &'static str, category: &'static str, material: &'static str| {
            svg(
                &Product {
                    material,
                    ..product("p-9", category, item, item, &blue)
                },
                400,
            )
        };
        let jeans = with("Straight Jeans", "jeans", "denim");
        assert!(jeans.contains("feTurbulence") && jeans.contains("baseFrequency=\"0.9 0.22\""));
        let knit = with("Jumper", "knitwear", "merino wool");
        assert!(knit.contains("baseFrequency=\"0.35 0.9\""));
        assert!(!with("Slip Dress", "dresses", "silk").contains("feTurbulence"));
        let jacket = silhouette("jackets", "Bomber Jacket").0;
        assert!(with("Track Jacket", "activewear", "jersey").contains(&jacket));
        assert!(!with("Leggings", "activewear", "jersey").contains(&jacket));
    }
}

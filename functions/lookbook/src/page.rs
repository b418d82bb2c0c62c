//! The lookbook as a page (`GET /lookbook`): one card per look with its pictures, title,
//! description, price and why, linking to the products. Plain HTML and CSS, no scripts from
//! elsewhere; a few lines of inline script record on `<html data-images="loaded/total">` how
//! many pictures loaded, for tests and monitoring.

use serde_json::Value;
use spin_sdk::http::Response;

const STYLE: &str = "
body{margin:0;font:15px/1.45 system-ui,sans-serif;background:#f6f4f1;color:#222}
header{padding:28px 32px 8px}h1{margin:0 0 4px;font-size:26px}header p{margin:0;color:#666}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:22px;padding:20px 32px 40px}
.look{background:#fff;border-radius:14px;box-shadow:0 2px 10px rgba(0,0,0,.07);overflow:hidden;display:flex;flex-direction:column}
.pieces{display:grid;grid-auto-flow:column;grid-auto-columns:1fr;gap:2px;background:#eee}
.pieces a{display:block;background:#fff}.pieces img{width:100%;aspect-ratio:1;object-fit:cover;display:block}
.body{padding:14px 16px 16px}.body h2{margin:0 0 6px;font-size:18px}
.price{float:right;font-weight:600}.desc{margin:0 0 10px;color:#444}
.why{margin:0;padding-left:18px;color:#5b6b4d;font-size:13px}
.items{margin:10px 0 0;padding:0;list-style:none;font-size:13px}.items li{display:flex;justify-content:space-between;gap:8px}
.items a{color:#222}.note{padding:0 32px;color:#a33}
";

const SCRIPT: &str = "addEventListener('load',()=>{const i=[...document.images];\
document.documentElement.dataset.images=i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+i.length});";

/// The page for a lookbook answer (the JSON of `GET /api/lookbooks`).
pub fn render(lookbook: &Value) -> Response {
    let text = |v: &Value| escape(v.as_str().unwrap_or(""));
    let context = &lookbook["context"];
    let who = match lookbook["shopper"].as_str() {
        Some(s) => format!("for {}", escape(s)),
        None => "for everyone".into(),
    };
    let mut subtitle = vec![text(&context["season"])];
    if let Some(o) = context["occasion"].as_str() {
        subtitle.insert(0, escape(o));
    }
    if let Some(b) = context["budget"].as_f64() {
        subtitle.push(format!("up to {b:.2} EUR a look"));
    }
    if let Some(summary) = lookbook["profile_summary"].as_str() {
        subtitle.push(escape(summary));
    }
    let mut cards = String::new();
    for look in lookbook["looks"].as_array().into_iter().flatten() {
        let items = look["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let pictures: String =
            items
                .iter()
                .map(|i| {
                    format!(
                    "<a href=\"{}\"><img src=\"{}\" alt=\"{}\" width=\"160\" height=\"160\"></a>",
                    text(&i["url"]), text(&i["image"]), text(&i["title"])
                )
                })
                .collect();
        let list: String = items
            .iter()
            .map(|i| {
                format!(
                    "<li><a href=\"{}\">{}</a><span>{:.2}</span></li>",
                    text(&i["url"]),
                    text(&i["title"]),
                    i["price"].as_f64().unwrap_or(0.0)
                )
            })
            .collect();
        let why: String = look["why"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| format!("<li>{}</li>", text(w)))
            .collect();
        cards.push_str(&format!(
            "<article class=\"look\" id=\"{}\"><div class=\"pieces\">{pictures}</div><div class=\"body\">\
             <h2><span class=\"price\">{:.2} EUR</span>{}</h2><p class=\"desc\">{}</p>\
             <ul class=\"why\">{why}</ul><ul class=\"items\">{list}</ul></div></article>",
            text(&look["id"]), look["total"].as_f64().unwrap_or(0.0), text(&look["title"]), text(&look["description"]),
        ));
    }
    let note = lookbook["note"]
        .as_str()
        .map(|n| format!("<p class=\"note\">{}</p>", escape(n)))
        .unwrap_or_default();
    html(
        200,
        &format!(
            "<header><h1>Lookbook {who}</h1><p>{}</p></header>{note}<main>{cards}</main>",
            subtitle.join(" · ")
        ),
    )
}

/// An error as a page.
pub fn error(status: u16, message: &str) -> Response {
    html(
        status,
        &format!(
            "<header><h1>No lookbook</h1><p>{}</p></header>",
            escape(message)
        ),
    )
}

fn html(status: u16, body: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <title>Vitrine lookbook</title><style>{STYLE}</style><script>{SCRIPT}</script></head>\
             <body>{body}</body></html>"
        ))
        .build()
}

/// Text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">Tom & 'Jo'</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jo&#39;&lt;/a&gt;"
        );
    }
}

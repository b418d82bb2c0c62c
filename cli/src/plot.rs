//! SVG line charts for the commands that plot figures (regret curves, …): axes with round
//! ticks, one coloured line per series, a legend. Plain SVG, readable in any browser.

use std::fmt::Write as _;

/// Colours of the series, in order (Tableau 10).
const COLOURS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

/// One line: its name and its points (x, y).
pub struct Series<'a> {
    /// Shown in the legend.
    pub name: &'a str,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A chart titled `title` with axes labelled `x_label` and `y_label`, as SVG text.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series<'_>]) -> String {
    let (width, height) = (720.0, 420.0);
    let (left, right, top, bottom) = (80.0, 150.0, 50.0, 60.0);
    let points = series.iter().flat_map(|s| s.points.iter());
    let x_max = points.clone().map(|p| p.0).fold(0.0, f64::max).max(1e-9);
    let y_max = points.clone().map(|p| p.1).fold(0.0, f64::max);
    // The y axis reaches below 0 when a series does (an uplift can be negative).
    let y_min = points.map(|p| p.1).fold(0.0, f64::min);
    let (x_step, y_step) = (tick_step(x_max), tick_step((y_max - y_min).max(1e-9)));
    let (x_top, y_top, y_bottom) = (
        (x_max / x_step).ceil() * x_step,
        (y_max / y_step)
            .ceil()
            .max(if y_min < 0.0 { 0.0 } else { 1.0 })
            * y_step,
        (y_min / y_step).floor() * y_step,
    );
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let sx = |x: f64| left + x / x_top * plot_w;
    let sy = |y: f64| top + plot_h - (y - y_bottom) / (y_top - y_bottom) * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="28" font-size="16" text-anchor="middle">{}</text>
"##,
        left + plot_w / 2.0,
        escape(title)
    );
    let mut tick = 0.0;
    while tick <= x_top + 1e-9 {
        let x = sx(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{}" stroke="#eee"/><text x="{x}" y="{}" text-anchor="middle">{}</text>"##,
            top + plot_h,
            top + plot_h + 18.0,
            number(tick)
        );
        tick += x_step;
    }
    let mut tick = y_bottom;
    while tick <= y_top + 1e-9 {
        let y = sy(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            left + plot_w,
            left - 8.0,
            y + 4.0,
            number(tick)
        );
        tick += y_step;
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text transform="translate(20 {}) rotate(-90)" text-anchor="middle">{}</text>"##,
        left + plot_w / 2.0,
        height - 15.0,
        escape(x_label),
        top + plot_h / 2.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        let legend_y = top + 10.0 + 22.0 * i as f64;
        let _ = writeln!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>
<line x1="{}" y1="{legend_y}" x2="{}" y2="{legend_y}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"##,
            path.join(" "),
            left + plot_w + 15.0,
            left + plot_w + 40.0,
            left + plot_w + 46.0,
            legend_y + 4.0,
            escape(s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A round step (1, 2 or 5 × 10ⁿ) giving about five ticks up to `max`.
fn tick_step(max: f64) -> f64 {
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// A tick label: thousands as `k`, no trailing zeros.
fn number(value: f64) -> String {
    let value = if value.abs() < 1e-12 { 0.0 } else { value };
    if value >= 1000.0 && (value / 1000.0).fract() == 0.0 {
        format!("{}k", value / 1000.0)
    } else if value.fract() == 0.0 {
        format!("{value}")
    } else {
        let text = format!("{value:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        assert_eq!(tick_step(50_000.0), 10_000.0);
        assert_eq!(tick_step(3_300.0), 1_000.0);
        assert_eq!(tick_step(0.8), 0.2);
        let svg = line_chart(
            "Regret <t>",
            "decisions",
            "regret",
            &[Series {
                name: "a&b",
                points: vec![(0.0, 0.0), (10.0, 3.0)],
            }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("Regret &lt;t&gt;") && svg.contains("a&amp;b"));
        assert!(svg.contains("<polyline"));
    }
}

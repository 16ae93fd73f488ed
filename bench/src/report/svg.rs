//! `latency.svg`: p50/p90/p99 per configuration, one panel per load point, on a log scale
//! (LiteLLM's latencies are orders of magnitude above Envoy's).

use std::fmt::Write as _;

use crate::results::WholePath;

const PANEL_W: f64 = 300.0;
const PANEL_H: f64 = 260.0;
const MARGIN_LEFT: f64 = 60.0;
const MARGIN_TOP: f64 = 50.0;
const MARGIN_BOTTOM: f64 = 40.0;
const COLOURS: [&str; 3] = ["#4e79a7", "#f28e2b", "#e15759"];
const PERCENTILES: [&str; 3] = ["p50", "p90", "p99"];

pub fn latency_plot(results: &WholePath) -> String {
    let mut labels: Vec<String> = Vec::new();
    for point in &results.points {
        if !labels.contains(&point.label()) {
            labels.push(point.label());
        }
    }
    let configs: Vec<&str> = results
        .configurations
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    let values = results
        .points
        .iter()
        .flat_map(|p| [p.p50_us, p.p90_us, p.p99_us])
        .filter(|v| *v > 0.0);
    let (low, high) = values.fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // Whole decades around the data.
    let (low_exp, high_exp) = if high > 0.0 {
        (
            low.log10().floor(),
            high.log10().ceil().max(low.log10().floor() + 1.0),
        )
    } else {
        (1.0, 2.0)
    };
    let width = MARGIN_LEFT + PANEL_W * labels.len().max(1) as f64 + 20.0;
    let height = MARGIN_TOP + PANEL_H + MARGIN_BOTTOM + 30.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{MARGIN_LEFT}" y="20" font-size="14">Latency per configuration (µs, log scale); a-d through Envoy, e LiteLLM</text>
"#
    );
    let y_of = |us: f64| {
        let fraction = (us.max(10f64.powf(low_exp)).log10() - low_exp) / (high_exp - low_exp);
        MARGIN_TOP + PANEL_H * (1.0 - fraction)
    };
    // Axis with one gridline per decade.
    let mut exp = low_exp;
    while exp <= high_exp {
        let y = y_of(10f64.powf(exp));
        let _ = writeln!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            width - 20.0,
            MARGIN_LEFT - 5.0,
            y + 4.0,
            10f64.powf(exp)
        );
        exp += 1.0;
    }
    for (panel, label) in labels.iter().enumerate() {
        let x0 = MARGIN_LEFT + PANEL_W * panel as f64;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="12">{label}</text>"#,
            x0 + PANEL_W / 2.0,
            MARGIN_TOP - 8.0
        );
        let group_w = (PANEL_W - 20.0) / configs.len().max(1) as f64;
        let bar_w = group_w / 4.0;
        for (slot, config) in configs.iter().enumerate() {
            let gx = x0 + 10.0 + group_w * slot as f64;
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">({config})</text>"#,
                gx + group_w / 2.0,
                MARGIN_TOP + PANEL_H + 15.0
            );
            let Some(point) = results
                .points
                .iter()
                .find(|p| p.config == *config && p.label() == *label)
            else {
                continue;
            };
            for (i, value) in [point.p50_us, point.p90_us, point.p99_us]
                .into_iter()
                .enumerate()
            {
                let y = y_of(value);
                let _ = writeln!(
                    svg,
                    r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>({config}) {label} {}: {value:.0} µs</title></rect>"#,
                    gx + bar_w * (i as f64 + 0.5),
                    bar_w,
                    (MARGIN_TOP + PANEL_H - y).max(0.0),
                    COLOURS[i],
                    PERCENTILES[i]
                );
            }
        }
    }
    for (i, name) in PERCENTILES.iter().enumerate() {
        let x = MARGIN_LEFT + 70.0 * i as f64;
        let y = height - 15.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{}" y="{y}">{name}</text>"#,
            y - 9.0,
            COLOURS[i],
            x + 14.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

//! The page's charts as inline SVG: segments, bars and lines over time, horizontal bars,
//! each with its `data-chart` and `data-points`.

use std::fmt::Write;

use super::esc;
pub(super) const WIDTH: f64 = 760.0;

pub(super) const HEIGHT: f64 = 140.0;

pub(super) const LEFT: f64 = 70.0;

/// Phases one after another on one bar, each as wide as its share, with a legend.
pub(super) fn segments(h: &mut String, chart: &str, shown: &[(&str, f64, &str)]) {
    let total: f64 = shown.iter().map(|p| p.1).sum::<f64>().max(0.001);
    let _ = write!(
        h,
        "<svg data-chart=\"{chart}\" data-points=\"{}\" width=\"{WIDTH}\" height=\"60\" \
         viewBox=\"0 0 {WIDTH} 60\" role=\"img\">",
        shown.len()
    );
    let mut x = 0.0;
    for (name, ms, color) in shown {
        let w = (ms / total * WIDTH).max(1.0);
        let _ = write!(
            h,
            "<rect x=\"{x:.1}\" y=\"4\" width=\"{w:.1}\" height=\"24\" fill=\"{color}\" \
             data-ms=\"{ms:.3}\"><title>{name}: {ms:.1} ms</title></rect>"
        );
        x += w;
    }
    let mut lx = 0.0;
    for (name, ms, color) in shown {
        let label = format!("{name} {ms:.0} ms");
        let _ = write!(
            h,
            "<rect x=\"{lx:.0}\" y=\"40\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
             <text x=\"{:.0}\" y=\"49\">{label}</text>",
            lx + 14.0
        );
        // About 6.5 px a character at the page's 11 px: each label gets its own room.
        lx += 30.0 + label.len() as f64 * 6.5;
    }
    h.push_str("</svg>");
}

pub(super) fn axis(h: &mut String, max: f64, unit: &str, span: f64) {
    let _ = write!(
        h,
        "<line x1=\"{LEFT}\" y1=\"{HEIGHT}\" x2=\"{WIDTH}\" y2=\"{HEIGHT}\" stroke=\"#999\"/>\
         <text x=\"0\" y=\"12\">{max:.0} {unit}</text><text x=\"0\" y=\"{HEIGHT}\">0</text>\
         <text x=\"{:.0}\" y=\"{:.0}\">{span:.0} s</text>",
        WIDTH - 40.0,
        HEIGHT + 14.0
    );
}

/// An empty chart says what it would have shown.
pub(super) fn empty(h: &mut String, chart: &str) {
    let what = match chart {
        "throughput" | "lag_bytes" | "lag_ms" => "No stream command on this link.",
        "heartbeats" => "No heartbeat interval yet (two of a kind are needed).",
        "ack_latency" => "No command acknowledged.",
        "rdb_types" => "The RDB holds no key.",
        "events" => "No warning and no desync.",
        _ => "Nothing to show.",
    };
    let _ = write!(
        h,
        "<p class=\"note\" data-chart=\"{chart}\" data-points=\"0\">{what}</p>"
    );
}

pub(super) fn bars_over_time(h: &mut String, chart: &str, points: &[(f64, f64)], unit: &str) {
    if points.is_empty() {
        return empty(h, chart);
    }
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let span = points.last().map_or(1.0, |p| p.0).max(1.0);
    let w = ((WIDTH - LEFT) / (span + 1.0)).max(1.0);
    let _ = write!(
        h,
        "<svg data-chart=\"{chart}\" data-points=\"{}\" width=\"{WIDTH}\" height=\"{}\" \
         viewBox=\"0 0 {WIDTH} {}\" role=\"img\">",
        points.len(),
        HEIGHT + 20.0,
        HEIGHT + 20.0
    );
    for (t, v) in points {
        let bh = v / max * (HEIGHT - 10.0);
        let _ = write!(
            h,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#4c78a8\">\
             <title>+{t:.0} s: {v:.0} {unit}</title></rect>",
            LEFT + t / (span + 1.0) * (WIDTH - LEFT),
            HEIGHT - bh,
            w * 0.9
        );
    }
    axis(h, max, unit, span);
    h.push_str("</svg>");
}

pub(super) fn line_over_time(h: &mut String, chart: &str, points: &[(f64, f64)], unit: &str) {
    if points.is_empty() {
        return empty(h, chart);
    }
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let span = points.last().map_or(1.0, |p| p.0).max(1.0);
    let coords: Vec<String> = points
        .iter()
        .map(|(t, v)| {
            format!(
                "{:.1},{:.1}",
                LEFT + t / span * (WIDTH - LEFT - 10.0),
                HEIGHT - v / max * (HEIGHT - 10.0)
            )
        })
        .collect();
    let _ = write!(
        h,
        "<svg data-chart=\"{chart}\" data-points=\"{}\" width=\"{WIDTH}\" height=\"{}\" \
         viewBox=\"0 0 {WIDTH} {}\" role=\"img\">",
        points.len(),
        HEIGHT + 20.0,
        HEIGHT + 20.0,
    );
    // One line per run of consecutive seconds: where no second was measured, the line
    // breaks instead of drawing a ramp that never happened.
    let mut from = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].0 - points[i - 1].0 > 1.0 {
            let _ = write!(
                h,
                "<polyline fill=\"none\" stroke=\"#e45756\" stroke-width=\"1.5\" points=\"{}\"/>",
                coords[from..i].join(" ")
            );
            from = i;
        }
    }
    // Dots as well: a series of one second is a point, not a line.
    for c in coords.iter().take(120) {
        let (x, y) = c.split_once(',').unwrap_or(("0", "0"));
        let _ = write!(
            h,
            "<circle cx=\"{x}\" cy=\"{y}\" r=\"2\" fill=\"#e45756\"/>"
        );
    }
    axis(h, max, unit, span);
    h.push_str("</svg>");
}

/// Horizontal bars, one per labelled value, with an optional reference line.
pub(super) fn hbars(
    h: &mut String,
    chart: &str,
    rows: &[(String, f64)],
    unit: &str,
    mark: Option<(f64, &str)>,
) {
    if rows.is_empty() {
        return empty(h, chart);
    }
    let max = rows
        .iter()
        .map(|r| r.1)
        .chain(mark.map(|m| m.0))
        .fold(0.0, f64::max)
        .max(1.0);
    let height = rows.len() as f64 * 18.0 + 16.0;
    let left = 200.0;
    let _ = write!(
        h,
        "<svg data-chart=\"{chart}\" data-points=\"{}\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\">",
        rows.len()
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = i as f64 * 18.0;
        let w = v / max * (WIDTH - left - 90.0);
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{:.0}\">{}</text><rect x=\"{left}\" y=\"{y:.0}\" width=\"{w:.1}\" \
             height=\"14\" fill=\"#72b7b2\"/><text x=\"{:.0}\" y=\"{:.0}\">{} {unit}</text>",
            y + 11.0,
            esc(label),
            left + w + 4.0,
            y + 11.0,
            human(*v)
        );
    }
    if let Some((at, name)) = mark {
        let x = left + at / max * (WIDTH - left - 90.0);
        let _ = write!(
            h,
            "<line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{height}\" stroke=\"#b00\" \
             stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{height}\" text-anchor=\"end\" \
             class=\"bad\">{}</text>",
            x - 3.0,
            esc(name)
        );
    }
    h.push_str("</svg>");
}

/// Bytes for people, as the summary writes them (`1.5 MB`, `512 kB`, `80 B`).
pub(super) fn size(v: f64) -> String {
    crate::report::history::human(v.max(0.0) as u64)
}

pub(super) fn human(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

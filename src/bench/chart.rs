//! Line charts for the speed sweeps (`bench --sweep`, `paging-sweep`), drawn by lode itself:
//! a figure is a title, stacked panels and a caption; each panel has ticks at the swept values
//! on x, round ticks on y with the unit in the axis label, lines with mean ± std error bars,
//! dashed reference lines (the bandwidth bound) and a legend beside the plot, never over it.
//!
//! One layout, two outputs: SVG text (tick labels carry `class="tick-x"`/`"tick-y"` so tests
//! can read them) and PNG (tiny-skia, text from the bundled DejaVu Sans subset, which is also
//! what the layout measures text with).

use std::fmt::Write as _;
use std::path::Path;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::ImageEncoder as _;

use crate::{Error, Result};

/// DejaVu Sans, ASCII plus a few symbols (± · × – — … µ ≈ ≤ ≥ −); license in assets/fonts.
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// Colour-blind-safe line colours (Okabe–Ito), in series order.
pub const PALETTE: [Rgb; 7] = [
    Rgb(0, 114, 178),
    Rgb(213, 94, 0),
    Rgb(0, 158, 115),
    Rgb(204, 121, 167),
    Rgb(230, 159, 0),
    Rgb(86, 180, 233),
    Rgb(120, 120, 120),
];

const BLACK: Rgb = Rgb(0, 0, 0);
const GREY: Rgb = Rgb(90, 90, 90);
const GRID: Rgb = Rgb(225, 225, 225);
const WHITE: Rgb = Rgb(255, 255, 255);

/// One measured point: the mean and its sample standard deviation (0 = no error bar).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub std: f64,
}

/// A line of the chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
    pub color: Rgb,
    /// Dashed and without markers: a bound or reference, not a measurement.
    pub reference: bool,
}

/// The x axis: its label (with the unit) and the swept values, each with its tick label.
#[derive(Clone, Debug)]
pub struct XAxis {
    pub label: String,
    pub ticks: Vec<(f64, String)>,
}

/// One plot of the figure.
#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    /// The y quantity and its unit, e.g. `tokens/s` or `peak RSS (MiB)`.
    pub y_label: String,
    pub series: Vec<Series>,
}

impl Panel {
    /// The y ticks (0 up to just above the highest point or error bar) and the axis top.
    fn y_scale(&self) -> (Vec<f64>, f64) {
        let max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|q| q.y + q.std))
            .fold(0.0, f64::max);
        y_ticks(max * 1.05)
    }
}

#[derive(Clone, Debug)]
pub struct Figure {
    pub title: String,
    pub x: XAxis,
    pub panels: Vec<Panel>,
    /// Lines under the plots: what was measured, where, when.
    pub caption: Vec<String>,
}

/// A byte unit chosen from the data: the largest binary unit in which the smallest non-zero
/// value is still at least 1 (so 64 KiB … 1 MiB reads 64, 160, 320, 1024 KiB).
pub fn byte_unit(values: impl IntoIterator<Item = u64>) -> (&'static str, f64) {
    let min = values.into_iter().filter(|&v| v > 0).min().unwrap_or(0);
    let units = [
        ("B", 1.0),
        ("KiB", 1024.0),
        ("MiB", 1048576.0),
        ("GiB", 1073741824.0),
    ];
    let mut best = units[0];
    for u in units {
        if min as f64 >= u.1 {
            best = u;
        }
    }
    (best.0, best.1)
}

/// Labels for `values` with the fewest decimals (up to 3) that write every value exactly
/// (`0.5`, `1`, `2.25`), else the fewest that keep distinct values distinct; trailing zeros
/// dropped.
pub fn tick_labels(values: &[f64]) -> Vec<String> {
    let fmt = |v: f64, d: usize| {
        let s = format!("{v:.d$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    let at = |d: usize| values.iter().map(|&v| fmt(v, d)).collect::<Vec<_>>();
    let exact = |l: &[String]| {
        values.iter().zip(l).all(|(&v, s)| {
            s.parse::<f64>()
                .is_ok_and(|p| (p - v).abs() <= 1e-9 * v.abs().max(1.0))
        })
    };
    let distinct = |l: &[String]| {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        v.dedup();
        let mut l = l.to_vec();
        l.sort();
        l.dedup();
        l.len() == v.len()
    };
    if let Some(l) = (0..=3).map(at).find(|l| exact(l)) {
        return l;
    }
    (0..=3)
        .map(at)
        .find(|l| distinct(l))
        .unwrap_or_else(|| values.iter().map(|v| v.to_string()).collect())
}

/// Round y ticks from 0 to at least `max`: steps of 1, 2 or 5 × 10^k, about 5 of them.
fn y_ticks(max: f64) -> (Vec<f64>, f64) {
    let max = if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let n = (max / step).ceil() as usize;
    let ticks: Vec<f64> = (0..=n).map(|i| i as f64 * step).collect();
    (ticks, n as f64 * step)
}

/// Where a swept value sits on the x axis: evenly spaced values keep their spacing; others
/// (doubling budgets, depths 0/1024/4096) are spread evenly in sweep order, so no tick crowds
/// another.
struct XMap {
    ticks: Vec<f64>,
    linear: bool,
}

impl XMap {
    fn new(ticks: &[f64]) -> XMap {
        let mut t = ticks.to_vec();
        t.sort_by(f64::total_cmp);
        t.dedup();
        let linear = t.len() < 3 || {
            let d = t[1] - t[0];
            t.windows(2)
                .all(|w| ((w[1] - w[0]) - d).abs() <= 1e-9 * d.abs().max(1.0))
        };
        XMap { ticks: t, linear }
    }

    /// Position in 0..=1.
    fn at(&self, x: f64) -> f64 {
        let n = self.ticks.len();
        if n < 2 {
            return 0.5;
        }
        if self.linear {
            let (a, b) = (self.ticks[0], self.ticks[n - 1]);
            return (x - a) / (b - a);
        }
        // piecewise linear between neighbouring ticks
        let i = self.ticks.partition_point(|&t| t < x).clamp(1, n - 1);
        let (a, b) = (self.ticks[i - 1], self.ticks[i]);
        ((i - 1) as f64 + (x - a) / (b - a)) / (n - 1) as f64
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Anchor {
    Start,
    Middle,
    End,
}

/// What a chart is drawn on.
trait Canvas {
    fn line(&mut self, pts: &[(f64, f64)], color: Rgb, width: f64, dashed: bool);
    fn dot(&mut self, at: (f64, f64), r: f64, color: Rgb);
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: Rgb);
    /// `y` is the baseline.
    fn text(&mut self, at: (f64, f64), s: &str, size: f64, anchor: Anchor, color: Rgb, class: &str);
}

fn font() -> FontRef<'static> {
    FontRef::try_from_slice(FONT).expect("the bundled font parses")
}

/// ab_glyph's scale for a CSS `font-size` (ab_glyph scales by ascent − descent, CSS by the em).
fn px_scale(f: &FontRef<'_>, size: f64) -> PxScale {
    let em = f.units_per_em().unwrap_or(2048.0);
    PxScale::from((size as f32) * f.height_unscaled() / em)
}

/// Width of `s` in pixels at font-size `size`.
fn text_width(s: &str, size: f64) -> f64 {
    let f = font();
    let sf = f.as_scaled(px_scale(&f, size));
    let mut w = 0.0f32;
    let mut prev = None;
    for c in s.chars() {
        let g = sf.glyph_id(c);
        if let Some(p) = prev {
            w += sf.kern(p, g);
        }
        w += sf.h_advance(g);
        prev = Some(g);
    }
    w as f64
}

const WIDTH: f64 = 960.0;
const PANEL_H: f64 = 260.0;
const TITLE: f64 = 18.0;
const LABEL: f64 = 13.0;
const TICK: f64 = 12.0;
const CAPTION: f64 = 11.0;

impl Figure {
    fn height(&self) -> f64 {
        56.0 + self.panels.len() as f64 * (PANEL_H + 24.0) + 18.0 * self.caption.len() as f64 + 16.0
    }

    fn draw(&self, c: &mut dyn Canvas) {
        let h = self.height();
        c.rect(0.0, 0.0, WIDTH, h, WHITE);
        c.text(
            (WIDTH / 2.0, 30.0),
            &self.title,
            TITLE,
            Anchor::Middle,
            BLACK,
            "title",
        );
        let xmap = XMap::new(&self.x.ticks.iter().map(|t| t.0).collect::<Vec<_>>());
        let legend_w = self
            .panels
            .iter()
            .flat_map(|p| p.series.iter().map(|s| text_width(&s.name, TICK)))
            .fold(0.0, f64::max)
            + 44.0;
        // one left edge for every panel: the widest y tick label of all
        let scales: Vec<(Vec<f64>, f64)> = self.panels.iter().map(Panel::y_scale).collect();
        let left = 24.0
            + scales
                .iter()
                .flat_map(|(t, _)| tick_labels(t))
                .map(|l| text_width(&l, TICK))
                .fold(0.0, f64::max);
        let mut top = 56.0;
        for (p, scale) in self.panels.iter().zip(&scales) {
            self.draw_panel(c, p, scale, &xmap, top, left, legend_w);
            top += PANEL_H + 24.0;
        }
        for (i, line) in self.caption.iter().enumerate() {
            let y = top + 4.0 + 18.0 * i as f64;
            c.text((16.0, y), line, CAPTION, Anchor::Start, GREY, "caption");
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn draw_panel(
        &self,
        c: &mut dyn Canvas,
        p: &Panel,
        (yt, ytop): &(Vec<f64>, f64),
        xmap: &XMap,
        top: f64,
        left: f64,
        legend_w: f64,
    ) {
        let ytop = *ytop;
        let ylabels = tick_labels(yt);
        let right = WIDTH - legend_w - 24.0;
        // the y label (with its unit) and the panel title on a line above the plot, so neither
        // can overlap a tick label
        c.text(
            (16.0, top + 12.0),
            &p.y_label,
            LABEL,
            Anchor::Start,
            GREY,
            "label-y",
        );
        let mid = (left + right) / 2.0;
        c.text(
            (mid, top + 12.0),
            &p.title,
            LABEL + 1.0,
            Anchor::Middle,
            BLACK,
            "panel-title",
        );
        let (pt, pb) = (top + 24.0, top + PANEL_H - 46.0);
        // inset so points at the ends are not on the frame
        let (pl, pr) = (left + 24.0, right - 24.0);
        let sx = |x: f64| pl + xmap.at(x) * (pr - pl);
        let sy = |y: f64| pb - y / ytop * (pb - pt);
        for (v, l) in yt.iter().zip(&ylabels) {
            let y = sy(*v);
            c.line(&[(left, y), (right, y)], GRID, 1.0, false);
            c.text(
                (left - 6.0, y + TICK * 0.35),
                l,
                TICK,
                Anchor::End,
                BLACK,
                "tick-y",
            );
        }
        c.line(&[(left, pb), (right, pb)], BLACK, 1.0, false);
        c.line(&[(left, pt), (left, pb)], BLACK, 1.0, false);
        for (v, l) in &self.x.ticks {
            let x = sx(*v);
            c.line(&[(x, pb), (x, pb + 5.0)], BLACK, 1.0, false);
            c.text(
                (x, pb + 8.0 + TICK),
                l,
                TICK,
                Anchor::Middle,
                BLACK,
                "tick-x",
            );
        }
        c.text(
            ((left + right) / 2.0, pb + 16.0 + TICK + LABEL),
            &self.x.label,
            LABEL,
            Anchor::Middle,
            GREY,
            "label-x",
        );
        for s in &p.series {
            let pts: Vec<(f64, f64)> = s.points.iter().map(|q| (sx(q.x), sy(q.y))).collect();
            c.line(&pts, s.color, 2.0, s.reference);
            if s.reference {
                continue;
            }
            for q in &s.points {
                let (x, y) = (sx(q.x), sy(q.y));
                if q.std > 0.0 {
                    let (lo, hi) = (sy((q.y - q.std).max(0.0)), sy(q.y + q.std));
                    c.line(&[(x, lo), (x, hi)], s.color, 1.5, false);
                    c.line(&[(x - 4.0, lo), (x + 4.0, lo)], s.color, 1.5, false);
                    c.line(&[(x - 4.0, hi), (x + 4.0, hi)], s.color, 1.5, false);
                }
                c.dot((x, y), 3.5, s.color);
            }
        }
        // legend to the right of the plot
        let lx = right + 20.0;
        for (i, s) in p.series.iter().enumerate() {
            let y = pt + 8.0 + 20.0 * i as f64;
            c.line(&[(lx, y), (lx + 22.0, y)], s.color, 2.0, s.reference);
            if !s.reference {
                c.dot((lx + 11.0, y), 3.5, s.color);
            }
            c.text(
                (lx + 28.0, y + TICK * 0.35),
                &s.name,
                TICK,
                Anchor::Start,
                BLACK,
                "legend",
            );
        }
    }

    /// The SVG document.
    pub fn svg(&self) -> String {
        let mut c = Svg { out: String::new() };
        let (w, h) = (WIDTH, self.height());
        let _ = writeln!(
            c.out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="DejaVu Sans, Verdana, sans-serif">"#
        );
        self.draw(&mut c);
        c.out.push_str("</svg>\n");
        c.out
    }

    /// A PNG image (twice the SVG's pixel size, for sharp text).
    pub fn png(&self) -> Result<Vec<u8>> {
        const SCALE: f64 = 2.0;
        let (w, h) = (
            (WIDTH * SCALE) as u32,
            (self.height() * SCALE).ceil() as u32,
        );
        let pixmap = tiny_skia::Pixmap::new(w, h)
            .ok_or_else(|| Error::Input(format!("a {w}×{h} image is too large")))?;
        let mut c = Png {
            pixmap,
            scale: SCALE,
            font: font(),
        };
        self.draw(&mut c);
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(c.pixmap.data(), w, h, image::ExtendedColorType::Rgba8)
            .map_err(|e| Error::Input(format!("encoding the PNG: {e}")))?;
        Ok(out)
    }

    /// Writes the chart to `path`, in the format its name says ([`format_of`]).
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = match format_of(path)? {
            Format::Png => self.png()?,
            Format::Svg => self.svg().into_bytes(),
        };
        crate::output::write(path, &bytes, &[])
    }
}

/// The image formats a chart is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

/// PNG for a `.png` name, SVG for `.svg`; anything else is an error, so that a `.png` never
/// holds SVG text. Call it before a long run, not only at the end.
pub fn format_of(path: &Path) -> Result<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => Err(Error::Input(format!(
            "{}: plots are written as .svg or .png; end the file name with one of them",
            path.display()
        ))),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Svg {
    out: String,
}

impl Canvas for Svg {
    fn line(&mut self, pts: &[(f64, f64)], color: Rgb, width: f64, dashed: bool) {
        if pts.len() < 2 {
            return;
        }
        let p: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(
            self.out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="{width}"{}/>"#,
            p.join(" "),
            color.hex(),
            if dashed {
                r#" stroke-dasharray="7,5""#
            } else {
                ""
            }
        );
    }

    fn dot(&mut self, (x, y): (f64, f64), r: f64, color: Rgb) {
        let _ = writeln!(
            self.out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{}"/>"#,
            color.hex()
        );
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: Rgb) {
        let _ = writeln!(
            self.out,
            r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{}"/>"#,
            fill.hex()
        );
    }

    fn text(&mut self, (x, y): (f64, f64), s: &str, size: f64, a: Anchor, color: Rgb, class: &str) {
        let anchor = match a {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        let _ = writeln!(
            self.out,
            r#"<text class="{class}" x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" fill="{}">{}</text>"#,
            color.hex(),
            esc(s)
        );
    }
}

struct Png {
    pixmap: tiny_skia::Pixmap,
    scale: f64,
    font: FontRef<'static>,
}

impl Png {
    fn paint(color: Rgb) -> tiny_skia::Paint<'static> {
        let mut p = tiny_skia::Paint::default();
        p.set_color_rgba8(color.0, color.1, color.2, 255);
        p.anti_alias = true;
        p
    }

    fn transform(&self) -> tiny_skia::Transform {
        tiny_skia::Transform::from_scale(self.scale as f32, self.scale as f32)
    }

    /// Blends `color` at `coverage` into one pixel (the pixmap is opaque, so premultiplied
    /// and straight alpha agree).
    fn blend(&mut self, x: u32, y: u32, color: Rgb, coverage: f32) {
        let w = self.pixmap.width();
        if x >= w || y >= self.pixmap.height() {
            return;
        }
        let i = 4 * (y * w + x) as usize;
        let a = coverage.clamp(0.0, 1.0);
        let px = &mut self.pixmap.data_mut()[i..i + 4];
        for (d, s) in px.iter_mut().zip([color.0, color.1, color.2]) {
            *d = (*d as f32 * (1.0 - a) + s as f32 * a).round() as u8;
        }
        px[3] = 255;
    }
}

impl Canvas for Png {
    fn line(&mut self, pts: &[(f64, f64)], color: Rgb, width: f64, dashed: bool) {
        let mut pb = tiny_skia::PathBuilder::new();
        for (i, &(x, y)) in pts.iter().enumerate() {
            if i == 0 {
                pb.move_to(x as f32, y as f32);
            } else {
                pb.line_to(x as f32, y as f32);
            }
        }
        let Some(path) = pb.finish() else { return };
        let stroke = tiny_skia::Stroke {
            width: width as f32,
            dash: if dashed {
                tiny_skia::StrokeDash::new(vec![7.0, 5.0], 0.0)
            } else {
                None
            },
            ..tiny_skia::Stroke::default()
        };
        let t = self.transform();
        self.pixmap
            .stroke_path(&path, &Png::paint(color), &stroke, t, None);
    }

    fn dot(&mut self, (x, y): (f64, f64), r: f64, color: Rgb) {
        if let Some(path) = tiny_skia::PathBuilder::from_circle(x as f32, y as f32, r as f32) {
            let t = self.transform();
            self.pixmap.fill_path(
                &path,
                &Png::paint(color),
                tiny_skia::FillRule::Winding,
                t,
                None,
            );
        }
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: Rgb) {
        if let Some(r) = tiny_skia::Rect::from_xywh(x as f32, y as f32, w as f32, h as f32) {
            let t = self.transform();
            self.pixmap.fill_rect(r, &Png::paint(fill), t, None);
        }
    }

    fn text(&mut self, (x, y): (f64, f64), s: &str, size: f64, a: Anchor, color: Rgb, _: &str) {
        let k = self.scale;
        let w = text_width(s, size);
        let x0 = match a {
            Anchor::Start => x,
            Anchor::Middle => x - w / 2.0,
            Anchor::End => x - w,
        } * k;
        let font = self.font.clone();
        let scale = px_scale(&font, size * k);
        let sf = font.as_scaled(scale);
        let mut pen = x0 as f32;
        let mut prev = None;
        let mut hits = Vec::new();
        for ch in s.chars() {
            let id = sf.glyph_id(ch);
            if let Some(p) = prev {
                pen += sf.kern(p, id);
            }
            let g = id.with_scale_and_position(scale, ab_glyph::point(pen, (y * k) as f32));
            pen += sf.h_advance(id);
            prev = Some(id);
            if let Some(o) = font.outline_glyph(g) {
                let b = o.px_bounds();
                o.draw(|gx, gy, cov| {
                    let (px, py) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                    if px >= 0 && py >= 0 {
                        hits.push((px as u32, py as u32, cov));
                    }
                });
            }
        }
        for (px, py, cov) in hits {
            self.blend(px, py, color, cov);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_labels() {
        assert_eq!(byte_unit([64 << 10, 160 << 10, 1 << 20]).0, "KiB");
        assert_eq!(byte_unit([2u64 << 30, 16 << 30]).0, "GiB");
        assert_eq!(byte_unit([512u64 << 20, 2 << 30]).0, "MiB");
        assert_eq!(tick_labels(&[64.0, 160.0, 1024.0]), ["64", "160", "1024"]);
        assert_eq!(tick_labels(&[0.0, 0.5, 1.0, 1.5]), ["0", "0.5", "1", "1.5"]);
        assert_eq!(tick_labels(&[0.0, 0.25, 0.5]), ["0", "0.25", "0.5"]);
        assert_eq!(tick_labels(&[0.0, 2.5, 5.0]), ["0", "2.5", "5"]);
        // the issue's y ticks: 448.87, 897.74 become round numbers
        let (t, _) = y_ticks(897.74);
        assert_eq!(tick_labels(&t)[1], "200");
        let (t, top) = y_ticks(897.74);
        assert_eq!(t.first(), Some(&0.0));
        assert!(top >= 897.74 && t.len() <= 7, "{t:?}");
        let l = tick_labels(&t);
        assert!(l.iter().all(|s| !s.contains('.')), "{l:?}");
    }

    #[test]
    fn x_positions() {
        let m = XMap::new(&[1.0, 2.0, 3.0, 4.0]);
        assert!(m.linear);
        assert_eq!(m.at(1.0), 0.0);
        assert_eq!(m.at(4.0), 1.0);
        let m = XMap::new(&[0.0, 1024.0, 4096.0]);
        assert!(!m.linear);
        assert_eq!(m.at(1024.0), 0.5);
    }

    #[test]
    fn png_is_a_png() {
        let f = Figure {
            title: "t".into(),
            x: XAxis {
                label: "threads".into(),
                ticks: vec![(1.0, "1".into()), (2.0, "2".into())],
            },
            panels: vec![Panel {
                title: "p".into(),
                y_label: "tokens/s".into(),
                series: vec![Series {
                    name: "tg".into(),
                    points: vec![
                        Point {
                            x: 1.0,
                            y: 2.0,
                            std: 0.1,
                        },
                        Point {
                            x: 2.0,
                            y: 3.0,
                            std: 0.0,
                        },
                    ],
                    color: PALETTE[0],
                    reference: false,
                }],
            }],
            caption: vec!["c".into()],
        };
        let png = f.png().unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(f.svg().contains(r#"class="tick-x""#));
    }
}

//! A report's charts, described once and drawn twice with plotters: as SVG (inlined in the
//! HTML page, text in the viewer's sans-serif) and as PNG (linked from the Markdown, text in
//! an embedded DejaVu Sans subset, since the bitmap backend has no fonts of its own).

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("font/DejaVuSans-subset.ttf");

/// Registers the embedded font once per process; plotters looks fonts up by family name.
fn font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| "the embedded plot font does not load (this is a bug in synthpipe)".into())
    })
    .clone()
}

/// Series colours, by model (or chain length) index: distinguishable, and print in grey.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Grid lines: visible enough to read values off, faint enough not to compete with data.
const GRID_BOLD: RGBColor = RGBColor(215, 215, 215);
const GRID_LIGHT: RGBColor = RGBColor(242, 242, 242);

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Bars of a mean with its standard error per category, one bar per series.
#[derive(Clone, Debug)]
pub struct Bars {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub categories: Vec<String>,
    pub series: Vec<BarSeries>,
}

#[derive(Clone, Debug)]
pub struct BarSeries {
    pub label: String,
    /// Per category: (mean, standard error), or nothing when the series has no value there.
    pub values: Vec<Option<(f64, f64)>>,
}

/// Side-by-side panels of lines sharing a title.
#[derive(Clone, Debug)]
pub struct Lines {
    pub title: String,
    pub panels: Vec<Panel>,
}

#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    /// Fixed y bounds (shares and F1: 0–1); `None` fits the data.
    pub y_range: Option<(f64, f64)>,
    /// Whole-number x ticks (hop counts, k).
    pub integer_x: bool,
    pub lines: Vec<Line>,
}

#[derive(Clone, Debug)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: usize,
    /// Drawn thin and pale under a smoothed copy (raw training values).
    pub faint: bool,
    pub markers: bool,
}

#[derive(Clone, Debug)]
pub enum Chart {
    Bars(Bars),
    Lines(Lines),
}

impl Chart {
    fn size(&self) -> (u32, u32) {
        match self {
            Chart::Bars(b) => {
                let groups = b.categories.len().max(1) as u32;
                let per = 24 * b.series.len().max(1) as u32 + 36;
                ((groups * per + 120).clamp(480, 1400), 360)
            }
            Chart::Lines(l) => ((l.panels.len().max(1) as u32 * 380).clamp(480, 1520), 340),
        }
    }

    /// Writes `STEM.svg` and `STEM.png` into `dir` and returns the SVG text.
    pub fn render(&self, dir: &Path, stem: &str) -> Result<String, String> {
        font()?;
        let size = self.size();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            self.draw(&root)?;
            root.present()
                .map_err(|e| format!("cannot draw {stem}: {e}"))?;
        }
        let png = dir.join(format!("{stem}.png"));
        {
            let root = BitMapBackend::new(&png, size).into_drawing_area();
            self.draw(&root)?;
            root.present()
                .map_err(|e| format!("cannot write `{}`: {e}", png.display()))?;
        }
        std::fs::write(dir.join(format!("{stem}.svg")), &svg)
            .map_err(|e| format!("cannot write {stem}.svg: {e}"))?;
        Ok(svg)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        match self {
            Chart::Bars(b) => bars(root, b),
            Chart::Lines(l) => {
                let body = if l.title.is_empty() {
                    root.clone()
                } else {
                    let (top, body) = root.split_vertically(30);
                    top.titled(&l.title, ("sans-serif", 18)).map_err(err)?;
                    body
                };
                let areas = body.split_evenly((1, l.panels.len().max(1)));
                for (area, panel) in areas.iter().zip(&l.panels) {
                    lines(area, panel)?;
                }
                Ok(())
            }
        }
    }
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("cannot draw a plot: {e}")
}

/// An x axis of `n` categories, each one unit wide, ticked at their centres.
struct Categories(usize);

impl Ranged for Categories {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;
    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        limit.0 + ((limit.1 - limit.0) as f64 * v / self.0 as f64).round() as i32
    }
    fn key_points<H: KeyPointHint>(&self, _: H) -> Vec<f64> {
        (0..self.0).map(|i| i as f64 + 0.5).collect()
    }
    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.0 as f64
    }
}

fn bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, b: &Bars) -> Result<(), String> {
    let n = b.categories.len().max(1);
    let m = b.series.len().max(1);
    let long = b
        .categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0);
    let top = b
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten().map(|(v, e)| v + e))
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(root)
        .caption(&b.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(if long > 12 { 70 } else { 40 })
        .y_label_area_size(52)
        .build_cartesian_2d(Categories(n), 0f64..top * 1.12)
        .map_err(err)?;
    let cats = &b.categories;
    let label = |x: &f64| -> String {
        let i = x.floor() as usize;
        let c = cats.get(i).cloned().unwrap_or_default();
        // Long stratum names (synthpipe question types) are shortened to fit under a bar.
        if c.chars().count() > 22 {
            format!("{}…", c.chars().take(21).collect::<String>())
        } else {
            c
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh()
        .bold_line_style(GRID_BOLD)
        .light_line_style(GRID_LIGHT)
        .x_desc(b.x_desc.as_str())
        .y_desc(b.y_desc.as_str())
        .x_label_formatter(&label)
        .y_label_formatter(&|y| format!("{y:.1}"));
    if long > 12 {
        mesh.x_label_style(
            ("sans-serif", 11)
                .into_font()
                .transform(FontTransform::Rotate90),
        );
    }
    mesh.draw().map_err(err)?;
    let width = 0.8 / m as f64;
    for (j, s) in b.series.iter().enumerate() {
        let c = color(j);
        let at = |i: usize| i as f64 + 0.1 + j as f64 * width;
        chart
            .draw_series(s.values.iter().enumerate().filter_map(|(i, v)| {
                v.map(|(mean, _)| {
                    Rectangle::new([(at(i), 0.0), (at(i) + width * 0.9, mean)], c.filled())
                })
            }))
            .map_err(err)?
            .label(s.label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        chart
            .draw_series(s.values.iter().enumerate().filter_map(|(i, v)| {
                v.filter(|(_, e)| *e > 0.0).map(|(mean, e)| {
                    ErrorBar::new_vertical(
                        at(i) + width * 0.45,
                        (mean - e).max(0.0),
                        mean,
                        mean + e,
                        BLACK.stroke_width(1),
                        6,
                    )
                })
            }))
            .map_err(err)?;
    }
    if b.series.len() > 1 {
        legend(&mut chart, 13)?;
    }
    Ok(())
}

fn lines<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> Result<(), String> {
    let xs = p.lines.iter().flat_map(|l| l.points.iter().map(|q| q.0));
    let (mut x0, mut x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if p.integer_x {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    } else if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let (y0, y1) = p.y_range.unwrap_or_else(|| {
        let ys = p.lines.iter().flat_map(|l| l.points.iter().map(|q| q.1));
        let (lo, hi) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
        if lo > hi {
            (0.0, 1.0)
        } else {
            let pad = ((hi - lo) * 0.08).max(1e-6);
            (
                if lo >= 0.0 {
                    (lo - pad).max(0.0)
                } else {
                    lo - pad
                },
                hi + pad,
            )
        }
    });
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let ticks = if p.integer_x {
        ((x1 - x0).round() as usize).clamp(1, 12)
    } else {
        6
    };
    chart
        .configure_mesh()
        .x_desc(p.x_desc.as_str())
        .y_desc(p.y_desc.as_str())
        .x_labels(ticks)
        .x_label_formatter(&|x| {
            if p.integer_x {
                format!("{}", x.round() as i64)
            } else {
                format!("{x:.0}")
            }
        })
        .y_label_formatter(&|y| {
            if y.abs() >= 100.0 {
                format!("{y:.0}")
            } else if y.abs() >= 10.0 {
                format!("{y:.1}")
            } else {
                format!("{y:.2}")
            }
        })
        .bold_line_style(GRID_BOLD)
        .light_line_style(GRID_LIGHT)
        .draw()
        .map_err(err)?;
    let mut labelled = false;
    for l in &p.lines {
        let c = color(l.color);
        let style = if l.faint {
            c.mix(0.3).stroke_width(1)
        } else {
            c.stroke_width(2)
        };
        let series = chart
            .draw_series(LineSeries::new(l.points.iter().copied(), style))
            .map_err(err)?;
        if !l.label.is_empty() {
            labelled = true;
            series.label(l.label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
            });
        }
        if l.markers {
            chart
                .draw_series(l.points.iter().map(|&q| Circle::new(q, 3, c.filled())))
                .map_err(err)?;
        }
    }
    if labelled {
        legend(&mut chart, 12)?;
    }
    Ok(())
}

/// The series' legend: a boxed list in the upper right, over the data.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    font_size: u32,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", font_size))
        .draw()
        .map_err(err)
}

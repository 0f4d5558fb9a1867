//! `bench/results.png`: one horizontal bar per metric that has a reference, its length
//! the ratio to the reference (log scale, 1x marked), green when the target is met, red
//! when not, grey without a target; the target is a black tick on the bar.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::{Error, Row};

const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Registers the chart's font as `sans-serif`: `path`, or the first of the usual
/// Debian fonts that exists.
pub fn register_font(path: Option<&Path>) -> Result<(), Error> {
    let candidates: Vec<&Path> = match path {
        Some(p) => vec![p],
        None => FONTS.iter().map(Path::new).collect(),
    };
    let Some(found) = candidates.into_iter().find(|p| p.exists()) else {
        return Err(Error::Font(
            "none of the usual fonts exists: apt-get install fonts-dejavu-core, or pass --font"
                .into(),
        ));
    };
    let bytes =
        std::fs::read(found).map_err(|e| Error::Font(format!("{}: {e}", found.display())))?;
    // The font table wants 'static bytes; one font for the process's life.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| Error::Font(format!("{} is not a TrueType font", found.display())))
}

/// Draws the ratios of `rows` into a PNG at `path`.
pub fn draw(rows: &[Row], path: &Path) -> Result<(), Error> {
    let bars: Vec<(&Row, f64)> = rows.iter().filter_map(|r| Some((r, r.ratio()?))).collect();
    let height = 120 + 34 * bars.len().max(1) as u32;
    let root = BitMapBackend::new(path, (1100, height)).into_drawing_area();
    draw_on(&root, &bars).map_err(|e| Error::Chart(e.to_string()))?;
    root.present().map_err(|e| Error::Chart(e.to_string()))
}

fn draw_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    bars: &[(&Row, f64)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let top = bars
        .iter()
        .flat_map(|(row, ratio)| [*ratio, target_of(row).unwrap_or(1.0)])
        .fold(4.0_f64, f64::max)
        * 1.6;
    let bottom = bars.iter().map(|(_, ratio)| *ratio).fold(0.5_f64, f64::min) / 1.6;
    let n = bars.len().max(1);
    let labels: Vec<String> = bars
        .iter()
        .map(|(row, _)| format!("{}: {}", row.bench, row.metric))
        .collect();
    let mut chart = ChartBuilder::on(root)
        .caption(
            "hasip against its reference, same run (ratio, above 1x: hasip better)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(430)
        .build_cartesian_2d((bottom..top).log_scale(), 0.0..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| {
            let i = y.floor() as usize;
            if (y - i as f64 - 0.5).abs() < 1e-6 {
                labels.get(n - 1 - i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("ratio (log scale)")
        .x_label_formatter(&|x| format!("{x}x"))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (row, ratio)) in bars.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        let colour = match row.met() {
            Some(true) => RGBColor(46, 160, 67),
            Some(false) => RGBColor(215, 58, 73),
            None => RGBColor(150, 150, 150),
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(bottom, y + 0.2), (*ratio, y + 0.8)],
            colour.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{ratio:.2}x"),
            (*ratio * 1.04, y + 0.35),
            ("sans-serif", 13),
        )))?;
        if let Some(target) = target_of(row) {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(target, y + 0.05), (target, y + 0.95)],
                BLACK.stroke_width(3),
            )))?;
        }
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, n as f64)],
        BLACK.mix(0.4).stroke_width(1),
    )))?;
    Ok(())
}

/// The ratio a target asks for, if it is a ratio.
fn target_of(row: &Row) -> Option<f64> {
    match row.rule? {
        crate::Rule::AtLeast(x) | crate::Rule::Above(x) => Some(x),
        crate::Rule::HasipZero | crate::Rule::HasipAtMost(_) => None,
    }
}

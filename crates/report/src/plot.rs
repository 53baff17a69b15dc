//! The two charts of a training report: loss per epoch, and retrieval metrics per epoch.
//!
//! Drawn with plotters' bitmap backend into memory and encoded as PNG with the `png` crate. Text
//! uses DejaVu Sans compiled into the binary (the `dejavu` crate), registered with plotters'
//! `ab_glyph` font support, so rendering never looks for system fonts.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::image::{encode_png, Pixels};
use crate::{EpochMetrics, ReportError};

/// Image size in pixels.
const WIDTH: u32 = 900;
const HEIGHT: u32 = 560;

/// Line colours (the matplotlib "tab10" palette), one per series.
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// One line of a chart.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// Makes DejaVu Sans plotters' "sans-serif" font (once per process).
fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok =
        *REGISTERED.get_or_init(|| register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular()).is_ok());
    if ok {
        Ok(())
    } else {
        Err("the embedded DejaVu Sans font could not be loaded".into())
    }
}

/// `[lo, hi]` widened by 5% each side (or by 0.5 around a single value), optionally clamped.
fn padded(values: impl Iterator<Item = f64>, clamp: Option<(f64, f64)>) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    let (mut lo, mut hi) = (lo - pad, hi + pad);
    if let Some((min, max)) = clamp {
        lo = lo.max(min);
        hi = hi.min(max);
    }
    lo..hi
}

/// An epoch tick label: whole epochs only (plotters may place ticks between them).
fn epoch_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round())
    } else {
        String::new()
    }
}

/// Draws `series` (already non-empty) into an RGB buffer.
fn draw(
    buf: &mut [u8],
    title: &str,
    y_desc: &str,
    series: &[Series],
    y_clamp: Option<(f64, f64)>,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (first, last) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let x_range = (first - 0.3)..(last + 0.3);
    let y_range = padded(all().map(|p| p.1), y_clamp);
    let root = BitMapBackend::with_buffer(buf, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(18)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|e| err(&e))?;
    let epochs = (last - first).round() as usize + 1;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .x_labels(epochs.clamp(2, 12))
        .x_label_formatter(&epoch_label)
        .y_label_formatter(&|y| format!("{y:.3}"))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| err(&e))?;
    for (k, s) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3)));
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

/// Writes `bytes` to `path` atomically, naming the file in the error.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    embedrank_core::fsutil::write_atomic(path, bytes).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Renders `series` (empty series dropped) as a PNG chart at `out`.
fn render(
    out: &Path,
    title: &str,
    y_desc: &str,
    series: Vec<Series>,
    y_clamp: Option<(f64, f64)>,
) -> Result<(), ReportError> {
    let series: Vec<Series> = series.into_iter().filter(|s| !s.points.is_empty()).collect();
    if series.is_empty() {
        return Err(ReportError::Empty {
            path: out.to_path_buf(),
            reason: "no finite values to plot",
        });
    }
    let draw_err = |reason| ReportError::Draw {
        path: out.to_path_buf(),
        reason,
    };
    ensure_font().map_err(draw_err)?;
    let mut buf = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    draw(&mut buf, title, y_desc, &series, y_clamp).map_err(draw_err)?;
    write_atomic(out, &encode_png(WIDTH, HEIGHT, Pixels::Rgb, &buf).map_err(draw_err)?)
}

/// The (epoch, value) points of one metric, skipping absent and non-finite values.
fn points(epochs: &[EpochMetrics], value: impl Fn(&EpochMetrics) -> Option<f64>) -> Vec<(f64, f64)> {
    epochs
        .iter()
        .filter_map(|e| value(e).filter(|v| v.is_finite()).map(|v| (e.epoch as f64, v)))
        .collect()
}

/// Writes `out` (PNG): the training loss per epoch.
pub fn plot_loss(epochs: &[EpochMetrics], out: &Path) -> Result<(), ReportError> {
    let loss = Series {
        name: "loss".into(),
        points: points(epochs, |e| e.loss),
    };
    render(out, "Training loss", "loss", vec![loss], None)
}

/// Writes `out` (PNG): Recall@K for every K present, and MAP@R, per evaluated epoch.
pub fn plot_retrieval(epochs: &[EpochMetrics], out: &Path) -> Result<(), ReportError> {
    let mut ks: Vec<usize> = epochs
        .iter()
        .flat_map(|e| e.scores.recall_at_k.iter().map(|(k, _)| *k))
        .collect();
    ks.sort_unstable();
    ks.dedup();
    let mut series: Vec<Series> = ks
        .into_iter()
        .map(|k| Series {
            name: format!("Recall@{k}"),
            points: points(epochs, |e| e.scores.recall(k)),
        })
        .collect();
    series.push(Series {
        name: "MAP@R".into(),
        points: points(epochs, |e| e.scores.mean_average_precision_at_r),
    });
    render(
        out,
        "Retrieval on the evaluation set",
        "score",
        series,
        Some((0.0, 1.0)),
    )
}

#[cfg(test)]
mod tests {
    use embedrank_core::Scores;

    use super::*;

    fn epoch(k: u64, loss: f64, eval: bool) -> EpochMetrics {
        let r1 = 0.5 + 0.04 * k as f64;
        EpochMetrics {
            epoch: k,
            loss: Some(loss),
            img_per_s: Some(1000.0),
            scores: Scores {
                precision_at_1: eval.then_some(r1),
                recall_at_k: if eval { vec![(1, r1), (10, r1 + 0.3)] } else { vec![] },
                mean_average_precision_at_r: eval.then_some(r1 - 0.2),
                ..Scores::default()
            },
        }
    }

    /// Decodes a PNG written by `render`: (width, height, RGB bytes).
    fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn has_color(rgb: &[u8], c: RGBColor) -> bool {
        rgb.chunks_exact(3).any(|p| p == [c.0, c.1, c.2])
    }

    /// Pixels in rows `rows` that are dark grey or black: text, since lines are coloured.
    fn dark_pixels(rgb: &[u8], rows: Range<usize>) -> usize {
        let w = WIDTH as usize;
        rgb[rows.start * w * 3..rows.end * w * 3]
            .chunks_exact(3)
            .filter(|p| p.iter().all(|&v| v < 100))
            .count()
    }

    #[test]
    fn draws_loss_and_retrieval_with_text() {
        let dir = tempfile::tempdir().unwrap();
        let epochs: Vec<EpochMetrics> = (1..=6).map(|k| epoch(k, 1.0 / k as f64, k % 3 == 0)).collect();
        let (loss, retrieval) = (dir.path().join("loss.png"), dir.path().join("retrieval.png"));
        plot_loss(&epochs, &loss).unwrap();
        plot_retrieval(&epochs, &retrieval).unwrap();
        for path in [&loss, &retrieval] {
            let (w, h, rgb) = decode(path);
            assert_eq!((w, h), (WIDTH, HEIGHT));
            // The caption (top 50 rows) is rendered text: without a working font it stays blank.
            assert!(dark_pixels(&rgb, 0..50) > 200, "{}: no caption text", path.display());
        }
        let (_, _, rgb) = decode(&loss);
        assert!(has_color(&rgb, COLORS[0]));
        assert!(!has_color(&rgb, COLORS[1]));
        // Retrieval: Recall@1, Recall@10 and MAP@R, three colours.
        let (_, _, rgb) = decode(&retrieval);
        assert!(has_color(&rgb, COLORS[0]) && has_color(&rgb, COLORS[1]) && has_color(&rgb, COLORS[2]));
        assert!(!has_color(&rgb, COLORS[3]));
    }

    #[test]
    fn single_epoch_and_missing_values() {
        let dir = tempfile::tempdir().unwrap();
        let one = vec![epoch(1, 0.7, true)];
        plot_loss(&one, &dir.path().join("a.png")).unwrap();
        plot_retrieval(&one, &dir.path().join("b.png")).unwrap();
        let no_eval = vec![epoch(1, 0.7, false), epoch(2, f64::NAN, false)];
        let e = plot_retrieval(&no_eval, &dir.path().join("c.png"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.png") && e.contains("no finite values"), "{e}");
        assert!(!dir.path().join("c.png").exists());
    }
}

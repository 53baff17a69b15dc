//! `report.html`: one self-contained page for a run — its config, the loss and metric charts, the
//! metrics of every epoch, one table per protocol and, for image datasets, a grid of queries each
//! with its top-k retrieved images outlined green (same class) or red (another class).
//!
//! The writer takes plain data ([`Page`]); everything is embedded (images as base64 `data:` URIs,
//! inline CSS, no scripts, no network). Every text taken from files is HTML-escaped ([`escape`]).
//! Each query of the grid is one `<tr class="grid-row">`, so a reader (or a test) can count them.

use std::fmt::Write;
use std::path::Path;

use embedrank_core::Scores;

use crate::image::data_uri;
use crate::{EpochMetrics, ReportError};

/// A titled chart (PNG bytes).
#[derive(Debug, Clone)]
pub struct Chart {
    /// What it shows.
    pub title: String,
    /// The encoded image.
    pub png: Vec<u8>,
}

/// One protocol's scores and how it was run.
#[derive(Debug, Clone)]
pub struct ProtocolTable {
    /// The protocol's name.
    pub name: String,
    /// Its query and reference sets, in words.
    pub description: String,
    /// The metrics.
    pub scores: Scores,
}

/// A thumbnail (PNG or JPEG bytes) with a caption.
#[derive(Debug, Clone)]
pub struct Thumb {
    /// The encoded image.
    pub image: Vec<u8>,
    /// Shown under it (e.g. the label and the score).
    pub caption: String,
}

/// A retrieved image and whether it has the query's class.
#[derive(Debug, Clone)]
pub struct Retrieved {
    /// The image.
    pub thumb: Thumb,
    /// Same class as the query (outlined green), or not (red).
    pub correct: bool,
}

/// One query of the grid with its top-k results, best first.
#[derive(Debug, Clone)]
pub struct GridRow {
    /// Why this query is shown (`sample`, `worst`).
    pub group: String,
    /// The query image.
    pub query: Thumb,
    /// A line about the query (e.g. its correct results among the top k).
    pub note: String,
    /// The retrieved images, best first.
    pub results: Vec<Retrieved>,
}

/// The retrieval grid of one protocol.
#[derive(Debug, Clone)]
pub struct Grid {
    /// Which protocol, which checkpoint, how the rows were picked.
    pub caption: String,
    /// The rows, in display order.
    pub rows: Vec<GridRow>,
}

/// Everything `report.html` shows.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The page title (the run's folder).
    pub title: String,
    /// The run's `config.toml`, verbatim, if there is one.
    pub config: Option<String>,
    /// The charts.
    pub charts: Vec<Chart>,
    /// The records of `metrics.jsonl`.
    pub epochs: Vec<EpochMetrics>,
    /// One table per protocol.
    pub tables: Vec<ProtocolTable>,
    /// The retrieval grid, if it could be made.
    pub grid: Option<Grid>,
    /// Remarks shown at the top (e.g. why there is no grid).
    pub notes: Vec<String>,
}

/// `text` with `&`, `<`, `>`, `"` and `'` replaced by entities: safe inside elements and quoted
/// attributes.
pub fn escape(text: &str) -> String {
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

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}\
table.metrics{border-collapse:collapse}table.metrics td,table.metrics th{border:1px solid #ccc;padding:2px 8px;text-align:right}\
table.metrics th{background:#f2f2f2}pre{background:#f7f7f7;padding:.8em;overflow:auto;max-height:30em}\
.charts img{max-width:100%;width:640px;margin-right:1em}.note{color:#8a4b00}\
table.grid{border-collapse:separate;border-spacing:6px}table.grid td{vertical-align:top}\
figure{margin:0;text-align:center;font-size:11px}figure img{width:96px;height:96px;object-fit:contain;\
image-rendering:pixelated;background:#000}figcaption{max-width:104px;overflow-wrap:anywhere}\
.query img{outline:4px solid #1f5fbf}.correct img{outline:4px solid #1a9c1a}.wrong img{outline:4px solid #d22}\
td.info{font-size:12px;max-width:9em}";

/// Renders `page` as one HTML document.
pub fn render(page: &Page) -> String {
    let mut h = String::new();
    let title = escape(&page.title);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>embedrank report: {title}</title>\
         <style>{STYLE}</style></head><body>\n<h1>embedrank report: {title}</h1>\n"
    );
    for note in &page.notes {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", escape(note));
    }
    if !page.charts.is_empty() {
        h.push_str("<h2>Curves</h2>\n<div class=\"charts\">");
        for c in &page.charts {
            let t = escape(&c.title);
            let _ = write!(h, "<img src=\"{}\" alt=\"{t}\" title=\"{t}\">", data_uri(&c.png));
        }
        h.push_str("</div>\n");
    }
    if !page.tables.is_empty() {
        h.push_str("<h2>Protocols</h2>\n");
        for t in &page.tables {
            let _ = writeln!(h, "<h3>{}</h3>\n<p>{}</p>", escape(&t.name), escape(&t.description));
            scores_table(&mut h, &t.scores);
        }
    }
    if let Some(grid) = &page.grid {
        grid_html(&mut h, grid);
    }
    if !page.epochs.is_empty() {
        epochs_table(&mut h, &page.epochs);
    }
    if let Some(cfg) = &page.config {
        let _ = writeln!(h, "<h2>Config</h2>\n<pre class=\"config\">{}</pre>", escape(cfg));
    }
    h.push_str("</body></html>\n");
    h
}

/// Renders `page` and writes it to `path` atomically.
pub fn write_html(path: &Path, page: &Page) -> Result<(), ReportError> {
    embedrank_core::fsutil::write_atomic(path, render(page).as_bytes()).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v:.4}")
    }
}

fn scores_table(h: &mut String, scores: &Scores) {
    h.push_str("<table class=\"metrics\"><tr><th>metric</th><th>value</th></tr>");
    for (name, v) in scores.entries() {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(&name), number(v));
    }
    h.push_str("</table>\n");
}

fn epochs_table(h: &mut String, epochs: &[EpochMetrics]) {
    let mut names: Vec<String> = Vec::new();
    for e in epochs {
        for (n, _) in e.scores.entries() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    h.push_str("<h2>Epochs</h2>\n<table class=\"metrics epochs\"><tr><th>epoch</th><th>loss</th><th>img/s</th>");
    for n in &names {
        let _ = write!(h, "<th>{}</th>", escape(n));
    }
    h.push_str("</tr>");
    let opt = |v: Option<f64>| v.map_or_else(String::new, number);
    for e in epochs {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            e.epoch,
            opt(e.loss),
            e.img_per_s.map_or_else(String::new, |v| format!("{v:.0}"))
        );
        let entries = e.scores.entries();
        for n in &names {
            let v = entries.iter().find(|(m, _)| m == n).map(|(_, v)| *v);
            let _ = write!(h, "<td>{}</td>", opt(v));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>\n");
}

fn figure(h: &mut String, class: &str, t: &Thumb) {
    let cap = escape(&t.caption);
    let _ = write!(
        h,
        "<figure class=\"{class}\"><img src=\"{}\" alt=\"{cap}\"><figcaption>{cap}</figcaption></figure>",
        data_uri(&t.image)
    );
}

fn grid_html(h: &mut String, grid: &Grid) {
    let _ = writeln!(
        h,
        "<h2>Retrievals</h2>\n<p class=\"grid-caption\">{}</p>\n<table class=\"grid\">",
        escape(&grid.caption)
    );
    for row in &grid.rows {
        let group = escape(&row.group);
        let _ = write!(
            h,
            "<tr class=\"grid-row\" data-group=\"{group}\"><td class=\"info\"><b>{group}</b><br>{}</td><td>",
            escape(&row.note)
        );
        figure(h, "query", &row.query);
        h.push_str("</td>");
        for r in &row.results {
            h.push_str("<td>");
            figure(h, if r.correct { "hit correct" } else { "hit wrong" }, &r.thumb);
            h.push_str("</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{encode_png, Pixels};

    fn thumb(caption: &str) -> Thumb {
        Thumb {
            image: encode_png(2, 2, Pixels::Grey, &[0, 64, 128, 255]).unwrap(),
            caption: caption.into(),
        }
    }

    fn page() -> Page {
        let row = |group: &str, correct: &[bool]| GridRow {
            group: group.into(),
            query: thumb("label 3"),
            note: "1 of 2 correct".into(),
            results: correct
                .iter()
                .map(|&c| Retrieved {
                    thumb: thumb("label 3 · 0.91"),
                    correct: c,
                })
                .collect(),
        };
        Page {
            title: "runs/<demo>".into(),
            config: Some("[model]\nname = \"a<b>&'c\"\n".into()),
            charts: vec![Chart {
                title: "loss".into(),
                png: thumb("").image,
            }],
            epochs: vec![EpochMetrics {
                epoch: 1,
                loss: Some(0.5),
                img_per_s: Some(1000.0),
                scores: Scores {
                    precision_at_1: Some(0.75),
                    ..Scores::default()
                },
            }],
            tables: vec![ProtocolTable {
                name: "test<script>".into(),
                description: "test against itself".into(),
                scores: Scores {
                    precision_at_1: Some(0.75),
                    recall_at_k: vec![(1, 0.75), (10, 0.9)],
                    ..Scores::default()
                },
            }],
            grid: Some(Grid {
                caption: "protocol test".into(),
                rows: vec![row("sample", &[true, false]), row("worst", &[false, false])],
            }),
            notes: vec!["a note & more".into()],
        }
    }

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain ü"), "plain ü");
    }

    #[test]
    fn text_from_files_is_escaped() {
        let h = render(&page());
        assert!(!h.contains("<demo>") && h.contains("runs/&lt;demo&gt;"), "title");
        assert!(h.contains("name = &quot;a&lt;b&gt;&amp;&#39;c&quot;"), "config");
        assert!(
            !h.contains("<script>") && h.contains("test&lt;script&gt;"),
            "protocol name"
        );
        assert!(h.contains("a note &amp; more"));
    }

    #[test]
    fn grid_has_one_row_per_query_and_outlines_by_correctness() {
        let h = render(&page());
        assert_eq!(h.matches("<tr class=\"grid-row\"").count(), 2);
        assert_eq!(h.matches("data-group=\"worst\"").count(), 1);
        assert_eq!(h.matches("class=\"hit correct\"").count(), 1);
        assert_eq!(h.matches("class=\"hit wrong\"").count(), 3);
        assert_eq!(h.matches("class=\"query\"").count(), 2);
        // Every image embedded, none fetched: 1 chart + 2 queries + 4 results.
        assert_eq!(h.matches("<img src=\"data:image/png;base64,").count(), 7);
        assert_eq!(h.matches("<img ").count(), 7);
        assert!(!h.contains("http://") && !h.contains("https://") && !h.contains("<script"));
    }

    #[test]
    fn tables_hold_each_metric() {
        let h = render(&page());
        assert!(h.contains("<th>recall_at_10</th><td>0.9000</td>"), "{h}");
        assert!(
            h.contains("<td>1</td><td>0.5000</td><td>1000</td><td>0.7500</td>"),
            "{h}"
        );
        let mut p = page();
        p.grid = None;
        p.config = None;
        let h = render(&p);
        assert!(!h.contains("grid-row") && !h.contains("<h2>Config</h2>"));
        assert!(h.starts_with("<!DOCTYPE html>") && h.ends_with("</html>\n"));
    }

    #[test]
    fn writes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        write_html(&path, &page()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), render(&page()));
        let e = write_html(&dir.path().join("no/such/report.html"), &page()).unwrap_err();
        assert!(e.to_string().contains("no/such/report.html"), "{e}");
    }
}

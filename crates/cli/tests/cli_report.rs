//! `embedrank report` end to end: plots from a run's metrics.jsonl, report.html with and without its
//! retrieval grid; a bad run folder is a clean error.

mod common;

use common::{assert_fails, embedrank, s, Case};

#[path = "common/replicas.rs"]
mod replicas;

#[test]
fn draws_both_plots_from_metrics() {
    let case = Case::new();
    let lines = [
        r#"{"epoch":1,"loss":0.61,"img_per_s":900.0,"precision_at_1":0.70,"recall_at_k":{"1":0.70,"10":0.95},"mean_average_precision_at_r":0.50,"r_precision":0.60}"#,
        r#"{"epoch":2,"loss":0.43,"img_per_s":950.0,"precision_at_1":0.80,"recall_at_k":{"1":0.80,"10":0.97},"mean_average_precision_at_r":0.62,"r_precision":0.70}"#,
    ];
    case.bytes("metrics.jsonl", lines.join("\n").as_bytes());
    let dir = case.path("");
    let out = embedrank(&["report", s(&dir)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = String::from_utf8_lossy(&out.stdout);
    for name in ["loss.png", "retrieval.png"] {
        let bytes = std::fs::read(case.path(name)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
        assert!(listed.contains(name), "{name} not listed in: {listed}");
    }
}

#[test]
fn a_folder_without_metrics_is_a_clear_error() {
    let case = Case::new();
    let dir = case.path("");
    assert_fails(&embedrank(&["report", s(&dir)]), &["metrics.jsonl"]);
    case.bytes("metrics.jsonl", b"{\"epoch\": 1, \"loss\": \n");
    assert_fails(&embedrank(&["report", s(&dir)]), &["metrics.jsonl", "line 1"]);
}

#[test]
fn report_html_without_a_checkpoint_has_tables_but_no_grid() {
    let case = Case::new();
    case.bytes(
        "metrics.jsonl",
        br#"{"epoch":1,"loss":0.61,"precision_at_1":0.70,"recall_at_k":{"1":0.70},"mean_average_precision_at_r":0.5}"#,
    );
    case.bytes("config.toml", b"[data]\npath = \"<b>&data\"\n");
    let out = embedrank(&["report", s(&case.path(""))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("report.html: no retrieval grid") && err.contains("checkpoint"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("report.html"));
    let html = std::fs::read_to_string(case.path("report.html")).unwrap();
    assert!(
        html.contains("path = &quot;&lt;b&gt;&amp;data&quot;"),
        "config not escaped"
    );
    assert!(html.contains("<th>recall_at_1</th><td>0.7000</td>"));
    assert_eq!(
        html.matches("<img src=\"data:image/png;base64,").count(),
        2,
        "the two charts"
    );
    assert!(!html.contains("grid-row"));
}

/// The grid on image files (an OML CSV replica): 3 sampled + 2 worst queries of the 24, each with
/// its top 4; after the data moves the grid needs --data, and without it the report still comes.
#[test]
fn report_html_grid_on_an_image_file_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, run) = replicas::csv_run(tmp.path());
    let report = |extra: &[&str]| {
        let mut args = vec![
            "report",
            s(&run),
            "--k",
            "4",
            "--queries",
            "3",
            "--worst",
            "2",
            "--threads",
            "2",
        ];
        args.extend(extra);
        let out = embedrank(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let html = std::fs::read_to_string(run.join("report.html")).unwrap();
        (html, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (html, err) = report(&[]);
    assert!(!err.contains("no retrieval grid"), "{err}");
    assert_eq!(html.matches("<tr class=\"grid-row\" data-group=\"sample\"").count(), 3);
    assert_eq!(html.matches("<tr class=\"grid-row\" data-group=\"worst\"").count(), 2);
    let hits = html.matches("class=\"hit correct\"").count() + html.matches("class=\"hit wrong\"").count();
    assert_eq!(hits, 5 * 4);
    assert_eq!(html.matches("<img src=\"data:image/png;base64,").count(), 2 + 5 * 5);
    assert!(html.contains("<h3>query-gallery</h3>"), "protocol table");
    assert!(html.contains("query (24 images) against itself, self excluded"));
    let (again, _) = report(&[]);
    assert_eq!(again, html, "seeded: the same page twice");

    let moved = tmp.path().join("moved");
    std::fs::rename(tmp.path().join("csv"), &moved).unwrap();
    let (html, err) = report(&[]);
    assert!(err.contains("no retrieval grid"), "{err}");
    assert!(!html.contains("grid-row"));
    let (html, err) = report(&["--data", s(&moved.join("df.csv"))]);
    assert!(!err.contains("no retrieval grid"), "{err}");
    assert_eq!(html.matches("<tr class=\"grid-row\"").count(), 5);
}

//! `embedrank eval`: retrieval metrics of embeddings stored as `.npy`, with PML's definitions.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use embedrank_core::eval::{
    evaluate, evaluate_excluding, is_same_set, normalise_rows, same_id_pairs, EvalConfig, EvalReport, KChoice,
    LabelledSet, Metric,
};
use embedrank_core::knn::KnnOptions;
use embedrank_data::npy;
use embedrank_torch::knn_device::evaluate_on_device;
use embedrank_torch::tch::Device;
use serde_json::{json, Value};

use crate::args::EvalArgs;
use crate::progress::Bar;

/// A set read from disk: L2-normalised embeddings and labels, checked against each other.
struct Set {
    data: Vec<f32>,
    dim: usize,
    labels: Vec<i64>,
}

impl Set {
    fn view(&self) -> LabelledSet<'_> {
        LabelledSet {
            embeddings: &self.data,
            labels: &self.labels,
        }
    }
}

fn load(emb: &Path, labels: &Path) -> anyhow::Result<Set> {
    let m = npy::read_matrix(emb)?;
    if m.rows == 0 {
        bail!("{}: the embedding set is empty (0 rows)", emb.display());
    }
    if m.cols == 0 {
        bail!("{}: the embeddings have dimension 0", emb.display());
    }
    let l = npy::read_labels(labels)?;
    if l.len() != m.rows {
        bail!(
            "{} has {} labels but {} has {} rows",
            labels.display(),
            l.len(),
            emb.display(),
            m.rows
        );
    }
    let mut data = m.data;
    normalise_rows(&mut data, m.cols).with_context(|| format!("{}", emb.display()))?;
    Ok(Set {
        data,
        dim: m.cols,
        labels: l,
    })
}

/// One integer id per row (`--ids`, `--ref-ids`).
fn read_ids(path: &Path) -> anyhow::Result<Vec<i64>> {
    Ok(npy::read_labels(path)?)
}

fn parse_k(s: &str) -> anyhow::Result<KChoice> {
    match s {
        "max_bin_count" => Ok(KChoice::MaxBinCount),
        "all" => Ok(KChoice::All),
        n => match n.parse::<usize>() {
            Ok(k) if k > 0 => Ok(KChoice::Fixed(k)),
            _ => bail!("--k must be max_bin_count, all or a positive number, not {n:?}"),
        },
    }
}

fn parse_metrics(names: &[String]) -> anyhow::Result<Vec<Metric>> {
    let mut out = Vec::new();
    if names.iter().any(|n| n.trim() == "all") {
        return Ok(Metric::ALL.to_vec());
    }
    for n in names {
        let Some(m) = Metric::parse(n) else {
            let all: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
            bail!("unknown metric {n:?}; choose from {}", all.join(", "));
        };
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

/// The libtorch device of `--knn-device`, or `None` for embedrank's own CPU kNN.
fn knn_device(name: &str) -> anyhow::Result<Option<Device>> {
    match name {
        "cpu" => Ok(None),
        "torch-cpu" => Ok(Some(Device::Cpu)),
        n if n == "cuda" || n.starts_with("cuda:") => Ok(Some(embedrank_torch::device::parse_device(n)?)),
        n => bail!("--knn-device must be cpu, cuda, cuda:N or torch-cpu, not {n:?}"),
    }
}

fn print_table(
    out: &mut impl Write,
    args: &EvalArgs,
    embeddings: &Path,
    nq: usize,
    paired: Option<usize>,
    r: &EvalReport,
) -> std::io::Result<()> {
    let against = match (&args.ref_embeddings, paired) {
        (Some(p), None) => format!("against {}", p.display()),
        (Some(p), Some(n)) => format!(
            "against {} ({n} queries paired by id with their own item, which is left out)",
            p.display()
        ),
        (None, _) => "against themselves (each query's own index excluded)".to_string(),
    };
    writeln!(out, "{nq} queries from {} {against}", embeddings.display())?;
    writeln!(
        out,
        "embeddings L2-normalised on load; ranked by cosine similarity, ties to the lower index"
    )?;
    writeln!(
        out,
        "k = {} neighbours; {} lone queries excluded, {} evaluated",
        r.k, r.num_excluded, r.num_queries
    )?;
    writeln!(out, "{:<30} {:>10}", "metric", "value")?;
    for (name, v) in r.scores.entries() {
        writeln!(out, "{name:<30} {v:>10.6}")?;
    }
    Ok(())
}

/// Runs `embedrank eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    if args.checkpoint.is_some() {
        return super::eval_model::run(args);
    }
    let (Some(embeddings), Some(labels)) = (&args.embeddings, &args.labels) else {
        bail!("give --embeddings and --labels (.npy files), or --checkpoint RUN_DIR");
    };
    let cfg = EvalConfig {
        metrics: parse_metrics(&args.metrics)?,
        k: parse_k(&args.k)?,
        recall_at: args.recall_at.clone(),
        kmeans_iters: args.kmeans_iters,
        seed: args.seed,
        knn: KnnOptions {
            block: args.block.max(1),
            symmetric: !args.no_symmetry,
            ..KnnOptions::default()
        },
        ..EvalConfig::default()
    };
    if cfg.recall_at.contains(&0) {
        bail!("--recall-at values must be at least 1");
    }
    let device = knn_device(&args.knn_device)?;
    let query = load(embeddings, labels)?;
    let reference = match (&args.ref_embeddings, &args.ref_labels) {
        (Some(e), Some(l)) => {
            let r = load(e, l)?;
            if r.dim != query.dim {
                bail!(
                    "{} has dimension {} but {} has dimension {}",
                    embeddings.display(),
                    query.dim,
                    e.display(),
                    r.dim
                );
            }
            Some(r)
        }
        _ => None,
    };
    let (q, r, bar) = (query.view(), reference.as_ref().map(Set::view), Bar::default());
    let exclude = match (&args.ids, &args.ref_ids, r) {
        (Some(qi), Some(ri), Some(r)) => Some(
            same_id_pairs(q, &read_ids(qi)?, r, &read_ids(ri)?)
                .with_context(|| format!("pairing {} with {}", qi.display(), ri.display()))?,
        ),
        _ => None,
    };
    if let (None, Some(r)) = (&exclude, r) {
        let identity: Vec<Option<u32>> = (0..q.labels.len() as u32).map(Some).collect();
        if is_same_set(q, r, &identity) {
            eprintln!(
                "warning: the reference set is the query set row for row, so each query finds itself first; \
                 pass --ids/--ref-ids (embed writes <split>_ids.npy) or leave out --ref-embeddings"
            );
        }
    }
    let paired = exclude.as_ref().map(|ex| ex.iter().flatten().count());
    // (Ids come with a reference set: `exclude` is `Some` only when `r` is.)
    let report = match (device, r, exclude.as_deref()) {
        (None, Some(r), Some(ex)) => evaluate_excluding(q, r, ex, query.dim, &cfg, &bar),
        (None, r, _) => evaluate(q, r, query.dim, &cfg, &bar),
        (Some(d), Some(r), Some(ex)) if is_same_set(q, r, ex) => evaluate_on_device(q, None, query.dim, &cfg, &bar, d),
        (Some(d), r, ex) if ex.is_none_or(|ex| ex.iter().all(Option::is_none)) => {
            evaluate_on_device(q, r, query.dim, &cfg, &bar, d)
        }
        (Some(_), ..) => {
            bail!("leaving out same-id pairs of partly shared sets runs on the CPU only: use --knn-device cpu")
        }
    }
    .with_context(|| format!("evaluating {}", embeddings.display()))?;
    if let Some(path) = &args.clusters_out {
        if report.clusters.is_empty() {
            bail!("--clusters-out needs the nmi or ami metric (they run the k-means)");
        }
        let ids: Vec<i64> = report.clusters.iter().map(|&c| i64::from(c)).collect();
        npy::write_labels(path, &ids)?;
    }
    let mut json = serde_json::to_value(&report)?;
    if let (Some(n), Value::Object(o)) = (paired, &mut json) {
        o.insert("same_id_pairs_left_out".into(), json!(n));
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    print_table(&mut stdout, args, embeddings, query.labels.len(), paired, &report)?;
    Ok(())
}

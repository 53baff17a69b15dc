//! `embedrank search`: the nearest indexed images to query images (exact cosine kNN, the core's
//! tie rule: higher score first, then the earlier row).

use std::io::Write;

use anyhow::{bail, Context};
use embedrank_core::knn::{knn, KnnOptions};
use embedrank_core::progress::NoProgress;
use serde::Serialize;

use super::index_store::{Embedder, Index};
use crate::args::SearchArgs;
use crate::progress::Console;

/// One query's results, as `--json` prints them.
#[derive(Debug, Serialize)]
struct QueryResults {
    query: String,
    results: Vec<Found>,
}

/// One retrieved image.
#[derive(Debug, Serialize)]
struct Found {
    path: String,
    score: f32,
}

/// Runs `embedrank search`.
pub fn run(args: &SearchArgs) -> anyhow::Result<()> {
    let index = Index::read(&args.index)?;
    let meta = &index.meta;
    let embedder = Embedder::load(&meta.checkpoint, &args.embed)?;
    let model = embedder.stamp()?;
    if model != meta.model {
        bail!(
            "{} was built with {} (epoch {}), but the run's latest checkpoint is now {} (epoch {}); \
             re-run `embedrank index` to rebuild it",
            args.index.display(),
            meta.model.file.display(),
            meta.model.epoch,
            model.file.display(),
            model.epoch
        );
    }
    let dim = embedder.model.net.dim();
    if dim != meta.dim || embedder.geometry() != (meta.channels, meta.image_size, meta.resize) {
        bail!(
            "{}: the index holds {}-dim embeddings of {}-channel {}-px images, the run makes {dim}-dim \
             embeddings of {:?} (channels, side, resize)",
            args.index.display(),
            meta.dim,
            meta.channels,
            meta.image_size,
            embedder.geometry()
        );
    }
    let mut console = Console::default();
    let queries = embedder.embed("queries", args.query.clone(), vec![0; args.query.len()], &mut console)?;
    if queries.indices.is_empty() {
        bail!("none of the {} query images could be read", args.query.len());
    }
    let found = knn(
        &queries.data,
        &index.embeddings,
        dim,
        args.k,
        &KnnOptions::default(),
        &NoProgress,
    )
    .context("searching the index")?;
    let results: Vec<QueryResults> = queries
        .indices
        .iter()
        .enumerate()
        .map(|(row, &q)| QueryResults {
            query: display(&args.query[q]),
            results: found
                .row(row)
                .filter(|hit| (hit.index as usize) < index.paths.len()) // a NaN query has no neighbours
                .map(|hit| Found {
                    path: display(&index.paths[hit.index as usize]),
                    score: hit.score,
                })
                .collect(),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&results)?)?;
        return Ok(());
    }
    for (n, r) in results.iter().enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        writeln!(out, "query: {}", r.query)?;
        writeln!(out, "  {:>4}  {:>7}  path", "rank", "score")?;
        for (rank, f) in r.results.iter().enumerate() {
            writeln!(out, "  {:>4}  {:>7.4}  {}", rank + 1, f.score, f.path)?;
        }
    }
    Ok(())
}

fn display(p: &std::path::Path) -> String {
    p.display().to_string()
}

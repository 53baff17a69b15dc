//! `embedrank embed`: a trained network's embeddings of a dataset's splits, as `.npy` files.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use embedrank_data::npy;
use embedrank_torch::dataset::{Images, RunData};
use embedrank_torch::evaluate;

use super::model_data;
use crate::args::EmbedArgs;
use crate::progress::Console;

/// Runs `embedrank embed`.
pub fn run(args: &EmbedArgs) -> anyhow::Result<()> {
    let s = model_data::open(&args.checkpoint, &args.data)?;
    let splits: Vec<String> = if args.split.is_empty() {
        let p = s.data.protocol("")?;
        let mut v = vec![p.query.clone()];
        if p.reference != p.query {
            v.push(p.reference.clone());
        }
        v
    } else {
        args.split.clone()
    };
    for name in &splits {
        s.data.split(name)?; // every name checked before any work
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let ids = image_ids(&s.data);
    let mut console = Console::default();
    let mut out = std::io::stdout().lock();
    let mut written: Vec<[PathBuf; 3]> = Vec::new();
    for name in &splits {
        let split = s.data.split(name)?;
        let split_ids = &ids[name.as_str()];
        let e = evaluate::embed_split(
            &s.model.net,
            split,
            &s.data_cfg,
            args.data.batch_size,
            s.device,
            &mut console,
        )?;
        let emb_path = args.out.join(format!("{name}_embeddings.npy"));
        let lab_path = args.out.join(format!("{name}_labels.npy"));
        let ids_path = args.out.join(format!("{name}_ids.npy"));
        npy::write_matrix(&emb_path, &e.data, e.labels.len(), e.dim)?;
        npy::write_labels(&lab_path, &e.labels)?;
        let row_ids: Vec<i64> = e.indices.iter().map(|&i| split_ids[i]).collect();
        npy::write_labels(&ids_path, &row_ids)?;
        writeln!(
            out,
            "{name}: {} × {} → {}, {}, {}{}",
            e.labels.len(),
            e.dim,
            emb_path.display(),
            lab_path.display(),
            ids_path.display(),
            if e.skipped > 0 {
                format!(" ({} unreadable images left out)", e.skipped)
            } else {
                String::new()
            }
        )?;
        written.push([emb_path, lab_path, ids_path]);
    }
    if let (true, [q, r]) = (args.split.is_empty(), written.as_slice()) {
        let [q, r] = [q, r].map(|f| f.each_ref().map(|p| p.display().to_string()));
        writeln!(
            out,
            "score the first split against the second, each query's own image left out, with:\n  \
             embedrank eval --embeddings {} --labels {} --ids {} --ref-embeddings {} --ref-labels {} --ref-ids {}",
            q[0], q[1], q[2], r[0], r[1], r[2]
        )?;
    }
    Ok(())
}

/// One id per image of each split of `data` (in split order): images are numbered by first
/// appearance of their file across the splits, so an image listed in two splits (an OML row that
/// is both query and gallery) has the same id in both; in-memory images are all distinct.
fn image_ids(data: &RunData) -> HashMap<&str, Vec<i64>> {
    let mut by_file: HashMap<&Path, i64> = HashMap::new();
    let mut next = 0i64;
    let mut fresh = || {
        next += 1;
        next - 1
    };
    data.splits
        .iter()
        .map(|split| {
            let ids = match &split.images {
                Images::Files(paths) => paths
                    .iter()
                    .map(|p| *by_file.entry(p.as_path()).or_insert_with(&mut fresh))
                    .collect(),
                Images::Memory(_) => (0..split.len()).map(|_| fresh()).collect(),
            };
            (split.name.as_str(), ids)
        })
        .collect()
}

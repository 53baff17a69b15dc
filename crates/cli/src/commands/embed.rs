//! `embedrank embed`: a trained network's embeddings of a dataset's splits, as `.npy` files.

use std::io::Write;

use anyhow::Context;
use embedrank_data::npy;
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
    let mut console = Console::default();
    let mut out = std::io::stdout().lock();
    for name in &splits {
        let split = s.data.split(name)?;
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
        npy::write_matrix(&emb_path, &e.data, e.labels.len(), e.dim)?;
        npy::write_labels(&lab_path, &e.labels)?;
        writeln!(
            out,
            "{name}: {} × {} → {}, {}{}",
            e.labels.len(),
            e.dim,
            emb_path.display(),
            lab_path.display(),
            if e.skipped > 0 {
                format!(" ({} unreadable images left out)", e.skipped)
            } else {
                String::new()
            }
        )?;
    }
    Ok(())
}

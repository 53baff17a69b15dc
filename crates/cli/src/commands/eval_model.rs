//! `embedrank eval --checkpoint RUN_DIR`: a trained network on a dataset's paper protocols.

use std::io::Write;

use anyhow::{bail, Context};
use embedrank_core::Scores;
use embedrank_data::dataset::Protocol;
use embedrank_torch::evaluate::{self, Pairing};
use serde_json::{json, Map, Value};

use super::model_data::{self, Session};
use crate::args::EvalArgs;
use crate::progress::Console;

/// Runs `embedrank eval --checkpoint`.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let Some(run_dir) = &args.checkpoint else {
        bail!("--checkpoint RUN_DIR is required here");
    };
    let s = model_data::open(run_dir, &args.data)?;
    let protocols: Vec<Protocol> = match &args.protocol {
        Some(name) => vec![s.data.protocol(name)?.clone()],
        None => s.data.protocols.clone(),
    };
    let mut console = Console::default();
    let mut results = Map::new();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} (epoch {}) on {} at {}",
        run_dir.display(),
        s.model.epoch,
        s.data_cfg.dataset.name(),
        s.data_cfg.path.display()
    )?;
    for p in &protocols {
        let r = score(&s, p, args.data.batch_size, &mut console)
            .with_context(|| format!("evaluating protocol {}", p.name))?;
        let pairing = evaluate::pairing(&s.data, p)?;
        print_protocol(&mut out, &s, p, pairing, &r)?;
        results.insert(p.name.clone(), protocol_json(p, pairing, &r)?);
    }
    if console.skipped > 0 {
        writeln!(out, "{} images could not be read and were left out", console.skipped)?;
    }
    if let Some(path) = &args.json {
        let doc = json!({
            "checkpoint": run_dir,
            "epoch": s.model.epoch,
            "dataset": s.data_cfg.dataset,
            "data": s.data_cfg.path,
            "skipped_images": console.skipped,
            "protocols": results,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn score(s: &Session, p: &Protocol, batch: usize, console: &mut Console) -> anyhow::Result<Scores> {
    Ok(evaluate::protocol_retrieval(
        &s.model.net,
        &s.data,
        p,
        &s.data_cfg,
        batch,
        s.device,
        console,
    )?)
}

fn describe(s: &Session, p: &Protocol, pairing: Pairing) -> anyhow::Result<String> {
    let q = s.data.split(&p.query)?.len();
    Ok(match pairing {
        Pairing::SelfSearch => format!("{} ({q} images) against itself, self excluded", p.query),
        Pairing::Separate => format!(
            "{} ({q} queries) against {} ({} images)",
            p.query,
            p.reference,
            s.data.split(&p.reference)?.len()
        ),
    })
}

fn print_protocol(out: &mut impl Write, s: &Session, p: &Protocol, pairing: Pairing, r: &Scores) -> anyhow::Result<()> {
    writeln!(out, "\nprotocol {}: {}", p.name, describe(s, p, pairing)?)?;
    super::write_summary(out, r)?;
    Ok(())
}

/// One protocol's entry of the `--json` document: its splits and the [`Scores`] record.
fn protocol_json(p: &Protocol, pairing: Pairing, r: &Scores) -> anyhow::Result<Value> {
    let mut doc = json!({
        "query": p.query,
        "reference": p.reference,
        "self_excluded": pairing == Pairing::SelfSearch,
    });
    if let (Value::Object(o), Value::Object(scores)) = (&mut doc, serde_json::to_value(r)?) {
        o.extend(scores);
    }
    Ok(doc)
}

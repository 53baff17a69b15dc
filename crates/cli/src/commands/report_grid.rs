//! The retrieval part of `report.html`: the run's latest checkpoint embeds each protocol's query
//! and reference splits (progress on stderr), each protocol is scored, and for the run's protocol
//! a grid shows a seeded sample of queries plus the worst ones, each with its exact top-k (the
//! core's kNN: higher score first, ties to the lower reference index).
//!
//! "Worst": the fewest correct results among the top k, then the latest first correct result
//! (none counts as k + 1), then the lower query row; sampled queries are not repeated there.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use embedrank_core::knn::{knn, knn_self, KnnOptions, Neighbours};
use embedrank_core::progress::NoProgress;
use embedrank_data::dataset::Protocol;
use embedrank_data::image::SampleRng;
use embedrank_report::html::{Grid, GridRow, ProtocolTable, Retrieved, Thumb};
use embedrank_torch::dataset::SplitData;
use embedrank_torch::evaluate::{self, Embedded, Pairing};

use super::model_data::{self, Session};
use super::report_thumbs;
use crate::args::ReportArgs;
use crate::progress::Console;

/// What the checkpoint gave: one table per protocol, the grid, and remarks.
pub struct Found {
    /// One table per protocol of the dataset.
    pub tables: Vec<ProtocolTable>,
    /// The grid of the run's protocol.
    pub grid: Grid,
    /// Remarks for the top of the page.
    pub notes: Vec<String>,
}

/// Loads the run's checkpoint and data and computes the tables and the grid.
pub fn gather(run_dir: &Path, args: &ReportArgs) -> anyhow::Result<Found> {
    let s = model_data::open(run_dir, &args.data)?;
    let mut console = Console::default();
    let mut cache: HashMap<String, Embedded> = HashMap::new();
    let mut tables = Vec::new();
    for p in &s.data.protocols {
        let pairing = evaluate::pairing(&s.data, p)?;
        embed_once(&mut cache, &s, &p.query, args.data.batch_size, &mut console)?;
        if pairing == Pairing::Separate {
            embed_once(&mut cache, &s, &p.reference, args.data.batch_size, &mut console)?;
        }
        let (q, r) = sets(&cache, p, pairing);
        let scores = evaluate::retrieval_metrics(q, r, &p.recall_at, None)
            .with_context(|| format!("scoring protocol {}", p.name))?;
        tables.push(ProtocolTable {
            name: p.name.clone(),
            description: describe(&s, p, pairing, q, r),
            scores,
        });
    }
    let protocol = s.data.protocol(&s.model.config.data.protocol)?.clone();
    let pairing = evaluate::pairing(&s.data, &protocol)?;
    let (q, r) = sets(&cache, &protocol, pairing);
    let grid = grid(&s, args, &protocol, q, r)?;
    let mut notes = Vec::new();
    if console.skipped > 0 {
        notes.push(format!(
            "{} images could not be read and were left out",
            console.skipped
        ));
    }
    Ok(Found { tables, grid, notes })
}

/// Embeds split `name` into `cache` unless it is there already.
fn embed_once(
    cache: &mut HashMap<String, Embedded>,
    s: &Session,
    name: &str,
    batch: usize,
    console: &mut Console,
) -> anyhow::Result<()> {
    if !cache.contains_key(name) {
        let split = s.data.split(name)?;
        let e = evaluate::embed_split(&s.model.net, split, &s.data_cfg, batch, s.device, console)?;
        cache.insert(name.to_string(), e);
    }
    Ok(())
}

/// The query set of `p` and its reference set (`None`: the query set against itself).
fn sets<'a>(
    cache: &'a HashMap<String, Embedded>,
    p: &Protocol,
    pairing: Pairing,
) -> (&'a Embedded, Option<&'a Embedded>) {
    let q = &cache[&p.query];
    match pairing {
        Pairing::SelfSearch => (q, None),
        Pairing::Separate => (q, Some(&cache[&p.reference])),
    }
}

fn describe(s: &Session, p: &Protocol, pairing: Pairing, q: &Embedded, r: Option<&Embedded>) -> String {
    let head = format!(
        "checkpoint of epoch {}, {} at {}: ",
        s.model.epoch,
        s.data_cfg.dataset.name(),
        s.data_cfg.path.display()
    );
    match (pairing, r) {
        (Pairing::Separate, Some(r)) => format!(
            "{head}{} ({} queries) against {} ({} images)",
            p.query,
            q.labels.len(),
            p.reference,
            r.labels.len()
        ),
        _ => format!(
            "{head}{} ({} images) against itself, self excluded",
            p.query,
            q.labels.len()
        ),
    }
}

/// One query's top-k judged: correct flags, best first.
fn judged(nb: &Neighbours, row: usize, q: &Embedded, r: &Embedded) -> Vec<bool> {
    nb.row(row)
        .map(|h| r.labels[h.index as usize] == q.labels[row])
        .collect()
}

/// The rows to show: `sample` seeded picks, then the `worst` of the others.
pub fn pick_rows(correct: &[Vec<bool>], sample: usize, worst: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let n = correct.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SampleRng::for_sample(seed, 0, 0, 0);
    let take = sample.min(n);
    for i in 0..take {
        let j = i + rng.below((n - i) as u64) as usize;
        order.swap(i, j);
    }
    let picked = order[..take].to_vec();
    let mut rest: Vec<usize> = order[take..].to_vec();
    let key = |&i: &usize| {
        let c = &correct[i];
        let first = c.iter().position(|&x| x).unwrap_or(c.len());
        (c.iter().filter(|&&x| x).count(), std::cmp::Reverse(first), i)
    };
    rest.sort_by_key(key);
    rest.truncate(worst);
    (picked, rest)
}

fn grid(s: &Session, args: &ReportArgs, p: &Protocol, q: &Embedded, r: Option<&Embedded>) -> anyhow::Result<Grid> {
    let opts = KnnOptions::default();
    let nb = match r {
        None => knn_self(&q.data, q.dim, args.k, &opts, &NoProgress)?,
        Some(r) => knn(&q.data, &r.data, q.dim, args.k, &opts, &NoProgress)?,
    };
    let reference = r.unwrap_or(q);
    let correct: Vec<Vec<bool>> = (0..nb.rows).map(|i| judged(&nb, i, q, reference)).collect();
    let (sample, worst) = pick_rows(&correct, args.queries, args.worst, args.seed);
    let (qs, rs) = (s.data.split(&q.split)?, s.data.split(&reference.split)?);
    let kind = s.data_cfg.dataset;
    let thumb = |split: &SplitData, index: usize, caption: String| Thumb {
        image: report_thumbs::of(split, index, kind).unwrap_or_else(|e| {
            eprintln!("report.html: no thumbnail: {e}");
            report_thumbs::placeholder()
        }),
        caption,
    };
    let mut rows = Vec::new();
    for (group, list) in [("sample", &sample), ("worst", &worst)] {
        for &i in list.iter() {
            let c = &correct[i];
            let first = c
                .iter()
                .position(|&x| x)
                .map_or_else(|| "none".to_string(), |f| format!("rank {}", f + 1));
            rows.push(GridRow {
                group: group.into(),
                query: thumb(
                    qs,
                    q.indices[i],
                    format!("query #{} · label {}", q.indices[i], q.labels[i]),
                ),
                note: format!(
                    "{} of {} correct; first correct: {first}",
                    c.iter().filter(|&&x| x).count(),
                    c.len()
                ),
                results: nb
                    .row(i)
                    .zip(c)
                    .map(|(h, &ok)| {
                        let j = h.index as usize;
                        Retrieved {
                            thumb: thumb(
                                rs,
                                reference.indices[j],
                                format!("label {} · {:.3}", reference.labels[j], h.score),
                            ),
                            correct: ok,
                        }
                    })
                    .collect(),
            });
        }
    }
    Ok(Grid {
        caption: format!(
            "Protocol {}: {} seeded queries (seed {}) and the {} worst (fewest correct in the top {}, then the \
             latest first correct result), each with its top {} retrieved images, best first, outlined green when \
             of the query's class and red otherwise.",
            p.name,
            sample.len(),
            args.seed,
            worst.len(),
            nb.k,
            nb.k
        ),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_a_seeded_sample_then_the_worst_of_the_rest() {
        let correct = vec![
            vec![true, true],   // 0
            vec![false, false], // 1: none correct
            vec![false, true],  // 2: one, late
            vec![true, false],  // 3: one, early
            vec![false, false], // 4: none correct
        ];
        let (s, w) = pick_rows(&correct, 0, 3, 7);
        assert!(s.is_empty());
        assert_eq!(w, vec![1, 4, 2]);
        let (s1, w1) = pick_rows(&correct, 2, 10, 7);
        assert_eq!(pick_rows(&correct, 2, 10, 7), (s1.clone(), w1.clone()), "seeded");
        assert_eq!(s1.len(), 2);
        assert_eq!(w1.len(), 3);
        let mut all: Vec<usize> = s1.iter().chain(&w1).copied().collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4], "no query twice");
        let (s, w) = pick_rows(&correct, 9, 9, 1);
        assert_eq!((s.len(), w.len()), (5, 0));
    }
}

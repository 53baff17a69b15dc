//! `embedrank loss`: a loss and its gradient on `.npy` inputs, to check against any other stack.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use embedrank_core::loss::{Gradients, LossInput};
use embedrank_core::{memory, settings};
use embedrank_core::{Loss, LossConfig};
use embedrank_data::npy;

use crate::args::LossArgs;

/// Runs `embedrank loss`: float32 embeddings are computed in f32 (the training path), float64
/// ones in f64 (for exact comparisons); the gradients are written as float32 either way.
pub fn run(args: &LossArgs) -> anyhow::Result<()> {
    let cfg = loss_config(args)?;
    let loss = cfg.build().with_context(|| format!("loss {}", cfg.kind()))?;
    if args.print_config {
        let mut table = toml::Table::new();
        table.insert("loss".into(), toml::Value::try_from(&cfg)?);
        write!(std::io::stdout().lock(), "{}", toml::to_string(&table)?)?;
        return Ok(());
    }
    let (Some(emb_path), Some(labels_path)) = (&args.embeddings, &args.labels) else {
        bail!("--embeddings and --labels are required");
    };
    let raw = npy::read(emb_path)?;
    let labels = npy::read_labels(labels_path)?;
    let (rows, cols) = match raw.shape.as_slice() {
        [rows, cols] => (*rows, *cols),
        _ => (usize::MAX, 0), // the conversion below reports the bad shape
    };
    let context = || format!("computing the {} loss of {}", cfg.kind(), emb_path.display());
    if let [n, _] = raw.shape[..] {
        let pairs = format!("the {} loss's {n}×{n} pair matrix", cfg.kind());
        memory::check(memory::matrix_bytes(n, n, if raw.is_f64() { 8 } else { 4 }), &pairs).with_context(context)?;
    }
    let (value, grad, proxy_grad) = if raw.is_f64() {
        let emb = npy::to_matrix_f64(raw, emb_path)?;
        check_rows(labels_path, emb_path, labels.len(), rows)?;
        let params = read_params(args, &*loss, cols, |raw, p| Ok(npy::to_matrix_f64(raw, p)?.data))?;
        let input = LossInput::new(&emb.data, emb.cols, &labels).with_params(&params);
        let g = loss.compute_f64(&input).with_context(context)?;
        (g.loss, to_f32(&g.emb), to_f32(&g.params))
    } else {
        let emb = npy::to_matrix(raw, emb_path)?;
        check_rows(labels_path, emb_path, labels.len(), rows)?;
        let params = read_params(args, &*loss, cols, |raw, p| Ok(npy::to_matrix(raw, p)?.data))?;
        let input = LossInput::new(&emb.data, emb.cols, &labels).with_params(&params);
        let Gradients { loss, emb, params } = loss.compute_f32(&input).with_context(context)?;
        (loss, emb, params)
    };
    if let Some(path) = &args.grad_out {
        npy::write_matrix(path, &grad, rows, cols)?;
    }
    if let Some(path) = &args.proxy_grad_out {
        npy::write_matrix(path, &proxy_grad, proxy_grad.len() / cols.max(1), cols)?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::json!({ "loss": value }))?;
    Ok(())
}

/// The loss's settings: its defaults, then the flags, then every `--set`, in order.
fn loss_config(args: &LossArgs) -> anyhow::Result<LossConfig> {
    let defaults = LossConfig::default_of(&args.loss).context("unknown loss")?;
    let mut tree = match serde_json::to_value(&defaults)? {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("a loss config is a table"),
    };
    let aliases = [
        ("bins", &args.bins),
        ("delta", &args.delta),
        ("weighting", &args.fappy_weighting),
    ];
    for (key, value) in aliases {
        if let Some(v) = value {
            settings::set(&mut tree, key, settings::parse_value(v))?;
        }
    }
    for assignment in &args.set {
        let (key, value) = settings::parse_assignment(assignment)?;
        let Some(key) = key.strip_prefix("loss.") else {
            bail!("--set {assignment}: `embedrank loss` takes only loss.KEY=VALUE settings");
        };
        if key == "kind" {
            bail!("--set {assignment}: the loss is chosen with --loss");
        }
        settings::set(&mut tree, key, value)?;
    }
    Ok(LossConfig::from_tree(tree)?)
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// The per-class parameters of a loss that has them (`--proxies`), read with `convert`.
fn read_params<T>(
    args: &LossArgs,
    loss: &dyn Loss,
    dim: usize,
    convert: impl Fn(npy::RawArray, &Path) -> anyhow::Result<Vec<T>>,
) -> anyhow::Result<Vec<T>> {
    let needs = loss.parameters(dim, 1).map(|spec| spec.name);
    match (&args.proxies, needs) {
        (None, None) => Ok(Vec::new()),
        (Some(path), Some(_)) => {
            let raw = npy::read(path)?;
            if raw.shape.len() != 2 || raw.shape[1] != dim {
                bail!(
                    "{}: shape {:?}, expected C×{dim} (one row per class, the embeddings' dimension)",
                    path.display(),
                    raw.shape
                );
            }
            convert(raw, path)
        }
        (None, Some(name)) => bail!(
            "the {} loss keeps one row of {name} per class: give them with --proxies P.npy (C×dim, labels 0..C-1)",
            loss.name()
        ),
        (Some(path), None) => bail!(
            "--proxies {}: the {} loss has no per-class parameters",
            path.display(),
            loss.name()
        ),
    }
}

fn check_rows(labels_path: &Path, emb_path: &Path, labels: usize, rows: usize) -> anyhow::Result<()> {
    if labels != rows {
        bail!(
            "{} has {labels} labels but {} has {rows} rows",
            labels_path.display(),
            emb_path.display()
        );
    }
    Ok(())
}

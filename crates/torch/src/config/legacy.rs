//! Reading configs of the first layout (before `[run]` and the tagged sections), as the paper
//! recipes and every checkpoint's `config.toml` / `state.json` of earlier versions hold them.
//!
//! That layout differs in two ways, both undone here on the tree before it is read:
//! - what a resume may change lived in `[data]` (`path`, `workers`, `strict`), `[model]`
//!   (`weights`) and `[train]` (`epochs`, `threads`, `eval_every`, `eval_batch_size`, `out_dir`,
//!   `device`, `chunk`, `amp`, `cudnn_benchmark`): these keys move to `[run]` (`data.path` becomes
//!   `run.data`);
//! - `[loss]`, `[sampler]`, `[optim]` and `[schedule]` listed every kind's settings (a FAPPY run
//!   saved FastAP's `bins`): a key of that old list which the section's kind does not take is
//!   dropped, with a note when a config file (not a checkpoint) is read.

use embedrank_core::sampler::SamplerConfig;
use embedrank_core::settings::{SettingsError, Tagged, Tree};
use embedrank_core::LossConfig;
use serde_json::Value;

use super::optim::OptimConfig;
use super::schedule::ScheduleConfig;

/// Keys that moved to `[run]`: (old section, old key, new key under `run`).
const MOVED: [(&str, &str, &str); 13] = [
    ("data", "path", "data"),
    ("data", "workers", "workers"),
    ("data", "strict", "strict"),
    ("model", "weights", "weights"),
    ("train", "epochs", "epochs"),
    ("train", "threads", "threads"),
    ("train", "eval_every", "eval_every"),
    ("train", "eval_batch_size", "eval_batch_size"),
    ("train", "out_dir", "out_dir"),
    ("train", "device", "device"),
    ("train", "chunk", "chunk"),
    ("train", "amp", "amp"),
    ("train", "cudnn_benchmark", "cudnn_benchmark"),
];

/// The settings the first layout listed for every kind of each tagged section.
const FLAT: [(&str, &[&str]); 4] = [
    ("loss", &["bins", "delta", "weighting"]),
    ("sampler", &["m", "batches_per_pair"]),
    (
        "optim",
        &[
            "lr",
            "head_lr_mult",
            "weight_decay",
            "momentum",
            "beta1",
            "beta2",
            "eps",
        ],
    ),
    ("schedule", &["step_epochs", "gamma", "min_lr"]),
];

/// Rewrites a tree of the first layout into the current one (a current tree passes unchanged);
/// returns a note for each setting dropped because its section's kind does not take it.
pub fn migrate(tree: &mut Tree) -> Result<Vec<String>, SettingsError> {
    for (section, old, new) in MOVED {
        let Some(value) = tree
            .get_mut(section)
            .and_then(Value::as_object_mut)
            .and_then(|t| t.remove(old))
        else {
            continue;
        };
        let run = tree
            .entry("run")
            .or_insert_with(|| Value::Object(Tree::new()))
            .as_object_mut()
            .ok_or_else(|| SettingsError::Invalid {
                key: "run".into(),
                message: "must be a section".into(),
            })?;
        if run.contains_key(new) {
            return Err(SettingsError::Invalid {
                key: format!("run.{new}"),
                message: format!("also set as {section}.{old} (the older name): keep one"),
            });
        }
        run.insert(new.to_string(), value);
    }
    let mut notes = Vec::new();
    for (section, flat) in FLAT {
        let Some(table) = tree.get_mut(section).and_then(Value::as_object_mut) else {
            continue;
        };
        let (tag, keys) = kind_keys(section, table);
        for key in flat.iter().filter(|k| !keys.iter().any(|a| a == *k)) {
            if let Some(v) = table.remove(*key) {
                notes.push(format!(
                    "[{section}] {key} = {v} is not a setting of {section} kind `{tag}`: ignored"
                ));
            }
        }
    }
    Ok(notes)
}

/// The kind named in a tagged section (its default when absent) and the keys that kind takes.
fn kind_keys(section: &str, table: &Tree) -> (String, Vec<String>) {
    fn of<T: Tagged>(table: &Tree) -> (String, Vec<String>) {
        let kind = table
            .get(T::TAG)
            .and_then(Value::as_str)
            .unwrap_or(T::KINDS[0])
            .to_string();
        let keys = T::keys_of(&kind);
        (kind, keys)
    }
    match section {
        "loss" => of::<LossConfig>(table),
        "sampler" => of::<SamplerConfig>(table),
        "optim" => of::<OptimConfig>(table),
        _ => of::<ScheduleConfig>(table),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedrank_core::settings::from_toml;

    #[test]
    fn first_layout_moves_run_keys_and_drops_other_kinds_settings() {
        let mut tree = from_toml(
            "[data]\ndataset = \"sop\"\npath = \"/d\"\n[model]\nweights = \"w.pth\"\n\
             [loss]\nkind = \"fappy\"\nbins = 10\ndelta = 0.01\n[optim]\nkind = \"sgd\"\nbeta1 = 0.9\nlr = 0.1\n\
             [train]\nepochs = 3\nbatch_size = 64\n",
        )
        .unwrap();
        let notes = migrate(&mut tree).unwrap();
        let run = tree["run"].as_object().unwrap();
        assert_eq!(run["data"], "/d");
        assert_eq!(run["weights"], "w.pth");
        assert_eq!(run["epochs"], 3);
        assert_eq!(tree["train"]["batch_size"], 64);
        assert!(tree["data"].get("path").is_none());
        assert!(tree["loss"].get("bins").is_none() && tree["loss"]["delta"] == 0.01);
        assert!(tree["optim"].get("beta1").is_none() && tree["optim"]["lr"] == 0.1);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].contains("[loss] bins = 10") && notes[0].contains("`fappy`"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_key_under_both_names_is_refused() {
        let mut tree = from_toml("[data]\npath = \"/a\"\n[run]\ndata = \"/b\"\n").unwrap();
        let err = migrate(&mut tree).unwrap_err().to_string();
        assert!(err.contains("run.data") && err.contains("data.path"), "{err}");
    }
}

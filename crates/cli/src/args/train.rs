//! Arguments of `embedrank train`: a config file, the generic `--set KEY=VALUE`, and the named
//! flags, which the torch crate's config declares ([`FLAGS`]): each is a shorthand for one key.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches};
use embedrank_core::settings;
use embedrank_torch::config::{FlagValue, Override, FLAGS};

/// Arguments of `embedrank train`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Settings come from the defaults (the Fashion-MNIST demo), then --config FILE (TOML), then the \
flags and --set KEY=VALUE in command-line order (a later one wins). Any key of the config can be set: \
--set loss.bins=20, --set optim.lr=1e-4, --set run.device=cuda; the named flags above are shorthands for \
the keys they name. Choosing a kind (--loss, --optim, --sampler, --schedule, --arch) keeps the keys the \
new kind shares with the old one and drops the others. --print-config shows the result as TOML, ready \
to be saved and edited.\n\n\
The run directory (--out) receives config.toml, checkpoints/ (after every epoch), metrics.jsonl, \
results.json and plots. --resume DIR continues the run in DIR from its last checkpoint; only the [run] \
settings (epochs, data, weights, workers, strict, device, threads, chunk, amp, cudnn_benchmark, \
eval_every, eval_batch_size) may change."
)]
pub struct TrainArgs {
    /// TOML config file (missing keys keep their defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Continue the run saved in this directory (its config.toml; [run] settings may change).
    #[arg(long, value_name = "OUT_DIR", conflicts_with_all = ["config", "overwrite", "out"])]
    pub resume: Option<PathBuf>,
    /// Replace a run already in the output directory.
    #[arg(long)]
    pub overwrite: bool,
    /// Data-parallel training on this machine: start N worker processes (like `torchrun
    /// --nproc-per-node N`); train.batch_size stays the global batch, each worker embeds 1/N of
    /// it. Workers started by another launcher (torchrun, SLURM) with RANK, WORLD_SIZE,
    /// LOCAL_RANK, MASTER_ADDR and MASTER_PORT set join without this flag.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub nproc_per_node: Option<u32>,
    /// The config's keys, from the named flags and --set.
    #[command(flatten)]
    pub settings: ConfigFlags,
}

/// The settings given on the command line, in order.
#[derive(Debug, Clone, Default)]
pub struct ConfigFlags {
    /// Every named flag and `--set`, as overrides of config keys, in command-line order.
    pub overrides: Vec<Override>,
}

const SET: &str = "set";

impl clap::Args for ConfigFlags {
    fn augment_args(cmd: Command) -> Command {
        let mut cmd = cmd.arg(
            Arg::new(SET)
                .long(SET)
                .value_name("KEY=VALUE")
                .action(ArgAction::Append)
                .allow_hyphen_values(true)
                .help("Any config key, e.g. loss.bins=20, optim.lr=1e-4, run.device=cuda (repeatable)")
                .help_heading("Settings"),
        );
        for f in FLAGS {
            let arg = Arg::new(f.long).long(f.long).help(f.help).help_heading(f.heading);
            let arg = match f.value {
                FlagValue::Value(name) => {
                    let arg = arg.value_name(name).action(ArgAction::Set).allow_negative_numbers(true);
                    match f.choices {
                        Some(choices) => arg.value_parser(PossibleValuesParser::new(choices())),
                        None => arg,
                    }
                }
                FlagValue::SetTrue | FlagValue::SetFalse => arg.action(ArgAction::SetTrue),
            };
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ConfigFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut found: Vec<(usize, Override)> = Vec::new();
        for f in FLAGS {
            let id = f.long;
            match f.value {
                FlagValue::Value(_) => {
                    let (Some(values), Some(at)) = (m.get_many::<String>(id), m.indices_of(id)) else {
                        continue;
                    };
                    for (v, i) in values.zip(at) {
                        let value = settings::parse_value(v);
                        let origin = format!("--{id} {v}");
                        found.push((
                            i,
                            Override {
                                key: f.key.into(),
                                value,
                                origin,
                            },
                        ));
                    }
                }
                FlagValue::SetTrue | FlagValue::SetFalse => {
                    if m.get_flag(id) {
                        let value = serde_json::Value::Bool(f.value == FlagValue::SetTrue);
                        let i = m.index_of(id).unwrap_or(0);
                        found.push((
                            i,
                            Override {
                                key: f.key.into(),
                                value,
                                origin: format!("--{id}"),
                            },
                        ));
                    }
                }
            }
        }
        if let (Some(values), Some(at)) = (m.get_many::<String>(SET), m.indices_of(SET)) {
            for (v, i) in values.zip(at) {
                let (key, value) = settings::parse_assignment(v)
                    .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n")))?;
                found.push((
                    i,
                    Override {
                        key,
                        value,
                        origin: format!("--set {v}"),
                    },
                ));
            }
        }
        found.sort_by_key(|(i, _)| *i);
        Ok(Self {
            overrides: found.into_iter().map(|(_, o)| o).collect(),
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

/// Parses a config enum from its TOML (kebab-case) name.
pub fn kebab<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    use serde::de::value::StrDeserializer;
    T::deserialize(StrDeserializer::<serde::de::value::Error>::new(s)).map_err(|e| e.to_string())
}

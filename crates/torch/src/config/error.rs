//! Why a training config could not be read, combined or accepted.

use std::path::PathBuf;

use embedrank_core::settings::{Difference, SettingsError};

/// A config that could not be read, overridden, validated or resumed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key's value is invalid, or the key unknown (the message names the key).
    #[error("{source}{}", origin.as_ref().map(|o| format!(" (from {o})")).unwrap_or_default())]
    Setting {
        /// What is wrong, with the key.
        #[source]
        source: SettingsError,
        /// The command-line argument that set the key, if one did.
        origin: Option<String>,
    },
    /// A config file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A config file is not valid TOML, or does not fit the config.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        #[source]
        source: Box<ConfigError>,
    },
    /// `--resume` was asked to change what the run fixed.
    #[error(
        "--resume continues the saved run with its own recipe, and these settings differ from it:\n  {}\n\
         only the [run] settings may change on resume ({}); start a new run (--out DIR) to change the others",
        differences.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "),
        run_keys.join(", ")
    )]
    ResumeChanged {
        /// The keys that differ, saved value → asked value.
        differences: Vec<Difference>,
        /// The keys a resume may change.
        run_keys: Vec<String>,
    },
}

impl ConfigError {
    /// An invalid value of `key`.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        SettingsError::Invalid {
            key: key.into(),
            message: message.into(),
        }
        .into()
    }

    /// The key this error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Setting {
                source: SettingsError::Invalid { key, .. },
                ..
            } => Some(key),
            _ => None,
        }
    }
}

impl From<SettingsError> for ConfigError {
    fn from(source: SettingsError) -> Self {
        Self::Setting { source, origin: None }
    }
}

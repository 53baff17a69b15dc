//! [`DatasetError`]: every way a dataset (an image folder's lists or Fashion-MNIST's IDX files) can
//! fail to be found, read or written; each message names the file, and the line where there is one.

use std::io;
use std::path::PathBuf;

use crate::fashion_mnist::HOW_TO_GET;
use crate::idx::IdxError;

/// Why a dataset could not be found, read or (Fashion-MNIST) written.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file or folder could not be read.
    #[error("{path}: {io}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (part of the message, not a separate cause, so it is printed once).
        io: io::Error,
    },
    /// A file the dataset needs is not there.
    #[error("{path}: missing {what}")]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
        /// What it is.
        what: String,
    },
    /// A line of a list file is wrong.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The list file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong, quoting the bad value.
        reason: String,
    },
    /// A file is wrong as a whole (not text, not a valid MAT file, inconsistent counts).
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A split or protocol name the dataset does not have.
    #[error("{dataset}: no {what} `{name}` (available: {available})")]
    UnknownName {
        /// The dataset's name.
        dataset: &'static str,
        /// "split" or "protocol".
        what: &'static str,
        /// The name asked for.
        name: String,
        /// The names there are, comma-separated.
        available: String,
    },
    /// A dataset kind held in memory was given to the image-folder reader.
    #[error("{kind}: not an image-folder dataset (those are {})", image_folder_names())]
    NotImageFolder {
        /// The kind asked for.
        kind: super::DatasetKind,
    },
    /// A Fashion-MNIST file could not be read or written, or is not valid IDX.
    #[error(transparent)]
    Idx(#[from] IdxError),
    /// A folder lacks some of Fashion-MNIST's four files.
    #[error("{dir}: no Fashion-MNIST here (missing {}); {HOW_TO_GET}", missing.join(", "))]
    FashionMnistMissing {
        /// The folder searched.
        dir: PathBuf,
        /// The files not found (with or without `.gz`).
        missing: Vec<String>,
    },
    /// The image and label files of a Fashion-MNIST split disagree on the number of examples.
    #[error("{images} holds {image_count} images but {labels} holds {label_count} labels")]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// Images in it.
        image_count: usize,
        /// The label file.
        labels: PathBuf,
        /// Labels in it.
        label_count: usize,
    },
    /// Fashion-MNIST images that are not 28×28.
    #[error("{path}: images are {rows}×{cols}, Fashion-MNIST's are 28×28")]
    ImageSize {
        /// The image file.
        path: PathBuf,
        /// Rows per image.
        rows: usize,
        /// Columns per image.
        cols: usize,
    },
    /// A Fashion-MNIST label is not one of the ten classes.
    #[error("{path}: label {index} is {value}, Fashion-MNIST's labels are 0 to 9")]
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// Position of the label.
        index: usize,
        /// The value found.
        value: u8,
    },
}

/// The image-folder kinds' names, comma-separated.
fn image_folder_names() -> String {
    let kinds = super::DatasetKind::ALL.into_iter().filter(|k| k.is_image_folder());
    kinds.map(|k| k.name()).collect::<Vec<_>>().join(", ")
}

//! The metric-learning papers' image datasets, read from their folders exactly as they ship.
//!
//! Six formats, one file each: Stanford Online Products ([`sop`]), In-Shop Clothes ([`inshop`]),
//! PKU VehicleID ([`vehicleid`]), CUB-200-2011 ([`cub`]), Cars196 ([`cars`], whose MATLAB file is
//! read by [`mat`]) and OML's generic CSV ([`csv`]). [`Dataset::open`] turns a dataset's root folder
//! into named [`Split`]s of [`ImageRecord`]s (path, class label, super-category) plus the paper
//! evaluation [`Protocol`]s as data: which split queries which, whether a query's own image is
//! excluded, and the Recall@K list. Every list file is checked line by line; a problem (missing
//! file, malformed line, unknown split value, duplicate id, a path leaving the root, an image that
//! is not there) is a [`DatasetError`] naming the file and the line, never a panic.
//! [`DatasetKind`] names these six and the two datasets held in memory (Fashion-MNIST, synthetic).

pub mod cars;
pub mod csv;
pub mod cub;
mod error;
pub mod inshop;
mod kind;
pub mod mat;
pub mod sop;
mod text;
pub mod vehicleid;

use std::path::{Path, PathBuf};

pub use error::DatasetError;
pub use kind::DatasetKind;

/// The result type of dataset reading.
pub type Result<T> = std::result::Result<T, DatasetError>;

/// One image of a split: its file, its class and (where the dataset has one) its super-category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The image file (the dataset root joined with the listed relative path).
    pub path: PathBuf,
    /// The class label (the dataset's own id where it is a number).
    pub label: i64,
    /// The super-category, an index into [`Dataset::super_names`] or the dataset's own id.
    pub super_label: Option<i64>,
}

/// A named list of images (train, test, query, gallery, small, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The split's name.
    pub name: String,
    /// Its images, in the order of the dataset's list file.
    pub images: Vec<ImageRecord>,
}

impl Split {
    /// The class labels, one per image.
    pub fn labels(&self) -> Vec<i64> {
        self.images.iter().map(|r| r.label).collect()
    }

    /// The super-category labels, if every image has one.
    pub fn super_labels(&self) -> Option<Vec<i64>> {
        self.images.iter().map(|r| r.super_label).collect()
    }

    /// The image paths, one per image.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.images.iter().map(|r| r.path.clone()).collect()
    }

    /// The number of distinct class labels.
    pub fn num_classes(&self) -> usize {
        let mut labels = self.labels();
        labels.sort_unstable();
        labels.dedup();
        labels.len()
    }
}

/// A paper's retrieval evaluation: each image of `query` ranks the images of `reference`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// The protocol's name (e.g. `test`, `small`).
    pub name: String,
    /// The split whose images are the queries.
    pub query: String,
    /// The split searched (the gallery / reference set).
    pub reference: String,
    /// Whether a reference image with the query's own path is left out of its ranking.
    pub exclude_self: bool,
    /// The K of the Recall@K values the paper reports.
    pub recall_at: Vec<usize>,
}

impl Protocol {
    fn new(name: &str, query: &str, reference: &str, exclude_self: bool, k: &[usize]) -> Self {
        Protocol {
            name: name.into(),
            query: query.into(),
            reference: reference.into(),
            exclude_self,
            recall_at: k.to_vec(),
        }
    }
}

/// A dataset read from disk: its splits, its super-category names and its paper protocols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// The format.
    pub kind: DatasetKind,
    /// The folder the list files were found in.
    pub root: PathBuf,
    /// The splits, in a fixed order per format (training split first).
    pub splits: Vec<Split>,
    /// Names of the super-categories where the dataset has names for them (In-Shop's clothing-type
    /// folders, CSV categories): `super_label` indexes this list. Empty where the ids are the dataset's own.
    pub super_names: Vec<String>,
    /// The paper evaluation protocols; the first is the default.
    pub protocols: Vec<Protocol>,
}

impl Dataset {
    /// Reads the dataset of format `kind` whose root folder (as shipped) is `dir`; a kind held in
    /// memory (not [`DatasetKind::is_image_folder`]) is a [`DatasetError::NotImageFolder`].
    ///
    /// `dir` may also be the folder holding the shipped top folder (e.g. the parent of
    /// `Stanford_Online_Products/`). For [`DatasetKind::Csv`] it is the CSV file or a folder with `df.csv`.
    pub fn open(kind: DatasetKind, dir: &Path) -> Result<Dataset> {
        match kind {
            DatasetKind::Sop => sop::open(dir),
            DatasetKind::InShop => inshop::open(dir),
            DatasetKind::VehicleId => vehicleid::open(dir),
            DatasetKind::Cub => cub::open(dir),
            DatasetKind::Cars => cars::open(dir),
            DatasetKind::Csv => csv::open(dir),
            DatasetKind::FashionMnist | DatasetKind::Synthetic => Err(DatasetError::NotImageFolder { kind }),
        }
    }

    /// The split called `name`, or an error listing the splits there are.
    pub fn split(&self, name: &str) -> Result<&Split> {
        self.splits
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| self.unknown("split", name, self.split_names()))
    }

    /// The names of the splits, in order.
    pub fn split_names(&self) -> Vec<&str> {
        self.splits.iter().map(|s| s.name.as_str()).collect()
    }

    /// The protocol called `name`, or the default (first) one for `None`.
    pub fn protocol(&self, name: Option<&str>) -> Result<&Protocol> {
        let names = || self.protocols.iter().map(|p| p.name.as_str()).collect();
        match name {
            None => self
                .protocols
                .first()
                .ok_or_else(|| self.unknown("protocol", "(default)", names())),
            Some(n) => self
                .protocols
                .iter()
                .find(|p| p.name == n)
                .ok_or_else(|| self.unknown("protocol", n, names())),
        }
    }

    fn unknown(&self, what: &'static str, name: &str, available: Vec<&str>) -> DatasetError {
        DatasetError::UnknownName {
            dataset: self.kind.name(),
            what,
            name: name.into(),
            available: available.join(", "),
        }
    }
}

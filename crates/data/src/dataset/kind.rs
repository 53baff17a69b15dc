//! [`DatasetKind`]: every dataset embedrank trains and evaluates on, named as in config files and on
//! the command line. Six are image-folder formats read by [`Dataset::open`](super::Dataset::open);
//! Fashion-MNIST ([`crate::fashion_mnist`]) and the synthetic images are held in memory.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The datasets embedrank reads (its serde name is [`name`](DatasetKind::name)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Fashion-MNIST: 60k train / 10k test 28×28 grey images, 10 classes (IDX files), held in memory.
    #[default]
    FashionMnist,
    /// Stanford Online Products (`Ebay_{train,test}.txt`).
    Sop,
    /// In-Shop Clothes Retrieval (`Eval/list_eval_partition.txt`).
    #[serde(rename = "inshop")]
    InShop,
    /// PKU VehicleID (`train_test_split/*.txt`).
    #[serde(rename = "vehicleid")]
    VehicleId,
    /// CUB-200-2011 (`images.txt`, `image_class_labels.txt`).
    Cub,
    /// Cars196 (`cars_annos.mat`).
    Cars,
    /// OML's generic CSV (`label, split, is_query, is_gallery, path[, category]`).
    Csv,
    /// Random images in memory (16 classes × 64 train, 8 × 32 test, `image_size` px): for
    /// measuring training speed without a dataset or decoding.
    Synthetic,
}

/// Every kind's name, in [`DatasetKind::ALL`] order.
const NAMES: [&str; 8] = [
    "fashion-mnist",
    "sop",
    "inshop",
    "vehicleid",
    "cub",
    "cars",
    "csv",
    "synthetic",
];

impl DatasetKind {
    /// Every kind, in documentation order.
    pub const ALL: [DatasetKind; 8] = [
        DatasetKind::FashionMnist,
        DatasetKind::Sop,
        DatasetKind::InShop,
        DatasetKind::VehicleId,
        DatasetKind::Cub,
        DatasetKind::Cars,
        DatasetKind::Csv,
        DatasetKind::Synthetic,
    ];

    /// The name used in config files and on the command line (`fashion-mnist`, `sop`, `inshop`,
    /// `vehicleid`, `cub`, `cars`, `csv`, `synthetic`).
    pub fn name(self) -> &'static str {
        NAMES[self as usize]
    }

    /// Every kind's name, in [`ALL`](Self::ALL) order.
    pub fn names() -> &'static [&'static str] {
        &NAMES
    }

    /// Whether this is an image-folder format, read by [`Dataset::open`](super::Dataset::open)
    /// (not Fashion-MNIST or the synthetic images, which are held in memory).
    pub fn is_image_folder(self) -> bool {
        !matches!(self, DatasetKind::FashionMnist | DatasetKind::Synthetic)
    }

    /// Image channels: 1 for Fashion-MNIST (grey), 3 for the others.
    pub fn channels(self) -> i64 {
        if self == DatasetKind::FashionMnist {
            1
        } else {
            3
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = String;

    /// Parses a [`name`](DatasetKind::name), ignoring ASCII case.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        DatasetKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown dataset `{s}` (one of: {})", NAMES.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_are_the_names() {
        for kind in DatasetKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.name(), "{kind:?}");
            let back: DatasetKind = serde_json::from_value(json).unwrap();
            assert_eq!(back, kind);
            assert_eq!(kind.name().parse::<DatasetKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.name());
        }
        let names: Vec<&str> = DatasetKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names, DatasetKind::names());
        assert_eq!(DatasetKind::default(), DatasetKind::FashionMnist);
    }

    #[test]
    fn unknown_names_are_refused_with_the_list() {
        let err = "in-shop".parse::<DatasetKind>().unwrap_err();
        assert!(
            err.contains("`in-shop`") && err.contains("fashion-mnist, sop, inshop"),
            "{err}"
        );
        let err = serde_json::from_str::<DatasetKind>("\"InShop\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`inshop`") && err.contains("`synthetic`"), "{err}");
        assert_eq!("SOP".parse::<DatasetKind>(), Ok(DatasetKind::Sop));
    }

    #[test]
    fn only_the_in_memory_kinds_are_not_image_folders() {
        let folders: Vec<DatasetKind> = DatasetKind::ALL.into_iter().filter(|k| k.is_image_folder()).collect();
        assert_eq!(folders.len(), 6);
        assert!(!DatasetKind::FashionMnist.is_image_folder());
        assert!(!DatasetKind::Synthetic.is_image_folder());
        assert_eq!(DatasetKind::FashionMnist.channels(), 1);
        assert_eq!(DatasetKind::Cub.channels(), 3);
    }

    #[test]
    fn the_folder_reader_refuses_in_memory_kinds() {
        let dir = std::env::temp_dir();
        for kind in [DatasetKind::FashionMnist, DatasetKind::Synthetic] {
            let err = super::super::Dataset::open(kind, &dir).unwrap_err();
            assert!(
                matches!(err, super::super::DatasetError::NotImageFolder { .. }),
                "{err}"
            );
            let msg = err.to_string();
            let want =
                format!("{kind}: not an image-folder dataset (those are sop, inshop, vehicleid, cub, cars, csv)");
            assert_eq!(msg, want);
        }
    }
}

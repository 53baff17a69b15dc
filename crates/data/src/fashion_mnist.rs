//! Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): finding it on disk and loading it.
//!
//! Four IDX files, gzipped (as shipped) or not: `train-images-idx3-ubyte`,
//! `train-labels-idx1-ubyte` (60,000 images), `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`
//! (10,000), 28×28 grey-scale pixels, labels 0–9 ([`CLASS_NAMES`]). Debian's
//! `dataset-fashion-mnist` package installs them in [`DEFAULT_DIR`]; [`locate`] looks there unless
//! given a folder, and otherwise says how to get them. Its errors are [`DatasetError`]s.

use std::path::{Path, PathBuf};

use crate::dataset::DatasetError;
use crate::idx::{self, Images};

/// Where Debian's `dataset-fashion-mnist` package puts the files.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Image height and width.
pub const SIDE: usize = 28;

/// The ten class names, indexed by label.
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The four files, without the `.gz` suffix: (train images, train labels, test images, test labels).
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// How to get the data, for error messages.
pub(crate) const HOW_TO_GET: &str = "get Fashion-MNIST with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; \
     installs it in /usr/share/datasets/fashion-mnist), or download train-images-idx3-ubyte.gz, \
     train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from \
     https://github.com/zalandoresearch/fashion-mnist (direct links: \
     http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/<file>) into one folder and pass it \
     with --data DIR";

/// One split: images and their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// `N × 28 × 28` pixels.
    pub images: Images,
    /// `N` labels in `0..10`.
    pub labels: Vec<u8>,
}

impl Split {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split has no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The labels as `i64`, the type the losses and samplers take.
    pub fn labels_i64(&self) -> Vec<i64> {
        self.labels.iter().map(|&l| i64::from(l)).collect()
    }
}

/// Fashion-MNIST's training (60,000) and test (10,000) splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FashionMnist {
    /// The training split.
    pub train: Split,
    /// The test split.
    pub test: Split,
}

/// The path of `stem` in `dir`: `stem.gz` if present, else `stem`, else `None`.
pub fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// The four files in `dir`, in [`FILES`] order, or which are missing.
fn find_all(dir: &Path) -> Result<[PathBuf; 4], DatasetError> {
    let found: Vec<Option<PathBuf>> = FILES.iter().map(|s| find_file(dir, s)).collect();
    let missing: Vec<String> = FILES
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(s, _)| format!("{s}[.gz]"))
        .collect();
    match <[Option<PathBuf>; 4]>::try_from(found) {
        Ok([Some(a), Some(b), Some(c), Some(d)]) => Ok([a, b, c, d]),
        _ => Err(DatasetError::FashionMnistMissing {
            dir: dir.to_path_buf(),
            missing,
        }),
    }
}

/// The Fashion-MNIST folder to use: `data` if given (it must hold the four files), else
/// [`DEFAULT_DIR`]; the error says how to get the data.
pub fn locate(data: Option<&Path>) -> Result<PathBuf, DatasetError> {
    let dir = data.unwrap_or(Path::new(DEFAULT_DIR));
    find_all(dir)?;
    Ok(dir.to_path_buf())
}

fn load_split(images_path: &Path, labels_path: &Path) -> Result<Split, DatasetError> {
    let images = idx::read_images(images_path)?;
    let labels = idx::read_labels(labels_path)?;
    if (images.rows, images.cols) != (SIDE, SIDE) {
        return Err(DatasetError::ImageSize {
            path: images_path.to_path_buf(),
            rows: images.rows,
            cols: images.cols,
        });
    }
    if images.count != labels.len() {
        return Err(DatasetError::CountMismatch {
            images: images_path.to_path_buf(),
            image_count: images.count,
            labels: labels_path.to_path_buf(),
            label_count: labels.len(),
        });
    }
    if let Some((index, &value)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= CLASS_NAMES.len())
    {
        return Err(DatasetError::LabelOutOfRange {
            path: labels_path.to_path_buf(),
            index,
            value,
        });
    }
    Ok(Split { images, labels })
}

impl FashionMnist {
    /// Loads both splits from `dir` (the files gzipped or plain), checking every file.
    pub fn load(dir: &Path) -> Result<Self, DatasetError> {
        let [train_images, train_labels, test_images, test_labels] = find_all(dir)?;
        Ok(Self {
            train: load_split(&train_images, &train_labels)?,
            test: load_split(&test_images, &test_labels)?,
        })
    }

    /// Writes both splits to `dir` as the four gzipped IDX files (for tests and tools that make
    /// small stand-in datasets); [`load`](Self::load) reads them back.
    pub fn save(&self, dir: &Path) -> Result<(), DatasetError> {
        let splits = [&self.train, &self.train, &self.test, &self.test];
        for (k, (stem, split)) in FILES.iter().zip(splits).enumerate() {
            let path = dir.join(format!("{stem}.gz"));
            let img = &split.images;
            if k % 2 == 0 {
                idx::write(&path, &[img.count, img.rows, img.cols], &img.data)?;
            } else {
                idx::write(&path, &[split.labels.len()], &split.labels)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in with `n` training and `n / 2` test images whose pixels encode (index, label).
    fn tiny(n: usize) -> FashionMnist {
        let split = |count: usize, offset: u8| {
            let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
            let data = (0..count)
                .flat_map(|i| std::iter::repeat_n(offset.wrapping_add(i as u8), SIDE * SIDE))
                .collect();
            Split {
                images: Images {
                    data,
                    count,
                    rows: SIDE,
                    cols: SIDE,
                },
                labels,
            }
        };
        FashionMnist {
            train: split(n, 0),
            test: split(n / 2, 100),
        }
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let data = tiny(12);
        data.save(dir.path()).unwrap();
        assert_eq!(locate(Some(dir.path())).unwrap(), dir.path());
        let back = FashionMnist::load(dir.path()).unwrap();
        assert_eq!(back, data);
        assert_eq!(back.train.images.image(3).unwrap()[0], 3);
        assert_eq!(back.test.labels_i64()[..3], [0, 1, 2]);
        assert_eq!((back.train.len(), back.test.len()), (12, 6));
    }

    #[test]
    fn reads_uncompressed_files_too() {
        let dir = tempfile::tempdir().unwrap();
        let data = tiny(4);
        data.save(dir.path()).unwrap();
        let gz = dir.path().join("t10k-labels-idx1-ubyte.gz");
        idx::write(&dir.path().join("t10k-labels-idx1-ubyte"), &[2], &data.test.labels).unwrap();
        std::fs::remove_file(gz).unwrap();
        assert_eq!(FashionMnist::load(dir.path()).unwrap(), data);
    }

    #[test]
    fn missing_files_say_how_to_get_the_data() {
        let dir = tempfile::tempdir().unwrap();
        tiny(4).save(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte.gz")).unwrap();
        let e = locate(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("missing train-labels-idx1-ubyte[.gz]"), "{e}");
        assert!(!e.contains("train-images-idx3-ubyte[.gz]"), "{e}");
        assert!(e.contains("apt-get install dataset-fashion-mnist"), "{e}");
        assert!(e.contains("https://github.com/zalandoresearch/fashion-mnist"), "{e}");
        assert!(e.contains("--data DIR"), "{e}");
        assert!(matches!(
            FashionMnist::load(dir.path()),
            Err(DatasetError::FashionMnistMissing { .. })
        ));
    }

    #[test]
    fn rejects_inconsistent_splits() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = tiny(6);
        data.train.labels.pop();
        data.save(dir.path()).unwrap();
        let e = FashionMnist::load(dir.path()).unwrap_err();
        assert!(
            matches!(
                e,
                DatasetError::CountMismatch {
                    image_count: 6,
                    label_count: 5,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("train-labels-idx1-ubyte.gz holds 5 labels"),
            "{e}"
        );

        let mut data = tiny(6);
        data.test.labels[2] = 10;
        data.save(dir.path()).unwrap();
        let e = FashionMnist::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("t10k-labels-idx1-ubyte.gz: label 2 is 10"), "{e}");

        let mut data = tiny(6);
        data.test.images.rows = 14;
        data.test.images.cols = 56;
        data.save(dir.path()).unwrap();
        let e = FashionMnist::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("images are 14×56"), "{e}");
    }

    /// The real dataset, when installed (`apt-get install dataset-fashion-mnist`).
    #[test]
    #[ignore = "needs /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)"]
    fn loads_the_installed_dataset() {
        let dir = locate(None).unwrap();
        let data = FashionMnist::load(&dir).unwrap();
        assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
        for split in [&data.train, &data.test] {
            let mut counts = [0usize; 10];
            for &l in &split.labels {
                counts[usize::from(l)] += 1;
            }
            // Fashion-MNIST is balanced: 6,000 / 1,000 per class.
            assert!(counts.iter().all(|&c| c == split.len() / 10), "{counts:?}");
        }
    }
}

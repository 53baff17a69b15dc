//! An image index on disk (`embedrank index` writes it, `embedrank search` reads it) and the
//! embedding of image files with a run's network, shared by both.
//!
//! Files: `embeddings.npy` (float32, N×dim, L2-normalised), `paths.txt` (one absolute path a
//! row), `stamps.txt` (each row's file size and modification time in ns, what an update compares),
//! `labels.npy` (int64, when known) and `index.json` ([`IndexMeta`]). The folder is written as a
//! whole next to its final place and renamed into it, so it is never seen half-written.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{bail, Context};
use embedrank_data::npy;
use embedrank_torch::config::DataAccess;
use embedrank_torch::dataset::{Images, SplitData};
use embedrank_torch::device::{parse_device, set_threads};
use embedrank_torch::evaluate::{self, Embedded};
use embedrank_torch::inference::{self, TrainedModel};
use embedrank_torch::tch::Device;
use serde::{Deserialize, Serialize};

use crate::args::EmbedRunArgs;
use crate::progress::Console;

/// `index.json`: what is needed to embed queries exactly as the indexed images were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    /// The training run's directory (absolute).
    pub checkpoint: PathBuf,
    /// Which checkpoint of the run embedded the rows.
    pub model: ModelStamp,
    /// The dataset kind the run was trained on (its decode path: 1-channel grey or RGB).
    pub dataset: String,
    /// Image channels fed to the network.
    pub channels: i64,
    /// Side of the square image fed to the network.
    pub image_size: u32,
    /// Shorter side before the centre crop (equal to `image_size` for grey images).
    pub resize: u32,
    /// Embedding dimension.
    pub dim: usize,
    /// Rows.
    pub count: usize,
    /// Whether `labels.npy` is there.
    pub labels: bool,
    /// The folder or CSV the images were listed from (absolute).
    pub images: PathBuf,
}

/// The identity of a checkpoint: an index is reused only by the very same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStamp {
    /// The checkpoint file.
    pub file: PathBuf,
    /// The epoch it was written after.
    pub epoch: usize,
    /// Its size and modification time.
    pub stamp: FileStamp,
}

/// A file's size and modification time (ns since the Unix epoch; 0 where unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// Bytes.
    pub size: u64,
    /// Modification time.
    pub mtime_ns: u64,
}

impl FileStamp {
    /// The stamp of `path`, `None` if it cannot be read.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let m = fs::metadata(path).ok()?;
        let mtime_ns = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Some(FileStamp {
            size: m.len(),
            mtime_ns,
        })
    }
}

/// An index read back.
#[derive(Debug)]
pub struct Index {
    /// `index.json`.
    pub meta: IndexMeta,
    /// One path per row.
    pub paths: Vec<PathBuf>,
    /// One stamp per row.
    pub stamps: Vec<FileStamp>,
    /// `count × dim` rows.
    pub embeddings: Vec<f32>,
    /// One label per row, when known.
    pub labels: Option<Vec<i64>>,
}

/// The file names inside an index folder.
const META: &str = "index.json";
const PATHS: &str = "paths.txt";
const STAMPS: &str = "stamps.txt";
const EMBEDDINGS: &str = "embeddings.npy";
const LABELS: &str = "labels.npy";

impl Index {
    /// Reads the index in `dir`, checking that its files agree with each other.
    pub fn read(dir: &Path) -> anyhow::Result<Index> {
        let meta_path = dir.join(META);
        let text = fs::read_to_string(&meta_path)
            .with_context(|| format!("reading {} (is {} an index?)", meta_path.display(), dir.display()))?;
        let meta: IndexMeta =
            serde_json::from_str(&text).with_context(|| format!("{}: not an embedrank index", meta_path.display()))?;
        let lines = |name: &str| -> anyhow::Result<Vec<String>> {
            let p = dir.join(name);
            let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.len() != meta.count {
                bail!(
                    "{}: {} lines, index.json says {} rows",
                    p.display(),
                    lines.len(),
                    meta.count
                );
            }
            Ok(lines)
        };
        let paths = lines(PATHS)?.into_iter().map(PathBuf::from).collect();
        let stamps_path = dir.join(STAMPS);
        let stamps = lines(STAMPS)?
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut f = l.split('\t').map(str::parse::<u64>);
                match (f.next(), f.next(), f.next()) {
                    (Some(Ok(size)), Some(Ok(mtime_ns)), None) => Ok(FileStamp { size, mtime_ns }),
                    _ => bail!("{}:{}: `{l}` is not SIZE<tab>MTIME_NS", stamps_path.display(), i + 1),
                }
            })
            .collect::<anyhow::Result<_>>()?;
        let emb_path = dir.join(EMBEDDINGS);
        let m = npy::read_matrix(&emb_path)?;
        if m.rows != meta.count || m.cols != meta.dim {
            bail!(
                "{}: {}×{}, index.json says {}×{}",
                emb_path.display(),
                m.rows,
                m.cols,
                meta.count,
                meta.dim
            );
        }
        let labels = if meta.labels {
            let p = dir.join(LABELS);
            let l = npy::read_labels(&p)?;
            if l.len() != meta.count {
                bail!(
                    "{}: {} labels, index.json says {} rows",
                    p.display(),
                    l.len(),
                    meta.count
                );
            }
            Some(l)
        } else {
            None
        };
        Ok(Index {
            meta,
            paths,
            stamps,
            embeddings: m.data,
            labels,
        })
    }

    /// Writes the index to `dir`, replacing what is there in one rename: the files go to a
    /// sibling folder first. A `dir` that exists but is not an index is refused, not replaced.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        if dir.exists() && !dir.join(META).is_file() {
            let empty = fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false);
            if !empty {
                bail!(
                    "{} exists and is not an embedrank index (no {META}); not replacing it",
                    dir.display()
                );
            }
        }
        let name = dir
            .file_name()
            .with_context(|| format!("{} has no folder name", dir.display()))?
            .to_string_lossy()
            .into_owned();
        let sibling = |tag: &str| dir.with_file_name(format!(".{name}.{tag}-{}", std::process::id()));
        let (tmp, old) = (sibling("new"), sibling("old"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let written = self.write_files(&tmp).and_then(|()| {
            if dir.exists() {
                fs::rename(dir, &old).with_context(|| format!("moving the old index {} aside", dir.display()))?;
            }
            fs::rename(&tmp, dir).with_context(|| format!("moving the new index into {}", dir.display()))
        });
        if written.is_err() {
            let _ = fs::remove_dir_all(&tmp);
            if old.exists() && !dir.exists() {
                let _ = fs::rename(&old, dir);
            }
            return written;
        }
        let _ = fs::remove_dir_all(&old);
        if let Some(parent) = dir.parent() {
            embedrank_torch::fsutil::sync_dir(parent);
        }
        Ok(())
    }

    fn write_files(&self, dir: &Path) -> anyhow::Result<()> {
        let m = &self.meta;
        npy::write_matrix(&dir.join(EMBEDDINGS), &self.embeddings, m.count, m.dim)?;
        if let Some(l) = &self.labels {
            npy::write_labels(&dir.join(LABELS), l)?;
        }
        let mut paths = String::new();
        for p in &self.paths {
            paths.push_str(p.to_str().context("a path that is not UTF-8")?);
            paths.push('\n');
        }
        let stamps: String = self
            .stamps
            .iter()
            .map(|s| format!("{}\t{}\n", s.size, s.mtime_ns))
            .collect();
        let meta = serde_json::to_string_pretty(m)? + "\n";
        for (name, text) in [(PATHS, paths), (STAMPS, stamps), (META, meta)] {
            embedrank_torch::fsutil::write_atomic(&dir.join(name), text.as_bytes())?;
        }
        embedrank_torch::fsutil::sync_dir(dir);
        Ok(())
    }
}

/// A run's network ready to embed image files, with the settings that decide how.
pub struct Embedder {
    /// The network and its config.
    pub model: TrainedModel,
    /// The run's absolute directory.
    pub run_dir: PathBuf,
    /// How files are read (the run's test transform; workers and strictness from the flags).
    pub data_cfg: DataAccess,
    device: Device,
    batch: usize,
}

impl Embedder {
    /// Loads the latest checkpoint of the run in `run_dir`.
    pub fn load(run_dir: &Path, args: &EmbedRunArgs) -> anyhow::Result<Embedder> {
        let device = parse_device(&args.device)?;
        set_threads(args.threads);
        let run_dir = fs::canonicalize(run_dir).with_context(|| format!("reading the run {}", run_dir.display()))?;
        let model =
            inference::load_run(&run_dir, device).with_context(|| format!("reading the run {}", run_dir.display()))?;
        let mut data_cfg = model.config.data_access();
        data_cfg.workers = args.workers.unwrap_or(data_cfg.workers);
        data_cfg.strict = args.strict;
        Ok(Embedder {
            model,
            run_dir,
            data_cfg,
            device,
            batch: args.batch_size,
        })
    }

    /// The checkpoint's identity.
    pub fn stamp(&self) -> anyhow::Result<ModelStamp> {
        let file = &self.model.checkpoint;
        Ok(ModelStamp {
            file: file.clone(),
            epoch: self.model.epoch,
            stamp: FileStamp::of(file).with_context(|| format!("reading {}", file.display()))?,
        })
    }

    /// Image channels, side and pre-crop side fed to the network.
    pub fn geometry(&self) -> (i64, u32, u32) {
        let channels = self.data_cfg.dataset.channels();
        if channels == 1 {
            let side = embedrank_data::fashion_mnist::SIDE as u32;
            (1, side, side)
        } else {
            (channels, self.data_cfg.image_size, self.data_cfg.resize)
        }
    }

    /// Embeds `paths` (test transform, in order; unreadable files skipped and reported to
    /// `console`, or an error with `--strict`), labelled `labels` (0 where unknown).
    pub fn embed(
        &self,
        name: &str,
        paths: Vec<PathBuf>,
        labels: Vec<i64>,
        console: &mut Console,
    ) -> anyhow::Result<Embedded> {
        let split = SplitData {
            name: name.into(),
            labels,
            super_labels: None,
            images: Images::Files(paths),
        };
        Ok(evaluate::embed_split(
            &self.model.net,
            &split,
            &self.data_cfg,
            self.batch,
            self.device,
            console,
        )?)
    }
}

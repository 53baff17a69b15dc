//! Arguments of `embedrank index` and `embedrank search`.

use std::path::PathBuf;

/// Arguments of `embedrank index`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Writes INDEX/embeddings.npy (float32, N×dim, L2-normalised), INDEX/paths.txt (the \
absolute path of each row, one a line), INDEX/labels.npy (int64, with a CSV) and INDEX/index.json (the \
checkpoint and its epoch, channels, image size, dim, count). The whole folder is replaced in one rename, so \
it is always a complete index.\n\n\
Images: a folder is walked recursively in sorted path order, taking .jpg, .jpeg and .png files (no labels); \
a CSV in open-metric-learning's convention (columns label, split, is_query, is_gallery, path; paths relative \
to the CSV's folder) gives its train rows then its validation rows, with their labels. Each image gets the \
run's test transform: resize + centre crop, ImageNet-normalised, or, for a 1-channel (Fashion-MNIST) run, \
grey (PIL's \"L\") resized to 28×28 and standardised as in training.\n\n\
Re-running on the same INDEX embeds only what changed: rows whose file has the same path, size and \
modification time are kept, new or changed files are embedded, vanished ones dropped; a different \
checkpoint (or a newer epoch of the run) re-embeds everything. An unreadable image is skipped with a \
warning, or refused with --strict."
)]
pub struct IndexArgs {
    /// A training run's directory (its latest checkpoint and settings).
    #[arg(long, value_name = "RUN_DIR")]
    pub checkpoint: PathBuf,
    /// A folder of images (walked recursively), or an OML-style df.csv.
    #[arg(long, value_name = "DIR|df.csv")]
    pub images: PathBuf,
    /// The index folder to write (or update).
    #[arg(long, value_name = "INDEX")]
    pub out: PathBuf,
    /// The embedding run.
    #[command(flatten)]
    pub embed: EmbedRunArgs,
}

/// Arguments of `embedrank search`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Embeds each query image with the index's checkpoint (the same transform as the \
indexed images) and ranks the index's rows by cosine similarity, exactly (no approximation). Ties in score \
rank the lower row (earlier in paths.txt) first. Prints, per query, its top-k paths and scores; --json prints \
[{\"query\": Q, \"results\": [{\"path\": P, \"score\": S}, ...]}, ...] instead. A query image that cannot be \
read is skipped with a warning (or refused with --strict); none readable is an error."
)]
pub struct SearchArgs {
    /// An index folder written by `embedrank index`.
    #[arg(long, value_name = "INDEX")]
    pub index: PathBuf,
    /// Query image files.
    #[arg(long, value_name = "IMG", num_args = 1.., required = true)]
    pub query: Vec<PathBuf>,
    /// Results per query (at most the index's size).
    #[arg(long, default_value_t = 10, value_parser = super::model::at_least_one)]
    pub k: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The embedding run.
    #[command(flatten)]
    pub embed: EmbedRunArgs,
}

/// How images are embedded (`index`, `search`).
#[derive(Debug, clap::Args)]
pub struct EmbedRunArgs {
    /// Stop at an unreadable image (exit status 2) instead of skipping it with a warning.
    #[arg(long)]
    pub strict: bool,
    /// Image-decoding threads (default: the run's; 0 = one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Images per forward pass (at least 1).
    #[arg(long, default_value_t = 256, value_parser = super::model::at_least_one)]
    pub batch_size: usize,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Threads of libtorch and of the kNN search (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

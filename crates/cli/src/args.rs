//! Command-line arguments (clap), one struct per subcommand.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod index;
mod model;
mod train;
pub use index::{EmbedRunArgs, IndexArgs, SearchArgs};
pub use model::DataArgs;
pub use train::TrainArgs;

/// embedrank: train and evaluate image-embedding networks that rank well (FastAP, FAPPY and the baselines).
#[derive(Debug, Parser)]
#[command(name = "embedrank", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate embeddings for retrieval: PML's metrics on an exact kNN, plus NMI/AMI.
    Eval(Box<EvalArgs>),
    /// Compute a loss (and its gradient) on embeddings stored as .npy files.
    Loss(LossArgs),
    /// Train an embedding network with a ranking loss and evaluate it (Recall@K, MAP@R).
    Train(TrainArgs),
    /// Redraw a run's plots (loss.png, retrieval.png) and write report.html (tables, retrieval grid).
    Report(ReportArgs),
    /// Embed a dataset's splits with a trained network; write embeddings and labels as .npy.
    Embed(EmbedArgs),
    /// Export a trained network as a TorchScript module (torch.jit.load) for serving.
    Export(ExportArgs),
    /// Embed a folder of images (or an OML CSV) with a trained network into a searchable index.
    Index(IndexArgs),
    /// Find an index's nearest images to query images (exact cosine kNN).
    Search(SearchArgs),
}

/// Arguments of `embedrank export`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Writes OUT (atomically): a TorchScript module, traced in inference mode, that maps a \
float32 N×C×H×W batch, normalised as at test time, to N×dim L2-normalised embeddings, for any N. Prints \
its input shape and normalisation as JSON. In Python:\n\n  \
model = torch.jit.load(\"model.pt\")\n  \
with torch.no_grad():\n      \
embeddings = model(images)  # images: N×C×H×W, (x/255 - mean) / std per channel"
)]
pub struct ExportArgs {
    /// A training run's directory (its latest checkpoint and settings).
    #[arg(long, value_name = "RUN_DIR")]
    pub checkpoint: PathBuf,
    /// The TorchScript file to write.
    #[arg(long, value_name = "FILE", default_value = "model.pt")]
    pub out: PathBuf,
}

/// Arguments of `embedrank embed`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "For each split, writes OUT/<split>_embeddings.npy (float32, N×dim, L2-normalised), \
OUT/<split>_labels.npy (int64) and OUT/<split>_ids.npy (int64, one id per image of the dataset: an image \
in two splits has the same id in both, so `eval --ids --ref-ids` can leave each query's own image out). Images are resized and centre-cropped as at test time. An image that cannot \
be decoded is skipped with a warning (its row left out) unless --strict."
)]
pub struct EmbedArgs {
    /// A training run's directory (its latest checkpoint and settings).
    #[arg(long, value_name = "RUN_DIR")]
    pub checkpoint: PathBuf,
    /// Splits to embed, comma-separated (default: those of the dataset's first protocol).
    #[arg(long, value_delimiter = ',')]
    pub split: Vec<String>,
    /// Output folder (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// The dataset and how to read it.
    #[command(flatten)]
    pub data: DataArgs,
}

/// Arguments of `embedrank report`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Writes loss.png and retrieval.png (from metrics.jsonl) and RUN_DIR/report.html, one \
self-contained page (images embedded, no network): the run's config, the curves, every epoch's metrics, one \
table per protocol of the dataset (scored with the latest checkpoint) and a retrieval grid for the run's \
protocol: --queries seeded queries plus the --worst worst ones (fewest correct among the top k, then the latest \
first correct result), each with its top --k images (exact kNN, ties to the lower index), outlined green when \
of the query's class and red otherwise. If the checkpoint or the data cannot be read (use --data when the \
data moved), report.html is written without the grid and stderr says why."
)]
pub struct ReportArgs {
    /// A training run's output folder (the one holding metrics.jsonl).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Retrieved images shown per query in report.html's grid.
    #[arg(long, default_value_t = 5, value_parser = model::at_least_one)]
    pub k: usize,
    /// Queries sampled (seeded) for the grid.
    #[arg(long, default_value_t = 8)]
    pub queries: usize,
    /// Worst queries added to the grid.
    #[arg(long, default_value_t = 4)]
    pub worst: usize,
    /// Seed of the query sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The dataset and how to read it.
    #[command(flatten)]
    pub data: DataArgs,
}

/// Arguments of `embedrank loss`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The embeddings are used exactly as given: embedrank L2-normalises NOTHING here. \
Normalise them first (as a network's last layer would) to get the papers' losses.\n\n\
float32 embeddings are computed in f32 (as in training), float64 ones in f64 (for exact comparisons \
with another implementation). Prints {\"loss\": <value>} as JSON on stdout; --grad-out writes \
d loss / d embeddings (float32, N×dim).\n\n\
Settings: each loss's own keys, as in a config's [loss] section, e.g. --set loss.bins=20 (fastap), \
--set loss.margin=0.1 (triplet). `embedrank loss --loss NAME --print-config` lists a loss's keys and \
defaults. Proxy-Anchor and normalized-softmax keep one row per class: give them with --proxies \
(C×dim, labels 0..C-1)."
)]
pub struct LossArgs {
    /// The loss to compute.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(embedrank_core::LossConfig::KINDS))]
    pub loss: String,
    /// Embeddings, an N×dim float32 or float64 .npy file (already L2-normalised; not normalised here).
    #[arg(long, value_name = "E.npy", required_unless_present = "print_config")]
    pub embeddings: Option<PathBuf>,
    /// Labels, a length-N .npy file of any integer dtype.
    #[arg(long, value_name = "L.npy", required_unless_present = "print_config")]
    pub labels: Option<PathBuf>,
    /// A setting of the loss, KEY=VALUE with KEY under `loss.` (repeatable; later ones win).
    #[arg(long = "set", value_name = "loss.KEY=VALUE")]
    pub set: Vec<String>,
    /// FastAP: number of distance bins (same as --set loss.bins=N).
    #[arg(long)]
    pub bins: Option<String>,
    /// FAPPY: finest histogram resolution; levels are 2/2^l ≥ delta, in (0, 2] (--set loss.delta=X).
    #[arg(long, allow_hyphen_values = true)]
    pub delta: Option<String>,
    /// FAPPY: how levels are weighted, halving or reference (--set loss.weighting=W).
    #[arg(long)]
    pub fappy_weighting: Option<String>,
    /// The loss's per-class parameters (Proxy-Anchor's proxies, normalized-softmax's class weights):
    /// a C×dim .npy of the embeddings' dtype, one row per class; labels must be 0..C-1.
    #[arg(long, value_name = "P.npy")]
    pub proxies: Option<PathBuf>,
    /// Write the gradient d loss / d embeddings here (float32 .npy, N×dim).
    #[arg(long, value_name = "G.npy")]
    pub grad_out: Option<PathBuf>,
    /// Write the gradient d loss / d proxies here (float32 .npy, C×dim).
    #[arg(long, value_name = "PG.npy", requires = "proxies")]
    pub proxy_grad_out: Option<PathBuf>,
    /// Print the loss's settings (its [loss] section, defaults and --set applied) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Arguments of `embedrank eval`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Embeddings are L2-normalised on load (ranking by cosine similarity); a NaN/Inf or all-zero row \
is an error. Without --ref-embeddings the query set is searched against itself, each query's own index \
excluded. With --ref-embeddings the sets are separate, unless --ids/--ref-ids pair each query with its own \
item among the references (e.g. OML's rows that are both query and gallery), which is then left out; a \
reference set equal to the query set with every query paired to itself is the self-search. Queries whose label has no other instance in the reference set are left out of the kNN metrics \
and counted as excluded, as PML's AccuracyCalculator does. Ties in score rank the lower reference index first.\n\n\
With --checkpoint RUN_DIR instead of .npy files, the run's network embeds the dataset (--dataset, --data; default: \
the run's) and every paper protocol of the dataset is scored (or --protocol NAME): SOP test vs test \
R@1/10/100/1000; In-Shop query vs gallery R@1/10/20/30/40/50; VehicleID small/medium/large R@1/5; CUB and Cars \
R@1/2/4/8; each with MAP@R and R-precision."
)]
pub struct EvalArgs {
    /// Query embeddings, an N×dim float32 or float64 .npy file.
    #[arg(
        long,
        value_name = "Q.npy",
        required_unless_present = "checkpoint",
        requires = "labels"
    )]
    pub embeddings: Option<PathBuf>,
    /// Query labels, a length-N .npy file of any integer dtype.
    #[arg(long, value_name = "QL.npy", requires = "embeddings")]
    pub labels: Option<PathBuf>,
    /// Reference embeddings (In-Shop style separate gallery); default: the query set itself.
    #[arg(long, value_name = "R.npy", requires = "ref_labels")]
    pub ref_embeddings: Option<PathBuf>,
    /// Reference labels.
    #[arg(long, value_name = "RL.npy", requires = "ref_embeddings")]
    pub ref_labels: Option<PathBuf>,
    /// Query ids, a length-N integer .npy (as `embed` writes): a reference with a query's own id is
    /// that query's own item, left out of its ranking (OML's ids; for a reference set that contains
    /// the queries).
    #[arg(long, value_name = "QI.npy", requires = "ref_ids")]
    pub ids: Option<PathBuf>,
    /// Reference ids, one per reference row (see --ids).
    #[arg(long, value_name = "RI.npy", requires_all = ["ids", "ref_embeddings"])]
    pub ref_ids: Option<PathBuf>,
    /// The K of Recall@K, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    pub recall_at: Vec<usize>,
    /// Metrics to compute, comma-separated, or all: precision_at_1, recall_at_k, r_precision,
    /// mean_average_precision_at_r, mean_average_precision, mean_reciprocal_rank, nmi, ami.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub metrics: Vec<String>,
    /// Neighbours the PML metrics see: max_bin_count (PML's choice for MAP@R), all, or a number.
    #[arg(long, default_value = "max_bin_count")]
    pub k: String,
    /// Write the metrics as JSON here.
    #[arg(long, value_name = "OUT.json")]
    pub json: Option<PathBuf>,
    /// Write each query's k-means cluster (NMI/AMI) here, as an int64 .npy.
    #[arg(long, value_name = "C.npy")]
    pub clusters_out: Option<PathBuf>,
    /// Seed of the k-means behind NMI/AMI.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Lloyd iterations of that k-means (PML's faiss k-means uses 20).
    #[arg(long, default_value_t = 20)]
    pub kmeans_iters: usize,
    /// Where the exact kNN runs: cpu (embedrank's own), cuda or cuda:N (a GPU through libtorch:
    /// chunked matrix products + topk, same neighbours and tie rule), or torch-cpu (that GPU code
    /// on libtorch's CPU, for testing). For .npy files; with --checkpoint the kNN runs on the
    /// GPU when --device is one.
    #[arg(long, value_name = "DEVICE", default_value = "cpu", conflicts_with = "checkpoint")]
    pub knn_device: String,
    /// kNN block size (rows per score tile).
    #[arg(long, default_value_t = 1024, hide = true)]
    pub block: usize,
    /// Compute the full self-similarity matrix instead of its upper triangle (for testing).
    #[arg(long, hide = true)]
    pub no_symmetry: bool,
    /// Evaluate a training run's network on a dataset's paper protocols instead of .npy files.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["embeddings", "ref_embeddings"], help_heading = "Trained network")]
    pub checkpoint: Option<PathBuf>,
    /// With --checkpoint: only this protocol (e.g. VehicleID small, medium, large).
    #[arg(long, requires = "checkpoint", help_heading = "Trained network")]
    pub protocol: Option<String>,
    /// With --checkpoint: the dataset and how to read it.
    #[command(flatten, next_help_heading = "Trained network")]
    pub data: DataArgs,
}

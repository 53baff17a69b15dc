//! embedrank-core: the pure-Rust heart of embedrank.
//!
//! Everything here is plain math on slices, free of libtorch, so it builds in seconds and can be
//! used from any framework:
//! - [`loss`]: FastAP (Cakir et al., CVPR 2019) and FAPPY (Zhong et al., ICONIP 2017), and the
//!   baselines contrastive, triplet, multi-similarity, Proxy-Anchor and normalized softmax (equal to
//!   PyTorch Metric Learning 2.9), all with exact analytic gradients;
//! - [`linalg`]: the matrix products they (and the evaluator) are built on;
//! - [`eval`]: retrieval evaluation with PML's `AccuracyCalculator` definitions, built on
//!   [`knn`] (streamed exact kNN), [`metrics`], [`kmeans`] and [`cluster`] (NMI/AMI);
//! - [`sampler`]: seeded, resumable mini-batch samplers (m-per-class, FastAP's super-category
//!   pairs, FAPPY's label shuffling);
//! - [`settings`]: configs as trees of values, the generic `--set key=value` override;
//! - [`memory`]: refusing, with the figure, a request that cannot fit in the memory available.
//!
//! Sibling crates: `embedrank-data` (file formats, datasets) and the `embedrank` command line.

pub mod cluster;
pub mod eval;
pub mod fsutil;
pub mod kmeans;
pub mod knn;
pub mod linalg;
pub mod loss;
pub mod memory;
pub mod metrics;
pub mod progress;
pub mod real;
pub mod sampler;
pub mod scores;
pub mod settings;
mod splitmix;
pub mod topk;

pub use loss::{
    Contrastive, Fappy, FappyWeighting, FastAp, Gradients, Loss, LossConfig, LossError, LossInput, LossMath,
    LossOutput, MultiSimilarity, MultiSimilarityMiner, NormalizedSoftmax, ProxyAnchor, RecallKSurrogate,
    RecallKSurrogateVariant, Roadmap, RoadmapVariant, SmoothAp, SmoothApVariant, Triplet, TripletMining,
};
pub use scores::Scores;

//! embedrank-core: the pure-Rust heart of embedrank.
//!
//! Everything here is plain math on slices, free of libtorch, so it builds in seconds and can be
//! used from any framework:
//! - [`loss`]: FastAP (Cakir et al., CVPR 2019) and FAPPY (Zhong et al., ICONIP 2017) with exact
//!   analytic gradients;
//! - [`linalg`]: the matrix products they (and the evaluator) are built on.
//!
//! Sibling crates: `embedrank-data` (file formats, datasets) and the `embedrank` command line.

pub mod linalg;
pub mod loss;
pub mod real;

pub use loss::{Fappy, FappyWeighting, FastAp, Loss, LossError, LossOutput};

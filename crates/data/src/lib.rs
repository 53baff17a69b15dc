//! embedrank-data: reading and writing the files embedrank works on.
//!
//! - [`npy`]: NumPy `.npy` arrays (embeddings, labels, gradients), read without trusting the file.

pub mod npy;

//! embedrank-data: reading and writing the files embedrank works on.
//!
//! - [`npy`]: NumPy `.npy` arrays (embeddings, labels, gradients), read without trusting the file;
//! - [`idx`]: IDX files (MNIST's format), plain or gzipped, read without trusting the file;
//! - [`fashion_mnist`]: finding and loading Fashion-MNIST, the default training data;
//! - [`dataset`]: the papers' image datasets (SOP, In-Shop, VehicleID, CUB, Cars196, OML CSV), splits and protocols;
//! - [`image`]: decoding images and the train/test transforms into normalised CHW floats;
//! - [`loader`]: the multi-threaded prefetching batch loader;
//! - [`weights`]: reading `.safetensors` and `.pth` weight files without executing code;
//! - [`fuzz`]: the entry points of the fuzz targets (`make fuzz`) and of their regression tests.

pub mod dataset;
pub mod fashion_mnist;
pub mod fuzz;
pub mod idx;
pub mod image;
pub mod loader;
pub mod npy;
pub mod weights;

//! Images for the networks: decoding ([`decode`]), the papers' train/test transforms into
//! ImageNet-normalised CHW `f32` tensors ([`transform`]) and small previews ([`thumbnail`]).

pub mod decode;
pub mod thumbnail;
pub mod transform;

pub use decode::{decode_file, ImageError, RgbImage};
pub use thumbnail::thumbnail;
pub use transform::{CropBox, Pipeline, SampleRng, Transform, IMAGENET_MEAN, IMAGENET_STD};

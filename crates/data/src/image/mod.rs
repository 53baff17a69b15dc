//! Images for the networks: decoding ([`decode`]) and the papers' train/test transforms into
//! ImageNet-normalised CHW `f32` tensors ([`transform`]), the training augmentation's parts
//! ([`augment`]).

pub mod augment;
pub mod decode;
pub mod transform;

pub use augment::{Adjust, Augment, Crop, Jitter, JitterDraw, PadWindow, Plan};
pub use decode::{decode_file, ImageError, RgbImage};
pub use transform::{CropBox, Pipeline, SampleRng, Transform, IMAGENET_MEAN, IMAGENET_STD};

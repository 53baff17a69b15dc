//! Images for the networks: decoding ([`decode`]), the papers' train/test transforms into
//! ImageNet-normalised CHW `f32` tensors ([`transform`]), the training augmentation's parts
//! ([`augment`]) and small previews ([`thumbnail`]).

pub mod augment;
pub mod decode;
pub mod thumbnail;
pub mod transform;

pub use augment::{Adjust, Augment, Crop, Jitter, JitterDraw, PadWindow, Plan};
pub use decode::{decode_file, ImageError, RgbImage};
pub use thumbnail::thumbnail;
pub use transform::{CropBox, Pipeline, SampleRng, Transform, IMAGENET_MEAN, IMAGENET_STD};

"""Fixtures for embedrank's BN-Inception parity test (crates/torch/tests/bninception_parity.rs).

Usage: python make_bninception_parity.py OUT_DIR

The reference is Cadene's pretrainedmodels 0.7.4 (requirements.txt): its BNInception (random
weights, fixed seed; the network of bn_inception-52deb4733.pth, as powerful-benchmarker uses it)
and its input convention, applied as its TransformImage does (ToSpaceBGR, ToRange255, then
Normalize with pretrained_settings' mean and std) to images that embedrank would feed (RGB in
[0, 1], normalised with the ImageNet mean and std: the ToTensor output is x * std + mean).
The batch-norm running statistics are calibrated on such 224 px inputs (as make_resnet_parity.py
does at 64 px), so that activations stay O(1) at both sizes used below.
Writes into OUT_DIR:
- bninception.safetensors and bninception.pth: the state dict (last_linear and
  num_batches_tracked included);
- input.npy: a fixed random 2x3x64x64 float32 input (ImageNet-normalised RGB);
- features.npy: the eval-mode features of input.npy after the Caffe transform: model.features,
  then the mean over the 2x2 map (pretrainedmodels' AvgPool2d(7) needs at least a 7x7 map);
- input_raw.npy: input.npy after the Caffe transform (on which embedrank with
  transform_input = false must give features.npy);
- input224.npy: a 1x3x224x224 input, and features224.npy: the full model's output on it with
  last_linear replaced by Identity (AvgPool2d(7) over the 7x7 map: powerful-benchmarker's trunk).
"""

import os
import sys

import numpy as np
import torch
from pretrainedmodels.models.bninception import BNInception, pretrained_settings
from pretrainedmodels.utils import ToRange255, ToSpaceBGR
from safetensors.torch import save_file
from torchvision import transforms

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CALIBRATION_BATCHES = 4


def caffe(x):
    """ImageNet-normalised RGB batch -> pretrainedmodels' BN-Inception input, image by image."""
    opts = pretrained_settings["bninception"]["imagenet"]
    assert opts["input_space"] == "BGR" and opts["input_range"] == [0, 255]
    tf = transforms.Compose(
        [
            ToSpaceBGR(opts["input_space"] == "BGR"),
            ToRange255(max(opts["input_range"]) == 255),
            transforms.Normalize(mean=opts["mean"], std=opts["std"]),
        ]
    )
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return torch.stack([tf(img * std + mean) for img in x])


def calibrate(model, generator):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(CALIBRATION_BATCHES):
            model.features(caffe(torch.randn(4, 3, 224, 224, generator=generator)))
    model.eval()


def main(out):
    os.makedirs(out, exist_ok=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    x224 = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    model = BNInception(num_classes=1000)
    calibrate(model, torch.Generator().manual_seed(2))
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(out, "bninception.safetensors"))
    torch.save(model.state_dict(), os.path.join(out, "bninception.pth"))
    x_raw = caffe(x)
    with torch.no_grad():
        features = model.features(x_raw).mean(dim=(2, 3))
        model.last_linear = torch.nn.Identity()
        features224 = model(caffe(x224))
    assert features.shape == (2, 1024) and features224.shape == (1, 1024)
    for name, t in (
        ("input", x),
        ("input_raw", x_raw),
        ("features", features),
        ("input224", x224),
        ("features224", features224),
    ):
        np.save(os.path.join(out, name + ".npy"), t.numpy().astype(np.float32))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

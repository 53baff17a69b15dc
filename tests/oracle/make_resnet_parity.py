"""Fixtures for embedrank's ResNet parity test (crates/torch/tests/resnet_parity.rs).

Usage: python make_resnet_parity.py OUT_DIR

For torchvision's resnet18 and resnet50 (weights=None, fixed seed), calibrates the batch-norm
running statistics on random inputs (momentum=None: a cumulative average over a few train-mode
batches) so that eval-mode activations stay O(1) through the depth, then writes into OUT_DIR:
- resnetXX.safetensors and resnetXX.pth: the state dict (fc and num_batches_tracked included);
- input.npy: a fixed random 2x3x64x64 float32 input;
- resnetXX_features.npy: the eval-mode features of input.npy (fc replaced by Identity), float32;
- resnetXX_features_cl.npy: the same with model and input in channels-last memory format (oneDNN's
  NHWC kernels round differently: about 1e-4 apart from the NCHW features for resnet50).
"""

import os
import sys

import numpy as np
import torch
import torchvision
from safetensors.torch import save_file

CALIBRATION_BATCHES = 4


def calibrate(model, generator):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(CALIBRATION_BATCHES):
            model(torch.randn(8, 3, 64, 64, generator=generator))
    model.eval()


def main(out):
    os.makedirs(out, exist_ok=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    np.save(os.path.join(out, "input.npy"), x.numpy().astype(np.float32))
    for name in ("resnet18", "resnet50"):
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(weights=None)
        calibrate(model, torch.Generator().manual_seed(2))
        sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(sd, os.path.join(out, name + ".safetensors"))
        torch.save(model.state_dict(), os.path.join(out, name + ".pth"))
        model.fc = torch.nn.Identity()
        with torch.no_grad():
            features = model(x)
        np.save(os.path.join(out, name + "_features.npy"), features.numpy().astype(np.float32))
        model = model.to(memory_format=torch.channels_last)
        with torch.no_grad():
            features = model(x.contiguous(memory_format=torch.channels_last))
        np.save(os.path.join(out, name + "_features_cl.npy"), features.numpy().astype(np.float32))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

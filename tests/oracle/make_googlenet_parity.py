"""Fixtures for embedrank's GoogLeNet parity test (crates/torch/tests/googlenet_parity.rs).

Usage: python make_googlenet_parity.py OUT_DIR

Builds torchvision's googlenet (weights=None, aux_logits=True so that the file holds the auxiliary
heads users' files hold, transform_input=True as torchvision sets it for its ImageNet weights;
fixed seed), calibrates the batch-norm running statistics on random inputs (as
make_resnet_parity.py does), then writes into OUT_DIR:
- googlenet.safetensors and googlenet.pth: the state dict (aux1, aux2, fc and
  num_batches_tracked included);
- input.npy: a fixed random 2x3x64x64 float32 input;
- googlenet_features.npy: the eval-mode features of input.npy (dropout and fc replaced by Identity);
- input_raw.npy: input.npy mapped by torchvision's _transform_input (so that it suits the
  calibrated statistics), and googlenet_features_raw.npy: its features with transform_input=False.
"""

import os
import sys

import numpy as np
import torch
import torchvision
from safetensors.torch import save_file

from make_resnet_parity import calibrate


def main(out):
    os.makedirs(out, exist_ok=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    np.save(os.path.join(out, "input.npy"), x.numpy().astype(np.float32))
    torch.manual_seed(0)
    model = torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=True, init_weights=True)
    calibrate(model, torch.Generator().manual_seed(2))
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(out, "googlenet.safetensors"))
    torch.save(model.state_dict(), os.path.join(out, "googlenet.pth"))
    model.fc = torch.nn.Identity()
    model.dropout = torch.nn.Identity()
    x_raw = model._transform_input(x)
    np.save(os.path.join(out, "input_raw.npy"), x_raw.numpy().astype(np.float32))
    for suffix, transform, inp in (("", True, x), ("_raw", False, x_raw)):
        model.transform_input = transform
        with torch.no_grad():
            features = model(inp)
        np.save(os.path.join(out, f"googlenet_features{suffix}.npy"), features.numpy().astype(np.float32))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

"""Fixtures for embedrank's Vision Transformer parity test (crates/torch/tests/vit_parity.rs).

Usage: python make_vit_parity.py OUT_DIR

For timm's vit_small_patch16_224, deit_small_patch16_224 and vit_base_patch16_224 (random weights,
a seed each, classifier `head` included), writes into OUT_DIR:
- input.npy: a fixed random 2x3x224x224 float32 input; input64.npy: a 2x3x64x64 one;
- NAME.safetensors (and vit_s16.pth): the state dict;
- NAME_token.npy: the eval-mode features of input.npy (num_classes=0: the class token after the
  final norm), float32;
- vit_s16_mean.npy: the same weights with global_pool="avg", fc_norm=False (mean of the patch
  tokens after the final norm);
- vit_s16_token64.npy: the same weights with dynamic_img_size=True on input64.npy (the position
  embedding resampled to the 4x4 patch grid).
"""

import os
import sys

import numpy as np
import timm
import torch
from safetensors.torch import save_file

MODELS = {
    "vit_s16": "vit_small_patch16_224",
    "deit_s16": "deit_small_patch16_224",
    "vit_b16": "vit_base_patch16_224",
}


def features(timm_name, state_dict, x, **kwargs):
    model = timm.create_model(timm_name, pretrained=False, num_classes=0, **kwargs)
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    assert not missing and set(unexpected) == {"head.weight", "head.bias"}, (missing, unexpected)
    model.eval()
    with torch.no_grad():
        return model(x).numpy().astype(np.float32)


def main(out):
    os.makedirs(out, exist_ok=True)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    x64 = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    np.save(os.path.join(out, "input.npy"), x.numpy())
    np.save(os.path.join(out, "input64.npy"), x64.numpy())
    for seed, (short, timm_name) in enumerate(MODELS.items()):
        torch.manual_seed(seed)
        model = timm.create_model(timm_name, pretrained=False)
        # timm's class token starts at N(0, 1e-6): make it matter for the parity check.
        with torch.no_grad():
            model.cls_token.normal_(std=0.5)
        sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(sd, os.path.join(out, short + ".safetensors"))
        np.save(os.path.join(out, short + "_token.npy"), features(timm_name, sd, x))
        if short == "vit_s16":
            torch.save(model.state_dict(), os.path.join(out, short + ".pth"))
            mean = features(timm_name, sd, x, global_pool="avg", fc_norm=False)
            np.save(os.path.join(out, short + "_mean.npy"), mean)
            dynamic = features(timm_name, sd, x64, dynamic_img_size=True)
            np.save(os.path.join(out, short + "_token64.npy"), dynamic)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

"""`embedrank export`: the TorchScript module, loaded with torch.jit.load, gives the embeddings of
`embedrank embed` (to 1e-5) for any batch size."""

import json

import numpy as np
import torch

import embedrank_cli as er
from fashion_like import fashion_like


def test_exported_module_equals_embed(tmp_path):
    data = fashion_like(tmp_path / "fm", np.random.default_rng(0))
    run = tmp_path / "run"
    er.run(["train", "--data", str(tmp_path / "fm"), "--out", str(run), "--dim", "16", "--m", "4",
            "--batch-size", "24", "--threads", "1", "--seed", "3", "--epochs", "1"])
    info = json.loads(er.run(["export", "--checkpoint", str(run), "--out", str(tmp_path / "model.pt")]).stdout)
    assert info["input"] == [1, 28, 28] and info["dim"] == 16
    er.run(["embed", "--checkpoint", str(run), "--out", str(tmp_path / "emb"), "--threads", "1"])
    want = np.load(tmp_path / "emb" / "test_embeddings.npy")
    labels = np.load(tmp_path / "emb" / "test_labels.npy")
    images, truth = data["t10k"]
    np.testing.assert_array_equal(labels, truth)  # rows in file order

    model = torch.jit.load(str(tmp_path / "model.pt"))
    x = (torch.from_numpy(images).float()[:, None] / 255.0 - info["mean"][0]) / info["std"][0]
    with torch.no_grad():
        whole = model(x).numpy()
        pieces = np.concatenate([model(x[i:i + 7]).numpy() for i in range(0, len(x), 7)])
    assert whole.shape == want.shape
    np.testing.assert_allclose(whole, want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(pieces, want, atol=1e-5, rtol=0)  # the batch size is not baked in
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-5)


def test_export_of_a_missing_run_is_a_clear_error(tmp_path):
    proc = er.run(["export", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "m.pt")], check=False)
    assert proc.returncode == 2 and "nope" in proc.stderr
    assert not (tmp_path / "m.pt").exists()

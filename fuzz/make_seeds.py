"""Writes the fuzz targets' seed inputs (small valid files of each format) into fuzz/seeds/<target>/.

Run with the project venv: .venv/bin/python fuzz/make_seeds.py. The seeds are committed; libFuzzer
mutates them (and what it finds) into fuzz/corpus/<target>/, which is not.
"""
import gzip
import io
import os
import struct
import sys
import zipfile

import numpy as np
import scipy.io
import torch
from PIL import Image
from safetensors.numpy import save as st_save

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def put(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def npy_bytes(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


rng = np.random.default_rng(0)
put("npy", "f32", npy_bytes(rng.standard_normal((3, 4)).astype(np.float32)))
put("npy", "f64_fortran", npy_bytes(np.asfortranarray(rng.standard_normal((2, 3)))))
put("npy", "i64_labels", npy_bytes(np.array([3, 1, 4, 1, 5], dtype=np.int64)))
put("npy", "u8_column", npy_bytes(np.array([[1], [2]], dtype=np.uint8)))
put("npy", "bool", npy_bytes(np.array([True, False])))
put("npy", "big_endian", npy_bytes(np.arange(6, dtype=">f8").reshape(2, 3)))


def idx_bytes(a):
    return bytes([0, 0, 8, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape) + a.tobytes()


images = rng.integers(0, 256, (2, 3, 3), dtype=np.uint8)
put("idx", "images", idx_bytes(images))
put("idx", "labels", idx_bytes(np.array([1, 7, 3], dtype=np.uint8)))
put("idx", "images_gz", gzip.compress(idx_bytes(images)))


def mat_bytes(variables):
    b = io.BytesIO()
    scipy.io.savemat(b, variables)
    return b.getvalue()


annos = np.zeros((1, 2), dtype=[("relative_im_path", "O"), ("bbox_x1", "O"), ("bbox_y1", "O"),
                                 ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("test", "O")])
for i in range(2):
    annos[0, i] = (f"car_ims/00000{i + 1}.jpg", 1, 2, 30, 40, 99 * i + 1, i)
cars = mat_bytes({"annotations": annos, "class_names": np.array(["a", "b"], dtype=object)})
put("mat", "cars_annos", cars)
put("mat", "numeric", mat_bytes({"x": np.array([[1.5, -2.0]]), "n": np.int32(7)}))
b = io.BytesIO()
scipy.io.savemat(b, {"x": np.arange(20.0).reshape(4, 5)}, do_compression=True)
put("mat", "compressed", b.getvalue())

put("safetensors", "plain", st_save({"w": rng.standard_normal((2, 3)).astype(np.float32),
                                     "b": np.array([1, 2], dtype=np.int64),
                                     "h": np.ones(3, dtype=np.float16)}))

state = {"conv.weight": torch.randn(2, 1, 3, 3), "bn.running_mean": torch.zeros(2),
         "bn.num_batches_tracked": torch.tensor(3), "half": torch.ones(2).half()}
base = torch.arange(12.0).reshape(3, 4)
views = {"base": base, "t": base.t(), "slice": base[1:, 2:]}
for name, obj in [("state_dict", state), ("views", views),
                  ("nested", {"epoch": 2, "state_dict": state, "lr": 0.1, "name": "x"})]:
    b = io.BytesIO()
    torch.save(obj, b)
    put("pth", name, b.getvalue())
    with zipfile.ZipFile(io.BytesIO(b.getvalue())) as z:
        pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
        put("pickle", name, z.read(pkl))

def dataset(pick, *files):
    return bytes([pick]) + b"\0".join(f.encode() if isinstance(f, str) else f for f in files)


put("datasets", "csv", dataset(0, "label,path,split,is_query,is_gallery,category\n"
                                  "0,img/a.jpg,train,,,x\n1,\"img/b.png\",validation,True,True,y\n"))
head = "image_id class_id super_class_id path\n"
put("datasets", "sop", dataset(1, head + "1 1 1 bicycle_final/1_0.JPG\n", head + "2 2 2 chair_final/2_0.JPG\n"))
put("datasets", "inshop", dataset(2, "2\nimage_name item_id evaluation_status\n"
                                     "img/WOMEN/Dresses/id_00000001/01_1_front.jpg id_00000001 query\n"
                                     "img/WOMEN/Dresses/id_00000001/01_1_front.jpg id_00000001 gallery\n"))
put("datasets", "vehicleid", dataset(3, "0000001 1\n", "0000002 2\n", "0000002 2\n", "0000002 2\n", "1 10\n2 11\n"))
put("datasets", "cub", dataset(4, "1 001.Bird/a.jpg\n2 002.Bird/b.jpg\n", "1 1\n2 101\n"))
put("datasets", "cars", bytes([5]) + cars)

pixels = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
for name, img, kw in [("baseline.jpg", Image.fromarray(pixels), {"format": "JPEG"}),
                      ("progressive.jpg", Image.fromarray(pixels), {"format": "JPEG", "progressive": True}),
                      ("grey.jpg", Image.fromarray(pixels[..., 0]), {"format": "JPEG"}),
                      ("rgb.png", Image.fromarray(pixels), {"format": "PNG"}),
                      ("palette.png", Image.fromarray(pixels).convert("P"), {"format": "PNG"}),
                      ("rgba.png", Image.fromarray(np.dstack([pixels, pixels[..., :1]])), {"format": "PNG"})]:
    b = io.BytesIO()
    img.save(b, **kw)
    put("image", name, b.getvalue())
print("seeds written to", OUT, file=sys.stderr)

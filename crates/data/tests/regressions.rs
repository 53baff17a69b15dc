//! One test per reliability issue of the file readers, each on real files: symbolic links out of a
//! dataset root, truncated JPEGs, `.pth` files whose storages inflate beyond what they declare,
//! byte-order marks, float64 values beyond float32, `./` in listed paths, truncated zips, and
//! I/O errors printed once.

mod common;

use std::error::Error as _;
use std::fs;
use std::io::Write;
use std::path::Path;

use common::{image, run_python, text};
use embedrank_data::dataset::{Dataset, DatasetKind};
use embedrank_data::image::decode::{check_jpeg_complete, decode_file};
use embedrank_data::image::Transform;
use embedrank_data::loader::{Loader, LoaderConfig};
use embedrank_data::{npy, weights};

const HEADER: &str = "label,path,split,is_query,is_gallery\n";

/// An OML CSV dataset in `root` with three validation images under `img/`.
fn csv_dataset(root: &Path) {
    for k in 1..=3 {
        image(&root.join(format!("img/00{k}.png")), 8, 8, k);
    }
    text(
        &root.join("df.csv"),
        &format!("{HEADER}0,img/001.png,validation,True,True\n0,img/002.png,validation,True,True\n1,img/003.png,validation,True,True\n"),
    );
}

#[test]
fn symlinks_cannot_lead_a_list_outside_the_dataset_root() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, outside) = (tmp.path().join("root"), tmp.path().join("outside"));
    csv_dataset(&root);
    image(&outside.join("secret.png"), 8, 8, 9);
    // A folder inside the root that is a link to a folder outside it.
    std::os::unix::fs::symlink(&outside, root.join("linked")).unwrap();
    let csv = root.join("df.csv");
    let rows = fs::read_to_string(&csv).unwrap();
    fs::write(&csv, format!("{rows}1,linked/secret.png,validation,True,True\n")).unwrap();
    let err = Dataset::open(DatasetKind::Csv, &root).unwrap_err().to_string();
    assert!(
        err.contains("df.csv:5:") && err.contains("outside the dataset root"),
        "{err}"
    );
    assert!(err.contains("linked/secret.png"), "{err}");
    // A file that is itself a link to a file outside the root.
    fs::remove_file(root.join("linked")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.png"), root.join("img/link.png")).unwrap();
    fs::write(&csv, format!("{rows}1,img/link.png,validation,True,True\n")).unwrap();
    let err = Dataset::open(DatasetKind::Csv, &root).unwrap_err().to_string();
    assert!(
        err.contains("df.csv:5:") && err.contains("outside the dataset root"),
        "{err}"
    );
    // Links that stay inside the root are fine, and so is a root reached through a link.
    fs::remove_file(root.join("img/link.png")).unwrap();
    std::os::unix::fs::symlink(root.join("img/003.png"), root.join("img/link.png")).unwrap();
    let via = tmp.path().join("via");
    std::os::unix::fs::symlink(&root, &via).unwrap();
    let ds = Dataset::open(DatasetKind::Csv, &via).unwrap();
    assert_eq!(ds.split("validation").unwrap().images.len(), 4);

    // The same check in the space-separated readers: SOP through a linked product folder.
    let sop = tmp.path().join("sop");
    image(&sop.join("bike_final/1_0.JPG"), 8, 8, 1);
    std::os::unix::fs::symlink(&outside, sop.join("chair_final")).unwrap();
    text(
        &sop.join("Ebay_train.txt"),
        "image_id class_id super_class_id path\n1 1 1 bike_final/1_0.JPG\n",
    );
    text(
        &sop.join("Ebay_test.txt"),
        "image_id class_id super_class_id path\n2 2 2 chair_final/secret.png\n",
    );
    let err = Dataset::open(DatasetKind::Sop, &sop).unwrap_err().to_string();
    assert!(
        err.contains("Ebay_test.txt:2:") && err.contains("outside the dataset root"),
        "{err}"
    );
}

#[test]
fn a_dot_segment_does_not_hide_a_duplicate_path() {
    let tmp = tempfile::tempdir().unwrap();
    csv_dataset(tmp.path());
    let csv = tmp.path().join("df.csv");
    let rows = fs::read_to_string(&csv).unwrap();
    for alias in ["img/./003.png", "./img/003.png", "img//003.png"] {
        fs::write(&csv, format!("{rows}1,{alias},train,False,False\n")).unwrap();
        let err = Dataset::open(DatasetKind::Csv, tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("df.csv:5:") && err.contains("duplicate path `img/003.png` (first on line 4)"),
            "{alias}: {err}"
        );
    }
}

#[test]
fn a_csv_with_a_byte_order_mark_reads() {
    let tmp = tempfile::tempdir().unwrap();
    csv_dataset(tmp.path());
    let csv = tmp.path().join("df.csv");
    let rows = fs::read(&csv).unwrap();
    fs::write(&csv, [b"\xef\xbb\xbf".as_slice(), &rows].concat()).unwrap();
    let ds = Dataset::open(DatasetKind::Csv, tmp.path()).unwrap();
    assert_eq!(ds.split("query").unwrap().labels(), [0, 0, 1]);
}

/// Half of a real JPEG, padded with zeros to its full length.
fn half_padded(jpeg: &[u8]) -> Vec<u8> {
    let mut cut = jpeg[..jpeg.len() / 2].to_vec();
    cut.resize(jpeg.len(), 0);
    cut
}

/// PIL on a list of files: `ok` or PIL's error, one line per file.
const PIL_VERDICT: &str = r#"
import sys
from PIL import Image
for f in sys.argv[2:]:
    try:
        Image.open(f).load()
        print("ok")
    except OSError as e:
        print(e)
"#;

#[test]
fn a_truncated_jpeg_is_refused_as_pil_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.jpg");
    image(&good, 64, 48, 3);
    let bytes = fs::read(&good).unwrap();
    let write = |name: &str, content: &[u8]| {
        let p = tmp.path().join(name);
        fs::write(&p, content).unwrap();
        p
    };
    let half = write("half.jpg", &bytes[..bytes.len() / 2]);
    let short = write("short.jpg", &bytes[..bytes.len() - 40]);
    let no_end = write("no_end.jpg", &bytes[..bytes.len() - 2]);
    // Data after the end-of-image marker (some cameras append some) is not a truncation.
    let trailing = write("trailing.jpg", &[bytes.as_slice(), b"appended by a camera"].concat());
    // A progressive JPEG (several scans) written by PIL, complete.
    let progressive = tmp.path().join("progressive.jpg");
    run_python(
        "import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2], progressive=True)",
        &[good.to_str().unwrap(), progressive.to_str().unwrap()],
    );
    let files = [&good, &half, &short, &no_end, &trailing, &progressive];
    let out = std::process::Command::new(common::python())
        .arg("-c")
        .arg(PIL_VERDICT)
        .arg("x")
        .args(files)
        .output()
        .unwrap();
    let pil: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(pil.len(), files.len(), "{pil:?}");
    for (file, verdict) in files.iter().zip(&pil) {
        let ours = decode_file(file);
        assert_eq!(
            ours.is_ok(),
            verdict == "ok",
            "{}: PIL says {verdict}, we say {ours:?}",
            file.display()
        );
        if let Err(e) = ours {
            assert!(verdict.contains("truncated"), "{verdict}");
            let e = e.to_string();
            assert!(
                e.contains(&*file.to_string_lossy()) && e.contains("truncated JPEG"),
                "{e}"
            );
        }
    }
    // Half a JPEG padded with zeros to its full length: the zeros are no image data and there is
    // no end-of-image marker. (PIL accepts some such files, when its decoder happens to read
    // enough MCUs out of the zeros; libjpeg warns "Premature end of JPEG file".)
    let cut = write("cut.jpg", &half_padded(&bytes));
    let err = decode_file(&cut).unwrap_err().to_string();
    assert!(err.contains("cut.jpg: cannot decode image: truncated JPEG"), "{err}");
    assert!(check_jpeg_complete(&fs::read(&progressive).unwrap()).is_ok());

    // The loader leaves it out with a warning, or refuses it under strict, as any undecodable image.
    let files = vec![good.clone(), cut.clone()];
    let mut cfg = LoaderConfig::new(1, Transform::Test { resize: 40, crop: 32 });
    let batch = Loader::new(files.clone(), cfg).load_batch(0, 0, &[0, 1]).unwrap();
    assert_eq!(batch.indices, [0]);
    assert!(batch.skipped[0]
        .reason
        .contains("cut.jpg: cannot decode image: truncated JPEG"));
    cfg.strict = true;
    let err = Loader::new(files, cfg)
        .load_batch(0, 0, &[0, 1])
        .unwrap_err()
        .to_string();
    assert!(err.contains("cut.jpg") && err.contains("truncated JPEG"), "{err}");
}

#[test]
fn a_float64_beyond_float32_is_named_not_turned_into_infinity() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("big.npy");
    run_python(
        "import sys, numpy as np; a = np.ones((3, 4)); a[2, 1] = -1e300; np.save(sys.argv[1], a)",
        &[p.to_str().unwrap()],
    );
    let err = npy::read_matrix(&p).unwrap_err().to_string();
    assert!(
        err.contains("big.npy") && err.contains("-1e300 at row 2, column 1"),
        "{err}"
    );
    assert!(err.contains("too large for float32"), "{err}");
    // Read as float64 it is exact.
    let m = npy::to_matrix_f64(npy::read(&p).unwrap(), &p).unwrap();
    assert_eq!(m.data[2 * 4 + 1], -1e300);
}

/// Builds `.pth` zips by hand: a real torch.save file with its storage entry replaced by `size`
/// zeros (deflated: a few hundred kB on disk), and the same with the zip headers claiming the
/// original 16 bytes.
const BOMB: &str = r#"
import sys, struct, zipfile, torch
out, size = sys.argv[1], int(sys.argv[2])
torch.save({"w": torch.ones(4)}, out + "/small.pth")
src = zipfile.ZipFile(out + "/small.pth")
with zipfile.ZipFile(out + "/bomb.pth", "w", zipfile.ZIP_DEFLATED) as z:
    for info in src.infolist():
        if info.filename.endswith("/data/0"):
            with z.open(info.filename, "w", force_zip64=True) as f:
                chunk = bytes(1 << 20)
                for _ in range(size >> 20):
                    f.write(chunk)
        else:
            z.writestr(info.filename, src.read(info.filename))
with zipfile.ZipFile(out + "/liar.pth", "w", zipfile.ZIP_DEFLATED) as z:
    for info in src.infolist():
        data = bytes(size) if info.filename.endswith("/data/0") else src.read(info.filename)
        z.writestr(info.filename, data)
# liar.pth: the storage entry's headers say 16 bytes, its data inflates to `size`.
raw = bytearray(open(out + "/liar.pth", "rb").read())
for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
    i = 0
    while (i := raw.find(sig, i)) >= 0:
        name_len = struct.unpack_from("<H", raw, i + (26 if sig == b"PK\x03\x04" else 28))[0]
        start = i + (30 if sig == b"PK\x03\x04" else 46)
        if raw[start:start + name_len].endswith(b"/data/0"):
            struct.pack_into("<I", raw, i + at, 16)
        i += 4
open(out + "/liar.pth", "wb").write(raw)
"#;

#[test]
fn a_storage_entry_is_never_inflated_beyond_its_declared_size() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    run_python(BOMB, &[dir, &(64u64 << 20).to_string()]);
    let small = weights::load(&tmp.path().join("small.pth")).unwrap();
    assert_eq!(small[0].to_f32(), [1.0; 4]);
    // 64 MiB of zeros where the pickle declares 4 floats: refused from the sizes alone.
    let bomb = tmp.path().join("bomb.pth");
    assert!(fs::metadata(&bomb).unwrap().len() < 1 << 20);
    let err = weights::load(&bomb).unwrap_err().to_string();
    assert!(err.starts_with("weight file ") && err.contains("bomb.pth"), "{err}");
    assert!(
        err.contains("67108864 bytes") && err.contains("4 F32 elements"),
        "{err}"
    );
    // Headers that understate the size: reading stops one byte past the declared 16.
    let err = weights::load(&tmp.path().join("liar.pth")).unwrap_err().to_string();
    assert!(err.contains("liar.pth") && err.contains("data/0"), "{err}");
}

#[test]
fn a_truncated_pth_is_called_truncated_not_legacy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    run_python(BOMB, &[dir, "0"]);
    let bytes = fs::read(tmp.path().join("small.pth")).unwrap();
    let cut = tmp.path().join("cut.pth");
    fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = weights::load(&cut).unwrap_err().to_string();
    assert!(
        err.contains("cut.pth") && err.contains("truncated or corrupt zip archive"),
        "{err}"
    );
    assert!(!err.contains("legacy"), "{err}");
}

#[test]
fn io_errors_are_printed_once_and_weight_errors_say_weight_file() {
    let tmp = tempfile::tempdir().unwrap();
    // df.csv that is a folder: an I/O error (EISDIR), its text in the message, no separate cause.
    fs::create_dir(tmp.path().join("df.csv")).unwrap();
    let err = Dataset::open(DatasetKind::Csv, tmp.path()).unwrap_err();
    assert!(err.to_string().contains("df.csv: Is a directory"), "{err}");
    assert!(err.source().is_none(), "the OS error would be printed twice");
    let err = npy::read_matrix(&tmp.path().join("none.npy")).unwrap_err();
    assert!(err.to_string().contains("none.npy: No such file") && err.source().is_none());
    let err = decode_file(&tmp.path().join("none.jpg")).unwrap_err();
    assert!(err.to_string().contains("none.jpg: No such file") && err.source().is_none());
    let err = weights::load(&tmp.path().join("none.pth")).unwrap_err();
    assert!(
        err.to_string().starts_with("weight file ") && err.source().is_none(),
        "{err}"
    );
    let junk = tmp.path().join("junk.safetensors");
    fs::File::create(&junk).unwrap().write_all(b"junk").unwrap();
    let err = weights::load(&junk).unwrap_err().to_string();
    assert!(
        err.starts_with("weight file ") && err.contains("junk.safetensors"),
        "{err}"
    );
}

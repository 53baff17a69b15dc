//! Weight files written by the venv's PyTorch (`torch.save`, a torchvision ResNet-18 state dict)
//! and `safetensors`, read back and compared element by element with what Python wrote; and
//! malicious or legacy pickles, which must be refused without running anything.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::run_python;
use embedrank_data::weights::{self, DType, NamedTensor, TensorData, WeightsError};

/// Writes the fixtures into argv[1]; `expected.json` holds each tensor's dtype, shape and values
/// (flattened contiguously by torch itself).
const MAKE: &str = r#"
import io, json, os, pickle, sys, zipfile
import torch, torchvision
from safetensors.torch import save_file
out = sys.argv[1]
torch.manual_seed(0)
base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
tensors = {
    "conv.weight": torch.randn(4, 3, 3, 3),
    "transposed": base.t(),                     # non-contiguous strides
    "sliced": base[1:, 2:5],                    # storage offset + strides
    "tied": base,                               # shares its storage with the two above
    "half": torch.randn(5).half(),
    "bf16": torch.randn(2, 3).bfloat16(),
    "double": torch.randn(3, dtype=torch.float64),
    "bn.num_batches_tracked": torch.tensor(7),
    "ints": torch.tensor([[-3, 4], [5, -6]], dtype=torch.int32),
    "mask": torch.tensor([True, False, True]),
    "empty": torch.zeros(0, 4),
}
def expected(d):
    return {k: {"dtype": str(v.dtype), "shape": list(v.shape),
                "values": v.contiguous().flatten().double().tolist()} for k, v in d.items()}
exp = {"plain": expected(tensors)}
sd = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).state_dict()
torch.save(tensors, os.path.join(out, "plain.pth"))
torch.save({"epoch": 3, "state_dict": sd, "lr": 0.5, "name": "run"}, os.path.join(out, "nested.pth"))
exp["nested"] = expected({"state_dict." + k: v for k, v in sd.items()})
params = {"w": torch.nn.Parameter(torch.randn(2, 2))}
torch.save(params, os.path.join(out, "param.pth"))
exp["param"] = expected({k: v.detach() for k, v in params.items()})
rn = torchvision.models.resnet18(weights=None).state_dict()
torch.save(rn, os.path.join(out, "resnet18.pth"))
save_file(rn, os.path.join(out, "resnet18.safetensors"))
exp["resnet18"] = {"names": list(rn.keys()),
                   "layer4.1.bn2.running_var": rn["layer4.1.bn2.running_var"].tolist(),
                   "fc.weight[7]": rn["fc.weight"][7].tolist(),
                   "conv1.weight.shape": list(rn["conv1.weight"].shape)}
st = {k: v.contiguous() for k, v in tensors.items()}
save_file(st, os.path.join(out, "plain.safetensors"))
torch.save(tensors, os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)

class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + os.path.join(out, "pwned"),))
torch.save({"x": torch.zeros(1), "evil": Evil()}, os.path.join(out, "evil_system.pth"))
def zip_with(name, pkl):
    with zipfile.ZipFile(os.path.join(out, name), "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
zip_with("evil_eval.pth", pickle.dumps({"x": 1}, protocol=2).replace(b"}q\x00", b"c" + b"builtins\neval\n" + b"X\x04\x00\x00\x001+1\x85R0}q\x00"))
zip_with("evil_inst.pth", b"(S'touch pwned'\nios\nsystem\n.")
zip_with("truncated.pth", pickle.dumps({"a": 1}, protocol=2)[:-3])
json.dump(exp, open(os.path.join(out, "expected.json"), "w"))
"#;

fn fixtures() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        run_python(MAKE, &[dir.path().to_str().unwrap()]);
        dir
    })
    .path()
}

fn file(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// The expected tensors of one fixture: name → (dtype, shape, values).
fn expected(which: &str) -> Vec<(String, String, Vec<usize>, Vec<f64>)> {
    let text = std::fs::read_to_string(file("expected.json")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    all[which]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let shape = v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let values = v["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            (k.clone(), v["dtype"].as_str().unwrap().to_string(), shape, values)
        })
        .collect()
}

fn torch_dtype(d: DType) -> &'static str {
    match d {
        DType::F32 => "torch.float32",
        DType::F64 => "torch.float64",
        DType::F16 => "torch.float16",
        DType::BF16 => "torch.bfloat16",
        DType::I64 => "torch.int64",
        DType::I32 => "torch.int32",
        DType::I16 => "torch.int16",
        DType::I8 => "torch.int8",
        DType::U8 => "torch.uint8",
        DType::Bool => "torch.bool",
    }
}

fn values(t: &NamedTensor) -> Vec<f64> {
    match &t.data {
        TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
    }
}

fn check(got: &[NamedTensor], want: &[(String, String, Vec<usize>, Vec<f64>)]) {
    let got: HashMap<&str, &NamedTensor> = got.iter().map(|t| (t.name.as_str(), t)).collect();
    assert_eq!(got.len(), want.len());
    for (name, dtype, shape, vals) in want {
        let t = got.get(name.as_str()).unwrap_or_else(|| panic!("no tensor {name}"));
        assert_eq!(torch_dtype(t.dtype), dtype, "{name}");
        assert_eq!(&t.shape, shape, "{name}");
        let g = values(t);
        assert_eq!(g.len(), vals.len(), "{name}");
        for (a, b) in g.iter().zip(vals) {
            // Exact in f32 (JSON's decimal text may be off in the last f64 digit).
            assert_eq!(*a as f32, *b as f32, "{name}");
        }
    }
}

#[test]
fn pth_reads_strided_offset_shared_and_every_dtype() {
    let got = weights::load(&file("plain.pth")).unwrap();
    check(&got, &expected("plain"));
    // The pickle's order is kept.
    assert_eq!(got[0].name, "conv.weight");
}

#[test]
fn pth_reads_nested_checkpoints_and_parameters() {
    check(&weights::load(&file("nested.pth")).unwrap(), &expected("nested"));
    check(&weights::load(&file("param.pth")).unwrap(), &expected("param"));
}

#[test]
fn safetensors_reads_every_dtype() {
    let got = weights::load(&file("plain.safetensors")).unwrap();
    check(&got, &expected("plain"));
}

#[test]
fn torchvision_resnet18_reads_identically_from_both_formats() {
    let text = std::fs::read_to_string(file("expected.json")).unwrap();
    let exp: serde_json::Value = serde_json::from_str(&text).unwrap();
    let exp = &exp["resnet18"];
    let pth = weights::load(&file("resnet18.pth")).unwrap();
    let st = weights::load(&file("resnet18.safetensors")).unwrap();
    let names: Vec<&str> = exp["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(pth.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), names);
    let by_name: HashMap<&str, &NamedTensor> = pth.iter().map(|t| (t.name.as_str(), t)).collect();
    for t in &st {
        assert_eq!(
            by_name[t.name.as_str()],
            t,
            "{} differs between .pth and .safetensors",
            t.name
        );
    }
    assert_eq!(st.len(), pth.len());
    let f32s = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by_name["layer4.1.bn2.running_var"].to_f32(),
        f32s(&exp["layer4.1.bn2.running_var"])
    );
    let fc = by_name["fc.weight"];
    assert_eq!(fc.shape, [1000, 512]);
    assert_eq!(fc.to_f32()[7 * 512..8 * 512], f32s(&exp["fc.weight[7]"])[..]);
    assert_eq!(by_name["conv1.weight"].shape, [64, 3, 7, 7]);
    assert_eq!(by_name["bn1.num_batches_tracked"].dtype, DType::I64);
}

fn refused(name: &str) -> String {
    match weights::load(&file(name)) {
        Err(e @ WeightsError::Unsafe { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "`{msg}` does not name the file");
            msg
        }
        other => panic!("{name}: expected an Unsafe error, got {other:?}"),
    }
}

#[test]
fn malicious_pickles_are_refused_without_running_anything() {
    let msg = refused("evil_system.pth");
    assert!(
        msg.contains("global `posix.system`") || msg.contains("global `os.system`"),
        "{msg}"
    );
    assert!(refused("evil_eval.pth").contains("global `builtins.eval`"));
    assert!(refused("evil_inst.pth").contains("opcode STRING"));
    assert!(!fixtures().join("pwned").exists() && !Path::new("pwned").exists());
}

#[test]
fn legacy_truncated_and_non_weight_files_are_clear_errors() {
    let legacy = weights::load(&file("legacy.pth")).unwrap_err().to_string();
    assert!(
        legacy.contains("legacy.pth") && legacy.contains("legacy pre-1.6"),
        "{legacy}"
    );
    let trunc = weights::load(&file("truncated.pth")).unwrap_err().to_string();
    assert!(
        trunc.contains("truncated.pth") && trunc.contains("malformed pickle"),
        "{trunc}"
    );
    let not = weights::load(&file("expected.json")).unwrap_err().to_string();
    assert!(not.contains("expected.json: not a valid safetensors file"), "{not}");
    let missing = weights::load(&file("nope.pth")).unwrap_err().to_string();
    assert!(missing.contains("nope.pth"), "{missing}");
}

/// A safetensors header length whose low byte is 0x80 (one file in 256) must not be taken for a
/// legacy pickle, whose first byte is also 0x80.
#[test]
fn safetensors_whose_length_starts_with_0x80_is_read() {
    let mut header = String::from(r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#);
    let pad = 0x80 - header.len() - 1;
    header.push_str(&" ".repeat(pad));
    header.push('}');
    assert_eq!(header.len(), 0x80);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&1.5f32.to_le_bytes());
    bytes.extend_from_slice(&(-2.0f32).to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x80.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let got = weights::load(&path).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "w");
    assert_eq!(got[0].to_f32(), vec![1.5, -2.0]);
}

/// A pickle nesting a million tuples (inside a list and a dict) is read and freed without
/// overflowing the stack: the VM's values are dropped with a work list, not recursion.
#[test]
fn deeply_nested_pickles_do_not_overflow_the_stack() {
    const LEVELS: usize = 1_000_000;
    // PROTO 2, EMPTY_DICT, BININT1 0 (key), EMPTY_LIST, MARK, EMPTY_TUPLE, TUPLE1 × LEVELS,
    // APPENDS, SETITEM, STOP: {0: [((…(),),)]}.
    let mut p = vec![0x80, 2, b'}', b'K', 0, b']', b'(', b')'];
    p.extend(std::iter::repeat_n(0x85u8, LEVELS));
    p.extend_from_slice(b"es.");
    let run = move || {
        let value = weights::pickle::load(&p).unwrap();
        assert!(weights::pickle::tensors(&value).unwrap().is_empty());
        drop(value);
    };
    // On a thread with a small stack (256 KiB), so that any recursion per level would fail.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}

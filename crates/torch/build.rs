//! Links libtorch for this crate's tests and records where it lives (rpath), so they run without
//! `LD_LIBRARY_PATH`. `DEP_TCH_LIBTORCH_LIB` is exported by torch-sys (`links = "tch"`).
//! Also compiles the small C shims over libtorch: `csrc/autocast.cpp` (bfloat16 mixed precision)
//! and `csrc/distributed.cpp` (c10d's TCPStore and Gloo process group; the torch wheel ships no
//! gloo headers, so `csrc/gloo_decl` declares the few gloo types its header names).

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo:rerun-if-changed=csrc/distributed.cpp");
    println!("cargo:rerun-if-changed=csrc/gloo_decl");
    let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    // Only libtorch's CPU part is linked; `embedrank_torch::cuda::load` dlopens the CUDA part
    // when a CUDA device is asked for (this keeps CPU runs ~350 MB lighter).
    // Re-exported to dependents as DEP_EMBEDRANK_TORCH_LIBTORCH_LIB.
    println!("cargo:libtorch_lib={dir}");
    let include = Path::new(&dir).join("../include");
    cc::Build::new()
        .cpp(true)
        .file("csrc/autocast.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        .compile("embedrank_autocast");
    cc::Build::new()
        .cpp(true)
        .file("csrc/distributed.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include("csrc/gloo_decl")
        .flag("-std=c++17")
        .warnings(false)
        .compile("embedrank_distributed");
}

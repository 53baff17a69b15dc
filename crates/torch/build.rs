//! Links libtorch for this crate's tests and records where it lives (rpath), so they run without
//! `LD_LIBRARY_PATH`. `DEP_TCH_LIBTORCH_LIB` is exported by torch-sys (`links = "tch"`).
//! Also compiles `csrc/autocast.cpp`, the small C shim behind bfloat16 mixed precision.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
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
}

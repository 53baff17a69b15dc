//! Links libtorch for this crate's tests and records where it lives (rpath), so they run without
//! `LD_LIBRARY_PATH`. `DEP_TCH_LIBTORCH_LIB` is exported by torch-sys (`links = "tch"`).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // Only libtorch's CPU part is linked; `embedrank_torch::cuda::load` dlopens the CUDA part
        // when a CUDA device is asked for (this keeps CPU runs ~350 MB lighter).
        // Re-exported to dependents as DEP_EMBEDRANK_TORCH_LIBTORCH_LIB.
        println!("cargo:libtorch_lib={dir}");
    }
}

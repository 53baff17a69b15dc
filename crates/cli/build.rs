//! Bakes libtorch's location into the `embedrank` binary (rpath), so `target/release/embedrank`
//! runs with no environment variables; libtorch's CUDA part is loaded on demand at run time. The
//! directory comes from embedrank-torch's build script (`links = "embedrank_torch"`), which has it
//! from torch-sys.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_EMBEDRANK_TORCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_EMBEDRANK_TORCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // Only libtorch's CPU part is linked; `embedrank_torch::cuda::load` dlopens the CUDA part
        // when a CUDA device is asked for (this keeps CPU runs ~350 MB lighter).
    }
}

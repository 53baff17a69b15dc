//! Bakes libtorch's location into the `embedrank` binary (rpath, and libtorch kept as a needed
//! library), so `target/release/embedrank` runs with no environment variables. The directory comes
//! from embedrank-torch's build script (`links = "embedrank_torch"`), which has it from torch-sys.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_EMBEDRANK_TORCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_EMBEDRANK_TORCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

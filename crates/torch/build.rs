//! Links libtorch for this crate's tests and records where it lives (rpath), so they run without
//! `LD_LIBRARY_PATH`. `DEP_TCH_LIBTORCH_LIB` is exported by torch-sys (`links = "tch"`).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
        // Re-exported to dependents as DEP_EMBEDRANK_TORCH_LIBTORCH_LIB.
        println!("cargo:libtorch_lib={dir}");
    }
}

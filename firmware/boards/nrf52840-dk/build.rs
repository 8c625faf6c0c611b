//! Build script: puts memory.x on the linker path and bakes the node's identity into the image
//! (see ../provision.rs).
use std::{env, fs, path::PathBuf};

include!("../provision.rs");

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    // Linker scripts here rather than in .cargo/config.toml rustflags, so that CI can set
    // RUSTFLAGS="-D warnings" without silently dropping them.
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../provision.rs");
    provision(&out);
}

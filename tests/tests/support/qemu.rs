//! The QEMU firmware (`firmware/qemu`: the anchor role over the checked-in recording on an
//! emulated Cortex-M4): build, run, and collect the `FRAME <hex>` lines it prints.

use std::process::Command;

/// The firmware's target.
pub const TARGET: &str = "thumbv7em-none-eabihf";

fn require_tools() {
    let qemu = Command::new("qemu-system-arm").arg("--version").output();
    assert!(
        qemu.as_ref().is_ok_and(|o| o.status.success()),
        "qemu-system-arm is not installed: run scripts/test (scripts/setup.sh test installs it), \
         or apt-get install qemu-system-arm"
    );
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    if let Ok(out) = targets {
        // Without rustup (a distro toolchain) the build below reports a missing target itself.
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == TARGET),
            "Rust target {TARGET} is missing: run scripts/test (scripts/setup.sh test adds it), \
             or rustup target add {TARGET}"
        );
    }
}

/// Builds and runs the QEMU firmware; its stdout.
pub fn run_firmware() -> String {
    require_tools();
    let root = super::repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root.join("firmware/qemu"))
        .args(["run", "--release", "--locked", "--quiet"])
        .env("CARGO_TARGET_DIR", root.join("target/firmware-qemu"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("spawn cargo for firmware/qemu");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "firmware/qemu failed ({}).\nstdout:\n{stdout}\nstderr:\n{}\n(run scripts/test to install \
         qemu-system-arm and the {TARGET} target)",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The frames in a firmware run's stdout (`FRAME <hex>` lines), in order.
pub fn frames(stdout: &str) -> Vec<Vec<u8>> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("FRAME "))
        .map(|h| hex::decode(h.trim()).expect("frame line is hex"))
        .collect()
}

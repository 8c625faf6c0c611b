//! The QEMU firmware (`firmware/qemu`: the anchor role on an emulated Cortex-M4): build, run
//! over the checked-in recording or over a host file of advertisements as a given node, and
//! collect the `FRAME <hex>` lines it prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use footfall_proto::frame::{NodeId, NodeKey};

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

fn cargo_in_firmware_qemu(subcommand: &str) -> Command {
    let root = super::repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root.join("firmware/qemu"))
        .args([subcommand, "--release", "--locked", "--quiet"])
        .env("CARGO_TARGET_DIR", root.join("target/firmware-qemu"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    cmd
}

/// Builds and runs the QEMU firmware over its checked-in recording; its stdout.
pub fn run_firmware() -> String {
    require_tools();
    let out = cargo_in_firmware_qemu("run")
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

/// Builds the QEMU firmware; the ELF's path.
pub fn build_firmware() -> PathBuf {
    require_tools();
    let out = cargo_in_firmware_qemu("build")
        .output()
        .expect("spawn cargo for firmware/qemu");
    assert!(
        out.status.success(),
        "building firmware/qemu failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    super::repo_root().join(format!(
        "target/firmware-qemu/{TARGET}/release/footfall-firmware-qemu"
    ))
}

/// Runs the firmware ELF on QEMU as anchor `node` (signing with `key`) over the advertisement
/// records in `adverts` (the runner line of `firmware/qemu/.cargo/config.toml`, plus the
/// semihosting command line); its stdout.
pub fn run_node(elf: &Path, adverts: &Path, node: NodeId, key: &NodeKey) -> String {
    let adverts = adverts.to_str().expect("UTF-8 path");
    assert!(
        !adverts.contains([',', ' ']),
        "QEMU's -semihosting-config cannot carry {adverts:?}"
    );
    let semihosting = format!(
        "enable=on,target=native,arg=footfall-firmware-qemu,arg={adverts},arg={node},arg={}",
        hex::encode(key.0)
    );
    let out = Command::new("qemu-system-arm")
        .args(["-cpu", "cortex-m4", "-machine", "mps2-an386", "-nographic"])
        .args([
            "-icount",
            "shift=0",
            "-semihosting-config",
            &semihosting,
            "-kernel",
        ])
        .arg(elf)
        .stdin(Stdio::null())
        .output()
        .expect("spawn qemu-system-arm");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.lines().any(|l| l.starts_with("DONE ")),
        "firmware on QEMU as node {node} failed ({}):\nstderr:\n{}\nstdout (end):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        &stdout[stdout.len().saturating_sub(2000)..]
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

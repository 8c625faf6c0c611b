//! `footfall keys new-node`: a fresh 128-bit node key.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use rand::RngCore as _;

/// `footfall keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a node key: writes node-N.key (hex, mode 0600) and prints the
    /// `[[auth.nodes]]` snippet and the firmware provisioning line.
    NewNode {
        /// Node id (as in `[[store.nodes]]`).
        #[arg(long)]
        id: u16,
        /// Directory to write the key file into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Replace an existing key file.
        #[arg(long)]
        force: bool,
    },
}

/// Writes `node-{id}.key` into `dir` (refusing to overwrite unless `force`); returns the path
/// and the key in hex.
pub fn new_node_key(id: u16, dir: &Path, force: bool) -> anyhow::Result<(PathBuf, String)> {
    let mut key = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let hex_key = hex::encode(key);
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join(format!("node-{id}.key"));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path).with_context(|| {
        format!(
            "write {} (use --force to replace an existing key)",
            path.display()
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(f, "{hex_key}")?;
    f.sync_all()?;
    Ok((path, hex_key))
}

/// Runs a `keys` subcommand.
pub fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::NewNode { id, out, force } => {
            let (path, hex_key) = new_node_key(id, &out, force)?;
            println!("# wrote {} (mode 0600)", path.display());
            println!("# gateway config:");
            println!("[[auth.nodes]]");
            println!("id = {id}");
            println!("key_file = {:?}", path.display().to_string());
            println!();
            println!("# firmware provisioning (board build):");
            println!("FOOTFALL_NODE_ID={id} FOOTFALL_NODE_KEY={hex_key}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_private_hex_key_once() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (path, k) = new_node_key(7, dir.path(), false)?;
        assert_eq!(k.len(), 32);
        assert_eq!(std::fs::read_to_string(&path)?.trim(), k);
        assert!(crate::config::parse_key(&k).is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path)?.permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(
            new_node_key(7, dir.path(), false).is_err(),
            "never overwrites silently"
        );
        let (_, k2) = new_node_key(7, dir.path(), true)?;
        assert_ne!(k, k2);
        Ok(())
    }
}

//! The `footfall` command.
fn main() -> anyhow::Result<()> {
    anyhow::bail!("footfall: not built yet")
}

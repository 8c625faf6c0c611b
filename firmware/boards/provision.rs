// Shared by the board build scripts (`include!`d): bakes the node identity into the image.
//
// Provisioning: `FOOTFALL_NODE_ID` (decimal or 0x-hex, 1..=65535) and `FOOTFALL_NODE_KEY`
// (32 hex digits), as printed by `footfall keys new-node --id N`. Without them the build uses a
// public *development* identity (node 65535, an all-`de` key); the firmware then logs a loud
// warning at every boot, and the build prints a cargo warning. A malformed value is a build
// error.

const DEV_NODE_ID: u16 = 0xFFFF;

fn parse_id(s: &str) -> Result<u16, String> {
    let s = s.trim();
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => s.parse::<u16>(),
    }
    .map_err(|e| format!("FOOTFALL_NODE_ID={s:?} is not a node id (1..=65535): {e}"))?;
    if v == 0 {
        return Err("FOOTFALL_NODE_ID must not be 0".into());
    }
    Ok(v)
}

fn parse_key(s: &str) -> Result<[u8; 16], String> {
    let s = s.trim();
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "FOOTFALL_NODE_KEY must be 32 hex digits (16 bytes), got {} characters",
            s.len()
        ));
    }
    let mut key = [0u8; 16];
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(key)
}

/// Writes `$OUT_DIR/provision.rs` with `NODE_ID`, `NODE_KEY` and `DEV_IDENTITY`.
fn provision(out: &std::path::Path) {
    use std::{env, fs};
    println!("cargo:rerun-if-env-changed=FOOTFALL_NODE_ID");
    println!("cargo:rerun-if-env-changed=FOOTFALL_NODE_KEY");
    let id = env::var("FOOTFALL_NODE_ID").ok();
    let key = env::var("FOOTFALL_NODE_KEY").ok();
    let (id, key, dev) = match (id, key) {
        (Some(id), Some(key)) => {
            let id = parse_id(&id).unwrap_or_else(|e| panic!("{e}"));
            let key = parse_key(&key).unwrap_or_else(|e| panic!("{e}"));
            (id, key, false)
        }
        (None, None) => {
            println!(
                "cargo:warning=FOOTFALL_NODE_ID/FOOTFALL_NODE_KEY not set: building with the PUBLIC \
                 development identity (node {DEV_NODE_ID}). Provision with \
                 `footfall keys new-node --id N` before deploying."
            );
            (DEV_NODE_ID, [0xDE; 16], true)
        }
        _ => panic!("set both FOOTFALL_NODE_ID and FOOTFALL_NODE_KEY, or neither"),
    };
    let src = format!(
        "/// Node id baked in at build time.\npub const NODE_ID: u16 = {id};\n\
         /// Node key baked in at build time.\npub const NODE_KEY: [u8; 16] = {key:?};\n\
         /// Whether this image carries the public development identity.\npub const DEV_IDENTITY: bool = {dev};\n"
    );
    fs::write(out.join("provision.rs"), src).expect("write provision.rs");
}

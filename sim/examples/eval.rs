//! Evaluate the engine on a recording (with ground truth): the library path `footfall eval` takes.
//!
//! `cargo run --release -p footfall-sim --example eval -- docs/examples/boutique.toml /tmp/b.jsonl [--json] [--lenient]`
use anyhow::Context;
use footfall_sim::{
    evaluate_recording, load_store_file, EvalOptions, ReadOptions, RecordingReader,
};
use std::io::BufReader;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let config = args
        .get(1)
        .context("usage: eval STORE.toml RECORDING.jsonl [--json] [--lenient]")?;
    let input = args
        .get(2)
        .context("usage: eval STORE.toml RECORDING.jsonl [--json] [--lenient]")?;
    let json = args.iter().any(|a| a == "--json");
    let lenient = args.iter().any(|a| a == "--lenient");
    let file = load_store_file(&std::fs::read_to_string(config)?)?;
    let options = ReadOptions::with_nodes(file.layout.nodes.iter().map(|n| n.id)).lenient(lenient);
    let mut reader = RecordingReader::open(BufReader::new(std::fs::File::open(input)?), options)?;
    let report = evaluate_recording(
        &file.layout,
        &file.engine,
        &mut reader,
        &EvalOptions::default(),
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

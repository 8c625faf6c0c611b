//! `footfall check-config FILE`.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;

/// Validates `file`; prints `FILE: ok` or every problem as `FILE:LINE:COL: message (hint: ..)`.
/// Exit code 0 when valid, 2 when not.
pub fn run(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(l) => {
            println!(
                "{}: ok (store {}, {} nodes, {} zones, {} campaigns, broker {})",
                file.display(),
                l.config.store.store_id,
                l.config.store.nodes.len(),
                l.config.store.zones.len(),
                l.config.engine.campaigns.len(),
                match &l.broker {
                    crate::config::BrokerTarget::Embedded(a) => format!("embedded on {a}"),
                    crate::config::BrokerTarget::External { host, port, tls } =>
                        format!("{}://{host}:{port}", if *tls { "mqtts" } else { "mqtt" }),
                }
            );
            ExitCode::SUCCESS
        }
        Err(d) => {
            eprintln!("{d}");
            eprintln!("{}: {} problem(s)", file.display(), d.problems.len());
            ExitCode::from(2)
        }
    }
}

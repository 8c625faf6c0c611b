//! Log set-up (the binary's choice, never the library's): human or JSON lines on stderr.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; `RUST_LOG` overrides `level`. Idempotent (a second call is
/// ignored), so tests and subcommands may call it freely.
pub fn init(format: LogFormat, level: &str) {
    // rumqttd logs every connection (and our readiness probe as an error); quiet unless asked.
    let default = format!("{level},rumqttd=off,rumqttc=warn");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

//! A sink that writes each message's CloudEvents JSON as one line (for `footfall replay` to a
//! file or stdout, and for tests). No outbox: the file is the record.

use std::io::Write;

use tokio::sync::mpsc;

use crate::cloudevents::OutMessage;

/// Writes every message from `rx` to `out`, one JSON document per line, until `rx` closes.
/// Returns how many lines were written. Runs on the blocking pool (file IO).
pub async fn run(
    mut rx: mpsc::Receiver<OutMessage>,
    out: Box<dyn Write + Send>,
) -> std::io::Result<u64> {
    let (tx_lines, mut rx_lines) = mpsc::channel::<Vec<OutMessage>>(64);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut out = std::io::BufWriter::new(out);
        let mut n = 0u64;
        while let Some(batch) = rx_lines.blocking_recv() {
            for m in batch {
                out.write_all(&m.payload)?;
                out.write_all(b"\n")?;
                n += 1;
            }
        }
        out.flush()?;
        Ok(n)
    });
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        if tx_lines.send(batch).await.is_err() {
            break;
        }
    }
    drop(tx_lines);
    writer
        .await
        .map_err(|e| std::io::Error::other(format!("writer task: {e}")))?
}

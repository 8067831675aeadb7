//! Access log: one JSON line per request, written by a dedicated thread so a slow disk or
//! terminal never stalls the data plane. Lines beyond the queue are dropped and counted.

use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender, TryRecvError};
use std::sync::OnceLock;

static SINK: OnceLock<Option<SyncSender<String>>> = OnceLock::new();

/// Start the writer for `target` (`stdout`, `off` or a file path). Only the first call counts.
pub fn init(target: &str) -> std::io::Result<()> {
    if SINK.get().is_some() {
        return Ok(());
    }
    let out: Box<dyn Write + Send> = match target {
        "off" => {
            let _ = SINK.set(None);
            return Ok(());
        }
        "stdout" => Box::new(std::io::stdout()),
        path => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
    };
    let (tx, rx) = sync_channel::<String>(65_536);
    std::thread::Builder::new()
        .name("rampart-access-log".into())
        .spawn(move || {
            let mut w = std::io::BufWriter::with_capacity(64 * 1024, out);
            loop {
                // Flush whenever the queue is drained, so lines reach disk promptly.
                let line = match rx.try_recv() {
                    Ok(l) => l,
                    Err(TryRecvError::Empty) => {
                        let _ = w.flush();
                        match rx.recv() {
                            Ok(l) => l,
                            Err(_) => break,
                        }
                    }
                    Err(TryRecvError::Disconnected) => break,
                };
                let _ = w.write_all(line.as_bytes());
                let _ = w.write_all(b"\n");
            }
            let _ = w.flush();
        })?;
    let _ = SINK.set(Some(tx));
    Ok(())
}

/// Whether lines are wanted at all, so callers skip building them when the log is off.
pub fn enabled() -> bool {
    matches!(SINK.get(), Some(Some(_)))
}

pub fn write(line: String) {
    if let Some(Some(tx)) = SINK.get() {
        if tx.try_send(line).is_err() {
            crate::metrics::metrics().access_log_dropped.inc();
        }
    }
}

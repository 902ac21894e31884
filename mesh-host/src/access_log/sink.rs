//! Where access log lines go: a bounded queue to a writer thread per sink, so that writing a
//! line never blocks a request; a line that finds the queue full is dropped and counted.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};

use mesh_xds::config::AccessLogSink;

/// Lines a sink holds before it drops new ones.
const QUEUE_LINES: usize = 4096;

/// One open access log destination.
#[derive(Clone, Debug)]
pub struct LineSink {
    queue: SyncSender<String>,
}

/// Why a sink could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The file cannot be opened for appending.
    #[error("cannot open access log {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The writer thread cannot be started.
    #[error("cannot start the access log writer: {0}")]
    Thread(io::Error),
}

impl LineSink {
    /// Opens `sink` and starts its writer, which ends once every clone of the sink is gone
    /// and the queue is written out.
    pub fn open(sink: &AccessLogSink) -> Result<LineSink, SinkError> {
        let out: Box<dyn Write + Send> = match sink {
            AccessLogSink::File(path) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| SinkError::Open {
                        path: path.display().to_string(),
                        source,
                    })?,
            ),
            AccessLogSink::Stdout => Box::new(io::stdout()),
            AccessLogSink::Stderr => Box::new(io::stderr()),
        };
        let (queue, lines) = mpsc::sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(&lines, out))
            .map_err(SinkError::Thread)?;
        Ok(LineSink { queue })
    }

    /// Queues `line`; `false` when it was dropped because the queue is full (or the writer
    /// stopped after a write error it reported).
    pub fn offer(&self, line: String) -> bool {
        self.queue.try_send(line).is_ok()
    }
}

/// Writes every queued line, as many at once as are waiting.
fn write_lines(lines: &Receiver<String>, mut out: Box<dyn Write + Send>) {
    let mut batch = String::new();
    while let Ok(line) = lines.recv() {
        batch.push_str(&line);
        while let Ok(more) = lines.try_recv() {
            batch.push_str(&more);
        }
        if let Err(error) = out.write_all(batch.as_bytes()).and_then(|()| out.flush()) {
            tracing::error!("access log write failed, this log stops: {error}");
            return;
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_lines_reach_the_file_in_order() {
        let dir = tempfile::tempdir().expect("test fixture");
        let path = dir.path().join("access.log");
        let sink = LineSink::open(&AccessLogSink::File(path.clone())).expect("test fixture");
        assert!(sink.offer("one\n".into()));
        assert!(sink.offer("two\n".into()));
        drop(sink);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text == "one\ntwo\n" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "file holds {text:?}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

//! Logs go to stderr, one line per event, through the redactor. Dependencies log only
//! warnings unless ROTAGATE_LOG names them: their debug output could include request
//! details.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

pub fn init(verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let directives = match std::env::var("ROTAGATE_LOG") {
        Ok(v) if v.contains('=') => v,
        Ok(v) if !v.trim().is_empty() => format!("warn,octocrab=off,rotagate={}", v.trim()),
        _ => format!("warn,octocrab=off,rotagate={level}"),
    };
    let filter =
        EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("warn,rotagate=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingStderr(Vec::new()))
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .try_init();
}

/// Collects one log event and writes it to stderr with every known secret removed.
struct RedactingStderr(Vec<u8>);

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.0).into_owned();
        self.0.clear();
        let stderr = std::io::stderr();
        let mut err = stderr.lock();
        err.write_all(crate::secret::redact(&text).as_bytes())?;
        err.flush()
    }
}

impl Drop for RedactingStderr {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

//! Workflow commands: log groups and error annotations. They go to stderr, where the
//! logs are, because the runner reads stdout and stderr on separate threads and a
//! command is only ordered with the lines of its own stream.

use std::io::Write;

use super::mask::escape_command_data;
use crate::pipeline::Progress;

/// Property values escape `:` and `,` as well as the data escapes.
fn escape_property(value: &str) -> String {
    escape_command_data(value).replace(':', "%3A").replace(',', "%2C")
}

fn command(line: &str) {
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    // Nothing more useful to do when stderr is gone.
    let _ = writeln!(err, "{}", crate::secret::redact(line));
    let _ = err.flush();
}

/// A `::warning` annotation.
pub fn warning(title: &str, message: &str) {
    command(&format!(
        "::warning title={}::{}",
        escape_property(title),
        escape_command_data(message)
    ));
}

/// An `::error` annotation, attached to a file position when one is given.
pub fn error(title: &str, message: &str, at: Option<(&str, usize, usize)>) {
    let mut props = vec![format!("title={}", escape_property(title))];
    if let Some((file, line, col)) = at {
        props.insert(0, format!("file={},line={line},col={col}", escape_property(file)));
    }
    command(&format!("::error {}::{}", props.join(","), escape_command_data(message)));
}

/// One collapsible log group per credential the run works on while it works on that one
/// alone. Groups do not nest, so once credentials advance side by side their lines
/// (each prefixed with its credential) stay ungrouped until one runs alone again.
#[derive(Default)]
pub struct LogGroups {
    state: std::sync::Mutex<Groups>,
}

#[derive(Default)]
struct Groups {
    active: usize,
    open: Option<String>,
}

impl Progress for LogGroups {
    fn begin(&self, credential: &str) {
        let mut groups = self.state.lock().expect("log groups lock");
        groups.active += 1;
        if groups.active == 1 {
            command(&format!("::group::{}", escape_command_data(credential)));
            groups.open = Some(credential.to_string());
        } else if groups.open.take().is_some() {
            command("::endgroup::");
        }
    }

    fn end(&self, credential: &str) {
        let mut groups = self.state.lock().expect("log groups lock");
        groups.active = groups.active.saturating_sub(1);
        if groups.open.as_deref() == Some(credential) {
            groups.open = None;
            command("::endgroup::");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_escape_separators() {
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    }
}

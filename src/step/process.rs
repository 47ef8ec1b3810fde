//! Running a program for a command step or probe: a cleared environment (plus a minimal
//! PATH and the variables its entry lists), values on stdin, never in argv, a timeout,
//! and the end of stderr with every secret removed.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{StepContext, StepError, View, resolve};
use crate::config::CommandSpec;

const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
const STDERR_TAIL: usize = 600;
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

pub struct CommandOutput {
    pub code: Option<i32>,
    /// The end of stderr, with every secret the view knows of removed.
    pub stderr: String,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn describe_failure(&self) -> String {
        let code = self
            .code
            .map_or_else(|| "was killed by a signal".to_string(), |c| format!("exited with {c}"));
        if self.stderr.trim().is_empty() { code } else { format!("{code}: {}", self.stderr.trim()) }
    }
}

pub async fn run_command(
    spec: &CommandSpec<'_>,
    view: &View<'_>,
    cx: &StepContext<'_>,
) -> Result<CommandOutput, StepError> {
    let program =
        if spec.run.contains('/') { resolve(cx.base_dir, spec.run) } else { spec.run.into() };
    let mut command = tokio::process::Command::new(&program);
    command
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .current_dir(cx.base_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for arg in spec.args {
        command.arg(arg.render(view)?.expose());
    }
    for name in spec.env {
        if name == "PATH" {
            if let Ok(path) = std::env::var("PATH") {
                command.env("PATH", path);
            }
            continue;
        }
        let value = cx.env.get(name).ok_or_else(|| {
            StepError::Failed(format!(
                "{name} is listed for the command but not set in this run's environment"
            ))
        })?;
        command.env(name, value.expose());
    }
    let stdin = spec.stdin.map(|t| t.render(view)).transpose()?;
    tracing::debug!(program = spec.run, env = ?spec.env, stdin = stdin.is_some(), "running");
    let mut child = command
        .spawn()
        .map_err(|e| StepError::Failed(format!("cannot start {}: {e}", spec.run)))?;
    let mut child_stdin = child.stdin.take().expect("stdin is piped");
    let mut child_stderr = child.stderr.take().expect("stderr is piped");
    let work = async {
        // Written and read together: a program that fills stderr before reading stdin
        // must not deadlock against us.
        let write = async {
            if let Some(input) = &stdin {
                // A program that exits without reading its stdin is not an error here.
                let _ = child_stdin.write_all(input.expose().as_bytes()).await;
            }
            drop(child_stdin);
        };
        let read = async {
            let mut err = Vec::new();
            let _ = child_stderr.read_to_end(&mut err).await;
            err
        };
        let ((), err) = tokio::join!(write, read);
        (child.wait().await, err)
    };
    let timeout = spec.timeout.map_or(DEFAULT_COMMAND_TIMEOUT, |d| d.0);
    let (status, err) = tokio::time::timeout(timeout, work).await.map_err(|_| {
        StepError::Failed(format!(
            "{} did not finish within {}s and was killed",
            spec.run,
            timeout.as_secs()
        ))
    })?;
    let status = status.map_err(|e| StepError::Failed(format!("{} failed: {e}", spec.run)))?;
    let text = String::from_utf8_lossy(&err);
    let tail: String = {
        let chars: Vec<char> = text.chars().collect();
        chars[chars.len().saturating_sub(STDERR_TAIL)..].iter().collect()
    };
    // What was sent on stdin is redacted if it was secret (a rendered template holding a
    // private value registers itself); a kid it echoes back stays readable.
    Ok(CommandOutput { code: status.code(), stderr: view.redact(&tail) })
}

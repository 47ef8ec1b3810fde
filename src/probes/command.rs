//! `command` probe: passes on exit 0; the value arrives on stdin.

use async_trait::async_trait;

use super::{Probe, ProbeError};
use crate::config;
use crate::config::CommandSpec;
use crate::step::{StepContext, View, run_command};

pub struct CommandProbe {
    spec: config::CommandProbe,
}

impl CommandProbe {
    pub fn new(spec: config::CommandProbe) -> Self {
        CommandProbe { spec }
    }
}

#[async_trait]
impl Probe for CommandProbe {
    fn describe(&self) -> String {
        format!("command {}", self.spec.run)
    }

    async fn check(&self, view: &View<'_>, cx: &StepContext<'_>) -> Result<String, ProbeError> {
        let out = run_command(&CommandSpec::from(&self.spec), view, cx).await?;
        if out.success() {
            Ok(format!("{} exited 0", self.spec.run))
        } else {
            Err(ProbeError::Failed(format!("{} {}", self.spec.run, out.describe_failure())))
        }
    }
}

//! `command`: a program run with a cleared environment, values on stdin, never in argv
//! (see [`crate::step::run_command`]).

use crate::config::shape;
use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Action, ActionKind, Built, Op};
use crate::config::Template;
use crate::config::validate::steps as check;
use crate::config::validate::{Role, Scope, Validator};
use crate::config::{CommandSpec, Dur};
use crate::step::{Providers, StepContext, StepError, run_command};

shape! {
    pub struct CommandAction {
        /// The program, relative to rotagate.yaml or on PATH. No shell is involved.
        pub run: String,
        /// Arguments; templates here may not hold private values or env values (argv is
        /// visible to every process on the machine).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub args: Vec<Template>,
        /// Written to the program's stdin.
        pub stdin: Option<Template>,
        /// Variables passed through from rotagate's environment (they must be listed in the
        /// credential's env). Nothing else is inherited except a minimal PATH.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub env: Vec<String>,
        /// Kill the program after this long (default 5m).
        pub timeout: Option<Dur>,
    }
}

#[async_trait]
impl Action for CommandAction {
    fn describe(&self) -> String {
        format!("command {}", self.run)
    }

    async fn execute(&self, op: Op<'_>, cx: &StepContext<'_>) -> Result<Value, StepError> {
        let view = match op {
            Op::Run(view) | Op::Write(view) => view,
            other => return Err(other.refused("command")),
        };
        let out = run_command(&CommandSpec::from(self), view, cx).await?;
        if out.success() {
            Ok(json!({ "exit": 0 }))
        } else {
            Err(StepError::Failed(format!("{} {}", self.run, out.describe_failure())))
        }
    }
}

impl ActionKind<CommandAction> for CommandAction {
    const ROLES: &'static [Role] = &[Role::Promote, Role::Retire];

    fn check(c: &CommandAction, v: &mut Validator, scope: &Scope, path: &str, _: Role) {
        check::command(v, scope, &format!("{path}.command"), &c.into());
    }

    fn build(c: &CommandAction, _: &Providers) -> Built {
        Ok(Some(Box::new(c.clone())))
    }
}

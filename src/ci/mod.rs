//! GitHub Actions runtime: secret masking first, then groups, annotations, outputs,
//! the step summary and the triggering event.

mod commands;
mod mask;
mod report;
mod workflow;

pub use commands::{LogGroups, error};
pub use mask::{SECRET_ENV, mask, mask_env, masking_enabled};
pub use report::{check_summary, plan_matrix, run_outputs, run_summary};
pub use workflow::{APPROVALS_DIR, Trigger, Workflow, WorkflowError};

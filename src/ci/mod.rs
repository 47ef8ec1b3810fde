//! GitHub Actions runtime: secret masking first, then groups, annotations, outputs,
//! the step summary and the triggering event.

mod commands;
mod mask;
mod report;
mod workflow;

pub use commands::{LogGroups, error, warning};
pub(crate) use mask::{MIN_MASK_LEN, mask_lines};
pub use mask::{mask, masking_enabled};
pub use report::{
    SummaryContext, audit_summary, check_summary, plan_matrix, plan_summary, run_outputs,
    run_summary, status_summary,
};
pub use workflow::{APPROVALS_DIR, Trigger, Workflow, WorkflowError};

//! GitHub Actions runtime: secret masking first, then groups, annotations, outputs.

mod mask;

pub use mask::{mask, masking_enabled};

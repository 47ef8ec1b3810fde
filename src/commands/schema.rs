//! `rotagate schema`: the JSON Schema of rotagate.yaml, for editors.

use crate::app::{AppError, EXIT_OK, print_stdout};
use crate::config;

pub fn run() -> Result<u8, AppError> {
    print_stdout(&config::schema::schema_json());
    Ok(EXIT_OK)
}

//! `rotagate schema`: the JSON Schema of rotagate.yaml, for editors.
//!
//! The checked-in `schema/rotagate.schema.json` must equal this output; a test fails
//! when it goes stale.

use super::Config;

pub fn schema_json() -> String {
    let mut schema = schemars::schema_for!(Config);
    schema.insert(
        "$id".into(),
        "https://raw.githubusercontent.com/rotagate/rotagate/main/schema/rotagate.schema.json"
            .into(),
    );
    schema.insert("title".into(), "rotagate.yaml".into());
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serialises");
    text.push('\n');
    text
}

//! Config errors as people read them: each diagnostic with its file, line, column and
//! a snippet of the line, then a count.

use super::{ConfigError, Diagnostic};

/// Config errors with a snippet of the line each one is on.
pub fn render(e: &ConfigError) -> String {
    match e {
        ConfigError::Invalid { diagnostics, text } => {
            let mut out = String::new();
            for d in diagnostics {
                out.push_str(&render_diagnostic(d, text));
                out.push('\n');
            }
            out.push_str(&format!(
                "{} error{} in the config; nothing was changed\n",
                diagnostics.len(),
                if diagnostics.len() == 1 { "" } else { "s" }
            ));
            out
        }
        other => format!("error: {other}\n"),
    }
}

fn render_diagnostic(d: &Diagnostic, text: &str) -> String {
    use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};
    let title =
        if d.path.is_empty() { d.message.clone() } else { format!("{}: {}", d.path, d.message) };
    let path = d.file.display().to_string();
    let span = byte_span(text, d.line, d.column);
    let mut group = Level::ERROR.primary_title(title.as_str()).element(
        Snippet::source(text).path(path.as_str()).annotation(AnnotationKind::Primary.span(span)),
    );
    if let Some(hint) = &d.hint {
        group = group.element(Level::HELP.message(hint.as_str()));
    }
    Renderer::plain().render(&[group])
}

/// The byte range of the value at a 1-based line and column: a quoted scalar to its
/// closing quote, anything else to the next separator.
fn byte_span(text: &str, line: usize, column: usize) -> std::ops::Range<usize> {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let start =
                offset + l.char_indices().nth(column.saturating_sub(1)).map_or(0, |(b, _)| b);
            let rest = text[start..].lines().next().unwrap_or("");
            let len = match rest.chars().next() {
                Some(q @ ('"' | '\'')) => rest[1..].find(q).map_or(rest.len(), |end| end + 2),
                _ => rest.find([',', '}', ']', '#']).unwrap_or(rest.len()),
            };
            let len = rest[..len].trim_end().len().max(1).min(text.len() - start);
            return start..start + len;
        }
        offset += l.len();
    }
    text.len()..text.len()
}

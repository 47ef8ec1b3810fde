//! Dotenv files edited in place: the keys rotagate owns are upserted, every other line
//! (comments, blank lines, other keys, their order) stays byte for byte.
//!
//! Values are written the way dotenv readers (Node dotenv, python-dotenv, docker
//! compose) agree on: bare when plain, single-quoted when they hold specials, and
//! double-quoted with `\n` escapes when they span lines (a PEM).

use std::path::Path;

use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Entry { export: bool, key: String, raw_value: String },
    Other(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvFile {
    lines: Vec<Line>,
    trailing_newline: bool,
}

impl EnvFile {
    pub fn parse(text: &str) -> EnvFile {
        let mut lines = Vec::new();
        let mut rest: Vec<&str> = text.split('\n').collect();
        let trailing_newline = text.ends_with('\n');
        if trailing_newline {
            rest.pop();
        }
        let mut i = 0;
        while i < rest.len() {
            let line = rest[i];
            i += 1;
            let Some((export, key, value)) = split_entry(line) else {
                lines.push(Line::Other(line.to_string()));
                continue;
            };
            // A quoted value may run over several lines.
            let mut raw_value = value.to_string();
            if let Some(q) = raw_value.chars().next().filter(|c| *c == '"' || *c == '\'') {
                while !closes(&raw_value, q) && i < rest.len() {
                    raw_value.push('\n');
                    raw_value.push_str(rest[i]);
                    i += 1;
                }
            }
            lines.push(Line::Entry { export, key: key.to_string(), raw_value });
        }
        EnvFile { lines, trailing_newline: trailing_newline || text.is_empty() }
    }

    pub fn get(&self, key: &str) -> Option<Zeroizing<String>> {
        self.lines.iter().find_map(|l| match l {
            Line::Entry { key: k, raw_value, .. } if k == key => Some(parse_env_value(raw_value)),
            _ => None,
        })
    }

    /// Sets `key`, in place if present (later duplicates are dropped), else appended.
    pub fn set(&mut self, key: &str, value: &str) {
        let formatted = format_env_value(value);
        let mut seen = false;
        self.lines.retain_mut(|l| match l {
            Line::Entry { key: k, raw_value, .. } if k == key => {
                if seen {
                    return false;
                }
                seen = true;
                *raw_value = formatted.clone();
                true
            }
            _ => true,
        });
        if !seen {
            self.lines.push(Line::Entry {
                export: false,
                key: key.to_string(),
                raw_value: formatted,
            });
        }
    }

    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.lines.len();
        self.lines.retain(|l| !matches!(l, Line::Entry { key: k, .. } if k == key));
        before != self.lines.len()
    }

    pub fn render(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            match line {
                Line::Entry { export, key, raw_value } => {
                    if *export {
                        out.push_str("export ");
                    }
                    out.push_str(key);
                    out.push('=');
                    out.push_str(raw_value);
                }
                Line::Other(text) => out.push_str(text),
            }
        }
        if self.trailing_newline && !self.lines.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// Reads an env file; a missing file is an empty one.
pub fn read_env_file(path: &Path) -> std::io::Result<EnvFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(EnvFile::parse(&Zeroizing::new(text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(EnvFile::default()),
        Err(e) => Err(e),
    }
}

fn split_entry(line: &str) -> Option<(bool, &str, &str)> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') {
        return None;
    }
    let (export, body) = match trimmed.strip_prefix("export ") {
        Some(rest) => (true, rest.trim_start()),
        None => (false, trimmed),
    };
    let (key, value) = body.split_once('=')?;
    let key = key.trim();
    let valid =
        !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    valid.then(|| (export, key, value.trim_start()))
}

fn closes(raw: &str, quote: char) -> bool {
    let body = &raw[1..];
    let mut escaped = false;
    for c in body.chars() {
        if quote == '"' && c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        if c == quote && !escaped {
            return true;
        }
        escaped = false;
    }
    false
}

fn format_env_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "_./:+=@,%^-".contains(c));
    if plain {
        return value.to_string();
    }
    if !value.contains(['\'', '\n', '\r']) {
        return format!("'{value}'");
    }
    let mut out = String::with_capacity(value.len() + 8);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value a dotenv reader sees for `raw` (the text after `KEY=`).
pub fn parse_env_value(raw: &str) -> Zeroizing<String> {
    let raw = raw.trim_end_matches('\r');
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.rfind('\'').map(|i| &r[..i])) {
        return Zeroizing::new(inner.to_string());
    }
    if let Some(body) = raw.strip_prefix('"') {
        let mut out = Zeroizing::new(String::new());
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some(other @ ('\\' | '"' | '$')) => out.push(other),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => out.push('\\'),
                },
                c => out.push(c),
            }
        }
        return out;
    }
    let value = match raw.find(" #") {
        Some(i) => &raw[..i],
        None => raw,
    };
    Zeroizing::new(value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upserts_and_leaves_other_lines_alone() {
        let text = "# app config\nexport A=1\n\nSIGNING_KID=old # current\nB='x y'\n";
        let mut f = EnvFile::parse(text);
        assert_eq!(f.get("SIGNING_KID").unwrap().as_str(), "old");
        assert_eq!(f.get("B").unwrap().as_str(), "x y");
        f.set("SIGNING_KID", "new-kid");
        f.set("C", "with space");
        assert_eq!(
            f.render().as_str(),
            "# app config\nexport A=1\n\nSIGNING_KID=new-kid\nB='x y'\nC='with space'\n"
        );
        assert!(f.remove("C"));
        assert!(!f.remove("C"));
        assert_eq!(
            f.render().as_str(),
            "# app config\nexport A=1\n\nSIGNING_KID=new-kid\nB='x y'\n"
        );
    }

    #[test]
    fn multi_line_values_round_trip() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIE\"abc\\def\n-----END PRIVATE KEY-----\n";
        let mut f = EnvFile::default();
        f.set("KEY", pem);
        f.set("Q", "it's");
        let text = f.render();
        assert!(!text.contains("MIIE\"abc\\def\n"), "newlines must be escaped on one line");
        let again = EnvFile::parse(&text);
        assert_eq!(again.get("KEY").unwrap().as_str(), pem);
        assert_eq!(again.get("Q").unwrap().as_str(), "it's");
    }

    #[test]
    fn reads_literal_multi_line_quotes_written_by_other_tools() {
        let f = EnvFile::parse("A=\"line1\nline2\"\nB=2\n");
        assert_eq!(f.get("A").unwrap().as_str(), "line1\nline2");
        assert_eq!(f.get("B").unwrap().as_str(), "2");
        assert_eq!(f.render().as_str(), "A=\"line1\nline2\"\nB=2\n");
    }

    #[test]
    fn duplicate_keys_collapse_to_the_first() {
        let mut f = EnvFile::parse("K=1\nX=0\nK=2\n");
        f.set("K", "3");
        assert_eq!(f.render().as_str(), "K=3\nX=0\n");
    }
}

//! Maps a config path such as `credentials[0].promote[1].http.url` to where it is
//! written, so errors found after deserialisation still name a line and column.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
}

#[derive(Debug, Default)]
pub struct Locator {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

/// A [`Locator`] built on first use: the second parse it needs is only paid for when
/// there is something to report, so a valid config loads in one parse.
pub struct LazyLocator<'t> {
    text: &'t str,
    cell: std::cell::OnceCell<Locator>,
}

impl<'t> LazyLocator<'t> {
    pub fn new(text: &'t str) -> Self {
        LazyLocator { text, cell: std::cell::OnceCell::new() }
    }

    pub fn get(&self) -> &Locator {
        self.cell.get_or_init(|| Locator::new(self.text))
    }
}

impl Locator {
    /// Never fails: text that does not parse simply yields no positions (serde_yaml
    /// reports the syntax error with its own location).
    pub fn new(text: &str) -> Self {
        let mut locator = Locator::default();
        if let Ok(docs) = MarkedYaml::load_from_str(text)
            && let Some(doc) = docs.first()
        {
            locator.walk(doc, String::new());
        }
        locator
    }

    /// Where the value at `path` starts, or the nearest written ancestor.
    pub fn value(&self, path: &str) -> Option<Pos> {
        let mut p = path.to_string();
        loop {
            if let Some(pos) = self.values.get(&p) {
                return Some(*pos);
            }
            p = parent(&p)?;
        }
    }

    /// Where the key of the mapping entry at `path` is written (falls back to its value).
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }

    /// The first path under `root` whose last key is `name` (to place serde's
    /// "unknown field" errors, which internally tagged enums report at the parent).
    pub fn find_key_under(&self, root: &str, name: &str) -> Option<(String, Pos)> {
        let mut found: Vec<(&String, &Pos)> = self
            .keys
            .iter()
            .filter(|(p, _)| {
                (root.is_empty() || p.starts_with(root))
                    && (p.ends_with(&format!(".{name}")) || p.as_str() == name)
            })
            .collect();
        found.sort_by_key(|(_, pos)| (pos.line, pos.column));
        found.first().map(|(p, pos)| ((*p).clone(), **pos))
    }

    fn walk(&mut self, node: &MarkedYaml<'_>, path: String) {
        let start = node.span.start;
        self.values.insert(path.clone(), Pos { line: start.line(), column: start.col() + 1 });
        match &node.data {
            YamlData::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.walk(item, format!("{path}[{i}]"));
                }
            }
            YamlData::Mapping(map) => {
                for (key, value) in map.iter() {
                    let name = match &key.data {
                        YamlData::Value(Scalar::String(s)) => s.to_string(),
                        YamlData::Value(Scalar::Integer(i)) => i.to_string(),
                        YamlData::Value(Scalar::Boolean(b)) => b.to_string(),
                        YamlData::Representation(s, _, _) => s.to_string(),
                        _ => continue,
                    };
                    let child = if path.is_empty() { name } else { format!("{path}.{name}") };
                    let kpos = key.span.start;
                    self.keys
                        .insert(child.clone(), Pos { line: kpos.line(), column: kpos.col() + 1 });
                    self.walk(value, child);
                }
            }
            YamlData::Tagged(_, inner) => self.walk(inner, path),
            _ => {}
        }
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``; None above the root.
fn parent(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(path[..cut].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "version: 1\ncredentials:\n  - id: a\n    promote:\n      - http: { method: POST, url: \"{{ new.private_pem }}\" }\n";

    #[test]
    fn finds_values_keys_and_ancestors() {
        let l = Locator::new(YAML);
        assert_eq!(l.value("version"), Some(Pos { line: 1, column: 10 }));
        assert_eq!(l.key("credentials[0].id"), Some(Pos { line: 3, column: 5 }));
        let url = l.value("credentials[0].promote[0].http.url").unwrap();
        assert_eq!(url.line, 5);
        assert_eq!(url.column, 36);
        // An unwritten path falls back to the nearest written ancestor.
        assert_eq!(
            l.value("credentials[0].promote[0].http.timeout"),
            l.value("credentials[0].promote[0].http")
        );
    }

    #[test]
    fn finds_a_key_by_name_under_a_root() {
        let l = Locator::new("credentials:\n  - id: a\n    key: { type: rsa, bitz: 1 }\n");
        let (path, pos) = l.find_key_under("credentials[0]", "bitz").unwrap();
        assert_eq!(path, "credentials[0].key.bitz");
        assert_eq!(pos, Pos { line: 3, column: 23 });
    }

    #[test]
    fn garbage_yields_nothing() {
        assert!(Locator::new(": : :\n\t- [").value("a").is_none());
    }
}

//! `{{ new.kid }}`, `{{ old.private_pem }}`, `{{ env.DEPLOY_HOOK_URL }}`.
//!
//! Templates are parsed and checked when the config loads (names, declared env vars,
//! where private values may go), so a typo never surfaces halfway through a rotation.
//! Rendering always yields a [`Secret`]: logs show the template text, never its value.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::secret::Secret;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Template(String);

impl Template {
    pub fn new(raw: impl Into<String>) -> Self {
        Template(raw.into())
    }

    /// The text as written in the config: safe to log.
    pub fn raw(&self) -> &str {
        &self.0
    }

    pub fn parse(&self) -> Result<Vec<Segment>, TemplateError> {
        parse_segments(&self.0)?
            .into_iter()
            .map(|seg| match seg {
                RawSegment::Text(t) => Ok(Segment::Text(t)),
                RawSegment::Var(v) => Var::parse(&v).map(Segment::Var),
            })
            .collect()
    }

    pub fn vars(&self) -> Result<Vec<Var>, TemplateError> {
        Ok(self
            .parse()?
            .into_iter()
            .filter_map(|s| match s {
                Segment::Var(v) => Some(v),
                Segment::Text(_) => None,
            })
            .collect())
    }

    /// The rendered text: a secret when it holds a private value or an env var, public
    /// (kid, fingerprint, plain text) otherwise, so only secrets are masked and redacted.
    pub fn render(&self, view: &dyn Lookup) -> Result<Secret, RenderError> {
        let mut out = String::new();
        let mut sensitive = false;
        for seg in self.parse().map_err(RenderError::Syntax)? {
            match seg {
                Segment::Text(t) => out.push_str(&t),
                Segment::Var(v) => {
                    sensitive |= v.is_sensitive();
                    out.push_str(view.lookup(&v)?.expose());
                }
            }
        }
        Ok(if sensitive { Secret::new(out) } else { Secret::public(out) })
    }
}

/// Whether any template in `value` (a step's config) reads `{{ new.X }}` or
/// `{{ old.X }}`: such a step cannot run where there is no material.
pub fn reads_material(value: &impl Serialize) -> bool {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => Template::new(s.as_str())
                .vars()
                .is_ok_and(|vars| vars.iter().any(|var| matches!(var, Var::New(_) | Var::Old(_)))),
            serde_json::Value::Array(items) => items.iter().any(walk),
            serde_json::Value::Object(map) => {
                map.iter().any(|(k, v)| walk(&serde_json::Value::String(k.clone())) || walk(v))
            }
            _ => false,
        }
    }
    serde_json::to_value(value).is_ok_and(|v| walk(&v))
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.0)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Accepts any YAML scalar, so `expect: { /status: 200, /ready: true }` reads naturally.
impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Template;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string (it may contain {{ new.X }}, {{ old.X }} or {{ env.NAME }})")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Template, E> {
                Ok(Template(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Template, E> {
                Ok(Template(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Template, E> {
                Ok(Template(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Template, E> {
                Ok(Template(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Template, E> {
                Ok(Template(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

schema_by_hand!(
    Template,
    "Template",
    {
        "description": "Text that may contain {{ new.X }} / {{ old.X }} (X in kid, private_pem, public_pem, jwk, private_jwk, value, fingerprint, role, recipient) and {{ env.NAME }} for a variable the credential lists under env.",
        "type": ["string", "number", "boolean"]
    }
);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Var(Var),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Var {
    New(Field),
    Old(Field),
    Env(String),
}

impl Var {
    /// A private value or an environment variable (which may hold a token).
    pub fn is_sensitive(&self) -> bool {
        match self {
            Var::New(f) | Var::Old(f) => f.is_private(),
            Var::Env(_) => true,
        }
    }

    fn parse(text: &str) -> Result<Var, TemplateError> {
        let (ns, name) =
            text.split_once('.').ok_or_else(|| TemplateError::UnknownName(text.to_string()))?;
        match ns {
            "new" => Field::parse(name).map(Var::New),
            "old" => Field::parse(name).map(Var::Old),
            "env" if is_env_name(name) => Ok(Var::Env(name.to_string())),
            _ => Err(TemplateError::UnknownName(text.to_string())),
        }
    }

    pub fn field(&self) -> Option<Field> {
        match self {
            Var::New(f) | Var::Old(f) => Some(*f),
            Var::Env(_) => None,
        }
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::New(field) => write!(f, "{{{{ new.{} }}}}", field.name()),
            Var::Old(field) => write!(f, "{{{{ old.{} }}}}", field.name()),
            Var::Env(name) => write!(f, "{{{{ env.{name} }}}}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Kid,
    PrivatePem,
    PublicPem,
    Jwk,
    PrivateJwk,
    Value,
    Fingerprint,
    Role,
    Recipient,
}

impl Field {
    pub const ALL: [Field; 9] = [
        Field::Kid,
        Field::PrivatePem,
        Field::PublicPem,
        Field::Jwk,
        Field::PrivateJwk,
        Field::Value,
        Field::Fingerprint,
        Field::Role,
        Field::Recipient,
    ];

    fn parse(name: &str) -> Result<Field, TemplateError> {
        Field::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| TemplateError::UnknownField(name.to_string()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Field::Kid => "kid",
            Field::PrivatePem => "private_pem",
            Field::PublicPem => "public_pem",
            Field::Jwk => "jwk",
            Field::PrivateJwk => "private_jwk",
            Field::Value => "value",
            Field::Fingerprint => "fingerprint",
            Field::Role => "role",
            Field::Recipient => "recipient",
        }
    }

    /// Private values may go into `set:` maps, bodies and stdin, never into a URL,
    /// a header name, argv or a pull-request body.
    pub fn is_private(self) -> bool {
        matches!(self, Field::PrivatePem | Field::PrivateJwk | Field::Value)
    }
}

/// Resolves template variables; implemented by the engine's material view.
pub trait Lookup {
    fn lookup(&self, var: &Var) -> Result<Secret, RenderError>;
}

/// A fixed set of values, for kid templates and tests.
impl Lookup for BTreeMap<Var, Secret> {
    fn lookup(&self, var: &Var) -> Result<Secret, RenderError> {
        self.get(var)
            .cloned()
            .ok_or_else(|| RenderError::Missing { var: var.to_string(), why: "no value".into() })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{{{` is never closed with `}}}}`")]
    Unclosed,
    #[error("empty `{{{{ }}}}`")]
    Empty,
    #[error("unknown name `{0}`: use new.X, old.X or env.NAME")]
    UnknownName(String),
    #[error(
        "unknown field `{0}`: use one of kid, private_pem, public_pem, jwk, private_jwk, value, fingerprint, role, recipient"
    )]
    UnknownField(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("template syntax: {0}")]
    Syntax(TemplateError),
    #[error("{var} has no value: {why}")]
    Missing { var: String, why: String },
}

/// Upper-case-ish environment variable names, as POSIX shells accept them.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// rotagate's own secrets and the runner's context never reach a template.
pub fn is_reserved_env(name: &str) -> bool {
    ["ROTAGATE_", "GITHUB_", "ACTIONS_", "RUNNER_"]
        .iter()
        .any(|p| name.to_ascii_uppercase().starts_with(p))
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RawSegment {
    Text(String),
    Var(String),
}

/// Splits `a {{ x.y }} b` into text and variable parts; shared with kid templates.
pub(crate) fn parse_segments(input: &str) -> Result<Vec<RawSegment>, TemplateError> {
    let mut segments = Vec::new();
    let mut rest = input;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            segments.push(RawSegment::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let inner = after[..end].trim();
        if inner.is_empty() {
            return Err(TemplateError::Empty);
        }
        segments.push(RawSegment::Var(inner.to_string()));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        segments.push(RawSegment::Text(rest.to_string()));
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vars_and_text() {
        let t = Template::new("Bearer {{ env.TOKEN }} for {{new.kid}}!");
        assert_eq!(
            t.parse().unwrap(),
            vec![
                Segment::Text("Bearer ".into()),
                Segment::Var(Var::Env("TOKEN".into())),
                Segment::Text(" for ".into()),
                Segment::Var(Var::New(Field::Kid)),
                Segment::Text("!".into()),
            ]
        );
    }

    #[test]
    fn rejects_bad_templates() {
        assert_eq!(Template::new("{{ new.kid").parse(), Err(TemplateError::Unclosed));
        assert_eq!(Template::new("{{ }}").parse(), Err(TemplateError::Empty));
        assert!(matches!(
            Template::new("{{ newer.kid }}").parse(),
            Err(TemplateError::UnknownName(_))
        ));
        assert!(matches!(
            Template::new("{{ new.pem }}").parse(),
            Err(TemplateError::UnknownField(_))
        ));
        assert!(matches!(
            Template::new("{{ env.9X }}").parse(),
            Err(TemplateError::UnknownName(_))
        ));
    }

    #[test]
    fn renders_from_lookup() {
        let mut values = BTreeMap::new();
        values.insert(Var::New(Field::Kid), Secret::new("k-2"));
        values.insert(Var::Old(Field::Kid), Secret::new("k-1"));
        let t = Template::new("{{ old.kid }} -> {{ new.kid }}");
        assert_eq!(t.render(&values).unwrap().expose(), "k-1 -> k-2");
        let missing = Template::new("{{ new.value }}").render(&values).unwrap_err();
        assert!(missing.to_string().contains("{{ new.value }}"));
    }

    #[test]
    fn reserved_env_prefixes() {
        assert!(is_reserved_env("GITHUB_TOKEN"));
        assert!(is_reserved_env("ROTAGATE_AGE_IDENTITY"));
        assert!(is_reserved_env("runner_temp"));
        assert!(!is_reserved_env("DEPLOY_HOOK_URL"));
    }
}

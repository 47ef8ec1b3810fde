//! `rotagate.yaml`: the model, loading with locations, templates and the JSON Schema.
//!
//! serde_yaml (archived upstream) is used only in this module, so a maintained fork can
//! replace it in one place.

/// A shape of `rotagate.yaml` (the config's, a step kind's): unknown fields are refused
/// with their line and column, unset optional fields are left out when it is written
/// back, and its doc comments become the descriptions of `rotagate schema`.
macro_rules! shape {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        #[serde_with::skip_serializing_none]
        #[derive(
            Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::schemars::JsonSchema,
        )]
        #[serde(deny_unknown_fields)]
        $(#[$attr])*
        pub struct $name { $($fields)* }
    };
}
pub(crate) use shape;

/// The schema of a config type read from text or any scalar, written by hand.
macro_rules! schema_by_hand {
    ($ty:ty, $name:literal, $schema:tt) => {
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!($schema)
            }
        }
    };
}

mod duration;
mod locate;
mod model;
pub mod render;
pub mod schema;
pub mod template;
pub(crate) mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use duration::Dur;
pub use locate::{LazyLocator, Locator, Pos};
pub use model::*;
use serde::Deserialize;
pub use template::Template;

/// One problem in the config, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// e.g. `credentials[0].promote[1].http.url`
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}; pass --config or set ROTAGATE_CONFIG", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_list(diagnostics))]
    Invalid {
        diagnostics: Vec<Diagnostic>,
        /// The config text, for rendering snippets.
        text: String,
    },
}

fn render_list(diagnostics: &[Diagnostic]) -> String {
    let mut out = format!(
        "config has {} error{}:",
        diagnostics.len(),
        if diagnostics.len() == 1 { "" } else { "s" }
    );
    for d in diagnostics {
        out.push_str("\n  ");
        out.push_str(&d.to_string());
    }
    out
}

/// A config as loaded from disk: the model plus what errors and relative paths need.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub path: PathBuf,
    /// Things that load but deserve a second look (printed, never fatal).
    pub warnings: Vec<Diagnostic>,
    /// Directory relative paths in the config are resolved against.
    pub dir: PathBuf,
    pub config: Config,
}

impl LoadedConfig {
    pub fn credential(&self, id: &str) -> Option<&Credential> {
        self.config.credentials.iter().find(|c| c.id == id)
    }

    /// Every credential with the defaults applied.
    pub fn resolved(&self) -> Vec<Credential> {
        self.config.credentials.iter().map(|c| c.resolved(&self.config.defaults)).collect()
    }
}

pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    let (config, warnings) = parse_with_warnings(&text, path)?;
    // Absolute, because commands run with this as their working directory and a
    // relative program path would then resolve twice.
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
    Ok(LoadedConfig { path: path.to_path_buf(), warnings, dir, config })
}

/// Parses and validates; every problem found is reported at once.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    parse_with_warnings(text, file).map(|(config, _)| config)
}

fn parse_with_warnings(text: &str, file: &Path) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
    if let Some(d) = too_big_or_deep(text, file) {
        return Err(ConfigError::Invalid { diagnostics: vec![d], text: text.to_string() });
    }
    let locator = LazyLocator::new(text);
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let config: Config = match serde_yaml::with::singleton_map_recursive::deserialize(deserializer)
    {
        Ok(config) => config,
        Err(e) => {
            return Err(ConfigError::Invalid {
                diagnostics: vec![serde_diagnostic(&e, locator.get(), file)],
                text: text.to_string(),
            });
        }
    };
    let (diagnostics, warnings) = validate::validate(&config, &locator, file);
    if diagnostics.is_empty() {
        Ok((config, warnings))
    } else {
        Err(ConfigError::Invalid { diagnostics, text: text.to_string() })
    }
}

/// No real config nests flow collections 100 deep or runs to a megabyte; refusing those
/// up front keeps the parser (quadratic on deep nesting) from being a way to stall CI.
fn too_big_or_deep(text: &str, file: &Path) -> Option<Diagnostic> {
    const MAX_BYTES: usize = 1 << 20;
    const MAX_DEPTH: usize = 100;
    let diagnostic = |line: usize, column: usize, message: String| Diagnostic {
        file: file.to_path_buf(),
        line,
        column,
        path: String::new(),
        message,
        hint: None,
    };
    if text.len() > MAX_BYTES {
        return Some(diagnostic(1, 1, format!("the config is larger than {MAX_BYTES} bytes")));
    }
    let (mut depth, mut quote, mut line, mut column) = (0usize, None::<char>, 1, 0);
    let mut escaped = false;
    for c in text.chars() {
        column += 1;
        match (quote, c) {
            (_, '\n') => {
                line += 1;
                column = 0;
            }
            (Some('"'), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(diagnostic(
                        line,
                        column,
                        format!("collections nest deeper than {MAX_DEPTH} levels"),
                    ));
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        escaped = false;
    }
    None
}

/// Turns a serde_yaml error into a diagnostic, placing "unknown field" errors on the
/// field itself (internally tagged enums report them at the enclosing mapping).
fn serde_diagnostic(e: &serde_yaml::Error, locator: &Locator, file: &Path) -> Diagnostic {
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full.clone(),
    };
    let (mut path, mut message) = match message.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (p.to_string(), m.to_string()),
        _ => (String::new(), message),
    };
    let (mut line, mut column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
    if let Some(field) = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next())
        && let Some((found, pos)) = locator.find_key_under(&path, field)
    {
        path = found;
        line = pos.line;
        column = pos.column;
    }
    let hint = if message.starts_with("unknown field") || message.starts_with("unknown variant") {
        Some("check the spelling against `rotagate schema` or README".to_string())
    } else if message.contains("expected a YAML tag") {
        message = message.replace("a YAML tag starting with '!'", "a single-key mapping");
        Some("write variants as `kind: { ... }`".to_string())
    } else {
        None
    };
    Diagnostic { file: file.to_path_buf(), line, column, path, message, hint }
}

impl Credential {
    /// This credential with `defaults` filled in where it sets nothing itself.
    pub fn resolved(&self, defaults: &Defaults) -> Credential {
        let mut c = self.clone();
        if c.owner.is_none() {
            c.owner.clone_from(&defaults.owner);
        }
        if c.schedule.is_none() {
            c.schedule.clone_from(&defaults.schedule);
        }
        if c.propagate.is_none() {
            c.propagate.clone_from(&defaults.propagate);
        }
        if c.drain.is_none() {
            c.drain = defaults.drain;
        }
        if c.gate.is_none() {
            c.gate.clone_from(&defaults.gate);
        }
        if c.on_verify_failure.is_none() {
            c.on_verify_failure = defaults.on_verify_failure;
        }
        c
    }

    pub fn drain(&self) -> Dur {
        self.drain.unwrap_or(Dur::ZERO)
    }

    pub fn propagate_wait(&self) -> Dur {
        self.propagate.as_ref().map(Propagate::wait).unwrap_or(Dur::ZERO)
    }

    /// The credential's gate; approval by pull request unless it says otherwise.
    pub fn gate(&self) -> GateSpec {
        self.gate.clone().unwrap_or_else(|| GateSpec::PullRequest(PullRequestGate::default()))
    }

    pub fn emergency_gate(&self) -> GateSpec {
        self.emergency.as_ref().and_then(|e| e.gate.clone()).unwrap_or_else(|| self.gate())
    }

    pub fn on_verify_failure(&self) -> OnVerifyFailure {
        self.on_verify_failure.unwrap_or_default()
    }

    pub fn roles(&self) -> Option<[String; 2]> {
        if self.strategy != Strategy::Alternating {
            return None;
        }
        match self.roles.as_deref() {
            Some([a, b]) => Some([a.clone(), b.clone()]),
            _ => Some(["a".to_string(), "b".to_string()]),
        }
    }

    pub fn expires(&self) -> Option<time::Date> {
        self.schedule.as_ref().and_then(|s| s.expires.as_deref()).and_then(|d| parse_date(d).ok())
    }
}

pub(crate) fn parse_date(text: &str) -> Result<time::Date, time::error::Parse> {
    time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
}

/// The store named by `state.store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    File(PathBuf),
    /// A branch of `github.repo`.
    GithubBranch(String),
}

impl StoreSpec {
    pub fn parse(text: &str) -> Result<StoreSpec, String> {
        match text.split_once(':') {
            Some(("file", path)) if !path.trim().is_empty() => {
                Ok(StoreSpec::File(PathBuf::from(path.trim())))
            }
            Some(("github-branch", branch)) if is_branch_name(branch.trim()) => {
                Ok(StoreSpec::GithubBranch(branch.trim().to_string()))
            }
            _ => Err(format!(
                "`{text}` is not a state store; write `github-branch:rotagate-state` or `file:.rotagate/state.age`"
            )),
        }
    }
}

/// A git branch name GitHub accepts (conservatively).
pub fn is_branch_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.contains("..")
        && !name.contains("//")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

/// `owner/name` as GitHub spells repositories.
pub fn is_repo(text: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    matches!(text.split_once('/'), Some((owner, name)) if ok(owner) && ok(name) && !name.contains('/'))
}

/// The JSON form a credential is snapshotted in at `generated`.
pub fn snapshot_value(credential: &Credential) -> serde_json::Value {
    serde_json::to_value(credential).expect("config model always serialises")
}

pub fn credential_from_snapshot(value: &serde_json::Value) -> Result<Credential, String> {
    Credential::deserialize(value).map_err(|e| e.to_string())
}

/// Parses a small YAML document (an approval file) into JSON values; kept here so the
/// YAML parser stays behind this module.
pub fn parse_yaml_value(text: &str) -> Result<serde_json::Value, String> {
    serde_yaml::from_str(text).map_err(|e| e.to_string())
}

//! What a step sees: the material view its templates render from, and the run's tools.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::template::{Lookup, RenderError, Var};
use crate::http::HttpClient;
use crate::material::Material;
use crate::secret::Secret;

/// The environment variables a credential declared, read once per run.
#[derive(Debug, Default, Clone)]
pub struct EnvValues(BTreeMap<String, Secret>);

impl EnvValues {
    pub fn new(values: BTreeMap<String, Secret>) -> Self {
        EnvValues(values)
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Secret)> {
        self.0.iter()
    }
}

/// The materials `{{ new.X }}` and `{{ old.X }}` refer to for one call. Rollback and
/// retire swap them (the "new" of an unpublish is what gets removed).
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub new: Option<&'a Material>,
    pub old: Option<&'a Material>,
    pub env: &'a EnvValues,
}

impl View<'_> {
    /// Removes every secret this view knows of from `text` (a command's stderr, a
    /// response body) before it goes into an error message.
    pub fn redact(&self, text: &str) -> String {
        self.redact_with(text, &[])
    }

    /// Like [`View::redact`], also removing `extra` values (what a step rendered and
    /// sent, such as a private JWK on a command's stdin) and their lines.
    pub fn redact_with(&self, text: &str, extra: &[&Secret]) -> String {
        let mut out = text.to_string();
        let mut secrets: Vec<&str> = Vec::new();
        for s in extra {
            secrets.push(s.expose());
            secrets.extend(s.expose().lines().map(str::trim).filter(|l| l.len() >= 16));
        }
        for m in [self.new, self.old].into_iter().flatten() {
            if let Some(s) = &m.secret {
                secrets.push(s.expose());
                secrets.extend(s.expose().lines().map(str::trim).filter(|l| l.len() >= 16));
            }
        }
        secrets.extend(self.env.iter().map(|(_, v)| v.expose()));
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in secrets.into_iter().filter(|s| s.len() >= 4) {
            out = out.replace(s, "<redacted>");
        }
        out
    }
}

impl Lookup for View<'_> {
    fn lookup(&self, var: &Var) -> Result<Secret, RenderError> {
        let missing = |why: &str| RenderError::Missing {
            var: var.to_string(),
            why: why.to_string(),
        };
        match var {
            Var::New(field) => self
                .new
                .ok_or_else(|| missing("there is no new material here"))?
                .field(*field)
                .map_err(|e| missing(&e.to_string())),
            Var::Old(field) => self
                .old
                .ok_or_else(|| missing("there is no old material (first issuance)"))?
                .field(*field)
                .map_err(|e| missing(&e.to_string())),
            Var::Env(name) => self
                .env
                .get(name)
                .cloned()
                .ok_or_else(|| missing("the environment variable is not set for this run")),
        }
    }
}

/// The run's tools, handed to every step.
pub struct StepContext<'a> {
    pub credential: &'a str,
    pub step: &'a str,
    /// Relative paths in the config resolve against this directory.
    pub base_dir: &'a Path,
    pub http: &'a HttpClient,
    pub env: &'a EnvValues,
    /// What earlier steps of this rotation journaled, oldest first (a dispatched
    /// workflow's run, for the probe that waits on it).
    pub produced: &'a [serde_json::Value],
}

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

impl<'a> View<'a> {
    pub fn new(
        new: Option<&'a Material>,
        old: Option<&'a Material>,
        env: &'a EnvValues,
    ) -> View<'a> {
        View { new, old, env }
    }

    /// Removes every secret from `text` (a command's stderr, a response body) before it
    /// goes into an error message: the view's materials and env values, and whatever
    /// else the process holds (see [`crate::secret::redact`]).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        // The view's own secrets first (already registered with the redactor when they
        // were made or loaded; replaced here too so the view alone is enough).
        let own = [self.new, self.old]
            .into_iter()
            .flatten()
            .filter_map(|m| m.secret.as_ref())
            .chain(self.env.iter().map(|(_, v)| v));
        for s in own {
            for line in s.expose().lines().map(str::trim).filter(|l| l.len() >= 16) {
                out = out.replace(line, crate::secret::REDACTED);
            }
            if s.expose().len() >= 4 {
                out = out.replace(s.expose(), crate::secret::REDACTED);
            }
        }
        crate::secret::redact(&out)
    }
}

impl Lookup for View<'_> {
    fn lookup(&self, var: &Var) -> Result<Secret, RenderError> {
        let missing =
            |why: &str| RenderError::Missing { var: var.to_string(), why: why.to_string() };
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

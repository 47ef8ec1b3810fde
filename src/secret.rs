//! The one type every secret value travels in, and the redactor that knows them all.
//!
//! `Secret` redacts itself in `Debug` and `Display` and zeroizes its buffer on drop. A
//! secret made with [`Secret::new`] is announced, the moment it exists, to the CI masker
//! (see [`crate::ci::mask`]) and to the process-wide redactor: every text rotagate lets
//! out (logs, errors, state `error` fields, issue and pull-request bodies, the step
//! summary, stdout) goes through [`redact`], so a secret that comes back inside a step's
//! output (a command printing its parent's environment) is cut out wherever it lands.
//! Values that only travel in the type without being secret (a kid rendered into a
//! template) are made with [`Secret::public`] and are neither masked nor redacted.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Mutex, OnceLock};

use aho_corasick::{AhoCorasick, MatchKind};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// What stands in for a secret in any text rotagate lets out.
pub const REDACTED: &str = "<redacted>";

#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// A secret: masked under Actions and redacted from everything rotagate prints.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Secret(value)
    }

    /// A value that travels in the type but is public (a kid, a fingerprint, a public
    /// key, a template with no secret in it): logs and outputs may show it.
    pub fn public(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The plaintext. Call sites are where a secret leaves the type: keep them few and
    /// never pass the result to a logger.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

// Serialisation exists only for the encrypted state document.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut raw = String::deserialize(deserializer)?;
        let secret = Secret::new(raw.as_str());
        raw.zeroize();
        Ok(secret)
    }
}

/// Every form of every secret this process has held.
#[derive(Default)]
struct Registry {
    /// Digests of registered values, so a value is expanded into its forms once.
    seen: HashSet<[u8; 32]>,
    forms: Vec<Zeroizing<String>>,
    /// Automata over consecutive runs of `forms[..built]`, each covering at least twice
    /// the forms of the next (the logarithmic method): a run that keeps making secrets
    /// rebuilds each form O(log n) times, not once per [`PENDING_LIMIT`] new forms.
    matchers: Vec<(AhoCorasick, usize)>,
    built: usize,
}

/// Forms matched one by one before an automaton is built to include them.
const PENDING_LIMIT: usize = 64;

impl Registry {
    /// Folds the pending forms into the automata once there are enough of them.
    fn build(&mut self) {
        if self.forms.len() - self.built <= PENDING_LIMIT {
            return;
        }
        let mut start = self.built;
        while let Some((_, covered)) = self.matchers.last()
            && *covered <= self.forms.len() - start
        {
            start -= covered;
            self.matchers.pop();
        }
        let built = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(self.forms[start..].iter().map(|f| f.as_bytes()));
        match built {
            Ok(matcher) => {
                self.matchers.push((matcher, self.forms.len() - start));
                self.built = self.forms.len();
            }
            // Too many patterns for an automaton: those forms are matched one by one.
            Err(_) => self.built = start,
        }
    }

    /// Every span of `text` that holds a known form, overlapping ones included.
    fn spans(&self, text: &str) -> Vec<(usize, usize)> {
        let mut spans: Vec<(usize, usize)> = self
            .matchers
            .iter()
            .flat_map(|(m, _)| m.find_overlapping_iter(text))
            .map(|m| (m.start(), m.end()))
            .collect();
        for form in &self.forms[self.built..] {
            let mut from = 0;
            while let Some(at) = text[from..].find(form.as_str()) {
                let start = from + at;
                spans.push((start, start + form.len()));
                // On to the next character: occurrences may overlap.
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        spans
    }
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner())
}

/// Announces `value` to the CI masker and the redactor.
pub(crate) fn register(value: &str) {
    crate::ci::mask(value);
    if value.trim().len() < crate::ci::MIN_MASK_LEN {
        return;
    }
    let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
    let mut r = registry();
    if !r.seen.insert(digest) {
        return;
    }
    // The value's lines and their base64 and JSON-escaped forms: what the runner is told
    // to hide is what the redactor removes.
    r.forms.extend(crate::ci::mask_lines(value).into_iter().map(Zeroizing::new));
}

/// `text` with every secret this process has held replaced by `<redacted>`: every
/// occurrence of every form, overlapping ones merged, so no part of one is left.
pub fn redact(text: &str) -> String {
    let mut r = registry();
    if r.forms.is_empty() {
        return text.to_string();
    }
    r.build();
    let mut spans = r.spans(text);
    drop(r);
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut spans = spans.into_iter().peekable();
    while let Some((start, mut end)) = spans.next() {
        while let Some(&(next_start, next_end)) = spans.peek()
            && next_start < end
        {
            end = end.max(next_end);
            spans.next();
        }
        out.push_str(&text[copied..start]);
        out.push_str(REDACTED);
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// rotagate's own secrets (and the runner's tokens a step could echo back), read once
/// at start-up: registered before anything else is printed, then dropped from the
/// process environment by the binary (see `src/main.rs`) and read from here.
pub const PROCESS_SECRETS: &[&str] = &[
    "ROTAGATE_AGE_IDENTITY",
    "ROTAGATE_GITHUB_APP_KEY",
    "ROTAGATE_GITHUB_TOKEN",
    "ROTAGATE_VERCEL_TOKEN",
    "ROTAGATE_VAULT_TOKEN",
    "ROTAGATE_VAULT_SECRET_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GITHUB_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
];

fn taken() -> &'static OnceLock<BTreeMap<&'static str, Secret>> {
    static TAKEN: OnceLock<BTreeMap<&'static str, Secret>> = OnceLock::new();
    &TAKEN
}

/// Reads every variable of [`PROCESS_SECRETS`] that is set into the redactor (and the
/// masker), keeping the values for [`process_secret`]. The caller then removes them
/// from the environment.
pub fn take_process_secrets() {
    taken().get_or_init(|| {
        PROCESS_SECRETS
            .iter()
            .filter_map(|name| {
                let value = std::env::var(name).ok()?;
                Some((*name, Secret::new(value)))
            })
            .collect()
    });
}

/// One of rotagate's own secrets: what [`take_process_secrets`] read, or (for library
/// callers that never took them) the environment variable.
/// `None` for a name outside [`PROCESS_SECRETS`].
pub fn process_secret(name: &str) -> Option<Secret> {
    if !PROCESS_SECRETS.contains(&name) {
        return None;
    }
    match taken().get() {
        Some(map) => map.get(name).cloned(),
        None => std::env::var(name).ok().map(Secret::new),
    }
}

/// Registers the values of the environment variables `names` that are set (the ones a
/// credential lists under `env:`) as secrets, before anything from the config is printed.
pub fn register_env(names: &[&str]) {
    for name in names {
        if let Ok(value) = std::env::var(name) {
            register(&value);
        }
    }
}

/// Makes the process non-dumpable, so a process of the same user that is not its
/// parent (a step's child) cannot read its memory or `/proc/<pid>/environ`.
pub fn harden_process() {
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::debug!("cannot make the process non-dumpable: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_in_debug_and_display() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret(<redacted>))");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn serde_round_trip_keeps_value() {
        let s = Secret::new("abc");
        let json = serde_json::to_string(&s).unwrap();
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn secrets_made_after_the_automaton_was_built_are_redacted_too() {
        let early: Vec<Secret> =
            (0..100).map(|i| Secret::new(format!("early-secret-value-{i:04}"))).collect();
        assert!(!redact("x early-secret-value-0042 y").contains("0042"));
        let late = Secret::new("late-secret-value-after-build");
        let out = redact(&format!("{} and {}", early[7].expose(), late.expose()));
        assert_eq!(out, "<redacted> and <redacted>");
    }

    #[test]
    fn overlapping_secrets_leave_no_fragment_of_either() {
        let _long = Secret::new("overlap-outer-SECRET-value-9f8e7d");
        let _inner = Secret::new("SECRET-value-9f8e7d-and-more");
        let out = redact("a overlap-outer-SECRET-value-9f8e7d-and-more b");
        assert_eq!(out, "a <redacted> b");
    }

    #[test]
    fn thousands_of_secrets_made_one_by_one_are_all_redacted() {
        let made: Vec<Secret> = (0..1500)
            .map(|i| {
                let s = Secret::new(format!("many-secret-{i:05}-abcdefghij"));
                // Log lines between secrets, as a fleet run writes them.
                assert_eq!(redact(&format!("x {} y", s.expose())), "x <redacted> y");
                s
            })
            .collect();
        for s in made.iter().step_by(97) {
            assert_eq!(redact(&format!("[{}]", s.expose())), "[<redacted>]");
        }
    }

    #[test]
    fn the_redactor_removes_every_known_secret_and_its_encodings() {
        use base64::Engine;
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n-----END PRIVATE KEY-----\n";
        let _key = Secret::new(pem);
        let _token = Secret::new("ghs_redactor-test-token-0123");
        let public = Secret::public("kid-redactor-public");
        let b64 = base64::engine::general_purpose::STANDARD.encode("ghs_redactor-test-token-0123");
        let text = format!(
            "env: TOKEN=ghs_redactor-test-token-0123 line MIIEvQIBADANBgkqhkiG9w0B b64 {b64} json {} kid {}",
            serde_json::to_string(pem).unwrap(),
            public.expose()
        );
        let out = redact(&text);
        assert!(!out.contains("ghs_redactor-test-token-0123"), "{out}");
        assert!(!out.contains("MIIEvQIBADANBgkqhkiG9w0B"), "{out}");
        assert!(!out.contains(&b64), "{out}");
        assert!(out.contains("kid kid-redactor-public"), "{out}");
        assert!(out.contains("TOKEN=<redacted>"), "{out}");
    }
}

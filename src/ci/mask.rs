//! `::add-mask::` for every secret, announced before the secret could be printed.
//!
//! The runner only hides what it has been told about, and only line by line, so each
//! line is announced, and so are the forms a value commonly leaks in: base64 (HTTP
//! basic auth, Kubernetes manifests) and JSON-escaped (a PEM inside a JSON body).

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use base64::Engine;
use sha2::{Digest, Sha256};

/// Shorter fragments are not secret on their own and would blank out ordinary words.
pub(crate) const MIN_MASK_LEN: usize = 4;

pub fn masking_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"))
}

/// Announces `value` to the Actions runner. A no-op outside Actions.
pub fn mask(value: &str) {
    if !masking_enabled() || value.trim().len() < MIN_MASK_LEN {
        return;
    }
    // Remember digests, not values, so the dedup set holds nothing worth stealing.
    static SEEN: OnceLock<Mutex<HashSet<[u8; 32]>>> = OnceLock::new();
    let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
    let mut seen = SEEN.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if !seen.insert(digest) {
        return;
    }
    let mut text = String::new();
    for line in mask_lines(value) {
        text.push_str(&format!("::add-mask::{}\n", escape_command_data(&line)));
    }
    // On both streams: the runner reads them on separate threads, so a mask is only
    // sure to precede the later lines of its own stream. A failed write leaves nothing
    // more useful to do than carry on.
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Every form of `value` the runner must hide, one line each.
pub(crate) fn mask_lines(value: &str) -> Vec<String> {
    let mut forms: Vec<String> = Vec::new();
    let mut push_lines = |text: &str| {
        for line in text.lines() {
            let line = line.trim();
            if line.len() >= MIN_MASK_LEN && !forms.iter().any(|f| f == line) {
                forms.push(line.to_string());
            }
        }
    };
    push_lines(value);
    push_lines(&base64::engine::general_purpose::STANDARD.encode(value));
    let json = serde_json::to_string(value).unwrap_or_default();
    push_lines(json.trim_matches('"'));
    forms
}

/// Workflow command data escaping, as the runner unescapes it.
pub(crate) fn escape_command_data(data: &str) -> String {
    data.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_values_are_masked_line_by_line_with_encoded_forms() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\nhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
        let lines = mask_lines(pem);
        assert!(lines.contains(&"MIIEvQIBADANBgkq".to_string()));
        assert!(lines.contains(&"hkiG9w0BAQEFAASC".to_string()));
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        assert!(lines.contains(&b64));
        // JSON-escaped: the whole PEM as it appears inside a JSON string.
        assert!(lines.iter().any(|l| l.contains("\\nMIIEvQIBADANBgkq\\n")));
        assert!(lines.iter().all(|l| !l.contains('\n')));
    }

    #[test]
    fn command_data_is_escaped() {
        assert_eq!(escape_command_data("a%b\r\nc"), "a%25b%0D%0Ac");
    }
}

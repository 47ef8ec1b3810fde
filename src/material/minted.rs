//! Minted material: the provider creates the value in one HTTP call that is never
//! repeated (a retry after a lost answer would mint a second live secret).

use serde_json::Value;
use time::OffsetDateTime;

use super::{Material, MaterialError, Source, Stamp, secret_material};
use crate::config::HttpAction;
use crate::http::HttpClient;
use crate::secret::Secret;
use crate::step::View;
use crate::step::{RequestSpec, render_request};

/// Calls the provider once and reads the new secret (and its id, as kid) from the
/// answer. `kid` is used when the answer has no id to take.
#[allow(clippy::too_many_arguments)]
pub async fn mint(
    request: &HttpAction,
    extract: &str,
    kid_from: Option<&str>,
    expires_from: Option<&str>,
    kid: String,
    role: Option<String>,
    now: OffsetDateTime,
    http: &HttpClient,
    view: &View<'_>,
) -> Result<Material, MaterialError> {
    let spec = RequestSpec::from(request);
    let rendered =
        render_request(&spec, view).map_err(|e| MaterialError::Generate(e.to_string()))?;
    let response = http.without_retries().send(&rendered).await.map_err(|e| {
        MaterialError::Uncertain(format!(
            "minting got no answer ({e}); the provider may have minted a secret nobody holds"
        ))
    })?;
    let status = response.status.as_u16();
    let ok = if request.expect_status.is_empty() {
        response.status.is_success()
    } else {
        request.expect_status.contains(&status)
    };
    let doc = response.json().unwrap_or(Value::Null);
    if !ok {
        // Only the provider's error message: the body of an odd answer might hold a
        // value nobody knows yet to redact.
        let message = ["/error/message", "/error", "/message", "/detail"]
            .iter()
            .find_map(|p| doc.pointer(p).and_then(Value::as_str))
            .map(|m| view.redact(m).chars().take(200).collect::<String>())
            .unwrap_or_default();
        return Err(MaterialError::Generate(format!(
            "{} answered {status}{}{message}",
            rendered.shown,
            if message.is_empty() { "" } else { ": " }
        )));
    }
    let value = doc
        .pointer(extract)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            MaterialError::Generate(format!(
                "{} answered {status} without a string at {extract}: the provider may have minted a secret rotagate could not read; check it and revoke it by hand",
                rendered.shown
            ))
        })?;
    let kid = match kid_from {
        Some(pointer) => match doc.pointer(pointer) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(MaterialError::Generate(format!(
                    "{} answered without an id at {pointer}: revoke the secret it minted by hand",
                    rendered.shown
                )));
            }
        },
        None => kid,
    };
    let expires = match expires_from {
        Some(pointer) => Some(expiry_at(&doc, pointer).ok_or_else(|| {
            MaterialError::Generate(format!(
                "{} answered without an expiry at {pointer} (RFC 3339 time, YYYY-MM-DD or Unix seconds): check the secret it minted, and revoke it by hand if it is not wanted",
                rendered.shown
            ))
        })?),
        None => None,
    };
    let stamp = Stamp { kid, role, at: now, source: Source::Generated };
    let mut material = secret_material(Secret::new(value), stamp);
    material.source = Source::Minted;
    material.expires = expires;
    Ok(material)
}

/// The date a provider says its secret expires: an RFC 3339 time, a date, or Unix
/// seconds at `pointer`.
fn expiry_at(doc: &Value, pointer: &str) -> Option<time::Date> {
    use time::format_description::well_known::Rfc3339;
    match doc.pointer(pointer)? {
        Value::String(s) => OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| t.date())
            .or_else(|_| {
                time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
            })
            .ok(),
        Value::Number(n) => OffsetDateTime::from_unix_timestamp(n.as_i64()?).ok().map(|t| t.date()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_providers_expiry_is_read_in_its_common_forms() {
        let doc = serde_json::json!({
            "a": "2027-04-16T10:00:00Z", "b": "2027-04-16", "c": 1807869600, "d": "soon"
        });
        let day = time::macros::date!(2027 - 04 - 16);
        assert_eq!(expiry_at(&doc, "/a"), Some(day));
        assert_eq!(expiry_at(&doc, "/b"), Some(day));
        assert_eq!(expiry_at(&doc, "/c"), Some(day));
        assert_eq!(expiry_at(&doc, "/d"), None);
        assert_eq!(expiry_at(&doc, "/e"), None);
    }
}

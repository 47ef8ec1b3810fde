//! Key ids: uuid v4, `<prefix>YYYY-MM-DD` (suffixed on a second rotation the same day),
//! or a template. A kid already used by this credential is never handed out again.

use time::Date;

use crate::config::KidSpec;
use crate::config::template::{RawSegment, parse_segments};

pub struct KidContext<'a> {
    pub credential: &'a str,
    pub today: Date,
    /// The number of this rotation for the credential (1 for the first).
    pub seq: u64,
    /// Whether this credential has had the kid.
    pub used: &'a dyn Fn(&str) -> bool,
}

pub fn next_kid(spec: &KidSpec, cx: &KidContext) -> String {
    let base = match spec {
        KidSpec::Uuid => loop {
            let kid = uuid::Uuid::new_v4().to_string();
            if !(cx.used)(&kid) {
                return kid;
            }
        },
        KidSpec::Date(prefix) => format!("{prefix}{}", iso_date(cx.today)),
        KidSpec::Template(t) => render(t, cx),
    };
    unique(base, cx.used)
}

/// `base`, or `base-2`, `base-3`... whichever is unused.
fn unique(base: String, used: &dyn Fn(&str) -> bool) -> String {
    if !used(&base) {
        return base;
    }
    (2u64..).map(|n| format!("{base}-{n}")).find(|k| !used(k)).expect("an unused suffix exists")
}

fn render(template: &str, cx: &KidContext) -> String {
    let segments = parse_segments(template).unwrap_or_default();
    let mut out = String::new();
    for seg in segments {
        match seg {
            RawSegment::Text(t) => out.push_str(&t),
            RawSegment::Var(v) => match v.as_str() {
                "date" => out.push_str(&iso_date(cx.today)),
                "uuid" => out.push_str(&uuid::Uuid::new_v4().to_string()),
                "seq" => out.push_str(&cx.seq.to_string()),
                "credential" => out.push_str(cx.credential),
                // Rejected at load time by `check_kid_template`.
                _ => {}
            },
        }
    }
    out
}

pub fn check_kid_template(template: &str) -> Result<(), String> {
    let segments = parse_segments(template).map_err(|e| e.to_string())?;
    for seg in &segments {
        if let RawSegment::Var(v) = seg
            && !["date", "uuid", "seq", "credential"].contains(&v.as_str())
        {
            return Err(format!("unknown kid placeholder `{{{{ {v} }}}}`"));
        }
        if let RawSegment::Text(t) = seg
            && !is_kid_text(t)
        {
            return Err(format!(
                "kid text `{t}` may hold only letters, digits, `-`, `_`, `.`, `:`"
            ));
        }
    }
    if segments.is_empty() {
        return Err("an empty kid template".into());
    }
    Ok(())
}

/// Characters that are safe in a kid wherever it travels (JSON, file names, URLs).
pub fn is_kid_text(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

fn iso_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use time::macros::date;

    fn cx<'a>(used: &'a dyn Fn(&str) -> bool) -> KidContext<'a> {
        KidContext { credential: "api-signing", today: date!(2026 - 11 - 23), seq: 4, used }
    }

    #[test]
    fn date_kids_are_suffixed_on_a_second_rotation_the_same_day() {
        let mut used = BTreeSet::new();
        let spec = KidSpec::Date("prod-key-".into());
        let first = next_kid(&spec, &cx(&|k: &str| used.contains(k)));
        assert_eq!(first, "prod-key-2026-11-23");
        used.insert(first);
        let second = next_kid(&spec, &cx(&|k: &str| used.contains(k)));
        assert_eq!(second, "prod-key-2026-11-23-2");
        used.insert(second);
        assert_eq!(next_kid(&spec, &cx(&|k: &str| used.contains(k))), "prod-key-2026-11-23-3");
    }

    #[test]
    fn uuid_kids_are_v4() {
        let used = BTreeSet::<String>::new();
        let kid = next_kid(&KidSpec::Uuid, &cx(&|k: &str| used.contains(k)));
        let parsed = uuid::Uuid::parse_str(&kid).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }

    #[test]
    fn templates_render_and_never_repeat() {
        let mut used = BTreeSet::new();
        let spec = KidSpec::Template("{{ credential }}-{{ seq }}".into());
        assert_eq!(next_kid(&spec, &cx(&|k: &str| used.contains(k))), "api-signing-4");
        used.insert("api-signing-4".to_string());
        assert_eq!(next_kid(&spec, &cx(&|k: &str| used.contains(k))), "api-signing-4-2");
    }

    #[test]
    fn template_check() {
        assert!(check_kid_template("k-{{ date }}").is_ok());
        assert!(check_kid_template("k-{{ when }}").is_err());
        assert!(check_kid_template("k {{ date }}").is_err());
    }
}

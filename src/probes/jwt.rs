//! `jwt` probe: a token signed with the new private key verifies against the JWKS a URL
//! serves, the key picked by the token's kid, as a relying party would.

use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::json;

use super::{Probe, ProbeError, shown_value};
use crate::config::template::Field;
use crate::config::{self, Template};
use crate::step::{StepContext, View};

/// Long enough for a slow JWKS fetch, short enough to be useless if it leaked.
const TOKEN_LIFETIME: time::Duration = time::Duration::minutes(5);

pub struct JwtProbe {
    spec: config::JwksProbe,
    kid: Template,
}

impl JwtProbe {
    pub fn new(spec: config::JwksProbe) -> Self {
        let kid = spec.kid.clone().unwrap_or_else(|| Template::new("{{ new.kid }}"));
        JwtProbe { spec, kid }
    }

    fn sign(&self, view: &View<'_>, cx: &StepContext<'_>, kid: &str) -> Result<String, ProbeError> {
        let material =
            view.new.ok_or_else(|| ProbeError::Failed("there is no key to sign with".into()))?;
        let pem = material
            .field(Field::PrivatePem)
            .map_err(|e| ProbeError::Failed(format!("cannot sign a test token: {e}")))?;
        let key = EncodingKey::from_rsa_pem(pem.expose().as_bytes())
            .map_err(|_| ProbeError::Failed("the private key is not an RSA PEM".into()))?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_string());
        let now = time::OffsetDateTime::now_utc();
        let claims = json!({
            "iss": "rotagate",
            "sub": cx.credential,
            "aud": "rotagate-probe",
            "iat": now.unix_timestamp(),
            "exp": (now + TOKEN_LIFETIME).unix_timestamp(),
        });
        jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| ProbeError::Failed(format!("cannot sign a test token: {e}")))
    }
}

#[async_trait]
impl Probe for JwtProbe {
    fn describe(&self) -> String {
        format!("jwt signed as {} verifies against {}", self.kid.raw(), self.spec.url.raw())
    }

    async fn check(&self, view: &View<'_>, cx: &StepContext<'_>) -> Result<String, ProbeError> {
        let kid = self.kid.render(view)?;
        let token = self.sign(view, cx, kid.expose())?;
        let (doc, shown) = super::jwks::fetch_jwks(&self.spec, view, cx).await?;
        let set: JwkSet = serde_json::from_value(doc)
            .map_err(|_| ProbeError::Failed(format!("{shown} did not answer a JWK set")))?;
        // Like a verifier: the kid in the token's header picks the key.
        let header_kid =
            jsonwebtoken::decode_header(&token).ok().and_then(|h| h.kid).unwrap_or_default();
        let Some(jwk) = set.find(&header_kid) else {
            let served: Vec<&str> =
                set.keys.iter().filter_map(|k| k.common.key_id.as_deref()).collect();
            return Err(ProbeError::Failed(format!(
                "{} has no key with kid {} (it serves: {})",
                shown,
                shown_value(view, &header_kid),
                if served.is_empty() { "no keys".into() } else { served.join(", ") }
            )));
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| {
            ProbeError::Failed(format!(
                "{}: the key with kid {} cannot verify RS256: {e}",
                shown,
                shown_value(view, &header_kid)
            ))
        })?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&["rotagate-probe"]);
        validation.set_issuer(&["rotagate"]);
        jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).map_err(|e| {
            ProbeError::Failed(format!(
                "{}: the key served as kid {} does not verify a token signed with the new private key ({e}): the JWKS and the private key are not a pair",
                shown,
                shown_value(view, &header_kid)
            ))
        })?;
        Ok(format!("a token signed as kid {} verifies against {}", kid.expose(), shown))
    }
}

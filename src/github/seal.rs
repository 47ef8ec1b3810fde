//! libsodium sealed boxes, as GitHub requires for Actions secrets.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::GithubError;
use crate::secret::Secret;

/// Seals `value` to the scope's base64 X25519 public key; returns base64.
pub fn seal(public_key_b64: &str, value: &Secret) -> Result<String, GithubError> {
    let bytes = STANDARD
        .decode(public_key_b64.trim())
        .map_err(|_| GithubError::Decode("the secrets public key is not base64".into()))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| GithubError::Decode("the secrets public key is not 32 bytes".into()))?;
    let sealed = crypto_box::PublicKey::from(key)
        .seal(&mut crypto_box::aead::OsRng, value.expose().as_bytes())
        .map_err(|_| GithubError::Decode("sealing failed".into()))?;
    Ok(STANDARD.encode(sealed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_key_opens_what_was_sealed() {
        let secret = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
        let public = STANDARD.encode(secret.public_key().as_bytes());
        let sealed = seal(&public, &Secret::new("hunter2")).unwrap();
        let opened = secret.unseal(&STANDARD.decode(sealed).unwrap()).unwrap();
        assert_eq!(opened, b"hunter2");
        assert!(seal("not base64!", &Secret::new("x")).is_err());
    }
}

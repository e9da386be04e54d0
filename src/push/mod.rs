//! Push notifications to devices with no open socket. This holds the server's identity
//! towards push services and the message format of Web Push ([`webpush`]); the device
//! registry and the durable sending jobs build on it (issue 17).

pub mod webpush;

use std::path::Path;

use crate::config::Config;
pub use webpush::Vapid;

/// The VAPID identity: the configured key, or on a single node one generated once and kept
/// in the data directory (`vapid_private_key`). A cluster without a configured key has no
/// Web Push (`None`, with a warning): browsers subscribe with the key's public half and
/// every instance must sign with the same one, so instances cannot each make their own.
pub fn load_or_create_vapid(config: &Config) -> anyhow::Result<Option<Vapid>> {
    let subject = config.push.vapid_subject.clone().unwrap_or_else(|| mailto(&config.mail_from));
    if let Some(k) = &config.push.vapid_private_key {
        return Vapid::from_base64(k, &subject).map(Some).map_err(|e| e.context("push.vapid_private_key"));
    }
    if config.redis_url.is_some() {
        tracing::warn!(
            "Web Push is off: set push.vapid_private_key (CHORUS_PUSH__VAPID_PRIVATE_KEY), the same on every instance"
        );
        return Ok(None);
    }
    load_or_create_in(&config.data_dir, &subject).map(Some)
}

fn load_or_create_in(dir: &Path, subject: &str) -> anyhow::Result<Vapid> {
    let path = dir.join("vapid_private_key");
    let key = crate::auth::tokens::kept_secret(&path, "VAPID key for Web Push", || {
        Ok(Vapid::generate(subject)?.private_base64())
    })?;
    Vapid::from_base64(&key, subject).map_err(|e| e.context(format!("{}: delete it to regenerate", path.display())))
}

/// `mailto:` the address in a `From:` value (`Chorus <no-reply@chorus.local>`).
fn mailto(from: &str) -> String {
    let addr = from.rsplit_once('<').map(|(_, a)| a.trim_end_matches('>')).unwrap_or(from).trim();
    format!("mailto:{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_in(dir.path(), "mailto:a@b").unwrap();
        let b = load_or_create_in(dir.path(), "mailto:a@b").unwrap();
        assert_eq!(a.public_key(), b.public_key());
        std::fs::write(dir.path().join("vapid_private_key"), "garbage").unwrap();
        assert!(load_or_create_in(dir.path(), "mailto:a@b").is_err(), "a damaged key is an error, not a new identity");
    }

    #[test]
    fn a_cluster_pushes_only_with_a_configured_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg =
            Config { data_dir: dir.path().to_path_buf(), redis_url: Some("redis://x".into()), ..Config::default() };
        assert!(load_or_create_vapid(&cfg).unwrap().is_none(), "no per-instance keys in a cluster");
        assert!(!dir.path().join("vapid_private_key").exists());
        let key = Vapid::generate("mailto:x@y").unwrap();
        cfg.push.vapid_private_key = Some(key.private_base64());
        assert_eq!(load_or_create_vapid(&cfg).unwrap().unwrap().public_key(), key.public_key());
        cfg.push.vapid_private_key = Some("not a key".into());
        assert!(load_or_create_vapid(&cfg).is_err(), "a bad configured key stops the start");
    }

    #[test]
    fn the_subject_defaults_to_the_mail_sender() {
        assert_eq!(mailto("Chorus <no-reply@chorus.local>"), "mailto:no-reply@chorus.local");
        assert_eq!(mailto("ops@example.com"), "mailto:ops@example.com");
    }
}

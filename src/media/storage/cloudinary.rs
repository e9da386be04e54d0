//! Cloudinary storage through its documented REST upload API.
//!
//! Why not the `cloudinary` crate: it hard-codes `https://api.cloudinary.com` as the API
//! base, and Chorus must be able to point the API elsewhere (`CHORUS_CLOUDINARY_API_BASE`:
//! tests run against a local double, deployments may go through a proxy). The two calls we
//! need are small and documented, so they are written here with `reqwest`:
//!
//! - **Upload**: `POST {api_base}/v1_1/{cloud}/{image|video}/upload`, multipart, with
//!   `file`, `api_key`, `timestamp`, `public_id` and `signature`.
//! - **Destroy**: `POST {api_base}/v1_1/{cloud}/{image|video}/destroy`, form-encoded, with
//!   `public_id`, `invalidate`, `api_key`, `timestamp` and `signature`. Both `"ok"` and
//!   `"not found"` mean the object is gone (deletion is idempotent).
//!
//! **Signature** (Cloudinary's "authentication signature"): every parameter except `file`,
//! `cloud_name`, `resource_type` and `api_key`, sorted by name, joined as `k=v&k=v`
//! (values not URL-encoded), the API secret appended, SHA-1, lower-case hex.
//!
//! **Delivery.** Objects are uploaded with `type=authenticated`: Cloudinary then serves them
//! only through URLs this server signs, `{delivery_base}/{cloud}/{image|video}/authenticated/
//! s--{signature}--/{public_id}.{ext}`, where the signature is the first 8 characters of the
//! URL-safe base64 of SHA-1 over `{public_id}.{ext}` and the API secret (Cloudinary's "signed
//! delivery URLs"). Such a URL is stable, so public items stay cacheable. Items not everyone
//! may see get, instead, an expiring token when an authentication token key is configured
//! (Cloudinary's token-based authentication): `{delivery_base}/{cloud}/{rt}/authenticated/
//! {public_id}.{ext}?__cld_token__=exp={unix}~hmac={hex}`, the hmac being HMAC-SHA256, keyed
//! with the hex-decoded token key, over `exp={unix}~url={path}`. Without a token key they
//! get a signed URL too, which does not expire.
//! Objects uploaded before (`type=upload`, public) keep the URL the upload answered; destroy
//! tries `authenticated` first, then `upload`.
//!
//! We upload the variants Chorus made itself (EXIF already stripped), not the original, so
//! the same privacy guarantees hold on both backends.

use std::time::Duration;

use anyhow::Context;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use sha1::{Digest, Sha1};

use super::{BackendKind, Put, Source, StoredObject};
use crate::domain::Id;

/// Credentials and an HTTP client for one Cloudinary cloud.
pub struct CloudinaryStorage {
    cloud: String,
    api_key: String,
    api_secret: String,
    api_base: String,
    delivery_base: String,
    token_key: Option<Vec<u8>>,
    http: reqwest::Client,
}

/// The fields of an upload answer we use.
#[derive(Debug, Deserialize)]
struct UploadAnswer {
    public_id: String,
    secure_url: String,
    bytes: Option<u64>,
    width: Option<u32>,
    height: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct DestroyAnswer {
    result: String,
}

impl CloudinaryStorage {
    /// Parses `cloudinary://api_key:api_secret@cloud_name`; `api_base` is the API root
    /// (`https://api.cloudinary.com` in production).
    pub fn from_url(url: &str, api_base: &str) -> anyhow::Result<Self> {
        Self::with_delivery(url, api_base, "https://res.cloudinary.com", None)
    }

    /// As [`CloudinaryStorage::from_url`], delivering from `delivery_base`, with the
    /// account's authentication token key (hex) for expiring URLs when there is one.
    pub fn with_delivery(
        url: &str,
        api_base: &str,
        delivery_base: &str,
        token_key: Option<&str>,
    ) -> anyhow::Result<Self> {
        let token_key = match token_key {
            Some(k) => Some(hex::decode(k).context("the Cloudinary auth token key must be hex")?),
            None => None,
        };
        let u = url::Url::parse(url).context("CLOUDINARY_URL is not a URL")?;
        anyhow::ensure!(u.scheme() == "cloudinary", "CLOUDINARY_URL must look like cloudinary://key:secret@cloud");
        let api_key = u.username().to_string();
        let api_secret = u.password().unwrap_or_default().to_string();
        let cloud = u.host_str().unwrap_or_default().to_string();
        anyhow::ensure!(
            !api_key.is_empty() && !api_secret.is_empty() && !cloud.is_empty(),
            "CLOUDINARY_URL must look like cloudinary://key:secret@cloud"
        );
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .context("building the Cloudinary HTTP client")?;
        Ok(Self {
            cloud,
            api_key,
            api_secret,
            api_base: api_base.trim_end_matches('/').to_string(),
            delivery_base: delivery_base.trim_end_matches('/').to_string(),
            token_key,
            http,
        })
    }

    /// `chorus/{id}-{token}/{name}` (Cloudinary adds the format to delivery URLs itself).
    pub fn key_for(id: Id, token: &str, name: &str) -> String {
        format!("chorus/{id}-{token}/{name}")
    }

    fn resource_type(content_type: &str) -> &'static str {
        if content_type.starts_with("video/") { "video" } else { "image" }
    }

    fn endpoint(&self, resource_type: &str, action: &str) -> String {
        format!("{}/v1_1/{}/{resource_type}/{action}", self.api_base, self.cloud)
    }

    /// Uploads an object as `public_id = key` (a repeated upload overwrites).
    pub async fn put(&self, key: &str, src: Source<'_>, content_type: &str) -> anyhow::Result<Put> {
        let rt = Self::resource_type(content_type);
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature =
            sign(&[("public_id", key), ("timestamp", &timestamp), ("type", "authenticated")], &self.api_secret);
        let file = match src {
            Source::Bytes(b) => Part::bytes(b),
            Source::File(path) => {
                let f = tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?;
                let len = f.metadata().await?.len();
                Part::stream_with_length(reqwest::Body::from(f), len)
            }
        };
        let file = file.file_name("upload").mime_str(content_type)?;
        let form = Form::new()
            .part("file", file)
            .text("api_key", self.api_key.clone())
            .text("timestamp", timestamp)
            .text("public_id", key.to_string())
            .text("type", "authenticated")
            .text("signature", signature);
        let resp =
            self.http.post(self.endpoint(rt, "upload")).multipart(form).send().await.context("Cloudinary upload")?;
        let status = resp.status();
        let body = resp.text().await.context("reading Cloudinary's upload answer")?;
        anyhow::ensure!(status.is_success(), "Cloudinary upload answered {status}: {}", snippet(&body));
        let a: UploadAnswer = serde_json::from_str(&body).context("parsing Cloudinary's upload answer")?;
        Ok(Put {
            object: StoredObject {
                backend: BackendKind::Cloudinary,
                key: a.public_id,
                content_type: content_type.into(),
            },
            url: a.secure_url,
            bytes: a.bytes.unwrap_or_default(),
            width: a.width,
            height: a.height,
        })
    }

    /// The URL clients fetch an object from (see the module doc): signed, and with an
    /// expiring token until `expires` (Unix seconds) when given and a token key is set.
    /// `stored_url` is what the upload answered: an object uploaded as `type=upload` (before
    /// authenticated delivery) is public and keeps it.
    pub fn delivery_url(&self, key: &str, content_type: &str, stored_url: &str, expires: Option<u64>) -> String {
        if stored_url.contains("/upload/") {
            return stored_url.to_string();
        }
        let rt = Self::resource_type(content_type);
        let tail = format!("{key}.{}", crate::media::detect::extension_of(content_type));
        match (expires, &self.token_key) {
            // A token alone: a signed URL would not expire, and the item is not everyone's.
            (Some(exp), Some(k)) => {
                let path = format!("/{}/{rt}/authenticated/{tail}", self.cloud);
                format!("{}{path}?__cld_token__={}", self.delivery_base, token(k, &path, exp))
            }
            _ => {
                let sig = url_signature(&tail, &self.api_secret);
                format!("{}/{}/{rt}/authenticated/s--{sig}--/{tail}", self.delivery_base, self.cloud)
            }
        }
    }

    /// Destroys an object (and invalidates CDN caches). Missing counts as deleted. Tries
    /// the `authenticated` delivery type, then `upload` (objects stored before it).
    pub async fn delete(&self, key: &str, content_type: &str) -> anyhow::Result<()> {
        for kind in ["authenticated", "upload"] {
            if self.destroy(key, content_type, kind).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// One destroy call; `true` when the object was found and destroyed.
    async fn destroy(&self, key: &str, content_type: &str, kind: &str) -> anyhow::Result<bool> {
        let rt = Self::resource_type(content_type);
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = sign(
            &[("invalidate", "true"), ("public_id", key), ("timestamp", &timestamp), ("type", kind)],
            &self.api_secret,
        );
        let form = [
            ("public_id", key),
            ("invalidate", "true"),
            ("type", kind),
            ("api_key", &self.api_key),
            ("timestamp", &timestamp),
            ("signature", &signature),
        ];
        let resp =
            self.http.post(self.endpoint(rt, "destroy")).form(&form).send().await.context("Cloudinary destroy")?;
        let status = resp.status();
        let body = resp.text().await.context("reading Cloudinary's destroy answer")?;
        anyhow::ensure!(status.is_success(), "Cloudinary destroy answered {status}: {}", snippet(&body));
        let a: DestroyAnswer = serde_json::from_str(&body).context("parsing Cloudinary's destroy answer")?;
        match a.result.as_str() {
            "ok" => Ok(true),
            "not found" => Ok(false),
            other => anyhow::bail!("Cloudinary destroy of {key} answered result {other:?}"),
        }
    }
}

/// The `s--…--` component of a signed delivery URL for `to_sign` (what follows it in the
/// URL): the first 8 characters of the URL-safe base64 of SHA-1 over it and the API secret.
pub fn url_signature(to_sign: &str, secret: &str) -> String {
    use base64::Engine;
    let digest = Sha1::digest(format!("{to_sign}{secret}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)[..8].to_string()
}

/// A token-based authentication token for `path` until `exp`: `exp={exp}~hmac={hex}`.
pub fn token(key: &[u8], path: &str, exp: u64) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("exp={exp}~url={path}").as_bytes());
    format!("exp={exp}~hmac={}", hex::encode(mac.finalize().into_bytes()))
}

/// Cloudinary's request signature over `params` (already without `file`, `cloud_name`,
/// `resource_type` and `api_key`).
pub fn sign(params: &[(&str, &str)], secret: &str) -> String {
    let mut sorted: Vec<_> = params.iter().filter(|(_, v)| !v.is_empty()).collect();
    sorted.sort_by_key(|(k, _)| *k);
    let joined = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    hex::encode(Sha1::digest(format!("{joined}{secret}").as_bytes()))
}

fn snippet(body: &str) -> String {
    body.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_cloudinarys_documented_example() {
        // From Cloudinary's "Generating authentication signatures" page.
        let sig = sign(
            &[
                ("timestamp", "1315060510"),
                ("public_id", "sample_image"),
                ("eager", "w_400,h_300,c_pad|w_260,h_200,c_crop"),
            ],
            "abcd",
        );
        assert_eq!(sig, "bfd09f95f331f558cbd1320e67aa8d488770583e");
    }

    #[test]
    fn parses_the_url_and_refuses_others() {
        let c = CloudinaryStorage::from_url("cloudinary://123:abc@demo", "http://127.0.0.1:9/").unwrap();
        assert_eq!((c.cloud.as_str(), c.api_key.as_str(), c.api_secret.as_str()), ("demo", "123", "abc"));
        assert_eq!(c.endpoint("image", "upload"), "http://127.0.0.1:9/v1_1/demo/image/upload");
        assert!(CloudinaryStorage::from_url("https://123:abc@demo", "x").is_err());
        assert!(CloudinaryStorage::from_url("cloudinary://123@demo", "x").is_err());
    }
}

//! Media: uploads validated by content, processing off the request path (orientation,
//! metadata stripped, variants), local and Cloudinary storage, deletion that is never lost,
//! attachment to posts and the avatar.
//!
//! Processing outcomes are awaited on the hub tap (`media.ready` / `media.failed`), the way a
//! client hears them on the `image` topic; files removed by deletion jobs (state with no
//! event) with `eventually`; the Cloudinary double's state with its own change signal.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use chorus::domain::{Id, Timestamp};
use chorus::events::Envelope;
use chorus::services::media::{attach_to_post, for_posts, release_post_media};
use chorus::store::Tx;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::both_backends;
use crate::support::cloudinary::CloudinaryDouble;
use crate::support::{Backend, TestApp, TestUser, eventually};

both_backends!(
    photos_come_back_upright_resized_and_without_metadata,
    transparent_png_stays_png_and_small_images_are_not_upscaled,
    bad_uploads_get_the_right_error_and_the_server_stays_fine,
    oversized_uploads_are_refused_with_413,
    videos_are_stored_as_uploaded,
    files_are_served_by_policy_with_cache_headers_and_no_way_out,
    deleting_a_post_removes_its_files_from_disk,
    attach_to_post_validates_the_list,
    only_the_uploader_can_attach_or_delete,
    replacing_the_avatar_deletes_the_old_files,
    unattached_uploads_are_garbage_collected_after_the_ttl,
    cloudinary_uploads_are_signed_and_deletions_survive_outages_and_restarts,
);

const WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Test images

/// A minimal EXIF (TIFF) writer: IFD0 with an image description, the orientation and a
/// pointer to a GPS IFD holding coordinates.
fn exif_tiff(orientation: u16) -> Vec<u8> {
    struct Entry {
        tag: u16,
        typ: u16,
        count: u32,
        data: Vec<u8>,
    }
    fn ascii(tag: u16, s: &str) -> Entry {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        Entry { tag, typ: 2, count: data.len() as u32, data }
    }
    fn rationals(tag: u16, v: &[(u32, u32)]) -> Entry {
        let data = v.iter().flat_map(|(n, d)| [n.to_le_bytes(), d.to_le_bytes()].concat()).collect();
        Entry { tag, typ: 5, count: v.len() as u32, data }
    }
    fn len(entries: &[Entry]) -> u32 {
        let extra: usize = entries.iter().filter(|e| e.data.len() > 4).map(|e| e.data.len().next_multiple_of(2)).sum();
        (2 + 12 * entries.len() + 4 + extra) as u32
    }
    fn write(out: &mut Vec<u8>, entries: &[Entry], start: u32) {
        let mut data_at = start + 2 + 12 * entries.len() as u32 + 4;
        let mut tail = Vec::new();
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for e in entries {
            out.extend_from_slice(&e.tag.to_le_bytes());
            out.extend_from_slice(&e.typ.to_le_bytes());
            out.extend_from_slice(&e.count.to_le_bytes());
            if e.data.len() <= 4 {
                let mut v = e.data.clone();
                v.resize(4, 0);
                out.extend_from_slice(&v);
            } else {
                out.extend_from_slice(&data_at.to_le_bytes());
                let mut v = e.data.clone();
                v.resize(e.data.len().next_multiple_of(2), 0);
                data_at += v.len() as u32;
                tail.extend_from_slice(&v);
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&tail);
    }
    let gps = vec![
        ascii(0x0001, "N"),
        rationals(0x0002, &[(48, 1), (51, 1), (2959, 100)]),
        ascii(0x0003, "E"),
        rationals(0x0004, &[(2, 1), (17, 1), (4011, 100)]),
    ];
    let mut ifd0 = vec![
        ascii(0x010E, "chorus-secret-description"),
        Entry { tag: 0x0112, typ: 3, count: 1, data: orientation.to_le_bytes().to_vec() },
        Entry { tag: 0x8825, typ: 4, count: 1, data: vec![0; 4] },
    ];
    let gps_at = 8 + len(&ifd0);
    ifd0[2].data = gps_at.to_le_bytes().to_vec();
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    write(&mut tiff, &ifd0, 8);
    write(&mut tiff, &gps, gps_at);
    tiff
}

fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(img).unwrap();
    out
}

/// A JPEG with an EXIF APP1 segment right after its start-of-image marker.
fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

const RED: Rgb<u8> = Rgb([230, 20, 20]);

/// `w`×`h` grey-blue pixels with a red square in the top-left corner (as stored).
fn marked_photo(w: u32, h: u32) -> RgbImage {
    let mut img = RgbImage::from_pixel(w, h, Rgb([60, 90, 140]));
    let side = w.min(h) / 5;
    for y in 0..side {
        for x in 0..side {
            img.put_pixel(x, y, RED);
        }
    }
    img
}

pub(crate) fn small_jpeg() -> Vec<u8> {
    jpeg(&marked_photo(64, 48), 85)
}

fn png(img: &DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A 60-byte PNG that declares `w`×`h` pixels: a decompression bomb's header.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let body = [kind, data].concat();
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &[&w.to_be_bytes()[..], &h.to_be_bytes()[..], &[8, 2, 0, 0, 0]].concat());
    chunk(&mut png, b"IDAT", &[0x78, 0x01, 0x01, 4, 0, 0xFB, 0xFF, 0, 0, 0, 0, 0, 4, 0, 1]);
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A GIF whose logical screen is `w`×`h` with one 1×1 frame.
fn gif_bomb(w: u16, h: u16) -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&w.to_le_bytes());
    g.extend_from_slice(&h.to_le_bytes());
    g.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]); // 2-colour global table
    g.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]); // image descriptor 1×1
    g.extend_from_slice(&[0x02, 0x02, 0x44, 0x01, 0x00, 0x3B]);
    g
}

/// The smallest thing a browser (and `infer`) calls an MP4: an `ftyp` box, then `mdat`.
fn tiny_mp4() -> Vec<u8> {
    let mut v = b"\0\0\0\x18ftypisom\0\0\x02\0isommp41".to_vec();
    let payload = b"not really frames, but stored as uploaded";
    v.extend_from_slice(&((8 + payload.len()) as u32).to_be_bytes());
    v.extend_from_slice(b"mdat");
    v.extend_from_slice(payload);
    v
}

// ---------------------------------------------------------------------------------------
// Helpers

async fn upload(app: &TestApp, user: &TestUser, bytes: Vec<u8>, name: &str, content_type: &str) -> (StatusCode, Value) {
    let part = Part::bytes(bytes).file_name(name.to_string()).mime_str(content_type).unwrap();
    let resp = app
        .http
        .post(app.api("/media"))
        .bearer_auth(&user.token)
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .expect("upload request");
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Waits on the tap for `event` about media `id` on the uploader's `image` topic.
async fn media_event(rx: &mut broadcast::Receiver<Envelope>, user: &TestUser, event: &str, id: &str) -> Value {
    let topic = format!("image:{}", user.id);
    let found = tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(env) if *env.topic == *topic && env.event.as_str() == event => {
                    let data: Value = serde_json::from_str(&env.data).unwrap();
                    if data["id"] == id {
                        return data;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("hub tap closed"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {event} for media {id} on {topic} within {WAIT:?}"))
}

/// Uploads and waits until processed; returns the `media.ready` data.
pub(crate) async fn upload_ready(app: &TestApp, user: &TestUser, bytes: Vec<u8>) -> Value {
    let mut rx = app.state.hub.tap();
    let (s, body) = upload(app, user, bytes, "photo.jpg", "image/jpeg").await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    media_event(&mut rx, user, "media.ready", body["id"].as_str().unwrap()).await
}

/// Uploads and waits until processing failed; returns the `media.failed` data.
async fn upload_failing(app: &TestApp, user: &TestUser, bytes: Vec<u8>, name: &str) -> Value {
    let mut rx = app.state.hub.tap();
    let (s, body) = upload(app, user, bytes, name, "application/octet-stream").await;
    assert_eq!(s, StatusCode::CREATED, "{name}: {body}");
    assert_eq!(body["status"], "processing");
    media_event(&mut rx, user, "media.failed", body["id"].as_str().unwrap()).await
}

pub(crate) fn variant<'a>(media: &'a Value, name: &str) -> &'a Value {
    media["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {media}"))
}

fn id_of(v: &Value) -> Id {
    v["id"].as_str().unwrap().parse().unwrap()
}

/// The file on disk behind a local `/files/…` URL.
pub(crate) fn local_file(app: &TestApp, url: &str) -> PathBuf {
    let rel = url.split("/files/").nth(1).unwrap_or_else(|| panic!("not a local file URL: {url}"));
    let rel = rel.split('?').next().unwrap(); // a signed URL's query
    app.dir.path().join("media").join(rel)
}

pub(crate) async fn fetch(app: &TestApp, url: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let resp = app.http.get(url).send().await.unwrap();
    (resp.status(), resp.headers().clone(), resp.bytes().await.unwrap().to_vec())
}

/// Marker segments of a JPEG up to its first scan.
fn jpeg_markers(d: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 4 <= d.len() && d[i] == 0xFF {
        let m = d[i + 1];
        out.push(m);
        if m == 0xDA {
            break;
        }
        i += 2 + u16::from_be_bytes([d[i + 2], d[i + 3]]) as usize;
    }
    out
}

fn is_red(p: Rgb<u8>) -> bool {
    p.0[0] > 180 && p.0[1] < 90 && p.0[2] < 90
}

async fn insert_post(app: &TestApp, tx: &mut Tx, author: &TestUser) -> Id {
    let id = app.state.ids.next();
    let author: Id = author.id.parse().unwrap();
    chorus::exec!(tx.ex(), c => sqlx::query(
        "INSERT INTO posts (id, author_id, caption, created_at, updated_at) VALUES ($1, $2, 'hi', $3, $3)")
        .bind(id).bind(author).bind(Timestamp::now()).execute(c).await)
    .unwrap();
    id
}

/// Creates a post with `media` the way the posts service will.
async fn create_post(app: &TestApp, author: &TestUser, media: &[Id]) -> Result<(Id, (bool, bool)), Value> {
    let mut tx = app.state.store.begin().await.unwrap();
    let post = insert_post(app, &mut tx, author).await;
    match attach_to_post(&app.state, &mut tx, author.id.parse().unwrap(), post, media).await {
        Ok(flags) => {
            tx.commit().await.unwrap();
            Ok((post, flags))
        }
        Err(e) => Err(serde_json::to_value(e.body()).unwrap()),
    }
}

/// Deletes a post the way the posts service will: release its media, delete it, commit.
async fn delete_post(app: &TestApp, post: Id) {
    let mut tx = app.state.store.begin().await.unwrap();
    release_post_media(&app.state, &mut tx, post).await.unwrap();
    chorus::exec!(tx.ex(), c => sqlx::query("DELETE FROM posts WHERE id = $1").bind(post).execute(c).await).unwrap();
    app.state.commit(tx, chorus::events::EventBatch::new()).await.unwrap();
}

/// Waits until a deletion job removed `files` from disk.
async fn gone(files: &[PathBuf]) {
    let files = files.to_vec();
    eventually(WAIT, || {
        let files = files.clone();
        async move { files.iter().all(|f| !f.exists()).then_some(()) }
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Processing

async fn photos_come_back_upright_resized_and_without_metadata(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    // 4000×3000 as stored, EXIF orientation 6 (rotate 90° clockwise to display), GPS tags.
    let original = with_exif(&jpeg(&marked_photo(4000, 3000), 90), &exif_tiff(6));
    let exif = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(&original)).expect("test EXIF parses");
    assert!(exif.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY).is_some(), "the test photo carries GPS");
    assert_eq!(exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY).unwrap().value.get_uint(0), Some(6));

    let mut rx = app.state.hub.tap();
    let (s, accepted) = upload(&app, &ann, original, "IMG_0001.JPG", "image/jpeg").await;
    assert_eq!(s, StatusCode::CREATED, "{accepted}");
    assert_eq!(accepted["kind"], "image");
    assert_eq!(accepted["status"], "processing");
    let id = accepted["id"].as_str().unwrap();
    let processing = media_event(&mut rx, &ann, "media.processing", id).await;
    assert_eq!(processing["status"], "processing");
    let ready = media_event(&mut rx, &ann, "media.ready", id).await;

    assert_eq!(ready["status"], "ready");
    assert_eq!((ready["width"].as_i64(), ready["height"].as_i64()), (Some(3000), Some(4000)), "displayed size");
    assert!(ready["placeholder"].as_str().is_some_and(|p| p.len() >= 6), "blurhash: {ready}");
    let names: Vec<_> = ready["variants"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["thumb", "feed"], "smallest first");
    let (_, detail) = app.get(&format!("/media/{id}"), ann.bearer()).await;
    assert_eq!(detail["status"], "ready");
    assert_eq!(detail["variants"], ready["variants"]);

    for (name, w, h) in [("thumb", 240, 320), ("feed", 810, 1080)] {
        let v = variant(&ready, name);
        assert_eq!((v["width"].as_i64(), v["height"].as_i64()), (Some(w), Some(h)), "{name}");
        assert_eq!(v["content_type"], "image/jpeg");
        let url = v["url"].as_str().unwrap();
        assert!(url.starts_with(&app.base), "absolute URL: {url}");
        let (status, headers, bytes) = fetch(&app, url).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "image/jpeg");

        // No metadata at all: no APPn segment but JFIF's APP0, no EXIF, none of its bytes.
        let markers = jpeg_markers(&bytes);
        assert!(markers.iter().all(|m| !(0xE1..=0xEF).contains(m)), "{name} has APPn segments: {markers:x?}");
        for needle in [&b"Exif\0\0"[..], b"chorus-secret-description"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{name} contains {needle:?}");
        }
        assert!(exif::Reader::new().read_from_container(&mut std::io::Cursor::new(&bytes)).is_err());

        // Upright: the red corner, top-left as stored, is top-right once rotated.
        let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (w as u32, h as u32));
        let (x_right, x_left, y_top) = (w as u32 * 19 / 20, w as u32 / 20, h as u32 / 40);
        assert!(is_red(*img.get_pixel(x_right, y_top)), "{name}: top-right is red");
        assert!(!is_red(*img.get_pixel(x_left, y_top)), "{name}: top-left is not");
        assert!(!is_red(*img.get_pixel(x_right, h as u32 - 1 - y_top)), "{name}: bottom-right is not");
    }
    // The job removes the spool file after publishing `media.ready` (a retry would need it).
    gone(&[app.dir.path().join(format!("uploads/{id}.upload"))]).await;
}

async fn transparent_png_stays_png_and_small_images_are_not_upscaled(b: Backend) {
    let app = TestApp::spawn(b).await;
    let bo = app.register("bob").await;
    let img = RgbaImage::from_fn(200, 100, |x, _| if x < 100 { Rgba([0, 0, 0, 0]) } else { Rgba([0, 200, 0, 255]) });
    let ready = upload_ready(&app, &bo, png(&DynamicImage::ImageRgba8(img))).await;
    assert_eq!((ready["width"].as_i64(), ready["height"].as_i64()), (Some(200), Some(100)));
    for name in ["thumb", "feed"] {
        let v = variant(&ready, name);
        assert_eq!(v["content_type"], "image/png", "{name}");
        assert_eq!((v["width"].as_i64(), v["height"].as_i64()), (Some(200), Some(100)), "never upscaled");
        let (status, headers, bytes) = fetch(&app, v["url"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "image/png");
        let out = image::load_from_memory(&bytes).unwrap().to_rgba8();
        assert_eq!(out.get_pixel(10, 50).0[3], 0, "transparent stays transparent");
        assert_eq!(out.get_pixel(190, 50).0, [0, 200, 0, 255]);
    }
    // An opaque PNG is served as JPEG.
    let opaque = DynamicImage::ImageRgb8(RgbImage::from_pixel(30, 20, Rgb([1, 2, 3])));
    let ready = upload_ready(&app, &bo, png(&opaque)).await;
    assert_eq!(variant(&ready, "thumb")["content_type"], "image/jpeg");
}

async fn bad_uploads_get_the_right_error_and_the_server_stays_fine(b: Backend) {
    let app = TestApp::spawn(b).await;
    let cy = app.register("cyra").await;
    let other = app.register("other").await;

    // Text named .png with an image Content-Type: refused by content.
    let (s, body) = upload(&app, &cy, b"hello, I am definitely a PNG".to_vec(), "cat.png", "image/png").await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_media_type");

    // A truncated JPEG is accepted, then fails with a reason.
    let full = jpeg(&marked_photo(640, 480), 90);
    let failed = upload_failing(&app, &cy, full[..full.len() / 2].to_vec(), "half.jpg").await;
    assert_eq!(failed["status"], "failed");
    assert!(failed["reason"].as_str().unwrap().contains("truncated"), "{failed}");
    let id = failed["id"].as_str().unwrap();
    let (s, detail) = app.get(&format!("/media/{id}"), cy.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!((detail["status"].as_str(), detail["failure"].as_str()), (Some("failed"), failed["reason"].as_str()));
    assert_eq!(detail["variants"], json!([]));
    let (s, _) = app.get(&format!("/media/{id}"), other.bearer()).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "others do not see failed uploads");

    // Pixel bombs: tiny files declaring 2.5 gigapixels.
    for (bomb, name) in [(png_bomb(50_000, 50_000), "bomb.png"), (gif_bomb(50_000, 50_000), "bomb.gif")] {
        let failed = upload_failing(&app, &cy, bomb, name).await;
        assert!(failed["reason"].as_str().unwrap().contains("megapixels"), "{name}: {failed}");
    }
    // Garbage after a valid signature.
    let failed = upload_failing(&app, &cy, b"\x89PNG\r\n\x1a\n and then nothing useful".to_vec(), "junk.png").await;
    assert!(failed["reason"].as_str().unwrap().contains("could not be decoded"), "{failed}");

    // Malformed requests.
    let resp = app.http.post(app.api("/media")).multipart(Form::new().text("file", "x")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = app.http.post(app.api("/media")).bearer_auth(&cy.token).json(&json!({"file": 1})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let form = Form::new().text("caption", "no file here");
    let resp = app.http.post(app.api("/media")).bearer_auth(&cy.token).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (s, _) = upload(&app, &cy, Vec::new(), "empty.jpg", "image/jpeg").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // The server is fine: a good upload still goes through.
    let ready = upload_ready(&app, &cy, small_jpeg()).await;
    assert_eq!(ready["status"], "ready");
    let (s, _) = app.get("/auth/me", cy.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    // No temporary file is left; the last job removes its own just after `media.ready`.
    let spools = app.dir.path().join("uploads");
    eventually(WAIT, || async { (std::fs::read_dir(&spools).unwrap().count() == 0).then_some(()) }).await;
}

async fn oversized_uploads_are_refused_with_413(b: Backend) {
    let app = TestApp::spawn_with(b, |cfg| {
        cfg.media.max_image_bytes = 64 * 1024;
        cfg.media.max_video_bytes = 256 * 1024;
    })
    .await;
    let di = app.register("dina").await;
    // Noise compresses badly: this JPEG is over 64 KiB (and under the largest limit, so
    // the refusal happens while streaming).
    let noisy = RgbImage::from_fn(220, 220, |x, y| {
        let v = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)).to_le_bytes();
        Rgb([v[0], v[1], v[2]])
    });
    let big = jpeg(&noisy, 95);
    assert!(big.len() > 64 * 1024 && big.len() < 256 * 1024, "{}", big.len());
    let (s, body) = upload(&app, &di, big, "big.jpg", "image/jpeg").await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(body["error"]["message"].as_str().unwrap().contains("64 KiB"), "{body}");

    // The limit is per type: the same size is fine for a video.
    let mut video = tiny_mp4();
    video.resize(100 * 1024, 0);
    let (s, body) = upload(&app, &di, video, "clip.mp4", "video/mp4").await;
    assert_eq!(s, StatusCode::CREATED, "{body}");

    // A declared body far over every limit is refused before any of it is read (a raw
    // request: only the headers are ever sent).
    let addr = app.base.trim_start_matches("http://").to_string();
    let token = di.token.clone();
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST /api/v1/media HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 999999999\r\n\r\n"
        )
        .unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    })
    .await
    .unwrap();
    assert_eq!(reply, "HTTP/1.1 413");
    let ready = upload_ready(&app, &di, small_jpeg()).await;
    assert_eq!(ready["status"], "ready", "the server is fine afterwards");
}

async fn videos_are_stored_as_uploaded(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ed = app.register("eddie").await;
    let mp4 = tiny_mp4();
    let mut rx = app.state.hub.tap();
    let (s, accepted) = upload(&app, &ed, mp4.clone(), "clip.bin", "application/octet-stream").await;
    assert_eq!(s, StatusCode::CREATED, "{accepted}");
    assert_eq!(accepted["kind"], "video");
    let ready = media_event(&mut rx, &ed, "media.ready", accepted["id"].as_str().unwrap()).await;
    assert_eq!(ready["kind"], "video");
    let original = variant(&ready, "original");
    assert_eq!(original["content_type"], "video/mp4");
    let (status, headers, bytes) = fetch(&app, original["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "video/mp4");
    assert_eq!(bytes, mp4, "stored exactly as uploaded");
    let (_, detail) = app.get(&format!("/media/{}", ready["id"].as_str().unwrap()), ed.bearer()).await;
    assert_eq!(detail["bytes"].as_i64(), Some(mp4.len() as i64));
    assert_eq!(detail["mime"], "video/mp4");
}

async fn files_are_served_by_policy_with_cache_headers_and_no_way_out(b: Backend) {
    let app = TestApp::spawn(b).await;
    let fi = app.register("fiona").await;
    let ready = upload_ready(&app, &fi, small_jpeg()).await;
    // An unattached upload is its uploader's: its URL is signed and privately cacheable.
    let url = variant(&ready, "feed")["url"].as_str().unwrap().to_string();
    assert!(url.contains("?exp=") && url.contains("&sig="), "{url}");
    let (status, headers, _) = fetch(&app, &url).await;
    assert_eq!(status, StatusCode::OK);
    let cache = headers["cache-control"].to_str().unwrap();
    let left: u64 = cache.strip_prefix("private, max-age=").expect(cache).parse().unwrap();
    assert!((3600..=3600 + 300).contains(&left), "{cache}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let unsigned = url.split('?').next().unwrap().to_string();
    assert_eq!(fetch(&app, &unsigned).await.0, StatusCode::NOT_FOUND, "unsigned, it is nobody's to see");
    let tampered = format!("{}0", url);
    assert_eq!(fetch(&app, &tampered).await.0, StatusCode::FORBIDDEN, "a changed signature fails");
    let (base, query) = url.split_once('?').unwrap();
    let exp: u64 = query.split('&').find_map(|kv| kv.strip_prefix("exp=")).unwrap().parse().unwrap();
    let sig = query.split('&').find_map(|kv| kv.strip_prefix("sig=")).unwrap();
    let moved = format!("{base}?exp={}&sig={sig}", exp + 300);
    assert_eq!(fetch(&app, &moved).await.0, StatusCode::FORBIDDEN, "a moved expiry fails");

    // On a public account's post it is everyone's: the plain URL, publicly cacheable.
    let (post, _) = create_post(&app, &fi, &[id_of(&ready)]).await.unwrap();
    let (s, v) = app.get(&format!("/posts/{post}"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let public_url = v["media"][0]["variants"].as_array().unwrap().iter().find(|x| x["name"] == "feed").unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(public_url, unsigned);
    let (status, headers, _) = fetch(&app, &public_url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "public, max-age=86400");

    let (status, headers, body) = fetch(&app, &format!("{}/files/nope/missing.jpg", app.base)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers.get("cache-control").is_none(), "a 404 is not cached for a year");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"], "not_found");

    // Raw requests: HTTP clients normalise `..` away before sending.
    let addr = app.base.trim_start_matches("http://").to_string();
    for path in ["/files/../chorus.db", "/files/%2e%2e/chorus.db", "/files/..%2fchorus.db", "/files/../jwt_secret"] {
        let addr = addr.clone();
        let reply = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
            String::from_utf8_lossy(&out).into_owned()
        })
        .await
        .unwrap();
        assert!(!reply.starts_with("HTTP/1.1 200"), "{path}: {reply}");
        assert!(!reply.contains("SQLite format"), "{path} leaked the database");
    }
}

// ---------------------------------------------------------------------------------------
// Posts, avatars, ownership, deletion

async fn deleting_a_post_removes_its_files_from_disk(b: Backend) {
    let app = TestApp::spawn(b).await;
    let gus = app.register("gus").await;
    let a = upload_ready(&app, &gus, small_jpeg()).await;
    let v = upload_ready(&app, &gus, tiny_mp4()).await;
    let (post, flags) = create_post(&app, &gus, &[id_of(&v), id_of(&a)]).await.expect("attach");
    assert_eq!(flags, (true, true));

    let by_post = for_posts(&app.state, &[post, Id(1)], &Default::default()).await.unwrap();
    assert_eq!(by_post.len(), 1, "posts without media are absent");
    let media = serde_json::to_value(&by_post[&post]).unwrap();
    assert_eq!(media[0]["id"], v["id"], "attachment order kept");
    assert_eq!(media[1]["id"], a["id"]);
    // The uploader saw signed URLs; on a public account's post they are the plain ones.
    let unsigned = |vs: &Value| -> Vec<Value> {
        let mut vs = vs.as_array().unwrap().clone();
        for v in &mut vs {
            v["url"] = json!(v["url"].as_str().unwrap().split('?').next().unwrap());
        }
        vs
    };
    assert_eq!(unsigned(&media[1]["variants"]), unsigned(&a["variants"]), "variants with URLs, widths and heights");
    assert!(!media[1]["variants"][0]["url"].as_str().unwrap().contains('?'), "public URLs are unsigned");
    assert_eq!(media[1]["variants"][0]["width"], 64);

    let files: Vec<PathBuf> = [&a, &v]
        .iter()
        .flat_map(|m| m["variants"].as_array().unwrap().clone())
        .map(|var| local_file(&app, var["url"].as_str().unwrap()))
        .collect();
    assert_eq!(files.len(), 3);
    assert!(files.iter().all(|f| f.exists()));
    let (s, _) = app.call(Method::DELETE, &format!("/media/{}", a["id"].as_str().unwrap()), gus.bearer(), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "attached media is deleted with its post, not alone");

    delete_post(&app, post).await;
    gone(&files).await;
    for m in [&a, &v] {
        let (s, _) = app.get(&format!("/media/{}", m["id"].as_str().unwrap()), gus.bearer()).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    assert!(for_posts(&app.state, &[post], &Default::default()).await.unwrap().is_empty());
}

async fn attach_to_post_validates_the_list(b: Backend) {
    let app = TestApp::spawn(b).await;
    let hal = app.register("hal").await;
    let ready = upload_ready(&app, &hal, small_jpeg()).await;
    let (failed_id, processing_id) = {
        let f = upload_failing(&app, &hal, b"GIF89a broken".to_vec(), "x.gif").await;
        // Hold one upload in `processing`: insert it directly, no job.
        let mut tx = app.state.store.begin().await.unwrap();
        let pid = app.state.ids.next();
        let new = chorus::store::media::NewMedia {
            id: pid,
            owner: hal.id.parse().unwrap(),
            kind: "image",
            mime: "image/png",
            bytes: 1,
            now: Timestamp::now(),
        };
        chorus::store::media::insert(tx.ex(), &new).await.unwrap();
        tx.commit().await.unwrap();
        (id_of(&f), pid)
    };
    let r = id_of(&ready);
    let expect_err = |res: Result<(Id, (bool, bool)), Value>, has: &str| {
        let body = res.expect_err("refused");
        let msg = body["error"]["fields"]["media_ids"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains(has), "expected {has:?} in {body}");
    };
    expect_err(create_post(&app, &hal, &[r, r]).await, "twice");
    expect_err(create_post(&app, &hal, &[r; 11]).await, "at most 10");
    expect_err(create_post(&app, &hal, &[Id(12345)]).await, "not found");
    expect_err(create_post(&app, &hal, &[failed_id]).await, "not ready");
    expect_err(create_post(&app, &hal, &[processing_id]).await, "not ready");
    assert_eq!(create_post(&app, &hal, &[]).await.unwrap().1, (false, false), "a post without media");

    let (_, flags) = create_post(&app, &hal, &[r]).await.expect("valid");
    assert_eq!(flags, (true, false));
    expect_err(create_post(&app, &hal, &[r]).await, "already in use");

    // Ten is the most, and fine.
    let mut ten = Vec::new();
    for _ in 0..10 {
        ten.push(id_of(&upload_ready(&app, &hal, small_jpeg()).await));
    }
    let (post, _) = create_post(&app, &hal, &ten).await.expect("ten items");
    let listed: Vec<Id> =
        for_posts(&app.state, &[post], &Default::default()).await.unwrap()[&post].iter().map(|m| m.id).collect();
    assert_eq!(listed, ten);
}

async fn only_the_uploader_can_attach_or_delete(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ivy = app.register("ivy").await;
    let mallory = app.register("mallory").await;
    let mine = upload_ready(&app, &ivy, small_jpeg()).await;
    let id = mine["id"].as_str().unwrap();

    let res = create_post(&app, &mallory, &[id_of(&mine)]).await;
    assert!(res.unwrap_err()["error"]["fields"]["media_ids"].as_str().unwrap().contains("not found"));
    let (s, body) = app.call(Method::PUT, "/users/me/avatar", mallory.bearer(), Some(json!({"media_id": id}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (s, _) = app.call(Method::DELETE, &format!("/media/{id}"), mallory.bearer(), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "someone else's unattached upload does not exist for mallory");
    let (s, _) = app.call(Method::DELETE, &format!("/media/{id}"), None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app.get(&format!("/media/{id}"), mallory.bearer()).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "an unattached upload is its uploader's alone");

    let file = local_file(&app, variant(&mine, "thumb")["url"].as_str().unwrap());
    let (s, _) = app.call(Method::DELETE, &format!("/media/{id}"), ivy.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get(&format!("/media/{id}"), ivy.bearer()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    gone(&[file]).await;
    let (s, _) = app.call(Method::DELETE, &format!("/media/{id}"), ivy.bearer(), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn replacing_the_avatar_deletes_the_old_files(b: Backend) {
    let app = TestApp::spawn(b).await;
    let jo = app.register("joan").await;
    let first = upload_ready(&app, &jo, small_jpeg()).await;
    let second = upload_ready(&app, &jo, small_jpeg()).await;
    let video = upload_ready(&app, &jo, tiny_mp4()).await;
    let files = |m: &Value| -> Vec<PathBuf> {
        m["variants"].as_array().unwrap().iter().map(|v| local_file(&app, v["url"].as_str().unwrap())).collect()
    };

    let put = |body: Value| app.call(Method::PUT, "/users/me/avatar", jo.bearer(), Some(body));
    let (s, body) = put(json!({"media_id": video["id"]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a video is no avatar: {body}");
    let (s, body) = put(json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "media_id is required: {body}");

    let (s, me) = put(json!({"media_id": first["id"]})).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["avatar_media_id"], first["id"]);
    let (s, _) = put(json!({"media_id": first["id"]})).await;
    assert_eq!(s, StatusCode::OK, "setting the same avatar again changes nothing");
    let (_, detail) = app.get(&format!("/media/{}", first["id"].as_str().unwrap()), jo.bearer()).await;
    assert_eq!(detail["attached_to"], "avatar");
    let (s, _) =
        app.call(Method::DELETE, &format!("/media/{}", first["id"].as_str().unwrap()), jo.bearer(), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "the avatar in use cannot be deleted alone");

    let (s, me) = put(json!({"media_id": second["id"]})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["avatar_media_id"], second["id"]);
    gone(&files(&first)).await;
    let (s, _) = app.get(&format!("/media/{}", first["id"].as_str().unwrap()), jo.bearer()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(files(&second).iter().all(|f| f.exists()));

    let (s, me) = put(json!({"media_id": null})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["avatar_media_id"], Value::Null);
    gone(&files(&second)).await;
}

async fn unattached_uploads_are_garbage_collected_after_the_ttl(b: Backend) {
    let app = TestApp::spawn_with(b, |cfg| cfg.media.unattached_ttl_secs = 3).await;
    let kit = app.register("kit").await;
    let kept = upload_ready(&app, &kit, small_jpeg()).await;
    let (s, _) = app.call(Method::PUT, "/users/me/avatar", kit.bearer(), Some(json!({"media_id": kept["id"]}))).await;
    assert_eq!(s, StatusCode::OK);
    // The failed one first: a sweep that collects `loose` has then passed it too.
    let failed = upload_failing(&app, &kit, b"GIF89a broken".to_vec(), "x.gif").await;
    let loose = upload_ready(&app, &kit, small_jpeg()).await;

    let loose_files: Vec<PathBuf> =
        loose["variants"].as_array().unwrap().iter().map(|v| local_file(&app, v["url"].as_str().unwrap())).collect();
    gone(&loose_files).await;
    for m in [&loose, &failed] {
        let (s, _) = app.get(&format!("/media/{}", m["id"].as_str().unwrap()), kit.bearer()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "collected");
    }
    let (s, _) = app.get(&format!("/media/{}", kept["id"].as_str().unwrap()), kit.bearer()).await;
    assert_eq!(s, StatusCode::OK, "the avatar is attached and kept");
    assert!(local_file(&app, variant(&kept, "thumb")["url"].as_str().unwrap()).exists());
}

// ---------------------------------------------------------------------------------------
// Cloudinary

async fn cloudinary_uploads_are_signed_and_deletions_survive_outages_and_restarts(b: Backend) {
    let cdn = CloudinaryDouble::start().await;
    let app = TestApp::spawn_with(b, |cfg| {
        cfg.cloudinary_url = Some(cdn.url());
        cfg.cloudinary_api_base = cdn.base.clone();
        cfg.cloudinary_delivery_base = cdn.base.clone();
        cfg.cloudinary_auth_token_key = Some(crate::support::cloudinary::AUTH_TOKEN_KEY.into());
        cfg.jobs.backoff_base_ms = 300;
    })
    .await;
    let lu = app.register("lucia").await;

    let photo = upload_ready(&app, &lu, with_exif(&jpeg(&marked_photo(1600, 1200), 90), &exif_tiff(6))).await;
    let video = upload_ready(&app, &lu, tiny_mp4()).await;
    cdn.with(|s| {
        assert!(s.rejected.is_empty(), "every request passed Cloudinary's checks: {:?}", s.rejected);
        assert_eq!(s.uploads.len(), 3, "thumb, feed, video: {:?}", s.uploads);
    });
    let public_ids: Vec<String> = cdn.with(|s| s.uploads.clone());
    // Uploaded as `authenticated`: the uploader's view of an unattached item carries
    // expiring tokens, and the CDN serves exactly what was stored.
    for v in photo["variants"].as_array().unwrap() {
        let url = v["url"].as_str().unwrap();
        let prefix = format!("{}/chorus-test/image/authenticated/chorus/", cdn.base);
        assert!(url.starts_with(&prefix) && url.contains("?__cld_token__=exp="), "{url}");
        let got = app.http.get(url).send().await.unwrap();
        assert_eq!(got.status(), StatusCode::OK, "{url}");
        let body = got.bytes().await.unwrap();
        assert!(cdn.with(|s| s.objects.values().any(|o| o.bytes == body.as_ref())), "{url} served its object");
        let bare = url.split('?').next().unwrap();
        assert_eq!(app.http.get(bare).send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "{bare}");
    }
    assert_eq!(
        (variant(&photo, "feed")["width"].as_i64(), variant(&photo, "feed")["height"].as_i64()),
        (Some(810), Some(1080))
    );
    cdn.with(|s| {
        for o in s.objects.values().filter(|o| o.resource_type == "image") {
            assert!(!o.bytes.windows(6).any(|w| w == b"Exif\0\0"), "stripped before it leaves the server");
        }
        assert!(s.objects.values().any(|o| o.resource_type == "video"), "videos go to video/ resources");
    });
    let original = variant(&video, "original");
    assert!(original["url"].as_str().unwrap().contains("/video/authenticated/"), "{original}");
    assert_eq!(
        (original["width"].as_i64(), original["height"].as_i64()),
        (Some(640), Some(360)),
        "measured by Cloudinary"
    );
    assert!(app.dir.path().join("media").read_dir().unwrap().next().is_none(), "nothing on local disk");

    // An outage: the first destroys fail; the deletion is retried until it is done.
    cdn.fail_next_destroys(2);
    let (s, _) =
        app.call(Method::DELETE, &format!("/media/{}", video["id"].as_str().unwrap()), lu.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "the user does not wait for Cloudinary");
    cdn.wait_for(WAIT, "the video's deletion", |s| s.failed_destroys == 2 && s.objects.len() == 2).await;

    // Another outage, and Chorus restarts while the deletion is backing off.
    cdn.fail_next_destroys(3);
    let (s, _) =
        app.call(Method::DELETE, &format!("/media/{}", photo["id"].as_str().unwrap()), lu.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    cdn.wait_for(WAIT, "a failed destroy", |s| s.failed_destroys >= 3).await;
    let app = app.restart().await;
    cdn.wait_for(WAIT, "the photo's deletion after the restart", |s| s.objects.is_empty()).await;
    cdn.with(|s| {
        assert!(s.rejected.is_empty(), "{:?}", s.rejected);
        for id in &public_ids {
            assert!(s.destroyed.contains(id), "{id} destroyed");
        }
    });
    let (s, _) = app.get("/auth/me", lu.bearer()).await;
    assert_eq!(s, StatusCode::OK);
}

//! What an upload *is*, decided from its first bytes (magic numbers), never from its file
//! name or the client's `Content-Type`: those are whatever the client says, the bytes are
//! what decoders and browsers will act on.
//!
//! Also here: a structural check that a JPEG is complete, because the JPEG decoder is
//! deliberately lenient (it paints the missing part of a truncated file grey, like browsers
//! do) and a half-uploaded photo must fail, not become a half-grey post.

use super::MediaKind;

/// How many leading bytes [`sniff`] wants (all it needs to tell every accepted type apart).
pub const SNIFF_BYTES: usize = 64;

/// An accepted upload type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detected {
    /// Image or video.
    pub kind: MediaKind,
    /// Canonical MIME type.
    pub mime: &'static str,
    /// File extension used for stored objects.
    pub ext: &'static str,
}

/// The accepted types: JPEG, PNG, WebP and GIF images; MP4, WebM and QuickTime videos.
const ACCEPTED: [(&str, Detected); 8] = [
    ("image/jpeg", Detected { kind: MediaKind::Image, mime: "image/jpeg", ext: "jpg" }),
    ("image/png", Detected { kind: MediaKind::Image, mime: "image/png", ext: "png" }),
    ("image/webp", Detected { kind: MediaKind::Image, mime: "image/webp", ext: "webp" }),
    ("image/gif", Detected { kind: MediaKind::Image, mime: "image/gif", ext: "gif" }),
    ("video/mp4", Detected { kind: MediaKind::Video, mime: "video/mp4", ext: "mp4" }),
    // An `.m4v` is an MP4 with another brand; browsers play it as one.
    ("video/x-m4v", Detected { kind: MediaKind::Video, mime: "video/mp4", ext: "mp4" }),
    ("video/webm", Detected { kind: MediaKind::Video, mime: "video/webm", ext: "webm" }),
    ("video/quicktime", Detected { kind: MediaKind::Video, mime: "video/quicktime", ext: "mov" }),
];

/// The type of a file from its first bytes, or `None` when it is not one we accept
/// (text, HEIC, AVIF, Matroska, audio, …).
pub fn sniff(head: &[u8]) -> Option<Detected> {
    let found = infer::get(head)?;
    ACCEPTED.iter().find(|(mime, _)| *mime == found.mime_type()).map(|(_, d)| *d)
}

/// Extension of stored objects of a MIME type (as written by [`sniff`] or by processing).
pub fn extension_of(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        _ => "bin",
    }
}

/// Checks that a JPEG runs from its start-of-image to its end-of-image marker, walking the
/// marker segments and the entropy-coded scans between them. Bytes after the end marker
/// (some cameras append data) are allowed; a file that stops before it is not.
pub fn jpeg_is_complete(d: &[u8]) -> Result<(), &'static str> {
    const TRUNCATED: &str = "the JPEG is truncated (it ends before its end-of-image marker)";
    if !d.starts_with(&[0xFF, 0xD8]) {
        return Err("the file is not a JPEG");
    }
    let mut i = 2;
    loop {
        // Between segments: skip anything up to the next marker prefix, then fill bytes.
        while i < d.len() && d[i] != 0xFF {
            i += 1;
        }
        while i < d.len() && d[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = d.get(i) else { return Err(TRUNCATED) };
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            // Markers without a length: TEM, RSTn, and a stray SOI.
            0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let len = match d.get(i..i + 2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]) as usize,
            None => return Err(TRUNCATED),
        };
        if len < 2 {
            return Err("the JPEG is corrupt (a segment has an impossible length)");
        }
        i += len;
        if i > d.len() {
            return Err(TRUNCATED);
        }
        if marker == 0xDA {
            // Start of scan: entropy-coded data runs until a marker other than a stuffed
            // 0xFF00 or a restart marker.
            loop {
                let Some(p) = d[i..].iter().position(|&b| b == 0xFF) else { return Err(TRUNCATED) };
                i += p;
                match d.get(i + 1) {
                    None => return Err(TRUNCATED),
                    Some(0x00) | Some(0xD0..=0xD7) => i += 2,
                    Some(0xFF) => i += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content_only() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]).map(|d| d.mime), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").map(|d| d.mime), Some("image/png"));
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0").map(|d| d.mime), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 ").map(|d| d.mime), Some("image/webp"));
        let mp4 = b"\0\0\0\x18ftypisom\0\0\x02\0isommp41";
        assert_eq!(sniff(mp4).map(|d| (d.kind, d.mime)), Some((MediaKind::Video, "video/mp4")));
        let mov = b"\0\0\0\x14ftypqt  \0\0\0\0qt  ";
        assert_eq!(sniff(mov).map(|d| d.mime), Some("video/quicktime"));
        assert_eq!(sniff(b"hello, I am a text file pretending to be a .png"), None);
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"), None, "HEIC is not accepted");
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn complete_and_truncated_jpegs() {
        let mut buf = Vec::new();
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 80).encode_image(&img).unwrap();
        assert_eq!(jpeg_is_complete(&buf), Ok(()));
        let mut trailing = buf.clone();
        trailing.extend_from_slice(b"camera junk");
        assert_eq!(jpeg_is_complete(&trailing), Ok(()));
        for cut in [3, 10, buf.len() / 2, buf.len() - 2, buf.len() - 1] {
            assert!(jpeg_is_complete(&buf[..cut]).is_err(), "cut at {cut}");
        }
        assert!(jpeg_is_complete(b"not a jpeg").is_err());
    }
}

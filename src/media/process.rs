//! Image processing: decode, orient, strip, resize, re-encode. Pure CPU work on bytes in
//! memory, no I/O and no async: the caller runs it on the blocking pool
//! (`spawn_blocking`) and stores what comes out.
//!
//! # Defences, in order
//! 1. A JPEG must be structurally complete ([`super::detect::jpeg_is_complete`]): the decoder
//!    would otherwise paint a truncated file's missing half grey and call it a success.
//! 2. Dimensions are read from the header and anything above `max_pixels` is refused
//!    *before* a pixel buffer exists (a 50,000 × 50,000 PNG is a few hundred bytes).
//! 3. The decoder gets [`image::Limits`] with `max_alloc`, so a file that lies about itself
//!    (or a decoder's own buffers) cannot grow memory without bound: it fails instead.
//! 4. Every failure is a [`Rejected`] with a reason for the uploader, never a panic; the
//!    caller additionally treats a panic of the blocking task as a rejection.
//!
//! # Pipeline
//! The full-size image is decoded once and never rotated: each variant is resized from it
//! (or from the previous, larger variant) and the EXIF orientation is applied to the small
//! result, which gives the same pixels as rotate-then-resize without a second full-size
//! buffer. Metadata is stripped by construction: the encoders write pixels only (no EXIF,
//! GPS, XMP or ICC). Opaque images become JPEG, images with real transparency PNG.

use std::io::Cursor;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader, RgbImage, RgbaImage};

use super::detect;

/// The variants made of every image: name and longest side in pixels (never upscaled).
pub const VARIANTS: [(&str, u32); 2] = [("thumb", 320), ("feed", 1080)];

/// JPEG quality of the variants.
const JPEG_QUALITY: u8 = 82;

/// Why an image was refused; the text is shown to the uploader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected(pub String);

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Limits applied while processing.
#[derive(Clone, Copy, Debug)]
pub struct ProcessLimits {
    /// Largest accepted width × height.
    pub max_pixels: u64,
    /// Most bytes the decoder may allocate.
    pub max_alloc: u64,
}

impl ProcessLimits {
    /// Limits for `max_pixels`: the decoder may allocate one RGBA8 buffer of that size plus
    /// 64 MiB of working space (16-bit images near the pixel limit are refused by this).
    pub fn for_pixels(max_pixels: u64) -> Self {
        Self { max_pixels, max_alloc: max_pixels.saturating_mul(4).saturating_add(64 << 20) }
    }
}

/// One encoded variant.
#[derive(Clone, Debug)]
pub struct Rendition {
    /// `thumb`, `feed`.
    pub name: &'static str,
    /// `image/jpeg` or `image/png`.
    pub content_type: &'static str,
    /// Pixels, as displayed.
    pub width: u32,
    /// Pixels, as displayed.
    pub height: u32,
    /// The encoded file.
    pub data: Vec<u8>,
}

/// The result of processing an image.
#[derive(Clone, Debug)]
pub struct ProcessedImage {
    /// Width as displayed (orientation applied).
    pub width: u32,
    /// Height as displayed.
    pub height: u32,
    /// Blurhash of the image, for a placeholder while it loads.
    pub placeholder: Option<String>,
    /// The variants, smallest first.
    pub renditions: Vec<Rendition>,
}

/// The decoder format of an accepted image MIME type.
fn format_of(mime: &str) -> Option<ImageFormat> {
    match mime {
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/png" => Some(ImageFormat::Png),
        "image/webp" => Some(ImageFormat::WebP),
        "image/gif" => Some(ImageFormat::Gif),
        _ => None,
    }
}

/// Decoded pixels, 8 bits per channel.
enum Pixels {
    Rgb(RgbImage),
    Rgba(RgbaImage),
}

impl Pixels {
    fn dimensions(&self) -> (u32, u32) {
        match self {
            Pixels::Rgb(i) => i.dimensions(),
            Pixels::Rgba(i) => i.dimensions(),
        }
    }
}

/// Processes an uploaded image of type `mime` (as detected from its content).
pub fn process_image(data: &[u8], mime: &str, limits: ProcessLimits) -> Result<ProcessedImage, Rejected> {
    let format = format_of(mime).ok_or_else(|| Rejected(format!("{mime} is not an image type we process")))?;
    if format == ImageFormat::Jpeg {
        detect::jpeg_is_complete(data).map_err(|m| Rejected(m.to_string()))?;
    }
    let orientation = exif_orientation(data);
    let pixels = decode(data, format, limits)?;
    let (w, h) = pixels.dimensions();
    let translucent = match &pixels {
        Pixels::Rgb(_) => false,
        Pixels::Rgba(i) => i.pixels().any(|p| p.0[3] != 255),
    };
    let swaps = matches!(
        orientation,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    );
    let (width, height) = if swaps { (h, w) } else { (w, h) };

    // Resize largest first, each from the previous (smaller is cheaper and looks the same).
    let mut order: Vec<(&'static str, u32)> = VARIANTS.to_vec();
    order.sort_by_key(|v| std::cmp::Reverse(v.1));
    let mut resizer = Resizer::new();
    let mut renditions = Vec::with_capacity(order.len());
    let mut previous: Option<Pixels> = None;
    let mut placeholder = None;
    for (name, long_side) in order {
        let (tw, th) = fit(w, h, long_side);
        let src = previous.as_ref().unwrap_or(&pixels);
        let small = resize(&mut resizer, src, tw, th)?;
        let mut shown = match &small {
            Pixels::Rgb(i) => DynamicImage::ImageRgb8(i.clone()),
            Pixels::Rgba(i) => DynamicImage::ImageRgba8(i.clone()),
        };
        shown.apply_orientation(orientation);
        renditions.push(encode(name, &shown, translucent)?);
        placeholder = blurhash_of(&shown);
        previous = Some(small);
    }
    renditions.reverse();
    Ok(ProcessedImage { width, height, placeholder, renditions })
}

/// The EXIF orientation, if the container has EXIF (JPEG, PNG, WebP); upright otherwise.
fn exif_orientation(data: &[u8]) -> Orientation {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(data)) else {
        return Orientation::NoTransforms;
    };
    exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .and_then(|v| u8::try_from(v).ok())
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms)
}

fn decode(data: &[u8], format: ImageFormat, limits: ProcessLimits) -> Result<Pixels, Rejected> {
    let undecodable = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => Rejected("the image needs more memory to decode than allowed".into()),
        other => Rejected(format!("the image could not be decoded: {other}")),
    };
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(image_limits);
    // Only the header has been read here: refuse bombs before any pixel buffer exists.
    let decoder = reader.into_decoder().map_err(undecodable)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(Rejected("the image has no pixels".into()));
    }
    let pixels = u64::from(w) * u64::from(h);
    if pixels > limits.max_pixels {
        return Err(Rejected(format!(
            "the image is {w}×{h} ({:.1} megapixels); at most {:.1} megapixels are accepted",
            pixels as f64 / 1e6,
            limits.max_pixels as f64 / 1e6
        )));
    }
    if decoder.total_bytes() > limits.max_alloc {
        return Err(Rejected("the image needs more memory to decode than allowed".into()));
    }
    let img = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    Ok(if img.color().has_alpha() { Pixels::Rgba(img.into_rgba8()) } else { Pixels::Rgb(img.into_rgb8()) })
}

/// Size that fits `long_side` keeping the aspect ratio; never larger than the original.
pub fn fit(w: u32, h: u32, long_side: u32) -> (u32, u32) {
    let long = w.max(h);
    if long <= long_side {
        return (w, h);
    }
    let scale = f64::from(long_side) / f64::from(long);
    let tw = ((f64::from(w) * scale).round() as u32).clamp(1, long_side);
    let th = ((f64::from(h) * scale).round() as u32).clamp(1, long_side);
    (tw, th)
}

fn resize(resizer: &mut Resizer, src: &Pixels, tw: u32, th: u32) -> Result<Pixels, Rejected> {
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    let failed = |e: fast_image_resize::ResizeError| Rejected(format!("the image could not be resized: {e}"));
    Ok(match src {
        Pixels::Rgb(i) if i.dimensions() == (tw, th) => Pixels::Rgb(i.clone()),
        Pixels::Rgba(i) if i.dimensions() == (tw, th) => Pixels::Rgba(i.clone()),
        Pixels::Rgb(i) => {
            let mut dst = RgbImage::new(tw, th);
            resizer.resize(i, &mut dst, &opts).map_err(failed)?;
            Pixels::Rgb(dst)
        }
        Pixels::Rgba(i) => {
            let mut dst = RgbaImage::new(tw, th);
            resizer.resize(i, &mut dst, &opts).map_err(failed)?;
            Pixels::Rgba(dst)
        }
    })
}

fn encode(name: &'static str, img: &DynamicImage, translucent: bool) -> Result<Rendition, Rejected> {
    let failed = |e: image::ImageError| Rejected(format!("the image could not be encoded: {e}"));
    let mut data = Vec::new();
    let (width, height) = (img.width(), img.height());
    let content_type = if translucent {
        let rgba = img.to_rgba8();
        PngEncoder::new(&mut data)
            .write_image(rgba.as_raw(), width, height, image::ExtendedColorType::Rgba8)
            .map_err(failed)?;
        "image/png"
    } else {
        let rgb = match img {
            DynamicImage::ImageRgb8(i) => std::borrow::Cow::Borrowed(i),
            other => std::borrow::Cow::Owned(other.to_rgb8()),
        };
        JpegEncoder::new_with_quality(&mut data, JPEG_QUALITY).encode_image(rgb.as_ref()).map_err(failed)?;
        "image/jpeg"
    };
    Ok(Rendition { name, content_type, width, height, data })
}

/// A 4×3-component blurhash of a small copy of the image.
fn blurhash_of(img: &DynamicImage) -> Option<String> {
    let tiny = img.thumbnail(32, 32).to_rgba8();
    blurhash::encode(4, 3, tiny.width(), tiny.height(), tiny.as_raw()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ProcessLimits {
        ProcessLimits::for_pixels(40_000_000)
    }

    fn png(img: &DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn fit_keeps_aspect_and_never_upscales() {
        assert_eq!(fit(4000, 3000, 1080), (1080, 810));
        assert_eq!(fit(3000, 4000, 320), (240, 320));
        assert_eq!(fit(100, 50, 320), (100, 50));
        assert_eq!(fit(10_000, 1, 320), (320, 1));
    }

    #[test]
    fn opaque_images_become_jpeg_variants() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(2000, 1000, |x, _| image::Rgb([(x % 256) as u8, 10, 20])));
        let out = process_image(&png(&img), "image/png", limits()).unwrap();
        assert_eq!((out.width, out.height), (2000, 1000));
        let sizes: Vec<_> = out.renditions.iter().map(|r| (r.name, r.width, r.height, r.content_type)).collect();
        assert_eq!(sizes, [("thumb", 320, 160, "image/jpeg"), ("feed", 1080, 540, "image/jpeg")]);
        assert!(out.placeholder.is_some());
    }

    #[test]
    fn transparent_images_stay_png() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(100, 80, |x, _| image::Rgba([200, 0, 0, (x * 2) as u8])));
        let out = process_image(&png(&img), "image/png", limits()).unwrap();
        assert!(out.renditions.iter().all(|r| r.content_type == "image/png" && (r.width, r.height) == (100, 80)));
    }

    #[test]
    fn pixel_bombs_are_refused_before_decoding() {
        let err = process_image(&png_bomb(50_000, 50_000), "image/png", limits()).unwrap_err();
        assert!(err.0.contains("50000×50000") && err.0.contains("megapixels"), "{err}");
    }

    /// A PNG declaring `w`×`h` pixels whose data is a few bytes: what a decompression bomb
    /// looks like to the header reader.
    fn png_bomb(w: u32, h: u32) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let body = [kind, data].concat();
            out.extend_from_slice(&body);
            out.extend_from_slice(&crc32(&body).to_be_bytes());
        }
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut png, b"IHDR", &[&w.to_be_bytes()[..], &h.to_be_bytes()[..], &[8, 2, 0, 0, 0]].concat());
        // zlib: header, one final stored block of 4 zero bytes, Adler-32 of them.
        chunk(&mut png, b"IDAT", &[0x78, 0x01, 0x01, 4, 0, 0xFB, 0xFF, 0, 0, 0, 0, 0, 4, 0, 1]);
        chunk(&mut png, b"IEND", &[]);
        png
    }

    #[test]
    fn garbage_is_rejected_not_panicked_on() {
        for (bytes, mime) in [
            (&b"\x89PNG\r\n\x1a\ngarbage"[..], "image/png"),
            (b"GIF89a", "image/gif"),
            (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"),
            (b"\xFF\xD8\xFF\xE0", "image/jpeg"),
        ] {
            assert!(process_image(bytes, mime, limits()).is_err(), "{mime}");
        }
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
}

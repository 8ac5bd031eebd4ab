//! Image input: decode (PNG, JPEG, WebP, GIF first frame) with EXIF orientation, resize into
//! the soft-token budget, cut into patches. Follows transformers 5.23 `Gemma4ImageProcessorPil`
//! (docs/gemma4.md §7.2), the project's reference.
//!
//! Resize policy — transformers and llama.cpp disagree; lode follows transformers:
//! - transformers: scale up *or* down to the largest `H', W'` multiples of 48 (patch 16 × pool 3)
//!   with `H'·W'/256 ≤ 9 · max_soft_tokens`, aspect ratio kept only approximately (each side is
//!   floored on its own), PIL bicubic with antialias, no padding.
//! - llama.cpp (commit 0c1e570): rounds each side to the nearest multiple of 48, rescales only
//!   if the token count leaves [70, 1120], then letterboxes with black bars. On the fixture's
//!   300×200 image that gives 77 soft tokens where transformers gives 260.
//!
//! Bad input never allocates much: the file size is checked before reading, the header's
//! dimensions before decoding, and the decoder runs under [`image::Limits`].

use std::io::Cursor;
use std::path::Path;

use image::{ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::{Error, Result};

/// Default soft-token budget per image (HF `max_soft_tokens`).
pub const DEFAULT_MAX_SOFT_TOKENS: usize = 280;
/// Budgets the model was trained with (HF accepts only these).
pub const SOFT_TOKEN_BUDGETS: [usize; 5] = [70, 140, 280, 560, 1120];
/// Largest image file read.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Largest side and pixel count decoded (a 100000×100000 header is refused before decoding).
pub const MAX_SIDE: u32 = 16_384;
pub const MAX_PIXELS: u64 = 64 << 20;

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// One image cut into patches: `grid_w × grid_h` patches, row-major, each `3 · patch²` values
/// in C,H,W order (the mmproj's patch-kernel layout), scaled to [0, 1].
#[derive(Clone, Debug)]
pub struct Patches {
    pub patch: usize,
    pub grid_w: usize,
    pub grid_h: usize,
    pub data: Vec<f32>,
}

/// Reads and decodes an image file.
pub fn load_image(path: impl AsRef<Path>) -> Result<RgbImage> {
    load_image_max(path, MAX_PIXELS)
}

/// [`load_image`] refusing images of more than `max_pixels` (checked from the header).
pub fn load_image_max(path: impl AsRef<Path>, max_pixels: u64) -> Result<RgbImage> {
    let path = path.as_ref();
    let fail = |what: String| Error::Image(format!("{}: {what}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "file of {} bytes exceeds the {} MiB limit for images",
            meta.len(),
            MAX_FILE_BYTES >> 20
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    decode_image_max(&bytes, max_pixels).map_err(|e| match e {
        Error::Image(m) => fail(m),
        e => e,
    })
}

/// Decodes PNG, JPEG, WebP or GIF (first frame) bytes to RGB, applying EXIF orientation.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage> {
    decode_image_max(bytes, MAX_PIXELS)
}

/// [`decode_image`] refusing images of more than `max_pixels` before any pixel is decoded
/// (from the header). Decoding needs up to 7 bytes per pixel at its peak (RGBA, then RGB).
pub fn decode_image_max(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    let max_pixels = max_pixels.min(MAX_PIXELS);
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::Image(format!(
            "{} bytes exceed the {} MiB limit for images",
            bytes.len(),
            MAX_FILE_BYTES >> 20
        )));
    }
    let reader = || -> Result<ImageReader<Cursor<&[u8]>>> {
        let r = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Error::Image(e.to_string()))?;
        match r.format() {
            Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Gif) => {
                Ok(r)
            }
            Some(f) => Err(Error::Image(format!(
                "{f:?} images are not supported (PNG, JPEG, WebP, GIF)"
            ))),
            None => Err(Error::Image(
                "not a PNG, JPEG, WebP or GIF image (unrecognised file signature)".into(),
            )),
        }
    };
    let bad = |e: image::ImageError| Error::Image(format!("cannot decode: {e}"));
    if reader()?.format() == Some(ImageFormat::Jpeg) && !jpeg_complete(bytes) {
        // zune-jpeg fills a truncated scan with grey instead of failing (PIL refuses)
        return Err(Error::Image(
            "cannot decode: truncated JPEG (no end-of-image marker after the last scan)".into(),
        ));
    }
    // Header only: refuse empty and huge images before any pixel buffer exists.
    let mut header = reader()?;
    header.limits(header_limits());
    let (w, h) = header.into_dimensions().map_err(bad)?;
    check_dims(w, h, max_pixels)?;
    let mut r = reader()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(max_pixels * 8);
    r.limits(limits);
    let mut dec = r.into_decoder().map_err(bad)?;
    let orientation = dec.orientation().map_err(bad)?;
    let mut img = image::DynamicImage::from_decoder(dec).map_err(bad)?;
    img.apply_orientation(orientation);
    let rgb = img.into_rgb8();
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    Ok(RgbImage {
        width,
        height,
        data: rgb.into_raw(),
    })
}

/// Whether a JPEG's last scan (SOS, FF DA) is followed by an end-of-image marker (FF D9).
/// Entropy-coded data stuffs every FF with 00, so FF D9 there is always a marker.
fn jpeg_complete(bytes: &[u8]) -> bool {
    let last = |m: u8| bytes.windows(2).rposition(|w| w == [0xFF, m]);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

/// Limits for reading the header: tiny, since no pixels are decoded.
fn header_limits() -> Limits {
    let mut l = Limits::default();
    l.max_alloc = Some(16 << 20);
    l
}

fn check_dims(w: u32, h: u32, max_pixels: u64) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(Error::Image(format!("image is {w}×{h} pixels (empty)")));
    }
    if w > MAX_SIDE || h > MAX_SIDE || w as u64 * h as u64 > max_pixels {
        return Err(Error::Image(format!(
            "image is {w}×{h} pixels, more than the {MAX_SIDE}-pixel side / {:.1} Mpixel limit",
            max_pixels as f64 / (1u64 << 20) as f64
        )));
    }
    Ok(())
}

/// HF's target size `(W', H')` for a `w × h` image: the largest multiples of `patch · pool`
/// with `W'·H'/patch² ≤ pool² · max_soft_tokens`, scaling up or down.
pub fn target_size(
    w: usize,
    h: usize,
    max_soft_tokens: usize,
    patch: usize,
    pool: usize,
) -> (usize, usize) {
    let max_patches = (max_soft_tokens * pool * pool) as f64;
    let unit = (patch * pool) as f64;
    let f = (max_patches * (patch * patch) as f64 / (h as f64 * w as f64)).sqrt();
    let mut tw = ((f * w as f64 / unit).floor() * unit) as usize;
    let mut th = ((f * h as f64 / unit).floor() * unit) as usize;
    let u = patch * pool;
    let cap = max_soft_tokens * u;
    // a very long thin image: one side rounds to 0
    if th == 0 {
        th = u;
        tw = ((w / h.max(1)) * u).min(cap).max(u);
    } else if tw == 0 {
        tw = u;
        th = ((h / w.max(1)) * u).min(cap).max(u);
    }
    (tw, th)
}

/// Resize to the budget, then patchify. `max_soft_tokens` is one of [`SOFT_TOKEN_BUDGETS`]
/// in HF; any value ≥ 1 works here.
pub fn preprocess(
    img: &RgbImage,
    max_soft_tokens: usize,
    patch: usize,
    pool: usize,
) -> Result<Patches> {
    if max_soft_tokens == 0 {
        return Err(Error::Input("image token budget must be at least 1".into()));
    }
    patchify(&resize_for_budget(img, max_soft_tokens, patch, pool), patch)
}

/// The image at the size the encoder takes ([`target_size`]): the first half of
/// [`preprocess`]. Callers holding large decoded images resize right away and keep only this.
pub fn resize_for_budget(
    img: &RgbImage,
    max_soft_tokens: usize,
    patch: usize,
    pool: usize,
) -> RgbImage {
    let (tw, th) = target_size(img.width, img.height, max_soft_tokens.max(1), patch, pool);
    resize_bicubic(img, tw, th)
}

/// Cuts an image whose sides are multiples of `patch` into patches (values / 255).
pub fn patchify(img: &RgbImage, patch: usize) -> Result<Patches> {
    let (w, h) = (img.width, img.height);
    if patch == 0 || w % patch != 0 || h % patch != 0 || w == 0 || h == 0 {
        return Err(Error::Input(format!(
            "image {w}×{h} is not a multiple of the patch size {patch}"
        )));
    }
    let (gw, gh) = (w / patch, h / patch);
    let pp = patch * patch;
    let mut data = vec![0f32; gw * gh * 3 * pp];
    for (i, dst) in data.chunks_exact_mut(3 * pp).enumerate() {
        let (px, py) = (i % gw, i / gw);
        for y in 0..patch {
            let row = ((py * patch + y) * w + px * patch) * 3;
            for x in 0..patch {
                for c in 0..3 {
                    dst[c * pp + y * patch + x] = img.data[row + x * 3 + c] as f32 * (1.0 / 255.0);
                }
            }
        }
    }
    Ok(Patches {
        patch,
        grid_w: gw,
        grid_h: gh,
        data,
    })
}

// ---------------------------------------------------------------------------------------------
// PIL's bicubic resample (Pillow `libImaging/Resample.c`, 8 bits per channel): separable,
// support scaled by the reduction factor (antialias), a = −0.5, coefficients as 22-bit fixed
// point, horizontal pass first with the intermediate rounded to u8.

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output index: first input index and fixed-point weights.
fn coeffs(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let w: Vec<f64> = (xmin..xmax)
                .map(|x| bicubic((x as f64 - center + 0.5) * ss))
                .collect();
            let ww: f64 = w.iter().sum();
            let k = w
                .iter()
                .map(|&v| {
                    let v = if ww != 0.0 { v / ww } else { v };
                    let f = v * (1u32 << PRECISION_BITS) as f64;
                    if v < 0.0 {
                        (f - 0.5) as i32
                    } else {
                        (f + 0.5) as i32
                    }
                })
                .collect();
            (xmin, k)
        })
        .collect()
}

#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// PIL `Image.resize((w, h), Image.BICUBIC)` on an RGB image.
pub fn resize_bicubic(img: &RgbImage, w: usize, h: usize) -> RgbImage {
    // borrowed until a pass makes a new image: no full-size copy of a large input
    let mut cur = std::borrow::Cow::Borrowed(img);
    if w != cur.width {
        let k = coeffs(cur.width, w);
        let mut out = vec![0u8; w * cur.height * 3];
        for y in 0..cur.height {
            let src = &cur.data[y * cur.width * 3..(y + 1) * cur.width * 3];
            for (xx, (xmin, kk)) in k.iter().enumerate() {
                for c in 0..3 {
                    let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                    for (j, &kv) in kk.iter().enumerate() {
                        ss += src[(xmin + j) * 3 + c] as i32 * kv;
                    }
                    out[(y * w + xx) * 3 + c] = clip8(ss);
                }
            }
        }
        cur = std::borrow::Cow::Owned(RgbImage {
            width: w,
            height: cur.height,
            data: out,
        });
    }
    if h != cur.height {
        let k = coeffs(cur.height, h);
        let cw = cur.width;
        let mut out = vec![0u8; cw * h * 3];
        for (yy, (ymin, kk)) in k.iter().enumerate() {
            for x in 0..cw * 3 {
                let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                for (j, &kv) in kk.iter().enumerate() {
                    ss += cur.data[(ymin + j) * cw * 3 + x] as i32 * kv;
                }
                out[yy * cw * 3 + x] = clip8(ss);
            }
        }
        cur = std::borrow::Cow::Owned(RgbImage {
            width: cw,
            height: h,
            data: out,
        });
    }
    cur.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_examples() {
        // docs/gemma4.md §7.2 and the fixture README
        assert_eq!(target_size(896, 896, 280, 16, 3), (768, 768));
        assert_eq!(target_size(1024, 768, 280, 16, 3), (912, 672));
        assert_eq!(target_size(20, 20, 280, 16, 3), (768, 768));
        assert_eq!(target_size(1024, 576, 280, 16, 3), (1056, 576));
        assert_eq!(target_size(300, 200, 280, 16, 3), (960, 624));
    }

    #[test]
    fn resize_identity_and_constant() {
        let img = RgbImage {
            width: 5,
            height: 3,
            data: vec![77; 45],
        };
        assert_eq!(resize_bicubic(&img, 5, 3), img);
        let up = resize_bicubic(&img, 17, 9);
        assert!(up.data.iter().all(|&v| v == 77));
    }
}

//! `image_url` content parts of chat messages (OpenAI vision format): `data:` URLs always,
//! local file paths (`file://…` or an absolute path) only with `--allow-local-images`;
//! remote http(s) URLs are refused (lode does not fetch). Each part becomes the template's
//! `{"type": "image"}` and its decoded image is encoded by the server's mmproj.
//!
//! Bounded work and memory: the number of images is checked before any is decoded; each
//! image's pixel count is checked from its header before its pixels are decoded; images are
//! decoded one at a time and each is shrunk to the size the encoder takes as soon as it is
//! decoded, so at most one full-size image exists at a time (≤ 7 bytes per pixel of
//! `max_pixels` while decoding). All of it runs on the request-preparation thread, never on
//! the async threads.

use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Value};

use super::api::ApiError;
use crate::vision::{self, preprocess, EncodedImage, Mmproj, RgbImage};

/// Default for `--image-max-pixels`: 16 Mpixel (4096 × 4096).
pub const DEFAULT_MAX_PIXELS: u64 = 16 << 20;
/// Default for `--max-images`.
pub const DEFAULT_MAX_IMAGES: usize = 8;

/// Image input of a server: the projector and its settings.
#[derive(Debug, Clone)]
pub struct ServeVision {
    pub mmproj: Arc<Mmproj>,
    /// Soft-token budget per image.
    pub max_soft_tokens: usize,
    /// Accept `image_url` parts that name files on the server's machine.
    pub allow_local_images: bool,
    /// Images per request (more: 400 before any is decoded).
    pub max_images: usize,
    /// Pixels per image, checked from the header before decoding.
    pub max_pixels: u64,
}

/// Decodes every `image_url` part of `messages` in order, rewriting each into
/// `{"type": "image"}` for the chat template, and returns the images already resized to the
/// encoder's input size. CPU-heavy: call from a blocking thread.
pub(crate) fn take_images(
    messages: &mut [Value],
    vision: Option<&ServeVision>,
) -> Result<Vec<RgbImage>, ApiError> {
    let is_image = |p: &Value| p.get("type").and_then(Value::as_str) == Some("image_url");
    let count = messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .filter(|p| is_image(p))
        .count();
    if count == 0 {
        return Ok(Vec::new());
    }
    let Some(v) = vision else {
        return Err(
            ApiError::bad_request("this server takes no images (start it with --mmproj)")
                .param("messages"),
        );
    };
    if count > v.max_images {
        return Err(ApiError::bad_request(format!(
            "the request has {count} images; this server takes at most {} per request \
             (--max-images)",
            v.max_images
        ))
        .param("messages"));
    }
    let c = v.mmproj.config();
    let mut out = Vec::with_capacity(count);
    for (i, m) in messages.iter_mut().enumerate() {
        let Some(parts) = m.get_mut("content").and_then(Value::as_array_mut) else {
            continue;
        };
        for part in parts.iter_mut().filter(|p| is_image(p)) {
            let url = match part.get("image_url") {
                Some(Value::String(s)) => s.as_str(),
                Some(o) => o.get("url").and_then(Value::as_str).unwrap_or(""),
                None => "",
            };
            let bad = |m: String| {
                ApiError::bad_request(format!("messages[{i}] image_url: {m}")).param("messages")
            };
            let img = decode_url(url, v).map_err(bad)?;
            // keep only what the encoder reads; the full-size image is freed here
            out.push(preprocess::resize_for_budget(
                &img,
                v.max_soft_tokens,
                c.patch,
                c.pool,
            ));
            *part = json!({"type": "image"});
        }
    }
    Ok(out)
}

/// One `image_url` value to a decoded image, refusing oversized ones from their header.
fn decode_url(url: &str, v: &ServeVision) -> Result<RgbImage, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or("a data: URL needs a comma before its data")?;
        if !meta.ends_with(";base64") {
            return Err("only base64 data: URLs are supported".into());
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("bad base64: {e}"))?;
        preprocess::decode_image_max(&bytes, v.max_pixels).map_err(|e| e.to_string())
    } else if url.starts_with("http://") || url.starts_with("https://") {
        Err("remote URLs are not fetched; send the image as a data: URL".into())
    } else if url.starts_with("file://") || url.starts_with('/') {
        if !v.allow_local_images {
            return Err("local file paths need the server's --allow-local-images".into());
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        preprocess::load_image_max(path, v.max_pixels).map_err(|e| e.to_string())
    } else {
        Err("expected a data: URL (or a local path with --allow-local-images)".into())
    }
}

/// Encodes images already resized by [`take_images`] (CPU-heavy: a blocking thread).
pub(crate) fn encode(v: &ServeVision, imgs: &[RgbImage]) -> Result<Vec<EncodedImage>, ApiError> {
    vision::encode_resized(&v.mmproj, imgs, crate::ops::Precision::Kernels)
        .map_err(|e| ApiError::bad_request(e.to_string()).param("messages"))
}

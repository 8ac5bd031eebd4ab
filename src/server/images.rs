//! `image_url` content parts of chat messages (OpenAI vision format): `data:` URLs always,
//! local file paths (`file://…` or an absolute path) only with `--allow-local-images`;
//! remote http(s) URLs are refused (lode does not fetch). Each part becomes the template's
//! `{"type": "image"}` and its decoded image is encoded by the server's mmproj.

use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Value};

use super::api::ApiError;
use crate::vision::{self, EncodedImage, Mmproj, RgbImage};

/// Image input of a server: the projector and its settings.
#[derive(Debug, Clone)]
pub struct ServeVision {
    pub mmproj: Arc<Mmproj>,
    /// Soft-token budget per image.
    pub max_soft_tokens: usize,
    /// Accept `image_url` parts that name files on the server's machine.
    pub allow_local_images: bool,
}

/// Decodes every `image_url` part of `messages` in order, rewriting each into
/// `{"type": "image"}` for the chat template.
pub(crate) fn take_images(
    messages: &mut [Value],
    vision: Option<&ServeVision>,
) -> Result<Vec<RgbImage>, ApiError> {
    let mut out = Vec::new();
    for (i, m) in messages.iter_mut().enumerate() {
        let Some(parts) = m.get_mut("content").and_then(Value::as_array_mut) else {
            continue;
        };
        for part in parts.iter_mut() {
            if part.get("type").and_then(Value::as_str) != Some("image_url") {
                continue;
            }
            let Some(v) = vision else {
                return Err(ApiError::bad_request(
                    "this server takes no images (start it with --mmproj)",
                )
                .param("messages"));
            };
            let url = match part.get("image_url") {
                Some(Value::String(s)) => s.as_str(),
                Some(o) => o.get("url").and_then(Value::as_str).unwrap_or(""),
                None => "",
            };
            let bad = |m: String| {
                ApiError::bad_request(format!("messages[{i}] image_url: {m}")).param("messages")
            };
            let img = if let Some(rest) = url.strip_prefix("data:") {
                let (meta, data) = rest
                    .split_once(',')
                    .ok_or_else(|| bad("a data: URL needs a comma before its data".into()))?;
                if !meta.ends_with(";base64") {
                    return Err(bad("only base64 data: URLs are supported".into()));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|e| bad(format!("bad base64: {e}")))?;
                vision::decode_image(&bytes).map_err(|e| bad(e.to_string()))?
            } else if url.starts_with("http://") || url.starts_with("https://") {
                return Err(bad(
                    "remote URLs are not fetched; send the image as a data: URL".into(),
                ));
            } else if url.starts_with("file://") || url.starts_with('/') {
                if !v.allow_local_images {
                    return Err(bad(
                        "local file paths need the server's --allow-local-images".into(),
                    ));
                }
                let path = url.strip_prefix("file://").unwrap_or(url);
                vision::load_image(path).map_err(|e| bad(e.to_string()))?
            } else {
                return Err(bad(
                    "expected a data: URL (or a local path with --allow-local-images)".into(),
                ));
            };
            out.push(img);
            *part = json!({"type": "image"});
        }
    }
    Ok(out)
}

/// Encodes decoded images (CPU-heavy: call from a blocking thread).
pub(crate) fn encode(v: &ServeVision, imgs: &[RgbImage]) -> Result<Vec<EncodedImage>, ApiError> {
    vision::encode_all(
        &v.mmproj,
        imgs,
        v.max_soft_tokens,
        crate::ops::Precision::Kernels,
    )
    .map_err(|e| ApiError::bad_request(e.to_string()).param("messages"))
}

//! Gemma 4 image input: the mmproj file ([`Mmproj`]), image decoding and preprocessing
//! ([`preprocess`]), the vision encoder ([`Mmproj::encode`]) and how soft tokens are spliced
//! into a prompt ([`splice`]). Reference: transformers 5.23 (docs/gemma4.md §7).

pub mod encoder;
pub mod mmproj;
pub mod preprocess;

pub use encoder::{SoftTokens, Trace};
pub use mmproj::{Mmproj, VisionConfig};
pub use preprocess::{decode_image, load_image, Patches, RgbImage, DEFAULT_MAX_SOFT_TOKENS};

use crate::ops::Precision;
use crate::Result;

impl Mmproj {
    /// Preprocesses (resize into `max_soft_tokens`, patchify) and encodes one decoded image.
    pub fn encode_image(
        &self,
        img: &RgbImage,
        max_soft_tokens: usize,
        precision: Precision,
    ) -> Result<SoftTokens> {
        let c = self.config();
        let patches = preprocess::preprocess(img, max_soft_tokens, c.patch, c.pool)?;
        self.encode(&patches, precision)
    }
}

/// The text a prompt uses for "an image goes here" (the Gemma 4 chat template's image part).
pub const IMAGE_PLACEHOLDER: &str = "<|image|>";

/// Gemma 4's image tokens: `<|image>` (begin), `<|image|>` (soft-token placeholder),
/// `<image|>` (end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageTokens {
    pub boi: u32,
    pub image: u32,
    pub eoi: u32,
}

impl ImageTokens {
    pub fn from_tokenizer(t: &crate::tokenizer::Tokenizer) -> Result<ImageTokens> {
        let id = |s: &str| {
            t.token_id(s).ok_or_else(|| {
                crate::Error::Input(format!(
                    "the model's vocabulary has no `{s}` token: it does not take images"
                ))
            })
        };
        Ok(ImageTokens {
            boi: id("<|image>")?,
            image: id(IMAGE_PLACEHOLDER)?,
            eoi: id("<image|>")?,
        })
    }
}

/// Tokens with images expanded, and each image's `(start, len)` span.
pub type Spliced = (Vec<u32>, Vec<(usize, usize)>);

/// Expands the k-th `<|image|>` token of `tokens` into `<|image>`, one `<|image|>` per soft
/// token of `images[k]`, `<image|>` (as transformers' Gemma4Processor does), and returns the
/// new tokens with each image's `(start, len)` span. The placeholder count must equal the
/// image count.
pub fn splice(tokens: &[u32], ids: &ImageTokens, images: &[SoftTokens]) -> Result<Spliced> {
    let n_ph = tokens.iter().filter(|&&t| t == ids.image).count();
    if n_ph != images.len() {
        return Err(crate::Error::Input(format!(
            "the prompt has {n_ph} image placeholder(s) `{IMAGE_PLACEHOLDER}` for {} image(s)",
            images.len()
        )));
    }
    let extra: usize = images.iter().map(|s| s.len() + 1).sum();
    let mut out = Vec::with_capacity(tokens.len() + extra);
    let mut spans = Vec::with_capacity(images.len());
    let mut next = images.iter();
    for &t in tokens {
        match (t == ids.image).then(|| next.next()).flatten() {
            Some(img) => {
                out.push(ids.boi);
                spans.push((out.len(), img.len()));
                out.extend(std::iter::repeat(ids.image).take(img.len()));
                out.push(ids.eoi);
            }
            None => out.push(t),
        }
    }
    Ok((out, spans))
}

/// The prompt text for `n_images` images: `text` itself when it already holds that many
/// `<|image|>` placeholders, else the placeholders first, then `text` (the order the Gemma 4
/// chat template gives an image part followed by a text part).
pub fn prompt_with_images(text: &str, n_images: usize) -> String {
    if n_images == 0 || text.matches(IMAGE_PLACEHOLDER).count() == n_images {
        return text.to_string();
    }
    let mut s = IMAGE_PLACEHOLDER.repeat(n_images);
    s.push_str(text);
    s
}

/// One image encoded for a prompt.
#[derive(Clone, Debug)]
pub struct EncodedImage {
    pub soft: SoftTokens,
    /// Size of the decoded image (before resizing).
    pub width: usize,
    pub height: usize,
    /// Encoder time (patches → soft tokens; decoding and preprocessing excluded).
    pub secs: f64,
}

/// Decodes nothing: encodes already decoded images with `mmproj` at the given budget.
pub fn encode_all(
    mmproj: &Mmproj,
    images: &[RgbImage],
    max_soft_tokens: usize,
    precision: Precision,
) -> Result<Vec<EncodedImage>> {
    images
        .iter()
        .map(|img| {
            let c = mmproj.config();
            let patches = preprocess::preprocess(img, max_soft_tokens, c.patch, c.pool)?;
            encode_patches(mmproj, img, &patches, precision)
        })
        .collect()
}

/// [`encode_all`] for images already resized to their encoder size
/// ([`preprocess::resize_for_budget`], as a server does right after decoding to bound memory).
/// `width`/`height` of the result are the resized ones.
pub fn encode_resized(
    mmproj: &Mmproj,
    images: &[RgbImage],
    precision: Precision,
) -> Result<Vec<EncodedImage>> {
    images
        .iter()
        .map(|img| {
            let patches = preprocess::patchify(img, mmproj.config().patch)?;
            encode_patches(mmproj, img, &patches, precision)
        })
        .collect()
}

/// `img`'s patches through the encoder, timed alone (llama-mtmd-cli's "batch encoding" time
/// excludes preprocessing too).
fn encode_patches(
    mmproj: &Mmproj,
    img: &RgbImage,
    patches: &Patches,
    precision: Precision,
) -> Result<EncodedImage> {
    let t0 = std::time::Instant::now();
    let soft = mmproj.encode(patches, precision)?;
    Ok(EncodedImage {
        soft,
        width: img.width,
        height: img.height,
        secs: t0.elapsed().as_secs_f64(),
    })
}

/// A tokenized prompt with its images spliced in: feed `tokens` with [`MmPrompt::spans`] to
/// `Model::forward_embd` / `Session::generate_embd`.
#[derive(Clone, Debug)]
pub struct MmPrompt {
    pub tokens: Vec<u32>,
    pub images: Vec<EncodedImage>,
    /// `(start, len)` of each image's soft tokens in `tokens`.
    pub positions: Vec<(usize, usize)>,
}

impl MmPrompt {
    /// Expands the placeholders of `tokens` for `images` (see [`splice`]).
    pub fn new(
        tokens: &[u32],
        tokenizer: &crate::tokenizer::Tokenizer,
        images: Vec<EncodedImage>,
    ) -> Result<MmPrompt> {
        let ids = ImageTokens::from_tokenizer(tokenizer)?;
        let soft: Vec<SoftTokens> = images.iter().map(|e| e.soft.clone()).collect();
        let (tokens, positions) = splice(tokens, &ids, &soft)?;
        Ok(MmPrompt {
            tokens,
            images,
            positions,
        })
    }

    /// The embedding spans (bidirectional: Gemma 4's image mask).
    pub fn spans(&self) -> Vec<crate::model::EmbdSpan<'_>> {
        self.images
            .iter()
            .zip(&self.positions)
            .map(|(img, &(start, len))| crate::model::EmbdSpan {
                start,
                len,
                embd: &img.soft.data,
                bidirectional: true,
            })
            .collect()
    }

    /// The most soft tokens of any one image (for `Model::reserve_image_tokens`).
    pub fn max_image_tokens(&self) -> usize {
        self.positions.iter().map(|p| p.1).max().unwrap_or(0)
    }
}

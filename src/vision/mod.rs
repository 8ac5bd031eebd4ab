//! Gemma 4 image input: the mmproj file ([`Mmproj`]), image decoding and preprocessing
//! ([`preprocess`]), the vision encoder ([`Mmproj::encode`]) and how soft tokens are spliced
//! into a prompt ([`splice`]). Reference: transformers 5.23 (design/gemma4.md §7).

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

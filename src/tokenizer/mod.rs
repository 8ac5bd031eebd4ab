//! Tokenizers built from GGUF metadata, reproducing llama.cpp (`src/llama-vocab.cpp`, commit
//! 0c1e570, the tree the oracle fixtures were made with) token for token.
//!
//! Two models:
//! - `tokenizer.ggml.model = "llama"` (Gemma 3): llama.cpp's SPM tokenizer ([`spm`]).
//! - `tokenizer.ggml.model = "gemma4"` (or `"gpt2"` with pre `"gemma4"`): BPE over raw UTF-8 with
//!   `▁` for spaces, newline-run pre-split and `<0xXX>` byte fallback ([`bpe`]).
//!
//! Both share llama.cpp's special-token partition ([`special`]): CONTROL and USER_DEFINED token
//! texts are cut out of the input before the model sees it, longest token first.
//!
//! Why not the `tokenizers` crate: llama.cpp's SPM is a score-driven greedy bigram merge (the
//! original llama.cpp `llm_tokenizer_spm`), not SentencePiece's Unigram Viterbi, and the special
//! partition, the forced-CONTROL tokens (`<end_of_turn>`, `</s>`, ...) and the EOG set are
//! llama.cpp rules that no tokenizer.json expresses. Re-implementing the ~300 lines is simpler
//! than bending a general library to reproduce them exactly.
//!
//! Decoding concatenates llama.cpp's `token_to_piece` pieces (NORMAL: `▁` → space; BYTE: the raw
//! byte; CONTROL/UNKNOWN: hidden unless rendering specials; USER_DEFINED: literal; UNUSED: empty)
//! and does **not** apply llama.cpp's `clean_spaces` pass (HF's Gemma tokenizers set
//! `clean_up_tokenization_spaces = false`, and llama.cpp's own streaming path concatenates pieces
//! too). Out-of-range ids decode to U+FFFD, never a panic.
//!
//! Depends only on `gguf` (for [`Tokenizer::from_gguf`]) and `error`.

mod bpe;
mod merge;
mod special;
mod spm;
mod stream;
mod table;

use std::borrow::Cow;

pub use stream::StreamDecoder;
use table::StrTable;

use crate::gguf::{Array, Metadata, Value};
use crate::{Error, Result};

/// Which tokenization algorithm a vocabulary uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// llama.cpp SPM (`tokenizer.ggml.model = "llama"`): Gemma 3.
    Spm,
    /// SentencePiece-style BPE (`tokenizer.ggml.model = "gemma4"`): Gemma 4.
    Gemma4Bpe,
}

/// GGUF token types (`tokenizer.ggml.token_type`, llama.cpp `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

impl TokenType {
    /// The GGUF integer; values outside 0..=6 are UNDEFINED, as in llama.cpp.
    pub fn from_i32(v: i32) -> TokenType {
        match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }
}

/// Everything a tokenizer is built from; [`Tokenizer::from_gguf`] fills it from metadata.
#[derive(Clone, Debug)]
pub struct Vocab {
    pub model: ModelKind,
    /// `tokenizer.ggml.tokens`: token text by id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores`: one per token (SPM merge priority; unused by BPE).
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.token_type`: one per token.
    pub token_types: Vec<TokenType>,
    /// `tokenizer.ggml.merges`: "left right", rank = index (BPE only).
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id` etc.
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`; when absent it is found by text (`<end_of_turn>`, ...).
    pub eot: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (forced true for Gemma 4, as llama.cpp does).
    pub add_bos: bool,
    /// `tokenizer.ggml.add_space_prefix` (SPM only; false for Gemma).
    pub add_space_prefix: bool,
}

/// llama.cpp `llama_token_attr` bits.
pub(crate) mod attr {
    pub const UNKNOWN: u8 = 1 << 0;
    pub const UNUSED: u8 = 1 << 1;
    pub const NORMAL: u8 = 1 << 2;
    pub const CONTROL: u8 = 1 << 3;
    pub const USER_DEFINED: u8 = 1 << 4;
    pub const BYTE: u8 = 1 << 5;
}

/// A loaded tokenizer. Cheap to share (`&Tokenizer` is all encode/decode need).
#[derive(Debug)]
pub struct Tokenizer {
    model: ModelKind,
    /// Token text by id, and id by text.
    tokens: StrTable,
    scores: Vec<f32>,
    attrs: Vec<u8>,
    /// BPE merge lines; a line's index is its rank. llama.cpp splits a line at its first space
    /// after position 0; symbols never contain spaces, so looking up "left right" finds exactly
    /// that pair, and a repeated line keeps its first rank (llama.cpp's `emplace`).
    merges: StrTable,
    /// `<0xXX>` (or the raw byte as text, SPM fallback) for each byte value.
    byte_tokens: [Option<u32>; 256],
    special: special::SpecialTokens,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    eog: Vec<u32>,
    add_bos: bool,
    add_space_prefix: bool,
}

fn tok_err(msg: impl Into<String>) -> Error {
    Error::Tokenizer(msg.into())
}

/// A [`Vocab`] by reference, so that loading from GGUF copies the 262,144 token strings once
/// (into the token table) instead of twice.
struct Parts<'a> {
    model: ModelKind,
    tokens: &'a [String],
    scores: &'a [f32],
    token_types: &'a [TokenType],
    merges: &'a [String],
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_space_prefix: bool,
}

/// Texts llama.cpp marks end-of-generation (and forces CONTROL) whatever their GGUF type
/// (`llama_vocab::impl::load`, "maintain a list of tokens that cause end-of-generation").
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Texts llama.cpp takes as the EOT token when `eot_token_id` is absent.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// FIM pad/repo/sep texts: llama.cpp makes them CONTROL and EOG. (FIM pre/suf/mid are only
/// forced CONTROL.)
const FIM_EOG_TEXTS: &[&str] = &[
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<PAD>",
    "[PAD]",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    "<|file_sep|>",
];
const FIM_CONTROL_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata.
    pub fn from_gguf(md: &Metadata) -> Result<Tokenizer> {
        let model_name = md
            .str_opt("tokenizer.ggml.model")?
            .ok_or_else(|| tok_err("missing metadata key `tokenizer.ggml.model`"))?;
        let pre = md.str_opt("tokenizer.ggml.pre")?.unwrap_or("");
        let model = match (model_name, pre) {
            ("llama", _) => ModelKind::Spm,
            ("gemma4", _) | ("gpt2", "gemma4") => ModelKind::Gemma4Bpe,
            (m, p) => {
                return Err(tok_err(format!(
                    "unsupported tokenizer model `{m}` (pre `{p}`); lode knows `llama` (SPM) and \
                     `gemma4` (BPE)"
                )))
            }
        };
        let require = |key: &str| -> Result<()> {
            if md.contains(key) {
                Ok(())
            } else {
                Err(tok_err(format!("missing metadata key `{key}`")))
            }
        };
        require("tokenizer.ggml.tokens")?;
        require("tokenizer.ggml.token_type")?;
        let tokens = md.str_array("tokenizer.ggml.tokens")?;
        let token_types: Vec<TokenType> = md
            .i32_array("tokenizer.ggml.token_type")?
            .into_iter()
            .map(TokenType::from_i32)
            .collect();
        let scores: Cow<[f32]> = match md.get("tokenizer.ggml.scores") {
            None => Cow::Borrowed(&[]),
            Some(Value::Array(Array::F32(v))) => Cow::Borrowed(v),
            Some(Value::Array(Array::I32(v))) => v.iter().map(|&x| x as f32).collect(),
            Some(_) => {
                return Err(tok_err(
                    "`tokenizer.ggml.scores` must be an array of FLOAT32 or INT32",
                ))
            }
        };
        let merges: &[String] = match model {
            ModelKind::Spm => &[],
            ModelKind::Gemma4Bpe => {
                require("tokenizer.ggml.merges")?;
                md.str_array("tokenizer.ggml.merges")?
            }
        };
        // llama.cpp's per-model defaults, overridden by the metadata keys that are present.
        let (mut bos, mut eos, mut unk) = match model {
            ModelKind::Spm => (Some(1), Some(2), Some(0)),
            ModelKind::Gemma4Bpe => (None, None, None),
        };
        let n = tokens.len() as u32;
        // Default ids that do not exist in a small vocab are dropped, as llama.cpp does.
        for slot in [&mut bos, &mut eos, &mut unk] {
            *slot = slot.filter(|&id| id < n);
        }
        let (mut pad, mut eot) = (None, None);
        let id_key = |key: &str, slot: &mut Option<u32>| -> Result<()> {
            if let Some(id) = md.u32_opt(key)? {
                if id >= n {
                    return Err(tok_err(format!(
                        "`{key}` = {id} is outside the vocab of {n}"
                    )));
                }
                *slot = Some(id);
            }
            Ok(())
        };
        id_key("tokenizer.ggml.bos_token_id", &mut bos)?;
        id_key("tokenizer.ggml.eos_token_id", &mut eos)?;
        id_key("tokenizer.ggml.unknown_token_id", &mut unk)?;
        id_key("tokenizer.ggml.padding_token_id", &mut pad)?;
        id_key("tokenizer.ggml.eot_token_id", &mut eot)?;
        let add_bos = md.bool_opt("tokenizer.ggml.add_bos_token")?;
        let add_space_prefix = md.bool_opt("tokenizer.ggml.add_space_prefix")?;
        let (add_bos, add_space_prefix) = match model {
            ModelKind::Spm => (add_bos.unwrap_or(true), add_space_prefix.unwrap_or(true)),
            // llama.cpp PR #21500: Gemma 4 always adds BOS, whatever the file says.
            ModelKind::Gemma4Bpe => (true, add_space_prefix.unwrap_or(false)),
        };
        Tokenizer::build(Parts {
            model,
            tokens,
            scores: &scores,
            token_types: &token_types,
            merges,
            bos,
            eos,
            eot,
            unk,
            pad,
            add_bos,
            add_space_prefix,
        })
    }

    /// Builds the tokenizer from an explicit vocabulary. Fails with [`Error::Tokenizer`] when
    /// arrays are missing or inconsistent, a special id is out of range, or a token repeats.
    pub fn from_vocab(v: Vocab) -> Result<Tokenizer> {
        Tokenizer::build(Parts {
            model: v.model,
            tokens: &v.tokens,
            scores: &v.scores,
            token_types: &v.token_types,
            merges: &v.merges,
            bos: v.bos,
            eos: v.eos,
            eot: v.eot,
            unk: v.unk,
            pad: v.pad,
            add_bos: v.add_bos,
            add_space_prefix: v.add_space_prefix,
        })
    }

    fn build(v: Parts<'_>) -> Result<Tokenizer> {
        let n = v.tokens.len();
        if n == 0 {
            return Err(tok_err(
                "vocabulary has no tokens (`tokenizer.ggml.tokens` is empty)",
            ));
        }
        if n > (i32::MAX as usize) {
            return Err(tok_err(format!("vocabulary of {n} tokens is too large")));
        }
        if v.token_types.len() != n {
            return Err(tok_err(format!(
                "{} token types for {n} tokens (`tokenizer.ggml.token_type` missing or short)",
                v.token_types.len()
            )));
        }
        if v.model == ModelKind::Spm && v.scores.len() != n {
            return Err(tok_err(format!(
                "{} scores for {n} tokens (SPM needs `tokenizer.ggml.scores`)",
                v.scores.len()
            )));
        }
        if !v.scores.is_empty() && v.scores.len() != n {
            return Err(tok_err(format!("{} scores for {n} tokens", v.scores.len())));
        }
        if v.model == ModelKind::Gemma4Bpe && v.merges.is_empty() {
            return Err(tok_err(
                "BPE vocabulary without merges (`tokenizer.ggml.merges`)",
            ));
        }
        for (name, id) in [
            ("bos", v.bos),
            ("eos", v.eos),
            ("eot", v.eot),
            ("unk", v.unk),
            ("pad", v.pad),
        ] {
            if let Some(id) = id {
                if id as usize >= n {
                    return Err(tok_err(format!(
                        "{name} id {id} is outside the vocab of {n}"
                    )));
                }
            }
        }
        if v.add_bos && v.bos.is_none() {
            return Err(tok_err(
                "add_bos_token is true but there is no bos token id",
            ));
        }
        let too_big = |what: &str| tok_err(format!("{what} text exceeds 4 GiB"));
        // (Half the u32 range leaves room for the `[EMPTY_i]` renames below.)
        if v.tokens.iter().map(|t| t.len()).sum::<usize>() > u32::MAX as usize / 2 {
            return Err(too_big("vocabulary"));
        }
        if v.merges.iter().map(|t| t.len()).sum::<usize>() > u32::MAX as usize {
            return Err(too_big("merge"));
        }

        // llama.cpp renames empty tokens so the text -> id map stays one-to-one.
        let renamed: Vec<String>;
        let token_strs: &[String] = if v.tokens.iter().any(|t| t.is_empty()) {
            renamed = v
                .tokens
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    if t.is_empty() {
                        format!("[EMPTY_{i}]")
                    } else {
                        t.clone()
                    }
                })
                .collect();
            &renamed
        } else {
            v.tokens
        };
        let tokens =
            StrTable::build(token_strs.iter().map(|s| s.as_str()), true).map_err(|(a, b)| {
                tok_err(format!(
                    "duplicate token {:?} in the vocabulary (ids {a} and {b})",
                    token_strs[a as usize]
                ))
            })?;
        let Ok(merges) = StrTable::build(v.merges.iter().map(|s| s.as_str()), false) else {
            unreachable!("a table that allows repeats does not fail")
        };

        let mut attrs: Vec<u8> = v
            .token_types
            .iter()
            .map(|t| match t {
                TokenType::Undefined => 0,
                TokenType::Normal => attr::NORMAL,
                TokenType::Unknown => attr::UNKNOWN,
                TokenType::Control => attr::CONTROL,
                TokenType::UserDefined => attr::USER_DEFINED,
                TokenType::Unused => attr::UNUSED,
                TokenType::Byte => attr::BYTE,
            })
            .collect();
        let scores = if v.scores.is_empty() {
            vec![0.0; n]
        } else {
            v.scores.to_vec()
        };

        // Byte fallback tokens: `<0xXX>`; SPM also falls back to the byte itself as text.
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = tokens.find(&format!("<0x{b:02X}>"));
            if slot.is_none() && v.model == ModelKind::Spm {
                if let Ok(s) = std::str::from_utf8(&[b as u8]) {
                    *slot = tokens.find(s);
                }
            }
        }

        // Special-token rules of llama.cpp's loader, in its order.
        let find = |t: &str| tokens.find(t);
        let mut eot = v.eot;
        if eot.is_none() {
            eot = EOT_TEXTS.iter().find_map(|t| find(t));
            if let Some(id) = eot {
                attrs[id as usize] |= attr::CONTROL;
            }
        }
        let mut eog: Vec<u32> = Vec::new();
        for t in FIM_CONTROL_TEXTS {
            if let Some(id) = find(t) {
                attrs[id as usize] |= attr::CONTROL;
            }
        }
        for t in FIM_EOG_TEXTS {
            if let Some(id) = find(t) {
                attrs[id as usize] |= attr::CONTROL;
                eog.push(id);
            }
        }
        // CONTROL tokens named "...unused..." are UNUSED too (hidden like control tokens).
        for (i, a) in attrs.iter_mut().enumerate() {
            if *a & attr::CONTROL != 0 && tokens.get(i as u32).contains("unused") {
                *a |= attr::UNUSED;
            }
        }
        for t in EOG_TEXTS {
            if let Some(id) = find(t) {
                attrs[id as usize] |= attr::CONTROL;
                eog.push(id);
            }
        }
        eog.extend(v.eos);
        eog.extend(eot);
        // llama.cpp: where `<|tool_response>` is EOG (Gemma 4), `</s>` is a normal token.
        if find("<|tool_response>").is_some() {
            if let Some(s) = find("</s>") {
                eog.retain(|&id| id != s);
                attrs[s as usize] = attr::NORMAL;
            }
        }
        eog.sort_unstable();
        eog.dedup();

        let special = special::SpecialTokens::new(&tokens, &attrs);

        Ok(Tokenizer {
            model: v.model,
            tokens,
            scores,
            attrs,
            merges,
            byte_tokens,
            special,
            bos: v.bos,
            eos: v.eos,
            eot,
            unk: v.unk,
            pad: v.pad,
            eog,
            add_bos: v.add_bos,
            add_space_prefix: v.add_space_prefix,
        })
    }

    /// Text to token ids, as llama.cpp's `llama_tokenize(text, add_special, parse_special)`:
    /// `add_special` prepends BOS when the model adds one; `parse_special` lets CONTROL token
    /// texts (`<start_of_turn>`) become their ids. USER_DEFINED texts always do.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let fragments = self.special.partition(text, parse_special);
        let mut prev_special = true;
        for f in fragments {
            match f {
                special::Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                special::Fragment::Text(a, b) => {
                    let raw = &text[a..b];
                    match self.model {
                        ModelKind::Spm => {
                            // Escape ' ' -> '▁'; a dummy prefix only when the vocab asks for it.
                            let mut s = String::with_capacity(raw.len() + 8);
                            if self.add_space_prefix && prev_special {
                                s.push('▁');
                            }
                            escape_spaces(raw, &mut s);
                            spm::tokenize(self, &s, &mut out);
                        }
                        ModelKind::Gemma4Bpe => {
                            let mut s = String::with_capacity(raw.len() + 8);
                            escape_spaces(raw, &mut s);
                            bpe::tokenize(self, &s, &mut out);
                        }
                    }
                    prev_special = false;
                }
            }
        }
        out
    }

    /// Token ids to text: the pieces concatenated, invalid UTF-8 replaced by U+FFFD.
    /// CONTROL/UNKNOWN tokens (`<bos>`, `<end_of_turn>`) appear only with `render_special`.
    /// Ids outside the vocabulary decode to U+FFFD.
    pub fn decode(&self, ids: &[u32], render_special: bool) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for (i, &id) in ids.iter().enumerate() {
            // llama.cpp strips the dummy-prefix space from the first piece only.
            let lstrip = i == 0 && self.add_space_prefix;
            self.append_piece(id, render_special, lstrip, &mut bytes);
        }
        match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// Appends the bytes of one token's piece (llama.cpp `token_to_piece`). Returns false when
    /// `id` is outside the vocabulary (then U+FFFD is appended).
    pub fn append_piece(
        &self,
        id: u32,
        render_special: bool,
        lstrip: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        if id as usize >= self.tokens.len() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
            return false;
        }
        let text = self.tokens.get(id);
        let a = self.attrs[id as usize];
        let start = out.len();
        if a & (attr::UNKNOWN | attr::CONTROL) != 0 {
            if render_special {
                out.extend_from_slice(text.as_bytes());
            }
        } else if a & attr::USER_DEFINED != 0 {
            out.extend_from_slice(text.as_bytes());
        } else if a & attr::NORMAL != 0 {
            for (i, part) in text.split('▁').enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(part.as_bytes());
            }
        } else if a & attr::BYTE != 0 {
            out.extend(parse_byte_token(text));
        }
        // UNUSED / UNDEFINED tokens have no piece.
        if lstrip && out.get(start) == Some(&b' ') {
            out.remove(start);
        }
        true
    }

    /// The raw vocabulary text of a token (`▁` not unescaped), or None when out of range.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        ((id as usize) < self.tokens.len()).then(|| self.tokens.get(id))
    }

    /// The id of a token text exactly as stored in the vocabulary.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.tokens.find(text)
    }

    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    pub fn model(&self) -> ModelKind {
        self.model
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// End-of-turn token (`<end_of_turn>` on Gemma 3), from metadata or found by text.
    pub fn eot(&self) -> Option<u32> {
        self.eot
    }

    pub fn unk(&self) -> Option<u32> {
        self.unk
    }

    pub fn pad(&self) -> Option<u32> {
        self.pad
    }

    /// Whether `encode(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// End-of-generation: llama.cpp's set (eos, eot, and the tokens it recognises by text:
    /// Gemma 3 `<eos>` `<end_of_turn>` `</s>`; Gemma 4 `<eos>` `<turn|>` `<|tool_response>`).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// CONTROL or UNKNOWN: hidden by `decode(.., false)`.
    pub fn is_control(&self, id: u32) -> bool {
        self.attrs
            .get(id as usize)
            .is_some_and(|a| a & (attr::CONTROL | attr::UNKNOWN) != 0)
    }

    /// An incremental decoder that yields text only once it is complete UTF-8.
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self, false)
    }

    /// Like [`Tokenizer::stream_decoder`], showing CONTROL tokens as their text.
    pub fn stream_decoder_with_special(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self, true)
    }

    // --- internals shared by spm.rs / bpe.rs ---

    #[inline]
    fn lookup(&self, text: &str) -> Option<u32> {
        self.tokens.find(text)
    }

    /// Rank of the merge "left right" (`key` holds that text).
    #[inline]
    fn merge_rank(&self, key: &str) -> Option<u32> {
        self.merges.find(key)
    }

    #[inline]
    fn score(&self, id: u32) -> f32 {
        self.scores[id as usize]
    }

    /// Byte-fallback output for a piece that is not a token (llama.cpp skips bytes it cannot
    /// map; a vocab without byte tokens then loses them, as there).
    fn push_bytes(&self, piece: &str, out: &mut Vec<u32>) {
        for &b in piece.as_bytes() {
            if let Some(id) = self.byte_tokens[b as usize] {
                out.push(id);
            }
        }
    }
}

fn escape_spaces(raw: &str, out: &mut String) {
    for (i, part) in raw.split(' ').enumerate() {
        if i > 0 {
            out.push('▁');
        }
        out.push_str(part);
    }
}

/// `<0xAB>` -> 0xAB (llama.cpp `token_to_byte`: the two characters after `<0x`).
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.get(3..5)?;
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests;

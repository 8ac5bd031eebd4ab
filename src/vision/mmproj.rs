//! The mmproj GGUF of Gemma 4's vision tower (`general.architecture = "clip"`, projector
//! `gemma4v`): configuration, weight binding and the check that it fits a text model.
//! Tensor names and shapes: docs/gemma4.md §7.1.

use std::path::Path;
use std::sync::Arc;

use crate::gguf::{GgmlType, Gguf, TensorInfo};
use crate::model::weights::{mat, vector, vector_opt, Mat};
use crate::{Error, Result};

/// The projector type this module implements.
pub const PROJECTOR_GEMMA4V: &str = "gemma4v";

/// Vision tower hyperparameters (`clip.vision.*`).
#[derive(Clone, Debug)]
pub struct VisionConfig {
    /// `embedding_length`
    pub n_embd: usize,
    /// `feed_forward_length`
    pub n_ff: usize,
    /// `block_count`
    pub n_layer: usize,
    /// `attention.head_count`
    pub n_head: usize,
    pub head_dim: usize,
    /// `patch_size` (16)
    pub patch: usize,
    /// `projector.scale_factor` (pooling kernel; default 3)
    pub pool: usize,
    /// `attention.layer_norm_epsilon`
    pub eps: f32,
    /// 2-D RoPE base (not in the file; llama.cpp hardcodes 100 for gemma4v, as does HF's config)
    pub rope_theta: f32,
    /// `projection_dim`: the text model's embedding size
    pub n_proj: usize,
    /// rows of each learned position table (`v.position_embd.weight` ne1)
    pub n_pos: usize,
}

/// Weights of one encoder layer.
#[derive(Debug)]
pub(crate) struct VLayer {
    pub ln1: Vec<f32>,
    pub attn_q: Mat,
    pub attn_k: Mat,
    pub attn_v: Mat,
    pub attn_q_norm: Vec<f32>,
    pub attn_k_norm: Vec<f32>,
    pub attn_out: Mat,
    pub attn_post_norm: Vec<f32>,
    pub ln2: Vec<f32>,
    pub ffn_gate: Mat,
    pub ffn_up: Mat,
    pub ffn_down: Mat,
    pub ffn_post_norm: Vec<f32>,
    /// `out_scale.weight` (absent → 1; HF 5.23 vision layers have none)
    pub out_scale: f32,
}

#[derive(Debug)]
pub(crate) struct VWeights {
    /// `[3·patch·patch] → [n_embd]`, inputs in C,H,W order (the GGUF conv kernel layout)
    pub patch_embd: PatchEmbd,
    /// `[2][n_pos][n_embd]`: x (column) table then y (row) table, f32
    pub pos_x: Vec<f32>,
    pub pos_y: Vec<f32>,
    pub layers: Vec<VLayer>,
    pub std_bias: Option<Vec<f32>>,
    pub std_scale: Option<Vec<f32>>,
    /// `[n_embd] → [n_proj]`
    pub proj: Mat,
}

/// The 4-D patch kernel viewed as a matrix (its bytes are those of a `[768] → [n_embd]` matrix).
#[derive(Debug)]
pub(crate) struct PatchEmbd {
    pub info: TensorInfo,
    pub n_in: usize,
    pub n_out: usize,
}

impl PatchEmbd {
    pub fn view<'a>(&self, g: &'a Gguf) -> crate::ops::QMatrix<'a> {
        crate::ops::QMatrix {
            ty: self.info.ty,
            n_in: self.n_in,
            n_out: self.n_out,
            data: g.tensor_data(&self.info),
        }
    }
}

/// A loaded mmproj file.
#[derive(Debug)]
pub struct Mmproj {
    pub(crate) gguf: Arc<Gguf>,
    pub(crate) cfg: VisionConfig,
    pub(crate) w: VWeights,
}

/// The largest pooling factor accepted (`clip.vision.projector.scale_factor`).
const MAX_POOL: usize = 64;

impl Mmproj {
    /// Opens and validates an mmproj GGUF.
    pub fn open(path: impl AsRef<Path>) -> Result<Mmproj> {
        let path = path.as_ref();
        let g = Gguf::open(path)?;
        Mmproj::from_gguf(Arc::new(g)).map_err(|e| match e {
            Error::BadConfig(m) => Error::BadConfig(format!("mmproj {}: {m}", path.display())),
            e => e,
        })
    }

    pub fn from_gguf(g: Arc<Gguf>) -> Result<Mmproj> {
        let arch = g.architecture()?;
        if arch != "clip" {
            return Err(Error::BadConfig(format!(
                "general.architecture is `{arch}`, an mmproj file has `clip` \
                 (is this the text model instead of its projector?)"
            )));
        }
        let md = g.metadata();
        // The converter writes clip.vision.projector_type; older files use clip.projector_type.
        let ptype = match md.str_opt("clip.vision.projector_type")? {
            Some(p) => p,
            None => md.str_opt("clip.projector_type")?.unwrap_or("(none)"),
        };
        if ptype != PROJECTOR_GEMMA4V {
            return Err(Error::BadConfig(format!(
                "projector type `{ptype}` is not supported (lode reads Gemma 4 `{PROJECTOR_GEMMA4V}`)"
            )));
        }
        if md.bool_opt("clip.has_vision_encoder")? == Some(false) {
            return Err(Error::BadConfig("the file has no vision encoder".into()));
        }
        let n_embd = md.usize("clip.vision.embedding_length")?;
        let n_head = md.usize("clip.vision.attention.head_count")?;
        if n_head == 0 || n_embd % n_head != 0 || (n_embd / n_head) % 4 != 0 {
            return Err(Error::BadConfig(format!(
                "vision width {n_embd} over {n_head} heads (2-D RoPE needs a head dim divisible by 4)"
            )));
        }
        let pos = g.require("v.position_embd.weight")?;
        let n_pos = pos.dims.get(1).copied().unwrap_or(0) as usize;
        let cfg = VisionConfig {
            n_embd,
            n_ff: md.usize("clip.vision.feed_forward_length")?,
            n_layer: md.usize("clip.vision.block_count")?,
            n_head,
            head_dim: n_embd / n_head,
            patch: md.usize("clip.vision.patch_size")?,
            pool: md
                .usize_opt("clip.vision.projector.scale_factor")?
                .unwrap_or(3),
            eps: md
                .f32_opt("clip.vision.attention.layer_norm_epsilon")?
                .unwrap_or(1e-6),
            rope_theta: 100.0,
            n_proj: md.usize("clip.vision.projection_dim")?,
            n_pos,
        };
        if cfg.patch == 0 || cfg.pool == 0 || cfg.n_layer == 0 || n_pos == 0 {
            return Err(Error::BadConfig(format!(
                "zero size in the vision config: {cfg:?}"
            )));
        }
        // Counts that size tables and image arithmetic, bounded before use: the layers by the
        // `v.blk.N` tensors the file has, the pooling by sense (Gemma 4 uses 3).
        let present = g
            .tensors()
            .iter()
            .filter_map(|t| {
                let rest = t.name.strip_prefix("v.blk.")?;
                rest[..rest.find('.')?].parse::<usize>().ok()
            })
            .max()
            .map_or(0, |n| n + 1);
        if cfg.n_layer > present {
            return Err(Error::BadConfig(format!(
                "`clip.vision.block_count` = {}, but the file has tensors for {present} layers",
                cfg.n_layer
            )));
        }
        if cfg.pool > MAX_POOL {
            return Err(Error::BadConfig(format!(
                "`clip.vision.projector.scale_factor` = {} is out of range (at most {MAX_POOL})",
                cfg.pool
            )));
        }
        for key in ["clip.vision.image_mean", "clip.vision.image_std"] {
            let want = if key.ends_with("mean") { 0.0 } else { 1.0 };
            if let Some(crate::gguf::Value::Array(crate::gguf::Array::F32(a))) = md.get(key) {
                if a.iter().any(|&v| v != want) {
                    return Err(Error::BadConfig(format!(
                        "{key} = {a:?} but gemma4v expects all {want} (pixels go in as p/255 \
                         and the model maps them to 2p − 1)"
                    )));
                }
            }
        }
        let w = bind(&g, &cfg)?;
        Ok(Mmproj { gguf: g, cfg, w })
    }

    pub fn config(&self) -> &VisionConfig {
        &self.cfg
    }

    /// Checks that this projector feeds a text model of architecture `arch` with embeddings
    /// of `n_embd` values.
    pub fn check_pair(&self, arch: &str, n_embd: usize) -> Result<()> {
        if arch != "gemma4" {
            return Err(Error::BadConfig(format!(
                "a `{PROJECTOR_GEMMA4V}` projector feeds a gemma4 text model, not `{arch}`"
            )));
        }
        if self.cfg.n_proj != n_embd {
            return Err(Error::BadConfig(format!(
                "mmproj projects to {} values but the text model's embedding has {n_embd}: \
                 the two files are not a pair",
                self.cfg.n_proj
            )));
        }
        Ok(())
    }
}

fn bind(g: &Gguf, c: &VisionConfig) -> Result<VWeights> {
    let (d, f) = (c.n_embd, c.n_ff);
    let pe = g.require("v.patch_embd.weight")?;
    let p = c.patch as u64;
    if pe.dims != [p, p, 3, d as u64] {
        return Err(Error::Shape {
            name: pe.name.clone(),
            expected: vec![p, p, 3, d as u64],
            found: pe.dims.clone(),
        });
    }
    let patch_embd = PatchEmbd {
        info: pe.clone(),
        n_in: 3 * c.patch * c.patch,
        n_out: d,
    };
    crate::ops::QMatrix::new(pe.ty, patch_embd.n_in, d, g.tensor_data(pe))?;
    let pos = g.require("v.position_embd.weight")?;
    if pos.dims != [d as u64, c.n_pos as u64, 2] || pos.ty != GgmlType::F32 {
        return Err(Error::BadConfig(format!(
            "v.position_embd.weight: expected F32 [{d}, {}, 2], file has {} {:?}",
            c.n_pos, pos.ty, pos.dims
        )));
    }
    let table: Vec<f32> = g
        .tensor_data(pos)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let half = d * c.n_pos;
    let mut layers = Vec::with_capacity(c.n_layer);
    for il in 0..c.n_layer {
        let n = |s: &str| format!("v.blk.{il}.{s}.weight");
        let hd = c.head_dim;
        layers.push(VLayer {
            ln1: vector(g, &n("ln1"), d)?,
            attn_q: mat(g, &n("attn_q"), d, d)?,
            attn_k: mat(g, &n("attn_k"), d, d)?,
            attn_v: mat(g, &n("attn_v"), d, d)?,
            attn_q_norm: vector(g, &n("attn_q_norm"), hd)?,
            attn_k_norm: vector(g, &n("attn_k_norm"), hd)?,
            attn_out: mat(g, &n("attn_out"), d, d)?,
            attn_post_norm: vector(g, &n("attn_post_norm"), d)?,
            ln2: vector(g, &n("ln2"), d)?,
            ffn_gate: mat(g, &n("ffn_gate"), d, f)?,
            ffn_up: mat(g, &n("ffn_up"), d, f)?,
            ffn_down: mat(g, &n("ffn_down"), f, d)?,
            ffn_post_norm: vector(g, &n("ffn_post_norm"), d)?,
            out_scale: vector_opt(g, &n("out_scale"), 1)?.map_or(1.0, |v| v[0]),
        });
    }
    for name in g.tensors().iter().map(|t| t.name.as_str()) {
        if name.ends_with(".input_min") || name.ends_with(".output_max") {
            return Err(Error::BadConfig(format!(
                "clipped linears (`{name}`, Gemma 4 E-models) are not supported yet"
            )));
        }
    }
    Ok(VWeights {
        patch_embd,
        pos_x: table[..half].to_vec(),
        pos_y: table[half..].to_vec(),
        layers,
        std_bias: vector_opt(g, "v.std_bias", d)?,
        std_scale: vector_opt(g, "v.std_scale", d)?,
        proj: mat(g, "mm.input_projection.weight", d, c.n_proj)?,
    })
}

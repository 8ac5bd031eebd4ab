//! Where each expert's weights are: (layer, expert) → the byte slices of its gate, up and down
//! matrices inside the stacked `*_exps` tensors.
//!
//! A 3-D tensor `[ne0, ne1, ne2]` stores expert e as the 2-D matrix at byte
//! `e · ne1 · row_bytes` with `row_bytes` from the block geometry (never the element size:
//! quantized rows are blocks). Fused `ffn_gate_up_exps` holds gate in rows `0..n_ff` of each
//! expert and up in rows `n_ff..2·n_ff` (HF `chunk(2)`, llama.cpp `build_moe_ffn`).
//! The model asks for experts by index and never computes offsets; residency (madvise, budgets)
//! will sit behind this same API. Knows nothing of routing.

use std::sync::Arc;

use crate::gguf::{GgmlType, Gguf, TensorInfo};
use crate::{Error, Result};

/// One expert matrix: `n_out` rows of `n_in` values of `ty`, borrowed from the mapping.
#[derive(Clone, Copy, Debug)]
pub struct ExpertMatrix<'a> {
    pub ty: GgmlType,
    pub n_in: usize,
    pub n_out: usize,
    pub data: &'a [u8],
}

/// The three matrices of one expert.
#[derive(Clone, Copy, Debug)]
pub struct ExpertSlices<'a> {
    /// `[n_embd] → [n_ff]`
    pub gate: ExpertMatrix<'a>,
    /// `[n_embd] → [n_ff]`
    pub up: ExpertMatrix<'a>,
    /// `[n_ff] → [n_embd]`
    pub down: ExpertMatrix<'a>,
}

/// A byte range of one file of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRange {
    /// Index into `Gguf::files()`.
    pub file: usize,
    /// Absolute offset in that file.
    pub offset: u64,
    pub len: u64,
}

/// A slice of a stacked tensor: rows `row0..row0 + n_out` of each expert.
#[derive(Clone, Debug)]
struct Part {
    tensor: TensorInfo,
    n_in: usize,
    n_out: usize,
    /// Byte offset of this part inside one expert.
    offset: usize,
    /// Bytes from one expert to the next (ne1 · row_bytes).
    stride: usize,
}

#[derive(Clone, Debug)]
struct LayerExperts {
    n_expert: usize,
    gate: Part,
    up: Part,
    down: Part,
}

/// Byte geometry of every layer's experts.
#[derive(Debug)]
pub struct ExpertIndex {
    gguf: Arc<Gguf>,
    layers: Vec<Option<LayerExperts>>,
}

fn dims3(t: &TensorInfo) -> Result<[usize; 3]> {
    if t.dims.len() != 3 {
        return Err(Error::Shape {
            name: t.name.clone(),
            expected: vec![0, 0, 0],
            found: t.dims.clone(),
        });
    }
    Ok([t.dims[0] as usize, t.dims[1] as usize, t.dims[2] as usize])
}

fn part(t: &TensorInfo, rows: std::ops::Range<usize>) -> Result<Part> {
    let [ne0, ne1, _] = dims3(t)?;
    let row_bytes = t.ty.row_bytes(ne0 as u64).ok_or_else(|| {
        Error::BadConfig(format!(
            "tensor `{}`: {ne0} values are not whole {} blocks",
            t.name, t.ty
        ))
    })? as usize;
    Ok(Part {
        tensor: t.clone(),
        n_in: ne0,
        n_out: rows.len(),
        offset: rows.start * row_bytes,
        stride: ne1 * row_bytes,
    })
}

impl ExpertIndex {
    /// Finds the expert tensors of every layer (fused `ffn_gate_up_exps` or split
    /// `ffn_gate_exps` + `ffn_up_exps`, plus `ffn_down_exps`) and checks they agree.
    /// Layers without experts map to `None`.
    pub fn new(gguf: Arc<Gguf>, n_layer: usize) -> Result<ExpertIndex> {
        let mut layers = Vec::with_capacity(n_layer);
        for il in 0..n_layer {
            let name = |s: &str| format!("blk.{il}.{s}.weight");
            let Some(down) = gguf.tensor(&name("ffn_down_exps")) else {
                layers.push(None);
                continue;
            };
            let [n_ff, n_embd, n_expert] = dims3(down)?;
            let shape_err = |t: &TensorInfo, expected: Vec<u64>| Error::Shape {
                name: t.name.clone(),
                expected,
                found: t.dims.clone(),
            };
            let (gate, up) = if let Some(gu) = gguf.tensor(&name("ffn_gate_up_exps")) {
                let want = vec![n_embd as u64, 2 * n_ff as u64, n_expert as u64];
                if gu.dims != want {
                    return Err(shape_err(gu, want));
                }
                (part(gu, 0..n_ff)?, part(gu, n_ff..2 * n_ff)?)
            } else {
                let g = gguf.require(&name("ffn_gate_exps"))?;
                let u = gguf.require(&name("ffn_up_exps"))?;
                let want = vec![n_embd as u64, n_ff as u64, n_expert as u64];
                for t in [g, u] {
                    if t.dims != want {
                        return Err(shape_err(t, want));
                    }
                }
                (part(g, 0..n_ff)?, part(u, 0..n_ff)?)
            };
            layers.push(Some(LayerExperts {
                n_expert,
                gate,
                up,
                down: part(down, 0..n_embd)?,
            }));
        }
        Ok(ExpertIndex { gguf, layers })
    }

    /// Experts in layer `il` (0 when the layer has none).
    pub fn n_expert(&self, il: usize) -> usize {
        self.layers
            .get(il)
            .and_then(|l| l.as_ref())
            .map_or(0, |l| l.n_expert)
    }

    /// `(n_embd, n_ff)` of layer `il`'s experts.
    pub fn dims(&self, il: usize) -> Option<(usize, usize)> {
        let l = self.layers.get(il)?.as_ref()?;
        Some((l.gate.n_in, l.gate.n_out))
    }

    fn slice(&self, p: &Part, e: usize) -> ExpertMatrix<'_> {
        let data = self.gguf.tensor_data(&p.tensor);
        let row_bytes = p.stride / (p.tensor.dims[1] as usize);
        let start = e * p.stride + p.offset;
        ExpertMatrix {
            ty: p.tensor.ty,
            n_in: p.n_in,
            n_out: p.n_out,
            data: &data[start..start + p.n_out * row_bytes],
        }
    }

    /// Where expert `e` of layer `il` lies in the files: gate, up and down as
    /// `(file index, absolute byte offset, length)`.
    pub fn ranges(&self, il: usize, e: usize) -> Option<[FileRange; 3]> {
        let l = self.layers.get(il)?.as_ref().filter(|l| e < l.n_expert)?;
        let r = |p: &Part| {
            let row_bytes = p.stride / (p.tensor.dims[1] as usize);
            FileRange {
                file: p.tensor.file,
                offset: self.gguf.file_offset(&p.tensor) + (e * p.stride + p.offset) as u64,
                len: (p.n_out * row_bytes) as u64,
            }
        };
        Some([r(&l.gate), r(&l.up), r(&l.down)])
    }

    /// Bytes of one expert of layer `il` (gate + up + down; 0 without experts).
    pub fn expert_bytes(&self, il: usize) -> u64 {
        self.ranges(il, 0)
            .map_or(0, |r| r.iter().map(|x| x.len).sum())
    }

    /// Bytes of every expert of every layer.
    pub fn total_bytes(&self) -> u64 {
        (0..self.layers.len())
            .map(|il| self.expert_bytes(il) * self.n_expert(il) as u64)
            .sum()
    }

    /// Layers (by index) that have experts.
    pub fn n_layer(&self) -> usize {
        self.layers.len()
    }

    pub fn gguf(&self) -> &Arc<Gguf> {
        &self.gguf
    }

    /// Expert `e` of layer `il`, its matrices cut from one buffer holding gate, up and down
    /// back to back (the layout [`ranges`](ExpertIndex::ranges) reads into a cache buffer).
    pub fn expert_in<'a>(&self, il: usize, buf: &'a [u8]) -> Result<ExpertSlices<'a>> {
        let l = self
            .layers
            .get(il)
            .and_then(|l| l.as_ref())
            .ok_or_else(|| Error::Input(format!("layer {il} has no experts")))?;
        let mut at = 0usize;
        let mut take = |p: &Part| -> Result<ExpertMatrix<'a>> {
            let row_bytes = p.stride / (p.tensor.dims[1] as usize);
            let len = p.n_out * row_bytes;
            let data = buf.get(at..at + len).ok_or_else(|| {
                Error::Input(format!("expert buffer of {} bytes is too short", buf.len()))
            })?;
            at += len;
            Ok(ExpertMatrix {
                ty: p.tensor.ty,
                n_in: p.n_in,
                n_out: p.n_out,
                data,
            })
        };
        Ok(ExpertSlices {
            gate: take(&l.gate)?,
            up: take(&l.up)?,
            down: take(&l.down)?,
        })
    }

    /// Expert `e` of layer `il`.
    pub fn expert(&self, il: usize, e: usize) -> Result<ExpertSlices<'_>> {
        let l = self
            .layers
            .get(il)
            .and_then(|l| l.as_ref())
            .filter(|l| e < l.n_expert)
            .ok_or_else(|| Error::Input(format!("layer {il} has no expert {e}")))?;
        Ok(ExpertSlices {
            gate: self.slice(&l.gate, e),
            up: self.slice(&l.up, e),
            down: self.slice(&l.down, e),
        })
    }
}

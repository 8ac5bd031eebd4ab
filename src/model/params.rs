//! Parameter and byte accounting: how big a model is, how much of it is routed experts, and how
//! many weights (and bytes) one decoded token reads — the number that bounds decode speed on a
//! memory-bandwidth-limited CPU.
//!
//! Rules (see `docs/inspect.md` and docs/gemma4.md §1.3/§1.4):
//! - **experts**: routed-expert tensors, i.e. names containing `_exps` with 3 dimensions whose
//!   ne2 is `expert_count` (`ffn_gate_up_exps`, `ffn_gate_exps`, `ffn_up_exps`, `ffn_down_exps`).
//!   The 1-D `ffn_down_exps.scale` (one float per expert) is *not* counted as experts: it is read
//!   by the router path for the chosen experts, it is 128 floats per layer, and keeping it in
//!   `always_active` makes `experts` exactly the pageable expert matrices.
//! - **always_active** = total − experts: every weight that is not a routed expert.
//! - **active_per_token** = always_active + experts × expert_used_count / expert_count, except that
//!   pure lookup tables contribute one row instead of the whole matrix: `per_layer_token_embd`
//!   always, and `token_embd` when the model has a separate `output.weight`. A tied `token_embd`
//!   (Gemma) is counted in full, once: it is the LM head, whose whole matrix is read for every
//!   decoded token (the embedding lookup of one row is then free). `total` counts the tied
//!   matrix once (llama.cpp's log counts it twice).
//! - Dense models (no `expert_count`): experts = 0.

use crate::gguf::{GgmlType, Gguf};
use crate::{Error, Result};

/// One quantity split by how a decoded token uses it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Split {
    /// Everything in the file.
    pub total: u64,
    /// Everything that is not a routed expert (read for every token, up to lookup tables).
    pub always_active: u64,
    /// All routed experts of all layers.
    pub experts: u64,
    /// What one decoded token reads: see the module doc.
    pub active_per_token: u64,
}

/// Parameters (elements) and bytes of a model, each as a [`Split`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ParamReport {
    pub params: Split,
    pub bytes: Split,
}

/// What the accounting needs to know about one tensor.
#[derive(Clone, Copy, Debug)]
pub struct TensorSize<'a> {
    pub name: &'a str,
    pub ty: GgmlType,
    /// Shape, ne0 first.
    pub dims: &'a [u64],
    pub n_bytes: u64,
}

/// Routed-expert counts from the metadata: `(expert_count, expert_used_count)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Experts {
    /// `{arch}.expert_count`.
    pub n_expert: u64,
    /// `{arch}.expert_used_count`.
    pub n_expert_used: u64,
}

impl ParamReport {
    /// From an opened model: expert counts from `{arch}.expert_count` / `expert_used_count`
    /// (absent = dense).
    pub fn from_gguf(g: &Gguf) -> Result<ParamReport> {
        let md = g.metadata();
        let arch = md.architecture()?;
        let n_expert = md.u64(&format!("{arch}.expert_count")).ok();
        let experts = match n_expert {
            None | Some(0) => None,
            Some(n) => Some(Experts {
                n_expert: n,
                n_expert_used: md.u64(&format!("{arch}.expert_used_count"))?,
            }),
        };
        let sizes: Vec<TensorSize<'_>> = g
            .tensors()
            .iter()
            .map(|t| TensorSize {
                name: &t.name,
                ty: t.ty,
                dims: &t.dims,
                n_bytes: t.n_bytes,
            })
            .collect();
        ParamReport::from_tensors(&sizes, experts)
    }

    /// From a tensor list (for specs that have no file yet).
    pub fn from_tensors(
        tensors: &[TensorSize<'_>],
        experts: Option<Experts>,
    ) -> Result<ParamReport> {
        if let Some(e) = experts {
            if e.n_expert_used == 0 || e.n_expert_used > e.n_expert {
                return Err(Error::BadConfig(format!(
                    "expert_used_count {} of expert_count {}",
                    e.n_expert_used, e.n_expert
                )));
            }
        }
        let untied = tensors.iter().any(|t| t.name == "output.weight");
        let (mut p, mut b) = (Split::default(), Split::default());
        for t in tensors {
            let n: u64 = t.dims.iter().product();
            p.total += n;
            b.total += t.n_bytes;
            if t.name.contains("_exps") && t.dims.len() == 3 {
                let Some(e) = experts else {
                    return Err(Error::BadConfig(format!(
                        "tensor `{}` holds routed experts, but the model has no expert_count",
                        t.name
                    )));
                };
                if t.dims[2] != e.n_expert {
                    return Err(Error::BadConfig(format!(
                        "tensor `{}` has {} experts (ne2), expert_count is {}",
                        t.name, t.dims[2], e.n_expert
                    )));
                }
                p.experts += n;
                b.experts += t.n_bytes;
                // Every expert is the same size, so these divisions are exact.
                p.active_per_token += n / e.n_expert * e.n_expert_used;
                b.active_per_token += t.n_bytes / e.n_expert * e.n_expert_used;
                continue;
            }
            p.always_active += n;
            b.always_active += t.n_bytes;
            let lookup = t.name.starts_with("per_layer_token_embd.")
                || (untied && t.name.starts_with("token_embd."));
            if lookup {
                // One row per token: ne0 elements.
                p.active_per_token += t.dims[0];
                b.active_per_token += t.ty.row_bytes(t.dims[0]).unwrap_or(0);
            } else {
                p.active_per_token += n;
                b.active_per_token += t.n_bytes;
            }
        }
        Ok(ParamReport {
            params: p,
            bytes: b,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t<'a>(name: &'a str, ty: GgmlType, dims: &'a [u64]) -> TensorSize<'a> {
        let n_bytes = ty.row_bytes(dims[0]).unwrap() * dims[1..].iter().product::<u64>();
        TensorSize {
            name,
            ty,
            dims,
            n_bytes,
        }
    }

    #[test]
    fn moe_split_and_tied_head() {
        let ts = [
            t("token_embd.weight", GgmlType::F32, &[4, 10]),
            t("blk.0.ffn_gate_up_exps.weight", GgmlType::F32, &[4, 6, 8]),
            t("blk.0.ffn_down_exps.scale", GgmlType::F32, &[8]),
        ];
        let e = Experts {
            n_expert: 8,
            n_expert_used: 2,
        };
        let r = ParamReport::from_tensors(&ts, Some(e)).unwrap();
        assert_eq!(
            r.params,
            Split {
                total: 40 + 192 + 8,
                always_active: 48,
                experts: 192,
                active_per_token: 48 + 48
            }
        );
        assert_eq!(r.bytes.active_per_token, 4 * 96);
    }

    #[test]
    fn untied_embedding_is_a_lookup() {
        let ts = [
            t("token_embd.weight", GgmlType::F32, &[4, 10]),
            t("output.weight", GgmlType::F32, &[4, 10]),
        ];
        let r = ParamReport::from_tensors(&ts, None).unwrap();
        assert_eq!(r.params.total, 80);
        assert_eq!(r.params.experts, 0);
        assert_eq!(r.params.active_per_token, 44);
    }

    #[test]
    fn expert_count_mismatch_is_an_error() {
        let ts = [t("blk.0.ffn_up_exps.weight", GgmlType::F32, &[4, 6, 4])];
        let e = Experts {
            n_expert: 8,
            n_expert_used: 2,
        };
        assert!(ParamReport::from_tensors(&ts, Some(e)).is_err());
        assert!(ParamReport::from_tensors(&ts, None).is_err());
    }
}

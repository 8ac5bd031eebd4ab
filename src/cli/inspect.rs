//! `lode inspect MODEL`: what a GGUF file holds, and what one decoded token will read from it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use lode::gguf::{file_type_name, Gguf, Metadata, Value};
use lode::model::params::{ParamReport, Split};
use lode::paging::human_bytes;
use serde_json::{json, Value as J};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The GGUF file (for a split model, its first part); also as -m/--model, like every other
    /// subcommand.
    #[arg(
        value_name = "MODEL",
        required_unless_present = "model_flag",
        conflicts_with = "model_flag"
    )]
    pub model: Option<PathBuf>,
    /// The GGUF file, as -m MODEL.
    #[arg(short = 'm', long = "model", value_name = "MODEL", id = "model_flag")]
    pub model_flag: Option<PathBuf>,
    /// Print one JSON object (every metadata value in full, every tensor) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also list every tensor: name, type, shape (ne0 first), bytes.
    #[arg(long)]
    pub tensors: bool,
    /// Also report the KV-cache size for a context of N tokens.
    #[arg(short = 'c', long, visible_alias = "ctx-size", value_name = "N")]
    pub ctx: Option<u64>,
    /// KV cache element type for --ctx: f16, q8_0 or f32.
    #[arg(long, value_name = "TYPE", default_value = "f16")]
    pub kv_type: lode::model::KvType,
}

/// One kind of attention layer (sliding-window or global), as the metadata describes it.
#[derive(Debug, serde::Serialize)]
struct LayerKind {
    layers: Vec<usize>,
    n_head: Option<usize>,
    n_head_kv: Option<usize>,
    head_dim_k: Option<usize>,
    head_dim_v: Option<usize>,
}

/// The architecture-level facts `inspect` prints; every field is optional, so that files of
/// any architecture (or with missing keys) can still be inspected.
#[derive(Debug, serde::Serialize)]
struct Summary {
    context_length: Option<usize>,
    n_layer: Option<usize>,
    n_embd: Option<usize>,
    sliding_window: Option<usize>,
    sliding: LayerKind,
    global: LayerKind,
    /// Layers (counted from the last) that reuse another layer's KV cache.
    shared_kv_layers: usize,
    n_expert: Option<usize>,
    n_expert_used: Option<usize>,
    expert_feed_forward_length: Option<usize>,
    vocab_size: Option<usize>,
    tokenizer_model: Option<String>,
    chat_template: bool,
}

fn opt_usize(md: &Metadata, key: &str) -> Option<usize> {
    md.usize_opt(key).ok().flatten()
}

/// Which layers use a sliding window. `sliding_window_pattern` is a bool per layer (true =
/// sliding, Gemma 4) or a period P (layer i is global when (i + 1) % P == 0); Gemma 2/3 files
/// often carry neither, and llama.cpp then uses the period 6 (gemma3) or 2 (gemma2).
fn sliding_layers(md: &Metadata, arch: &str, n_layer: usize) -> Vec<bool> {
    let key = format!("{arch}.attention.sliding_window_pattern");
    if let Ok(Some(v)) = md.bool_per_layer(&key, n_layer) {
        return v;
    }
    let period = match md.get(&key).and_then(Value::as_i128) {
        Some(p) if p > 0 => Some(p as usize),
        _ if !md.contains(&format!("{arch}.attention.sliding_window")) => None,
        _ => match arch {
            "gemma3" | "gemma3n" | "gemma4" => Some(6),
            "gemma2" => Some(2),
            _ => None,
        },
    };
    match period {
        Some(p) => (0..n_layer).map(|i| (i + 1) % p != 0).collect(),
        None => vec![false; n_layer],
    }
}

fn summary(g: &Gguf, arch: &str) -> Summary {
    let md = g.metadata();
    let k = |s: &str| format!("{arch}.{s}");
    let n_layer = opt_usize(md, &k("block_count"));
    let n_embd = opt_usize(md, &k("embedding_length"));
    let nl = n_layer.unwrap_or(0);
    let swa = sliding_layers(md, arch, nl);
    let per_layer = |key: &str| md.usize_per_layer(&k(key), nl).ok().flatten();
    let n_head = per_layer("attention.head_count");
    let n_head_kv = per_layer("attention.head_count_kv");
    let key_len = opt_usize(md, &k("attention.key_length"));
    let val_len = opt_usize(md, &k("attention.value_length"));
    let default_head = match (n_embd, n_head.as_ref().and_then(|h| h.first())) {
        (Some(d), Some(&h)) if h > 0 => Some(d / h),
        _ => None,
    };
    let kind = |sliding: bool| {
        let layers: Vec<usize> = (0..nl).filter(|&i| swa[i] == sliding).collect();
        let first = layers.first().copied();
        let at = |v: &Option<Vec<usize>>| first.and_then(|i| v.as_ref().map(|v| v[i]));
        let (kl, vl) = if sliding {
            (
                opt_usize(md, &k("attention.key_length_swa")).or(key_len),
                opt_usize(md, &k("attention.value_length_swa")).or(val_len),
            )
        } else {
            (key_len, val_len)
        };
        LayerKind {
            n_head: at(&n_head),
            n_head_kv: at(&n_head_kv).or(at(&n_head)),
            head_dim_k: first.and(kl.or(default_head)),
            head_dim_v: first.and(vl.or(default_head)),
            layers,
        }
    };
    let vocab_size = match md.get("tokenizer.ggml.tokens") {
        Some(Value::Array(a)) => Some(a.len()),
        _ => opt_usize(md, &k("vocab_size")),
    };
    Summary {
        context_length: opt_usize(md, &k("context_length")),
        n_layer,
        n_embd,
        sliding_window: opt_usize(md, &k("attention.sliding_window")),
        sliding: kind(true),
        global: kind(false),
        shared_kv_layers: opt_usize(md, &k("attention.shared_kv_layers")).unwrap_or(0),
        n_expert: opt_usize(md, &k("expert_count")).filter(|&n| n > 0),
        n_expert_used: opt_usize(md, &k("expert_used_count")).filter(|&n| n > 0),
        expert_feed_forward_length: opt_usize(md, &k("expert_feed_forward_length")),
        vocab_size,
        tokenizer_model: md
            .str_opt("tokenizer.ggml.model")
            .ok()
            .flatten()
            .map(str::to_string),
        chat_template: md.contains("tokenizer.chat_template"),
    }
}

/// KV-cache bytes for `n_ctx` tokens in llama.cpp's layout (docs/gemma4.md §4 table): per layer
/// that owns a cache, n_head_kv × (k + v head dims) elements × cells, where a sliding layer
/// keeps only min(n_ctx, window) cells (K and V both stored, also on K = V layers).
fn kv_bytes(s: &Summary, n_ctx: u64, ty: lode::model::KvType) -> Option<u64> {
    let n_layer = s.n_layer?;
    let owning = n_layer.saturating_sub(s.shared_kv_layers);
    let mut total = 0u64;
    for (kind, sliding) in [(&s.sliding, true), (&s.global, false)] {
        // metadata values, unchecked here: saturate rather than wrap
        let elems = kind
            .n_head_kv?
            .saturating_mul(kind.head_dim_k?.saturating_add(kind.head_dim_v?));
        let per_cell = ty.bytes(elems.min(usize::MAX / 4)) as u64;
        let cells = match (sliding, s.sliding_window) {
            (true, Some(w)) => n_ctx.min(w as u64),
            _ => n_ctx,
        };
        let n = kind.layers.iter().filter(|&&l| l < owning).count() as u64;
        total = total.saturating_add(n.saturating_mul(per_cell).saturating_mul(cells));
    }
    Some(total)
}

fn split_json(s: &Split) -> J {
    json!({
        "total": s.total,
        "always_active": s.always_active,
        "experts": s.experts,
        "active_per_token": s.active_per_token,
    })
}

fn human_count(n: u64) -> String {
    let x = n as f64;
    if x >= 1e9 {
        format!("{:.2} B", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        n.to_string()
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), T::to_string)
}

pub fn run(args: Args) -> Result<()> {
    let Some(path) = args.model_flag.as_ref().or(args.model.as_ref()) else {
        anyhow::bail!("give the model file: lode inspect -m MODEL");
    };
    // lode's errors already name the file and carry their cause in the message; flatten them so
    // the one-line report does not repeat the cause (anyhow's `{:#}` would print it twice).
    let flat = |e: lode::Error| anyhow::anyhow!("{e}");
    let g = Gguf::open(path).map_err(flat)?;
    let md = g.metadata();
    let arch = g
        .architecture()
        .with_context(|| format!("{}", path.display()))?
        .to_string();
    let report = ParamReport::from_gguf(&g).with_context(|| format!("{}", path.display()))?;
    // metadata sizes tables below: bounded by the file before anything is allocated
    if md.contains(&format!("{arch}.block_count")) {
        lode::model::config::n_layer(&g, &arch).with_context(|| format!("{}", path.display()))?;
    }
    if let Some(n) = args.ctx {
        lode::model::config::check_ctx(usize::try_from(n).unwrap_or(usize::MAX))?;
    }
    let s = summary(&g, &arch);
    let file_type = md.u32_opt("general.file_type").ok().flatten();
    let file_type_str =
        file_type.map(|v| file_type_name(v).map_or(format!("unknown ({v})"), str::to_string));
    let mut by_type: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for t in g.tensors() {
        let e = by_type.entry(t.ty.name()).or_default();
        e.0 += 1;
        e.1 += t.n_bytes;
    }
    let kv = args.ctx.map(|n| (n, kv_bytes(&s, n, args.kv_type)));
    // what lode itself allocates (K = V layers store one tensor; rings carry a batch's slack)
    let lode_kv = args
        .ctx
        .and_then(|n| lode::model::kv_estimate(&g, n as usize, args.kv_type).ok());

    if args.json {
        let metadata: serde_json::Map<String, J> = md
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_json()))
            .collect();
        let tensors: Vec<J> = g
            .tensors()
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "type": t.ty.name(),
                    "shape": t.dims,
                    "offset": t.offset,
                    "bytes": t.n_bytes,
                    "file": t.file,
                })
            })
            .collect();
        let types: serde_json::Map<String, J> = by_type
            .iter()
            .map(|(k, (n, b))| (k.to_string(), json!({ "tensors": n, "bytes": b })))
            .collect();
        let mut out = json!({
            "path": path.display().to_string(),
            "architecture": arch,
            "name": md.str_opt("general.name").ok().flatten(),
            "file_type": file_type_str,
            "file_type_id": file_type,
            "version": g.version(),
            "alignment": g.alignment(),
            "files": g.files().len(),
            "summary": s,
            "metadata": metadata,
            "tensors": tensors,
            "bytes_per_type": types,
            "params": split_json(&report.params),
            "bytes": split_json(&report.bytes),
        });
        if let Some((n, b)) = kv {
            out["kv_cache"] = json!({ "n_ctx": n, "type": args.kv_type.name(), "bytes": b });
            if let Some(e) = &lode_kv {
                out["kv_cache"]["lode"] = json!({
                    "global_bytes_per_token": e.global_per_token,
                    "global_bytes": e.global,
                    "sliding_window_bytes": e.sliding_window,
                    "batch_slack_bytes": e.sliding_slack,
                    "bytes": e.global + e.sliding_window,
                    "allocated_at_full_context": e.total(),
                });
            }
        }
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(());
    }

    let p = &report.params;
    let b = &report.bytes;
    let files = g.files().len();
    outln!(
        "model           {}{}",
        path.display(),
        if files > 1 {
            format!(" ({files} splits)")
        } else {
            String::new()
        }
    )?;
    outln!("architecture    {arch}")?;
    outln!(
        "name            {}",
        md.str_opt("general.name").ok().flatten().unwrap_or("-")
    )?;
    outln!("file type       {}", opt(&file_type_str))?;
    outln!(
        "gguf            v{}, alignment {}, {} metadata keys",
        g.version(),
        g.alignment(),
        md.len()
    )?;
    outln!("context length  {}", opt(&s.context_length))?;
    outln!("embedding       {}", opt(&s.n_embd))?;
    let layers = |k: &LayerKind| match k.layers.as_slice() {
        [] => "0".to_string(),
        l if l.len() <= 8 => format!(
            "{} ({})",
            l.len(),
            l.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        l => format!("{}", l.len()),
    };
    outln!(
        "layers          {} — sliding {}, global {}{}",
        opt(&s.n_layer),
        layers(&s.sliding),
        layers(&s.global),
        s.sliding_window
            .map_or(String::new(), |w| format!("; window {w}"))
    )?;
    for (label, k) in [("sliding", &s.sliding), ("global", &s.global)] {
        if !k.layers.is_empty() {
            outln!(
                "  {label:<13} heads {} q / {} kv, head dim {} k / {} v",
                opt(&k.n_head),
                opt(&k.n_head_kv),
                opt(&k.head_dim_k),
                opt(&k.head_dim_v)
            )?;
        }
    }
    match (s.n_expert, s.n_expert_used) {
        (Some(n), Some(u)) => outln!(
            "experts         {n}, {u} used per token{}",
            s.expert_feed_forward_length
                .map_or(String::new(), |f| format!(", expert ffn {f}"))
        )?,
        _ => outln!("experts         none (dense)")?,
    }
    outln!(
        "vocabulary      {} ({} tokenizer)",
        opt(&s.vocab_size),
        s.tokenizer_model.as_deref().unwrap_or("no")
    )?;
    outln!(
        "chat template   {}",
        if s.chat_template { "yes" } else { "no" }
    )?;
    outln!(
        "tensors         {}, {}",
        g.tensors().len(),
        human_bytes(g.tensor_bytes())
    )?;
    for (ty, (n, bytes)) in &by_type {
        outln!("  {ty:<13} {n:>5} tensors  {}", human_bytes(*bytes))?;
    }
    outln!(
        "parameters      total {}, always active {}, experts {}",
        human_count(p.total),
        human_count(p.always_active),
        human_count(p.experts)
    )?;
    outln!(
        "                active per token {} ({})",
        human_count(p.active_per_token),
        p.active_per_token
    )?;
    outln!(
        "weight bytes    total {}, always active {}, experts {}",
        human_bytes(b.total),
        human_bytes(b.always_active),
        human_bytes(b.experts)
    )?;
    outln!(
        "                read per decoded token {} (the weight traffic per token)",
        human_bytes(b.active_per_token)
    )?;
    if let Some((n, kvb)) = kv {
        match kvb {
            Some(kvb) => outln!(
                "kv cache        {} at {n} tokens ({}, llama.cpp layout); a token at that position reads weights + cache = {}",
                human_bytes(kvb),
                args.kv_type,
                human_bytes(kvb.saturating_add(b.active_per_token))
            )?,
            None => outln!("kv cache        unknown (head counts or head dims missing from the metadata)")?,
        }
    }
    if let Some(e) = &lode_kv {
        outln!(
            "lode kv cache   {} = global {} ({} B/token, K = V layers store one tensor) + sliding window {}; + batch slack {}",
            human_bytes(e.global + e.sliding_window),
            human_bytes(e.global),
            e.global_per_token,
            human_bytes(e.sliding_window),
            human_bytes(e.sliding_slack)
        )?;
    }
    if args.tensors {
        outln!()?;
        outln!(
            "{:<44} {:<8} {:<24} {:>14}",
            "tensor",
            "type",
            "shape",
            "bytes"
        )?;
        for t in g.tensors() {
            let shape = format!("{:?}", t.dims);
            outln!(
                "{:<44} {:<8} {:<24} {:>14}",
                t.name,
                t.ty.name(),
                shape,
                t.n_bytes
            )?;
        }
    }
    Ok(())
}

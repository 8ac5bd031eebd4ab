//! `lode serve`: an OpenAI-compatible HTTP server (see docs/serve.md).

use anyhow::{Context, Result};
use clap::Args;

use lode::server::{self, ServeOptions};

use super::common::{self, ModelArgs};
use super::sampling::SamplingArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: ModelArgs,
    /// Address to listen on. Anything but loopback needs --api-key (or --allow-unauthenticated).
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0 = any free port; the chosen address is printed).
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Requests generated at once; each worker holds its own KV cache.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub parallel: usize,
    /// Requests that may wait for a free worker; beyond that the server answers 503.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub queue: usize,
    /// Require `Authorization: Bearer KEY` on every endpoint but /health. Visible to other
    /// users in `ps`: prefer --api-key-file or the LODE_API_KEY environment variable.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Read the API key from this file (first line, surrounding whitespace trimmed).
    #[arg(long, value_name = "PATH", conflicts_with = "api_key")]
    pub api_key_file: Option<std::path::PathBuf>,
    /// Listen on a non-loopback address without an API key.
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// Vision projector GGUF: accept `image_url` parts (data: URLs) in chat messages.
    #[arg(long, value_name = "PATH")]
    pub mmproj: Option<std::path::PathBuf>,
    /// Soft-token budget per image (70, 140, 280, 560, 1120).
    #[arg(long, value_name = "N", default_value_t = lode::vision::DEFAULT_MAX_SOFT_TOKENS)]
    pub image_max_tokens: usize,
    /// Also accept `image_url` parts naming files on this machine (`file://…` or `/…`).
    #[arg(long)]
    pub allow_local_images: bool,
    #[command(flatten)]
    pub window: super::args::Window<512>,
    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub max_body: usize,
    /// Seconds a client may take to send a request's headers, and again its body.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub read_timeout: f64,
    /// Seconds running requests may go on after SIGINT/SIGTERM before they are cancelled.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub shutdown_timeout: f64,
    /// Images per chat request (more: 400 before any is decoded).
    #[arg(long, value_name = "N", default_value_t = lode::server::images::DEFAULT_MAX_IMAGES)]
    pub max_images: usize,
    /// Pixels per image, checked from the image header before decoding.
    #[arg(long, value_name = "N", default_value_t = lode::server::images::DEFAULT_MAX_PIXELS)]
    pub image_max_pixels: u64,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

pub fn run(a: ServeArgs) -> Result<()> {
    a.common.setup()?;
    if a.window.batch.n == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    let api_key = api_key(&a)?;
    let secs = |flag: &str, v: f64| {
        if v.is_finite() && v > 0.0 && v <= 86_400.0 {
            Ok(std::time::Duration::from_secs_f64(v))
        } else {
            Err(anyhow::anyhow!(
                "{flag} must be between 0 and 86400 seconds (got {v})"
            ))
        }
    };
    let read_timeout = secs("--read-timeout", a.read_timeout)?;
    let shutdown_timeout = secs("--shutdown-timeout", a.shutdown_timeout)?;
    if !server::is_loopback(&a.host) && api_key.is_none() {
        if !a.allow_unauthenticated {
            anyhow::bail!(
                "--host {} is reachable from other machines: set --api-key KEY, or pass \
                 --allow-unauthenticated to serve without one",
                a.host
            );
        }
        eprintln!(
            "lode: warning: serving on {} without an API key; anyone who can reach it can use it",
            a.host
        );
    }
    let sampling = a.sampling.config()?;
    let opened = common::open(&a.common.model)?;
    let image_args = super::run::ImageArgs {
        images: Vec::new(),
        mmproj: a.mmproj.clone(),
        image_max_tokens: a.image_max_tokens,
    };
    let vision = image_args
        .load_mmproj(&opened)?
        .map(|mm| lode::server::images::ServeVision {
            mmproj: std::sync::Arc::new(mm),
            max_soft_tokens: a.image_max_tokens,
            allow_local_images: a.allow_local_images,
            max_images: a.max_images,
            max_pixels: a.image_max_pixels,
        });
    if a.allow_local_images && vision.is_none() {
        anyhow::bail!("--allow-local-images needs --mmproj");
    }
    let model_id = a
        .common
        .model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let opts = ServeOptions {
        host: a.host,
        port: a.port,
        parallel: a.parallel,
        queue: a.queue,
        api_key,
        n_ctx: a.window.ctx.n,
        batch: a.window.batch.n,
        max_body_bytes: a.max_body,
        read_timeout,
        shutdown_timeout,
        model_id,
        sampling,
        paging: a.common.paging.options(),
        kv_type: a.common.paging.kv_type,
        vision,
    };
    server::serve(opened.gguf, opened.tokenizer, opts).context("lode serve")
}

/// The API key from --api-key, --api-key-file or `LODE_API_KEY` (in that order).
fn api_key(a: &ServeArgs) -> Result<Option<String>> {
    let key = if let Some(k) = &a.api_key {
        Some(k.clone())
    } else if let Some(path) = &a.api_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --api-key-file {}", path.display()))?;
        Some(text.lines().next().unwrap_or("").to_string())
    } else {
        std::env::var("LODE_API_KEY").ok()
    };
    match key.map(|k| k.trim().to_string()) {
        Some(k) if k.is_empty() => {
            anyhow::bail!("the API key is empty (--api-key, --api-key-file or LODE_API_KEY)")
        }
        k => Ok(k),
    }
}

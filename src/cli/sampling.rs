//! The sampling flags, declared once for `run`, `chat` and `serve` (as request defaults), with
//! llama.cpp's names and defaults. Negative values are values (`--temp -1`, a negative
//! `--presence-penalty`), not flags.

use anyhow::Result;
use clap::Args;

use lode::sample::SamplerConfig;

#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 or below = greedy (always the most likely token).
    #[arg(
        long,
        visible_alias = "temperature",
        value_name = "T",
        default_value_t = 0.8,
        allow_negative_numbers = true
    )]
    pub temp: f32,
    /// Keep only the K most likely tokens (0 = off).
    #[arg(long, value_name = "K", default_value_t = 40)]
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches P (1 = off).
    #[arg(long, value_name = "P", default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens less likely than P times the most likely one (0 = off).
    #[arg(long, value_name = "P", default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalise tokens repeated within the last --repeat-last-n tokens (1 = off).
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Window of recent tokens (prompt included) the penalties look at.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Subtracted from the logit of every token already in the window (0 = off).
    #[arg(
        long,
        value_name = "X",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub presence_penalty: f32,
    /// Subtracted per occurrence in the window (0 = off).
    #[arg(
        long,
        value_name = "X",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub frequency_penalty: f32,
    /// Random seed (default: a fresh one; `run` prints it in its summary, `chat` and `serve`
    /// draw one per answer).
    #[arg(short = 's', long, value_name = "S")]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// The checked config with `seed` (the caller picks a fresh one when --seed is absent).
    pub fn config_with_seed(&self, seed: u64) -> Result<SamplerConfig> {
        let cfg = SamplerConfig {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            penalty_last_n: self.repeat_last_n,
            seed,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config; without --seed the seed is 0, which stands for "fresh per answer".
    pub fn config(&self) -> Result<SamplerConfig> {
        self.config_with_seed(self.seed.unwrap_or(0))
    }

    /// Whether answers are drawn at random (a temperature above 0).
    pub fn sampled(&self) -> bool {
        self.temp > 0.0
    }
}

/// A seed from the clock and the process id, for runs without --seed.
pub fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    t ^ ((std::process::id() as u64) << 32)
}

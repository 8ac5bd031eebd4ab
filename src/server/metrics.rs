//! Counters for `/metrics`, in Prometheus' text exposition format (version 0.0.4).
//! Every value is an atomic or behind a short lock; reading never blocks the workers.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    /// (route, status) -> responses sent.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    pub prompt_tokens: AtomicU64,
    /// Prompt tokens served from a worker's KV cache instead of being evaluated.
    pub prompt_tokens_cached: AtomicU64,
    pub generated_tokens: AtomicU64,
    /// Wall time of prompt evaluation and of decoding, microseconds.
    pub prompt_micros: AtomicU64,
    pub gen_micros: AtomicU64,
    pub queue_depth: AtomicU64,
    pub workers_busy: AtomicU64,
    pub workers: AtomicU64,
    pub rejected_busy: AtomicU64,
    /// Generations stopped because the client went away.
    pub cancelled: AtomicU64,
    /// Decode speed of the last finished generation, tokens/s × 1000.
    pub last_gen_milli_tps: AtomicU64,
}

impl Metrics {
    pub fn count_response(&self, route: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_string(), status)).or_default() += 1;
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let g = |a: &AtomicU64| a.load(Relaxed);
        s.push_str("# HELP lode_requests_total HTTP responses by route and status.\n");
        s.push_str("# TYPE lode_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "lode_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    escape_label(route)
                );
            }
        }
        let mut one = |name: &str, kind: &str, help: &str, v: String| {
            let _ = write!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            );
        };
        one(
            "lode_prompt_tokens_total",
            "counter",
            "Prompt tokens received.",
            g(&self.prompt_tokens).to_string(),
        );
        one(
            "lode_prompt_tokens_cached_total",
            "counter",
            "Prompt tokens reused from the KV cache.",
            g(&self.prompt_tokens_cached).to_string(),
        );
        one(
            "lode_generated_tokens_total",
            "counter",
            "Tokens sampled.",
            g(&self.generated_tokens).to_string(),
        );
        one(
            "lode_prompt_seconds_total",
            "counter",
            "Time spent evaluating prompts.",
            secs(g(&self.prompt_micros)),
        );
        one(
            "lode_generation_seconds_total",
            "counter",
            "Time spent decoding.",
            secs(g(&self.gen_micros)),
        );
        one(
            "lode_generation_tokens_per_second",
            "gauge",
            "Decode speed of the last finished request.",
            format!("{:.3}", g(&self.last_gen_milli_tps) as f64 / 1000.0),
        );
        one(
            "lode_queue_depth",
            "gauge",
            "Requests waiting for a worker.",
            g(&self.queue_depth).to_string(),
        );
        one(
            "lode_workers_busy",
            "gauge",
            "Workers generating now.",
            g(&self.workers_busy).to_string(),
        );
        one(
            "lode_workers",
            "gauge",
            "Inference workers (--parallel).",
            g(&self.workers).to_string(),
        );
        one(
            "lode_rejected_busy_total",
            "counter",
            "Requests refused with 503 because the queue was full.",
            g(&self.rejected_busy).to_string(),
        );
        one(
            "lode_cancelled_total",
            "counter",
            "Generations stopped because the client disconnected.",
            g(&self.cancelled).to_string(),
        );
        s
    }
}

fn secs(micros: u64) -> String {
    format!("{:.6}", micros as f64 / 1e6)
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.count_response("/health", 200);
        m.count_response("/health", 200);
        m.generated_tokens.store(7, Relaxed);
        m.gen_micros.store(1_500_000, Relaxed);
        let t = m.render();
        assert!(t.contains("lode_requests_total{route=\"/health\",status=\"200\"} 2\n"));
        assert!(t.contains("lode_generated_tokens_total 7\n"));
        assert!(t.contains("lode_generation_seconds_total 1.500000\n"));
        assert!(t.contains("# TYPE lode_queue_depth gauge\n"));
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(line.split(' ').count(), 2, "{line}");
        }
    }
}

#!/usr/bin/env python3
"""Concurrent streaming clients against `lode serve --parallel N` and `llama-server -np N`
on the same GGUF and thread count, in one run: aggregate generation speed and each client's
time to first token. Standard library only. Called by `scripts/serve-load-test.sh bench`.

    scripts/serve-bench.py --model M.gguf [--clients 1,2,4,8] [--tokens 64] [--threads 2]
                           [--lode target/release/lode] [--llama-server PATH] [--ctx 1024]
                           [--reps 2] [--skip-llama]

Every client sends the same kind of request at the same moment: `/v1/completions`, a short
prompt of its own, `max_tokens` tokens with `ignore_eos` (both servers honour it), greedy,
streamed. Aggregate tok/s = all generated tokens / (last client done - first request sent);
TTFT = first streamed token - request sent, per client. Each point is the best of `--reps`.
Servers run one after the other, never together (the 26B fills the page cache).
"""

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

PROMPTS = [
    "The history of the printing press",
    "A recipe for bread starts with",
    "The rules of chess say that",
    "Photosynthesis is the process by which",
    "The first law of thermodynamics",
    "In the year 1492, sailors",
    "A good night's sleep helps",
    "The Roman Empire was",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, secs=600):
    t0 = time.time()
    while time.time() - t0 < secs:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready")


def stream_one(port, prompt, tokens, out, i, barrier):
    body = json.dumps(
        {
            "prompt": prompt,
            "max_tokens": tokens,
            "temperature": 0,
            "ignore_eos": True,
            "stream": True,
        }
    )
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=1200)
    barrier.wait()
    t0 = time.perf_counter()
    c.request(
        "POST", "/v1/completions", body, {"Content-Type": "application/json"}
    )
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:300]!r}")
    first, n = None, 0
    for line in r:
        line = line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        ev = json.loads(line[6:])
        for ch in ev.get("choices", []):
            if ch.get("text"):
                n += 1  # one token per chunk in both servers
                if first is None:
                    first = time.perf_counter()
    end = time.perf_counter()
    out[i] = (t0, first if first is not None else end, end, n)


WARM_UP = "Zebras, kites and quartz: an unrelated warm-up request."


def measure(port, clients, tokens, prompts=PROMPTS):
    out = [None] * clients
    barrier = threading.Barrier(clients)
    threads = [
        threading.Thread(
            target=stream_one,
            args=(port, prompts[i % len(prompts)], tokens, out, i, barrier),
        )
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(o is None for o in out):
        raise RuntimeError("a client failed")
    start = min(o[0] for o in out)
    end = max(o[2] for o in out)
    total = sum(o[3] for o in out)
    ttft = sorted(o[1] - o[0] for o in out)
    return {
        "tok_s": total / (end - start),
        "tokens": total,
        "ttft": ttft,
    }


def run_server(name, cmd, port, clients_list, tokens, reps, log):
    print(f"# {name}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    results = {}
    for n in clients_list:
        argv = [a.replace("{N}", str(n)).replace("{CTX_N}", str(n * CTX)) for a in cmd]
        with open(log, "ab") as lf:
            proc = subprocess.Popen(argv, stdout=lf, stderr=lf)
        try:
            wait_ready(port, proc)
            # warm-up (first touch of the weights and caches) with a prompt that shares no
            # prefix with the measured ones, so no server answers them from its prompt cache
            measure(port, 1, 4, [WARM_UP])
            best = None
            for _ in range(reps):
                r = measure(port, n, tokens)
                if best is None or r["tok_s"] > best["tok_s"]:
                    best = r
            results[n] = best
            t = best["ttft"]
            print(
                f"{name:>12} clients {n}: {best['tok_s']:7.1f} tok/s aggregate, "
                f"TTFT min {t[0]*1000:6.0f} / median {t[len(t)//2]*1000:6.0f} / "
                f"max {t[-1]*1000:6.0f} ms",
                flush=True,
            )
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return results


CTX = 1024


def main():
    global CTX
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--clients", default="1,2,4,8")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=1024, help="context per client")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--lode", default=os.environ.get("LODE_BIN", "target/release/lode"))
    ap.add_argument(
        "--llama-server",
        default=os.path.expanduser("~/.cache/lode-ref/llama.cpp/build/bin/llama-server"),
    )
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--lode-args", default="", help="extra lode serve arguments")
    ap.add_argument(
        "--llama-args",
        default="",
        help="extra llama-server arguments (e.g. --no-repack for the 26B: repacking would copy "
        "the weights into anonymous memory)",
    )
    ap.add_argument("--log", default="/tmp/serve-bench.log")
    a = ap.parse_args()
    CTX = a.ctx
    clients = [int(c) for c in a.clients.split(",")]
    port = free_port()
    print(
        f"model {a.model}, {a.threads} threads, {a.tokens} tokens per client, "
        f"best of {a.reps}, load {os.getloadavg()[0]:.2f}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        flush=True,
    )
    lode = run_server(
        "lode",
        [a.lode, "serve", "-m", a.model, "--port", str(port), "--threads",
         str(a.threads), "--parallel", "{N}", "--ctx", str(a.ctx), "--queue", "16"]
        + a.lode_args.split(),
        port, clients, a.tokens, a.reps, a.log,
    )
    llama = {}
    if not a.skip_llama:
        llama = run_server(
            "llama-server",
            [a.llama_server, "-m", a.model, "--port", str(port), "-t", str(a.threads),
             "-tb", str(a.threads), "-np", "{N}", "-c", "{CTX_N}", "-ngl", "0"]
            + a.llama_args.split(),
            port, clients, a.tokens, a.reps, a.log,
        )
    print(f"load at the end {os.getloadavg()[0]:.2f}")
    print("| clients | lode tok/s | lode TTFT median (ms) | llama-server tok/s "
          "| llama-server TTFT median (ms) | lode / llama-server | lode vs its 1 client |")
    print("|---|---|---|---|---|---|---|")
    for n in clients:
        lo, ll = lode.get(n), llama.get(n)
        med = lambda r: r["ttft"][len(r["ttft"]) // 2] * 1000
        ratio = f"{lo['tok_s'] / ll['tok_s']:.2f}×" if lo and ll else "–"
        scale = f"{lo['tok_s'] / lode[clients[0]]['tok_s']:.2f}×" if lo else "–"
        print(
            f"| {n} | {lo['tok_s']:.1f} | {med(lo):.0f} | "
            + (f"{ll['tok_s']:.1f} | {med(ll):.0f}" if ll else "– | –")
            + f" | {ratio} | {scale} |"
        )


if __name__ == "__main__":
    main()

//! `lode serve` driven over plain HTTP: the OpenAI endpoints, their errors and limits, the
//! queue, cancellation, and garbage input, on the tiny Gemma 4 fixture (fast) and the real
//! Gemma 3 270M.

mod serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lode::sample::Rng;
use serde_json::{json, Value};
use serve_support::{gemma3_path, request, Resp, Server, TINY};

const KEY: &str = "sk-test-key";
const AUTH: (&str, &str) = ("Authorization", "Bearer sk-test-key");

fn assert_error(r: &Resp, status: u16, needle: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    let e = r.json();
    let err = &e["error"];
    for k in ["message", "type", "param", "code"] {
        assert!(err.get(k).is_some(), "error without `{k}`: {e}");
    }
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    e
}

fn chat_body(content: &str, extra: Value) -> String {
    let mut b = json!({
        "model": "tiny",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 8,
        "temperature": 0,
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b.to_string()
}

/// Parses an SSE chat stream: (content, reasoning, finish_reason, usage chunk if any).
fn read_chat_stream(r: &Resp) -> (String, String, String, Option<Value>) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = r.sse();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let (mut content, mut reasoning, mut finish, mut usage) =
        (String::new(), String::new(), String::new(), None);
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert!(v.get("error").is_none(), "error event {v}");
        assert_eq!(v["object"], "chat.completion.chunk");
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
        let Some(c) = v["choices"].get(0) else {
            continue;
        };
        content.push_str(c["delta"]["content"].as_str().unwrap_or(""));
        reasoning.push_str(c["delta"]["reasoning_content"].as_str().unwrap_or(""));
        if let Some(f) = c["finish_reason"].as_str() {
            finish = f.to_string();
        }
    }
    (content, reasoning, finish, usage)
}

#[test]
fn tiny_endpoints_errors_and_limits() {
    let s = Server::start(
        std::path::Path::new(TINY),
        &["--api-key", KEY, "--ctx", "256", "--max-body", "65536"],
    );
    // /health needs no key; everything else does.
    let h = s.get("/health", &[]);
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");
    assert_error(&s.get("/v1/models", &[]), 401, "API key");
    assert_error(
        &s.get("/v1/models", &[("Authorization", "Bearer wrong")]),
        401,
        "API key",
    );
    let e = assert_error(
        &s.post("/v1/chat/completions", &[], &chat_body("Hi", json!({}))),
        401,
        "API key",
    );
    assert_eq!(e["error"]["type"], "authentication_error");

    let m = s.get("/v1/models", &[AUTH]).json();
    assert_eq!(m["object"], "list");
    assert_eq!(m["data"][0]["id"], "gemma4-tiny-public-q8_0");

    // Non-streaming chat.
    let r = s.post(
        "/v1/chat/completions",
        &[AUTH],
        &chat_body("Hello there", json!({})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert!(v["choices"][0]["message"]["content"].is_string());
    let finish = v["choices"][0]["finish_reason"]
        .as_str()
        .unwrap()
        .to_string();
    let n = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(
        (finish == "length" && n == 8) || (finish == "stop" && n <= 8),
        "{v}"
    );
    let p = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(v["usage"]["total_tokens"].as_u64().unwrap(), p + n);

    // The same conversation again: greedy, so the same answer, and the prompt comes from the
    // KV cache (all but the last token).
    let again = s
        .post(
            "/v1/chat/completions",
            &[AUTH],
            &chat_body("Hello there", json!({})),
        )
        .json();
    assert_eq!(again["choices"][0]["message"], v["choices"][0]["message"]);
    assert_eq!(
        again["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64(),
        Some(p - 1)
    );

    // Streaming gives the same text, and ends with [DONE].
    let r = s.post(
        "/v1/chat/completions",
        &[AUTH],
        &chat_body(
            "Hello there",
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ),
    );
    let (content, _, stream_finish, usage) = read_chat_stream(&r);
    assert_eq!(
        content,
        v["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(stream_finish, finish);
    assert_eq!(usage.unwrap()["completion_tokens"], n);

    // A tools request is accepted (the tiny template ignores tools; the answer is text).
    let tools = json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Get the weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]);
    let r = s.post(
        "/v1/chat/completions",
        &[AUTH],
        &chat_body(
            "Weather in Paris?",
            json!({"tools": tools, "tool_choice": "auto"}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // A named tool_choice forces a call opening; the random model then writes whatever.
    let r = s.post(
        "/v1/chat/completions",
        &[AUTH],
        &chat_body(
            "Weather?",
            json!({"tools": tools,
                   "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_error(
        &s.post(
            "/v1/chat/completions",
            &[AUTH],
            &chat_body(
                "x",
                json!({"tools": tools, "tool_choice": {"function": {"name": "nope"}}}),
            ),
        ),
        400,
        "`nope`",
    );

    // /v1/completions, both ways.
    let c = s
        .post(
            "/v1/completions",
            &[AUTH],
            r#"{"prompt": "Once upon", "max_tokens": 4, "temperature": 0}"#,
        )
        .json();
    assert_eq!(c["object"], "text_completion");
    assert!(
        c["usage"]["completion_tokens"].as_u64().unwrap() <= 4,
        "{c}"
    );
    let r = s.post(
        "/v1/completions",
        &[AUTH],
        r#"{"prompt": "Once upon", "max_tokens": 4, "temperature": 0, "stream": true}"#,
    );
    let ev = r.sse();
    assert_eq!(ev.last().unwrap(), "[DONE]");
    let text: String = ev[..ev.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .map(|v| v["choices"][0]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, c["choices"][0]["text"].as_str().unwrap());

    // Over-long prompt: 400 naming the numbers.
    let long = "word ".repeat(400);
    let e = assert_error(
        &s.post(
            "/v1/chat/completions",
            &[AUTH],
            &chat_body(&long, json!({})),
        ),
        400,
        "context holds 256 tokens",
    );
    assert_eq!(e["error"]["code"], "context_length_exceeded");
    assert_error(
        &s.post(
            "/v1/chat/completions",
            &[AUTH],
            &chat_body("Hi", json!({"max_tokens": 1000})),
        ),
        400,
        "max_tokens is 1000",
    );
    // Malformed bodies.
    assert_error(
        &s.post("/v1/chat/completions", &[AUTH], "{\"messages\": [}"),
        400,
        "not valid JSON",
    );
    assert_error(
        &s.post("/v1/chat/completions", &[AUTH], r#"{"messages": "hi"}"#),
        400,
        "invalid request",
    );
    assert_error(
        &s.post("/v1/chat/completions", &[AUTH], r#"{"messages": []}"#),
        400,
        "must not be empty",
    );
    assert_error(
        &s.post(
            "/v1/chat/completions",
            &[AUTH],
            &chat_body("Hi", json!({"top_p": 7})),
        ),
        400,
        "out of range",
    );
    assert_error(
        &s.post("/v1/completions", &[AUTH], r#"{"prompt": [999999]}"#),
        400,
        "out of range",
    );
    // Oversized body: 413, announced or not.
    let big = format!("{{\"prompt\": \"{}\"}}", "a".repeat(70_000));
    assert_error(
        &s.post("/v1/completions", &[AUTH], &big),
        413,
        "65536 bytes",
    );
    assert_error(&chunked_post(&s.addr, &big), 413, "65536 bytes");
    // Unknown route and method.
    assert_error(&s.get("/v2/anything", &[AUTH]), 404, "no such endpoint");
    assert_eq!(s.get("/v1/chat/completions", &[AUTH]).status, 405);

    // /metrics: Prometheus text with counters that moved.
    let m = s.get("/metrics", &[AUTH]);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let t = m.text();
    assert!(t.contains("lode_requests_total{route=\"/v1/chat/completions\",status=\"200\"}"));
    assert!(t.contains("lode_requests_total{route=\"/v1/chat/completions\",status=\"401\"} 1"));
    assert!(s.metric("lode_generated_tokens_total", &[AUTH]) >= 5.0);
    assert!(s.metric("lode_prompt_tokens_cached_total", &[AUTH]) > 0.0);
    assert_eq!(s.metric("lode_queue_depth", &[AUTH]), 0.0);
    assert_eq!(s.metric("lode_workers", &[AUTH]), 1.0);
}

/// A POST with `Transfer-Encoding: chunked` (no length announced).
fn chunked_post(addr: &str, body: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let _ = s.write_all(head.as_bytes());
    for c in body.as_bytes().chunks(8192) {
        let _ = s.write_all(format!("{:x}\r\n", c.len()).as_bytes());
        let _ = s.write_all(c);
        let _ = s.write_all(b"\r\n");
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    serve_support::parse_response(&raw)
}

/// Opens a streaming chat that would run long, and returns the socket once the first event
/// arrived (so a worker is busy with it).
fn open_long_stream(addr: &str) -> TcpStream {
    let body = chat_body(
        "Tell me everything.",
        json!({"max_tokens": 3000, "stream": true, "ignore_eos": true}),
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let got = String::from_utf8_lossy(&buf[..n]);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    s
}

#[test]
fn full_queue_is_503_and_disconnect_cancels() {
    let s = Server::start(
        std::path::Path::new(TINY),
        &["--parallel", "1", "--queue", "0", "--ctx", "4096"],
    );
    let busy = open_long_stream(&s.addr);
    let r = s.post("/v1/chat/completions", &[], &chat_body("Hi", json!({})));
    let e = assert_error(&r, 503, "busy");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(e["error"]["code"], "server_busy");
    assert!(s.metric("lode_rejected_busy_total", &[]) >= 1.0);
    // The worker may not have picked the job up yet on a loaded machine.
    let t0 = Instant::now();
    while s.metric("lode_workers_busy", &[]) != 1.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the long request never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // The client leaves: the worker notices at the next token and is free again.
    drop(busy);
    let t0 = Instant::now();
    while s.metric("lode_workers_busy", &[]) != 0.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "worker still busy after the client left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.metric("lode_cancelled_total", &[]), 1.0);
    let r = s.post("/v1/chat/completions", &[], &chat_body("Hi", json!({})));
    assert_eq!(r.status, 200, "{}", r.text());

    // A non-streaming client that leaves mid-generation is cancelled too.
    let body = chat_body(
        "Tell me everything.",
        json!({"max_tokens": 3000, "ignore_eos": true}),
    );
    let mut c = TcpStream::connect(&s.addr).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    let t0 = Instant::now();
    while s.metric("lode_workers_busy", &[]) == 0.0 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(c);
    let t0 = Instant::now();
    while s.metric("lode_cancelled_total", &[]) < 2.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "non-streaming request not cancelled:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn garbage_never_takes_the_server_down() {
    let mut s = Server::start(std::path::Path::new(TINY), &["--max-body", "4096"]);
    let mut rng = Rng::new(0x5EED);
    let mut next = |n: u64| rng.next_u64() % n;
    let fragments = [
        "{",
        "}",
        "[",
        "]",
        "\"messages\"",
        ":",
        ",",
        "\"role\"",
        "\"user\"",
        "\"content\"",
        "null",
        "true",
        "1e999",
        "-0",
        "\"\\ud800\"",
        "\"tools\"",
        "\"tool_choice\"",
        "\"stream\"",
        "\"max_tokens\"",
        "\"prompt\"",
        "{\"role\":\"user\",\"content\":\"x\"}",
        "\u{0}",
        "\u{fffd}",
        "18446744073709551616",
        "\"n\"",
        "2",
    ];
    let paths = [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/health",
        "/metrics",
        "/%ff",
        "/v1/chat/completions?x=1",
    ];
    for i in 0..300 {
        let path = paths[next(paths.len() as u64) as usize];
        let body: Vec<u8> = match i % 3 {
            // Random bytes.
            0 => (0..next(600)).map(|_| next(256) as u8).collect(),
            // JSON-ish token soup.
            1 => (0..next(40))
                .map(|_| fragments[next(fragments.len() as u64) as usize])
                .collect::<String>()
                .into_bytes(),
            // A valid request with one field mangled.
            _ => {
                let mut v = json!({"messages": [{"role": "user", "content": "Hi"}],
                                   "max_tokens": 2, "prompt": "Hi"});
                let field = [
                    "messages",
                    "max_tokens",
                    "prompt",
                    "temperature",
                    "tools",
                    "stream",
                ][next(6) as usize];
                let junk = [
                    json!(null),
                    json!(-1),
                    json!("x"),
                    json!([{}]),
                    json!({"a": 1}),
                    json!(1e300),
                    json!([1, "a"]),
                    json!(true),
                ][next(8) as usize]
                    .clone();
                v[field] = junk;
                v.to_string().into_bytes()
            }
        };
        let method = ["POST", "GET", "PUT"][next(3) as usize];
        let mut headers = vec![];
        if next(4) == 0 {
            headers.push(("Authorization", "Bearer \u{7f}junk"));
        }
        if next(4) == 0 {
            headers.push(("Content-Type", "text/plain; charset=\u{1}"));
        }
        let r = request(&s.addr, method, path, &headers, &body);
        assert!(
            [200, 400, 404, 405, 413, 503].contains(&r.status),
            "{method} {path} -> {}: {}",
            r.status,
            r.text()
        );
        if r.body.is_empty() {
            // Only hyper's own refusal of a malformed request line or header has no body.
            assert_eq!(r.status, 400, "{method} {path}");
        } else if r.status >= 400 {
            assert!(r.json()["error"]["message"].is_string(), "{}", r.text());
        }
    }
    // Raw garbage on the socket, not even HTTP.
    for i in 0..50 {
        let mut c = TcpStream::connect(&s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let junk: Vec<u8> = (0..(i * 37 % 2000)).map(|_| next(256) as u8).collect();
        let _ = c.write_all(&junk);
        let _ = c.write_all(b"\r\n\r\n");
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
    }
    // A header line far too long, and a body shorter than announced.
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = c.write_all(
        format!(
            "GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "a".repeat(1 << 20)
        )
        .as_bytes(),
    );
    let mut sink = Vec::new();
    let _ = c.read_to_end(&mut sink);
    let mut c = TcpStream::connect(&s.addr).unwrap();
    let _ = c.write_all(b"POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"pro");
    drop(c);

    assert!(s.alive(), "the server died:\n{}", s.log());
    assert_eq!(s.get("/health", &[]).status, 200);
    let r = s.post(
        "/v1/completions",
        &[],
        r#"{"prompt": "Hi", "max_tokens": 2}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!s.log().contains("panicked"));
}

#[test]
fn gemma3_270m_chat_stream_tools_and_reuse() {
    let s = Server::start(gemma3_path(), &["--ctx", "512", "--parallel", "2"]);
    let ask = |messages: Value, extra: Value| {
        let mut b = json!({"messages": messages, "max_tokens": 24, "temperature": 0});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        s.post("/v1/chat/completions", &[], &b.to_string())
    };
    // Oracle: llama.cpp's greedy continuation of the same chat prompt (F32 KV), from
    // tests/fixtures/gemma3-270m/generation.json (this 270M answers by echoing the question).
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gemma3-270m/generation.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let user = "Q: What is 12 * 7?\nA:";
    let case = |kind: &str| {
        fixture["runs"]["precise"]["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == kind && c["user_text"] == user)
            .unwrap()["greedy48_text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let q = json!([{"role": "user", "content": user}]);
    let v = ask(q.clone(), json!({})).json();
    let answer = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        answer.len() > 20 && case("chat").starts_with(&answer),
        "{v}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length", "{v}");

    let (content, reasoning, finish, _) =
        read_chat_stream(&ask(q.clone(), json!({"stream": true})));
    assert_eq!(content, answer);
    assert_eq!((reasoning.as_str(), finish.as_str()), ("", "length"));

    let c = s
        .post(
            "/v1/completions",
            &[],
            &json!({"prompt": user, "max_tokens": 12, "temperature": 0}).to_string(),
        )
        .json();
    let text = c["choices"][0]["text"].as_str().unwrap();
    assert!(text.contains("144") && case("raw").starts_with(text), "{c}");

    // The next turn reuses the cached conversation. With two workers the request may land on
    // the one that did not serve the first turn: ask twice, expect reuse at least once.
    let turn2 = json!([
        {"role": "user", "content": user},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "Q: What is 12 * 8?\nA:"},
    ]);
    let cached: Vec<u64> = (0..2)
        .map(|_| {
            let v = ask(turn2.clone(), json!({})).json();
            assert!(
                !v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .is_empty(),
                "{v}"
            );
            v["usage"]["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        cached.iter().any(|&c| c > 20),
        "no prefix reuse: {cached:?}"
    );

    let tools = json!([{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}}}}]);
    let r = ask(q.clone(), json!({"tools": tools}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_error(
        &ask(
            q.clone(),
            json!({"tools": tools, "tool_choice": "required"}),
        ),
        400,
        "no tool-call syntax",
    );
    let long = json!([{"role": "user", "content": "lorem ipsum ".repeat(400)}]);
    assert_error(&ask(long, json!({})), 400, "context holds 512 tokens");
}

//! Chat templates and output parsing against oracle fixtures (tests/fixtures/chat-templates):
//! renders made by transformers' `apply_chat_template`, parses checked against llama.cpp's parser.

mod common;

use std::path::PathBuf;

use common::rng::Rng;
use lode::chat::{ChatTemplate, RenderRequest};
use lode::engine::prompt;
use lode::gguf::Gguf;
use lode::tokenizer::Tokenizer;
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat-templates")
}

fn load_json(name: &str) -> Value {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn template(name: &str) -> ChatTemplate {
    let path = fixture_dir().join(format!("templates/{name}.jinja"));
    ChatTemplate::new(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Show where two long strings first differ.
fn first_difference(got: &str, want: &str) -> String {
    let i = got
        .char_indices()
        .zip(want.chars())
        .find(|((_, a), b)| a != b)
        .map(|((i, _), _)| i)
        .unwrap_or(got.len().min(want.len()));
    let lo = i.saturating_sub(60);
    let g: String = got[lo..].chars().take(120).collect();
    let w: String = want.get(lo..).unwrap_or("").chars().take(120).collect();
    format!("first difference at byte {i}:\n got: {g:?}\nwant: {w:?}")
}

#[test]
fn renders_match_transformers_byte_for_byte() {
    let renders = load_json("renders.json");
    let cases = renders["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 31);
    let mut failures = Vec::new();
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let tmpl = template(case["template"].as_str().unwrap());
        let messages = case["messages"].as_array().unwrap();
        let tools = case["tools"].as_array().map(|t| t.as_slice());
        let kwargs = &case["kwargs"];
        let req = RenderRequest {
            messages,
            tools,
            add_generation_prompt: kwargs["add_generation_prompt"].as_bool().unwrap(),
            enable_thinking: kwargs["enable_thinking"].as_bool().unwrap(),
            bos_token: "<bos>",
            extra: None,
        };
        let want = case["rendered"]
            .as_str()
            .expect("every fixture case renders");
        match tmpl.render(&req) {
            Ok(got) if got == want => {}
            Ok(got) => failures.push(format!("{id}: {}", first_difference(&got, want))),
            Err(e) => failures.push(format!("{id}: error {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn builtin_gemma4_is_the_real_template() {
    let renders = load_json("renders.json");
    let builtin = ChatTemplate::builtin_gemma4();
    let mut n = 0;
    for case in renders["cases"].as_array().unwrap() {
        if case["template"] != "gemma4-31B-it" {
            continue;
        }
        let kwargs = &case["kwargs"];
        let req = RenderRequest {
            messages: case["messages"].as_array().unwrap(),
            tools: case["tools"].as_array().map(|t| t.as_slice()),
            add_generation_prompt: kwargs["add_generation_prompt"].as_bool().unwrap(),
            enable_thinking: kwargs["enable_thinking"].as_bool().unwrap(),
            bos_token: "<bos>",
            extra: None,
        };
        assert_eq!(
            builtin.render(&req).unwrap(),
            case["rendered"].as_str().unwrap()
        );
        n += 1;
    }
    assert_eq!(n, 12);
}

#[test]
fn syntax_error_is_an_err_with_a_message() {
    let err = ChatTemplate::new("{% for m in messages %}{{ m['content'] }}").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("chat template:"), "{msg}");
    assert!(
        msg.contains("endfor") || msg.contains("end of input"),
        "{msg}"
    );

    let err = ChatTemplate::new("{{ messages[0]['role' }}").unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn raise_exception_is_an_err_carrying_its_message() {
    let tmpl = ChatTemplate::new(
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user, got ' + messages[0]['role']) }}{% endif %}ok",
    )
    .unwrap();
    let msgs = [serde_json::json!({"role": "assistant", "content": "hi"})];
    let err = tmpl.render(&RenderRequest::new(&msgs)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "chat template: raise_exception: first message must be from the user, got assistant"
    );
    let msgs = [serde_json::json!({"role": "user", "content": "hi"})];
    assert_eq!(tmpl.render(&RenderRequest::new(&msgs)).unwrap(), "ok");
}

/// Oracle renders made by jinja2 configured like transformers
/// (scripts/fixtures/chat_jinja_refs.py -> jinja_refs.json).
fn jinja_refs() -> Value {
    load_json("jinja_refs.json")
}

/// Renders one of jinja2's cases (`jinja_refs`) with `tmpl` and `bos` as the BOS text, asserts
/// the render is jinja2's byte for byte, and returns it.
fn render_jinja_case(tmpl: &ChatTemplate, case: &Value, bos: &str) -> String {
    let mut req = RenderRequest::new(case["messages"].as_array().unwrap());
    req.add_generation_prompt = case["add_generation_prompt"].as_bool().unwrap();
    req.bos_token = bos;
    let got = tmpl.render(&req).unwrap();
    let want = case["rendered"].as_str().unwrap();
    assert_eq!(
        got,
        want,
        "{}: {}",
        case["id"],
        first_difference(&got, want)
    );
    got
}

#[test]
fn builtin_gemma3_matches_jinja2() {
    let refs = jinja_refs();
    let tmpl = ChatTemplate::builtin_gemma3();
    let cases = refs["gemma3"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        render_jinja_case(&tmpl, case, "<bos>");
    }
    let bad = &refs["gemma3_error"];
    let err = tmpl
        .render(&RenderRequest::new(bad["messages"].as_array().unwrap()))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "chat template: raise_exception: {}",
            bad["message"].as_str().unwrap()
        )
    );
}

#[test]
fn python_isms_match_jinja2() {
    // tojson with transformers' semantics, Python str() of None/bools/floats/containers,
    // jinja2's sequence/number tests, pycompat methods, loop controls.
    let refs = jinja_refs();
    let probe = &refs["probe"];
    let tmpl = ChatTemplate::new(probe["template"].as_str().unwrap()).unwrap();
    let mut extra = serde_json::Map::new();
    extra.insert("data".into(), probe["data"].clone());
    let req = RenderRequest {
        extra: Some(extra),
        ..RenderRequest::new(&[])
    };
    let got = tmpl.render(&req).unwrap();
    let want = probe["rendered"].as_str().unwrap();
    assert_eq!(got, want, "{}", first_difference(&got, want));
}

// ---------------------------------------------------------------------------------------------
// Gemma 4 output parsing

use lode::chat::{parse_gemma4, ParsedMessage, StreamParser};

fn outputs() -> Vec<Value> {
    load_json("outputs.json")["outputs"]
        .as_array()
        .unwrap()
        .clone()
}

fn check_expected(id: &str, got: &ParsedMessage, expected: &Value) {
    assert_eq!(got.reasoning_content, expected["reasoning_content"], "{id}");
    assert_eq!(got.content, expected["content"], "{id}");
    assert!(got.malformed.is_empty(), "{id}: {:?}", got.malformed);
    let want = expected["tool_calls"].as_array().unwrap();
    assert_eq!(got.tool_calls.len(), want.len(), "{id}");
    for (g, w) in got.tool_calls.iter().zip(want) {
        assert_eq!(g.name, w["name"], "{id}");
        assert_eq!(g.arguments, w["arguments"], "{id}");
        assert_eq!(g.arguments_json, w["arguments_json"], "{id}");
    }
}

fn parse_chunks(chunks: &[&str]) -> ParsedMessage {
    let mut p = StreamParser::new();
    let mut msg = ParsedMessage::default();
    for c in chunks {
        for e in p.push(c) {
            msg.apply(e);
        }
    }
    for e in p.finish() {
        msg.apply(e);
    }
    msg
}

#[test]
fn outputs_parse_to_expected_one_shot() {
    let cases = outputs();
    assert_eq!(cases.len(), 7);
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let got = parse_gemma4(case["generated"].as_str().unwrap());
        check_expected(id, &got, &case["expected"]);
    }
}

/// `text` cut at `n_cuts` places drawn from `bounds` (with repeats: empty chunks happen).
fn random_chunks<'t>(
    text: &'t str,
    bounds: &[usize],
    n_cuts: usize,
    rng: &mut Rng,
) -> Vec<&'t str> {
    let mut cuts: Vec<usize> = (0..n_cuts)
        .map(|_| bounds[rng.below(bounds.len())])
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut prev = 0;
    for c in cuts.into_iter().chain([text.len()]) {
        chunks.push(&text[prev..c]);
        prev = c;
    }
    chunks
}

#[test]
fn outputs_parse_to_expected_streamed_at_every_split() {
    for case in &outputs() {
        let id = case["id"].as_str().unwrap();
        let text = case["generated"].as_str().unwrap();
        let splits: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        for &i in &splits {
            let got = parse_chunks(&[&text[..i], &text[i..]]);
            check_expected(&format!("{id} split at {i}"), &got, &case["expected"]);
        }
        // Every character its own chunk (the finest a decoder can deliver).
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        check_expected(
            &format!("{id} per char"),
            &parse_chunks(&refs),
            &case["expected"],
        );
        // Random multi-chunk splits.
        let mut rng = Rng(0x5EED ^ text.len() as u64);
        for round in 0..50 {
            let n_cuts = 1 + rng.below(6);
            let got = parse_chunks(&random_chunks(text, &splits, n_cuts, &mut rng));
            check_expected(&format!("{id} round {round}"), &got, &case["expected"]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming behaviour and robustness

use lode::chat::gemma4_parse::MAX_DEPTH;
use lode::chat::Event;

#[test]
fn stream_emits_text_early_and_holds_only_delimiter_prefixes() {
    let mut p = StreamParser::new();
    assert_eq!(
        p.push("Hello wor"),
        vec![Event::Content("Hello wor".into())]
    );
    // `<|chan` may begin `<|channel>`: held back.
    assert_eq!(p.push("ld <|chan"), vec![Event::Content("ld ".into())]);
    assert_eq!(p.push("nel>thou"), vec![]);
    assert_eq!(p.push("ght\nWhy"), vec![Event::Reasoning("Why".into())]);
    assert_eq!(
        p.push("?<channel|>A <b>"),
        vec![Event::Reasoning("?".into()), Event::Content("A <b>".into()),]
    );
    // `<` alone is held, and released when it turns out to be text.
    assert_eq!(p.push("<"), vec![]);
    assert_eq!(p.push("3"), vec![Event::Content("<3".into())]);
    let ev = p.push("<|tool_call>call:f{x:1}<tool_call|>");
    assert!(
        matches!(&ev[..], [Event::ToolCall(c)] if c.name == "f"),
        "{ev:?}"
    );
    assert_eq!(p.finish(), vec![]);
}

#[test]
fn tricky_strings_and_values() {
    let text = concat!(
        "<|tool_call>call:ns.tool-name_2{",
        "s:<|\"|>a \\\"q\\\" \\\\ {x:[1,2]}, k:v é 😀\n<|\"|>,",
        "<|\"|>quoted key<|\"|>:<|\"|><|\"|>,",
        "n:-1.5e3,i:-12,big:18446744073709551615,b:false,t:true,z:null,",
        "arr:[ ],o:{},deep:{l:[{m:[null,<|\"|>x<|\"|>]}]}",
        "}<tool_call|>"
    );
    let want = serde_json::json!({
        "s": "a \\\"q\\\" \\\\ {x:[1,2]}, k:v é 😀\n",
        "quoted key": "",
        "n": -1500.0, "i": -12, "big": 18446744073709551615u64,
        "b": false, "t": true, "z": null,
        "arr": [], "o": {}, "deep": {"l": [{"m": [null, "x"]}]}
    });
    let msg = parse_gemma4(text);
    assert!(msg.malformed.is_empty(), "{:?}", msg.malformed);
    assert_eq!(msg.tool_calls.len(), 1);
    let call = &msg.tool_calls[0];
    assert_eq!(call.name, "ns.tool-name_2");
    assert_eq!(call.arguments, want);
    let reparsed: Value = serde_json::from_str(&call.arguments_json).unwrap();
    assert_eq!(reparsed, want);
    // Keys keep the model's order.
    assert!(
        call.arguments_json.starts_with(r#"{"s":"#),
        "{}",
        call.arguments_json
    );
}

#[test]
fn thinking_edge_cases() {
    // Lone `<channel|>` (thinking off) is dropped.
    let m = parse_gemma4("<channel|>Paris.");
    assert_eq!(
        (m.reasoning_content.as_str(), m.content.as_str()),
        ("", "Paris.")
    );
    // An unclosed channel (generation cut off) is all reasoning.
    let m = parse_gemma4("<|channel>thought\nstill thinking");
    assert_eq!(
        (m.reasoning_content.as_str(), m.content.as_str()),
        ("still thinking", "")
    );
    // A channel without the `thought` label keeps its text.
    let m = parse_gemma4("<|channel>plan: x<channel|>ok");
    assert_eq!(
        (m.reasoning_content.as_str(), m.content.as_str()),
        ("plan: x", "ok")
    );
    // A call opened inside an unclosed channel still comes out as a call.
    let m = parse_gemma4("<|channel>thought\nneed data<|tool_call>call:f{a:1}<tool_call|>");
    assert_eq!(m.reasoning_content, "need data");
    assert_eq!(m.tool_calls.len(), 1);
    // Stray string delimiters outside a call are plain content.
    let m = parse_gemma4("say <|\"|>hi<|\"|>");
    assert_eq!(m.content, "say <|\"|>hi<|\"|>");
}

/// Every malformed call is reported with its raw text; nothing panics, nothing is dropped.
#[test]
fn malformed_calls_are_reported() {
    let deep = format!(
        "{}1{}",
        "{a:".repeat(MAX_DEPTH + 5),
        "}".repeat(MAX_DEPTH + 5)
    );
    let very_deep = format!("{}1", "[".repeat(200_000));
    let cases: Vec<(String, &str)> = vec![
        ("call:f{a:<|\"|>abc}".into(), "unterminated string"),
        ("call:f{a:{b:1}".into(), "expected `,` or `}`"),
        ("call:f{a:1}}".into(), "unexpected text after"),
        ("call:f{a:1} extra".into(), "unexpected text after"),
        ("call:{a:1}".into(), "no function name"),
        ("call:my func{a:1}".into(), "invalid character"),
        ("f{a:1}".into(), "does not start with `call:`"),
        ("call:f".into(), "no `{`"),
        ("call:f{a 1}".into(), "expected `:`"),
        ("call:f{:1}".into(), "expected a key"),
        ("call:f{a:}".into(), "expected a value"),
        ("call:f{a:celsius}".into(), "expected a value"),
        ("call:f{a:[1,2}".into(), "expected `,` or `]`"),
        ("call:f{a:01x}".into(), "expected a value"),
        ("call:f[1,2]".into(), "no `{`"),
        ("call:f[1]{a:1}".into(), "invalid character"),
        (format!("call:f{{x:{deep}}}"), "nested deeper than"),
        (format!("call:f{{x:{very_deep}}}"), "nested deeper than"),
    ];
    for (body, why) in &cases {
        let text = format!("before<|tool_call>{body}<tool_call|>after");
        let m = parse_gemma4(&text);
        assert!(m.tool_calls.is_empty(), "{body}: {:?}", m.tool_calls);
        assert_eq!(m.malformed.len(), 1, "{body}");
        let bad = &m.malformed[0];
        assert!(
            bad.error.contains(why),
            "{body}: error {:?} lacks {why:?}",
            bad.error
        );
        assert_eq!(bad.raw, format!("<|tool_call>{body}<tool_call|>"));
        assert_eq!(m.content, "beforeafter", "{body}");
    }
    // The last call cut off by the end of output is reported at `finish`.
    let m = parse_gemma4("<|tool_call>call:f{a:1}<tool_call|><|tool_call>call:g{b:<|\"|>x<|\"|>");
    assert_eq!(m.tool_calls.len(), 1);
    assert_eq!(m.malformed.len(), 1);
    assert!(m.malformed[0].error.contains("unterminated tool call"));
    assert_eq!(m.malformed[0].raw, "<|tool_call>call:g{b:<|\"|>x<|\"|>");
    // A call interrupted by another call: both reported, in order.
    let m = parse_gemma4("<|tool_call>call:f{a:<|tool_call>call:g{}<tool_call|>");
    assert_eq!(m.malformed.len(), 1);
    assert_eq!(m.malformed[0].raw, "<|tool_call>call:f{a:");
    assert_eq!(m.tool_calls.len(), 1);
    assert_eq!(m.tool_calls[0].name, "g");
    assert_eq!(m.tool_calls[0].arguments, serde_json::json!({}));
    // A closing delimiter with no call.
    let m = parse_gemma4("x<tool_call|>y");
    assert_eq!(m.content, "xy");
    assert_eq!(m.malformed.len(), 1);
    assert_eq!(m.malformed[0].raw, "<tool_call|>");
}

/// Random token soup from the delimiter vocabulary: no panic, any chunking gives the one-shot
/// result, and every `<|tool_call>` ends up as a call or a malformed report.
#[test]
fn token_soup_property() {
    const VOCAB: &[&str] = &[
        "<|channel>",
        "<channel|>",
        "thought",
        "\n",
        " ",
        "<|tool_call>",
        "<tool_call|>",
        "call:",
        "f",
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "<|\"|>",
        "a",
        "1",
        "-2.5",
        "true",
        "null",
        "é",
        "😀",
        "<",
        "|",
        "<|",
        "|>",
        ">",
        "<tool_call",
        "channel",
        "\\",
        "\"",
    ];
    let mut rng = Rng(0xC0FFEE);
    for _ in 0..3000 {
        let n = rng.below(40);
        let text: String = (0..n).map(|_| VOCAB[rng.below(VOCAB.len())]).collect();
        let one_shot = parse_gemma4(&text);
        let opened = text.matches("<|tool_call>").count();
        let reported = one_shot.tool_calls.len()
            + one_shot
                .malformed
                .iter()
                .filter(|m| m.raw.starts_with("<|tool_call>"))
                .count();
        assert_eq!(reported, opened, "{text:?} -> {one_shot:?}");
        let bounds: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        for _ in 0..4 {
            let n_cuts = rng.below(8);
            let chunks = random_chunks(&text, &bounds, n_cuts, &mut rng);
            assert_eq!(parse_chunks(&chunks), one_shot, "{text:?} as {chunks:?}");
        }
    }
}

#[test]
fn gemma3_content_only() {
    assert_eq!(
        lode::chat::parse_gemma3("Hi there!<end_of_turn>\n"),
        "Hi there!"
    );
    assert_eq!(lode::chat::parse_gemma3("no stop"), "no stop");
}

/// `lode run --chat`'s path on the real Gemma 3 270M (its GGUF has no chat template, so the
/// built-in one renders): the text equals jinja2's golden rendering, and the ids equal the ones
/// llama.cpp fed the model for the same user text (generation.json `chat` cases), with exactly
/// one BOS although the template writes `<bos>` and the vocabulary adds BOS.
#[test]
fn real_gemma3_chat_prompt_has_one_bos_and_matches_goldens() {
    let gguf = Gguf::open(common::gemma3_270m_path()).unwrap();
    let md = gguf.metadata();
    let tok = Tokenizer::from_gguf(md).unwrap();
    let bos = tok.bos().unwrap();
    assert!(tok.add_bos());
    assert_eq!(prompt::bos_text(&tok), "<bos>");
    let tmpl = ChatTemplate::from_gguf_or_builtin(md).unwrap();
    let count_bos = |ids: &[u32]| ids.iter().filter(|&&t| t == bos).count();

    // Text: jinja2's renders of the Gemma 3 template, with the BOS text taken from the vocabulary.
    let refs = jinja_refs();
    for case in refs["gemma3"].as_array().unwrap() {
        let got = render_jinja_case(&tmpl, case, prompt::bos_text(&tok));
        let ids = prompt::encode_chat(&tok, &got);
        assert_eq!(ids[0], bos, "{}", case["id"]);
        assert_eq!(count_bos(&ids), 1, "{}: {ids:?}", case["id"]);
        // The trap: tokenizing the rendered text like a raw prompt doubles BOS (llama.cpp warns).
        let raw = prompt::encode_raw(&tok, &got);
        assert!(prompt::has_double_bos(&tok, &raw), "{}", case["id"]);
        assert_eq!(&raw[1..], &ids[..], "{}", case["id"]);
    }

    // Ids: llama.cpp's chat prompts (built-in `gemma` template, tokenized with add_special).
    let gen = common::gemma3_generation();
    let mut n = 0;
    for case in gen["runs"]["default"]["cases"].as_array().unwrap() {
        if case["kind"] != "chat" {
            continue;
        }
        let user = case["user_text"].as_str().unwrap();
        let (text, ids) = prompt::single_turn(&tmpl, &tok, None, user).unwrap();
        assert_eq!(
            text,
            format!("<bos>{}", case["prompt_text"].as_str().unwrap())
        );
        assert_eq!(ids, common::json_ids(&case["prompt_ids"]), "{user:?}");
        assert_eq!(count_bos(&ids), 1);
        n += 1;
    }
    assert_eq!(n, 3);
}

//! Chat templates and output parsing against oracle fixtures (tests/fixtures/chat-templates):
//! renders made by transformers' `apply_chat_template`, parses checked against llama.cpp's parser.

use std::path::PathBuf;

use lode::chat::{ChatTemplate, RenderRequest};
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

#[test]
fn builtin_gemma3_matches_jinja2() {
    let refs = jinja_refs();
    let tmpl = ChatTemplate::builtin_gemma3();
    let cases = refs["gemma3"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let mut req = RenderRequest::new(case["messages"].as_array().unwrap());
        req.add_generation_prompt = case["add_generation_prompt"].as_bool().unwrap();
        let got = tmpl.render(&req).unwrap();
        let want = case["rendered"].as_str().unwrap();
        assert_eq!(
            got,
            want,
            "{}: {}",
            case["id"],
            first_difference(&got, want)
        );
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

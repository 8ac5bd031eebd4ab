//! Jinja chat templates, rendered like transformers' `apply_chat_template`.
//!
//! transformers compiles templates in a jinja2 `ImmutableSandboxedEnvironment(trim_blocks=True,
//! lstrip_blocks=True, extensions=[loopcontrols])`, replaces the `tojson` filter with a plain
//! `json.dumps(x, ensure_ascii=False, ...)` and adds the globals `raise_exception` and
//! `strftime_now` (transformers `utils/chat_template_utils.py::_compile_jinja_template`).
//! We do the same with minijinja, plus the pieces of Python that templates lean on:
//! - Python string/dict methods (`.strip()`, `.split()`, `.get()`, `.items()`...) via
//!   minijinja-contrib's `pycompat`;
//! - Python `str()` when printing: `None`, `True`/`False`, float `repr`, list/dict `repr`;
//! - jinja2's `sequence` test (true for strings and mappings too) and `number` test (true for
//!   booleans, which are ints in Python).
//!
//! Not supported: transformers' `{% generation %}` block (assistant-mask extension; a template
//! using it fails to compile with a clear error).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, ErrorKind, Value};

use crate::gguf::Metadata;
use crate::{Error, Result};

const TEMPLATE_NAME: &str = "chat_template";

/// Gemma 3's template (google/gemma-3-*-it `tokenizer_config.json`): system text is prepended to
/// the first user turn, `<start_of_turn>{user|model}\n...<end_of_turn>\n`.
const GEMMA3_TEMPLATE: &str = include_str!("templates/gemma3.jinja");
/// Google's Gemma 4 template as shipped with gemma-4-31B-it (llama.cpp commit 0c1e570
/// `models/templates/google-gemma-4-31B-it.jinja`), the spec's 26B/31B template.
const GEMMA4_TEMPLATE: &str = include_str!("templates/gemma4.jinja");

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
}

/// One rendering: the conversation and the template variables.
#[derive(Debug, Clone)]
pub struct RenderRequest<'a> {
    /// OpenAI chat messages (`role`, `content` as a string or typed parts, `tool_calls`, ...).
    pub messages: &'a [serde_json::Value],
    /// OpenAI function declarations; `None` is passed to the template as `none`.
    pub tools: Option<&'a [serde_json::Value]>,
    pub add_generation_prompt: bool,
    /// Always defined for the template (Gemma 4 templates test `enable_thinking is defined`).
    pub enable_thinking: bool,
    pub bos_token: &'a str,
    /// Further template variables (`eos_token`, custom kwargs). The fields above win on a clash.
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl<'a> RenderRequest<'a> {
    /// A request with no tools, generation prompt on, thinking off and `<bos>` as BOS text.
    pub fn new(messages: &'a [serde_json::Value]) -> Self {
        RenderRequest {
            messages,
            tools: None,
            add_generation_prompt: true,
            enable_thinking: false,
            bos_token: "<bos>",
            extra: None,
        }
    }
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compile a template once. A syntax error is an `Err` naming the line.
    pub fn new(source: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        configure(&mut env);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| Error::Template(describe(&e)))?;
        Ok(ChatTemplate { env })
    }

    /// The template stored in the file, or `None` when it carries none.
    pub fn from_gguf(md: &Metadata) -> Result<Option<ChatTemplate>> {
        match md.str_opt("tokenizer.chat_template")? {
            Some(src) => Ok(Some(ChatTemplate::new(src)?)),
            None => Ok(None),
        }
    }

    /// The file's template, else the built-in one for its `general.architecture`.
    pub fn from_gguf_or_builtin(md: &Metadata) -> Result<ChatTemplate> {
        if let Some(t) = ChatTemplate::from_gguf(md)? {
            return Ok(t);
        }
        match md.str("general.architecture")? {
            "gemma3" => Ok(ChatTemplate::builtin_gemma3()),
            "gemma4" => Ok(ChatTemplate::builtin_gemma4()),
            arch => Err(Error::Template(format!(
                "the file has no tokenizer.chat_template and there is no built-in template for `{arch}`"
            ))),
        }
    }

    /// Gemma 3: `<bos><start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n<start_of_turn>model\n`.
    pub fn builtin_gemma3() -> ChatTemplate {
        ChatTemplate::new(GEMMA3_TEMPLATE).expect("built-in Gemma 3 template compiles")
    }

    /// Gemma 4: Google's 26B/31B template (see `templates/gemma4.jinja`).
    pub fn builtin_gemma4() -> ChatTemplate {
        ChatTemplate::new(GEMMA4_TEMPLATE).expect("built-in Gemma 4 template compiles")
    }

    /// Render the prompt text. A failing template (including `raise_exception`) is an `Err`.
    pub fn render(&self, req: &RenderRequest) -> Result<String> {
        let mut ctx: Vec<(String, Value)> = Vec::new();
        if let Some(extra) = &req.extra {
            for (k, v) in extra {
                ctx.push((k.clone(), Value::from_serialize(v)));
            }
        }
        let tools = match req.tools {
            Some(t) => Value::from_serialize(t),
            None => Value::from(()),
        };
        ctx.push(("messages".into(), Value::from_serialize(req.messages)));
        ctx.push(("tools".into(), tools));
        ctx.push((
            "add_generation_prompt".into(),
            Value::from(req.add_generation_prompt),
        ));
        ctx.push(("enable_thinking".into(), Value::from(req.enable_thinking)));
        ctx.push(("bos_token".into(), Value::from(req.bos_token)));
        // Later entries replace earlier ones, so the explicit fields win over `extra`.
        let ctx: Value = ctx.into_iter().collect();
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| Error::Template(describe(&e)))?;
        tmpl.render(ctx).map_err(|e| Error::Template(describe(&e)))
    }
}

/// Instructions one rendering may execute. A template comes from the GGUF file, so it is
/// untrusted: three nested loops over 1,000 items would otherwise run for minutes. Google's
/// Gemma 4 template over a 200-message conversation with tools takes well under 1% of this.
pub const FUEL: u64 = 20_000_000;

/// transformers' environment, in minijinja terms.
fn configure(env: &mut Environment<'static>) {
    env.set_fuel(Some(FUEL));
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(|out, _state, value| {
        if let Some(s) = value.as_str() {
            return out.write_str(s).map_err(minijinja::Error::from);
        }
        out.write_str(&py_str(value))
            .map_err(minijinja::Error::from)
    });
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    env.add_test("sequence", |v: &Value| {
        matches!(
            v.kind(),
            ValueKind::Seq | ValueKind::Map | ValueKind::String | ValueKind::Bytes
        )
    });
    env.add_test("number", |v: &Value| {
        matches!(v.kind(), ValueKind::Number | ValueKind::Bool)
    });
}

/// Marks the error `raise_exception` produced, so `render` can hand back the template's message.
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(
        minijinja::Error::new(ErrorKind::InvalidOperation, message.clone())
            .with_source(Raised(message)),
    )
}

/// One line for a minijinja error; a `raise_exception` message is passed through verbatim.
fn describe(e: &minijinja::Error) -> String {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cur) = src {
        if let Some(r) = cur.downcast_ref::<Raised>() {
            return format!("raise_exception: {}", r.0);
        }
        src = cur.source();
    }
    if e.kind() == ErrorKind::OutOfFuel {
        let at = e.line().map_or(String::new(), |l| format!(" (line {l})"));
        return format!(
            "rendering stopped after {FUEL} steps{at}: the template loops too much to be a chat format"
        );
    }
    let mut msg = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        let _ = write!(msg, " (line {line})");
    }
    let mut src = std::error::Error::source(e);
    while let Some(cur) = src {
        let _ = write!(msg, ": {cur}");
        src = cur.source();
    }
    msg
}

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=None, separators=None,
/// sort_keys=False)` (no HTML escaping, unlike jinja2's and minijinja's own).
fn tojson(
    value: &Value,
    ensure_ascii: Option<bool>,
    indent: Option<Value>,
    kwargs: Kwargs,
) -> std::result::Result<Value, minijinja::Error> {
    let ensure_ascii = kwargs
        .get::<Option<bool>>("ensure_ascii")?
        .or(ensure_ascii)
        .unwrap_or(false);
    let indent = kwargs.get::<Option<Value>>("indent")?.or(indent);
    let indent: Option<String> = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match v.kind() {
            ValueKind::Number => {
                let n = i64::try_from(v.clone())?;
                Some(" ".repeat(n.clamp(0, 64) as usize))
            }
            ValueKind::String => Some(v.as_str().unwrap_or_default().to_string()),
            _ => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be an integer or a string",
                ))
            }
        },
    };
    let separators = kwargs.get::<Option<Value>>("separators")?;
    let (item_sep, key_sep) = match separators {
        Some(s) if !s.is_none() => {
            let parts: Vec<String> = s
                .try_iter()?
                .map(|p| p.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be two strings",
                    )
                })?;
            match <[String; 2]>::try_from(parts) {
                Ok([a, b]) => (a, b),
                Err(_) => {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be two strings",
                    ))
                }
            }
        }
        _ if indent.is_some() => (",".to_string(), ": ".to_string()),
        _ => (", ".to_string(), ": ".to_string()),
    };
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let opts = JsonOpts {
        ensure_ascii,
        indent,
        item_sep,
        key_sep,
        sort_keys,
    };
    let mut out = String::new();
    json_dump(&mut out, value, &opts, 0)?;
    Ok(Value::from(out))
}

struct JsonOpts {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

fn json_dump(
    out: &mut String,
    v: &Value,
    o: &JsonOpts,
    depth: usize,
) -> std::result::Result<(), minijinja::Error> {
    if depth > 256 {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "tojson: value nested too deeply",
        ));
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(ind) = &o.indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(ind);
            }
        }
    };
    match v.kind() {
        ValueKind::Undefined => {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "tojson: Undefined is not JSON serializable",
            ))
        }
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&py_number(v, true)),
        ValueKind::String => json_str(out, v.as_str().unwrap_or_default(), o.ensure_ascii),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                newline(out, depth + 1);
                json_dump(out, item, o, depth + 1)?;
            }
            newline(out, depth);
            out.push(']');
        }
        ValueKind::Map => {
            let mut pairs: Vec<(Value, Value)> = v
                .try_iter()?
                .map(|k| {
                    let val = v.get_item(&k).unwrap_or(Value::UNDEFINED);
                    (k, val)
                })
                .collect();
            if o.sort_keys {
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
            }
            if pairs.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (k, val)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                newline(out, depth + 1);
                // Python converts int/float/bool/None keys to strings; others are an error.
                let key = match k.kind() {
                    ValueKind::String => k.as_str().unwrap_or_default().to_string(),
                    ValueKind::None => "null".into(),
                    ValueKind::Bool => (if k.is_true() { "true" } else { "false" }).into(),
                    ValueKind::Number => py_number(k, true),
                    _ => {
                        return Err(minijinja::Error::new(
                            ErrorKind::InvalidOperation,
                            format!("tojson: keys must be str, int, float, bool or None, not {k}"),
                        ))
                    }
                };
                json_str(out, &key, o.ensure_ascii);
                out.push_str(&o.key_sep);
                json_dump(out, val, o, depth + 1)?;
            }
            newline(out, depth);
            out.push('}');
        }
        _ => {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: {} is not JSON serializable", v.kind()),
            ))
        }
    }
    Ok(())
}

/// Python's `json.encoder` string escaping (`encode_basestring[_ascii]`).
fn json_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", unit);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python `str(x)` for what a template prints.
fn py_str(v: &Value) -> String {
    match v.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::String => v.as_str().unwrap_or_default().to_string(),
        _ => py_repr(v, 0),
    }
}

/// Python `repr(x)` for template values (strings quoted, containers recursive).
fn py_repr(v: &Value, depth: usize) -> String {
    if depth > 64 {
        return "...".into();
    }
    match v.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::None => "None".into(),
        ValueKind::Bool => (if v.is_true() { "True" } else { "False" }).into(),
        ValueKind::Number => py_number(v, false),
        ValueKind::String => py_repr_str(v.as_str().unwrap_or_default()),
        ValueKind::Seq => {
            let items: Vec<String> = match v.try_iter() {
                Ok(it) => it.map(|x| py_repr(&x, depth + 1)).collect(),
                Err(_) => return v.to_string(),
            };
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let items: Vec<String> = match v.try_iter() {
                Ok(it) => it
                    .map(|k| {
                        let val = v.get_item(&k).unwrap_or(Value::UNDEFINED);
                        format!("{}: {}", py_repr(&k, depth + 1), py_repr(&val, depth + 1))
                    })
                    .collect(),
                Err(_) => return v.to_string(),
            };
            format!("{{{}}}", items.join(", "))
        }
        _ => v.to_string(),
    }
}

/// Python's `repr(str)`: single quotes unless the text has `'` and no `"`.
fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// An integer as is, a float as Python's `repr(float)` (`json` spells NaN/inf its own way).
fn py_number(v: &Value, json: bool) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Number(n)) => match n.as_f64() {
            Some(f) if n.is_f64() => py_float(f, json),
            _ => n.to_string(),
        },
        // serde_json turns NaN and infinities into null.
        _ => match f64::try_from(v.clone()) {
            Ok(f) => py_float(f, json),
            Err(_) => v.to_string(),
        },
    }
}

/// Python's shortest round-trip `repr(float)`: fixed notation for exponents in [-4, 16),
/// scientific (`1e+16`, `1.5e-05`) outside.
fn py_float(x: f64, json: bool) -> String {
    if x.is_nan() {
        return (if json { "NaN" } else { "nan" }).into();
    }
    if x.is_infinite() {
        let s = if json { "Infinity" } else { "inf" };
        return if x < 0.0 { format!("-{s}") } else { s.into() };
    }
    let sci = format!("{x:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let mut s = format!("{x}");
        if !s.contains('.') {
            s.push_str(".0");
        }
        s
    } else {
        format!(
            "{mant}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        )
    }
}

/// transformers' `strftime_now(format)`. Python uses local time; we use UTC (no time-zone
/// database here), which is what a server in a container reports anyway.
fn strftime_now(format: String) -> std::result::Result<Value, minijinja::Error> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(Value::from(strftime(&format, secs)))
}

/// `strftime` for the directives chat templates use, at `secs` since the epoch (UTC).
pub(crate) fn strftime(format: &str, secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, (sod / 60) % 60, sod % 60);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday (Monday = 0)
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        let month = MONTHS[(m - 1) as usize];
        let day = DAYS[weekday];
        let _ = match spec {
            'Y' => write!(out, "{y}"),
            'y' => write!(out, "{:02}", y.rem_euclid(100)),
            'm' => write!(out, "{m:02}"),
            'd' => write!(out, "{d:02}"),
            '-' => match chars.next() {
                Some('d') => write!(out, "{d}"),
                Some('m') => write!(out, "{m}"),
                Some('H') => write!(out, "{hh}"),
                Some(o) => write!(out, "%-{o}"),
                None => write!(out, "%-"),
            },
            'e' => write!(out, "{d:2}"),
            'B' => write!(out, "{month}"),
            'b' | 'h' => write!(out, "{}", &month[..3]),
            'A' => write!(out, "{day}"),
            'a' => write!(out, "{}", &day[..3]),
            'H' => write!(out, "{hh:02}"),
            'I' => write!(out, "{:02}", if hh % 12 == 0 { 12 } else { hh % 12 }),
            'p' => write!(out, "{}", if hh < 12 { "AM" } else { "PM" }),
            'M' => write!(out, "{mm:02}"),
            'S' => write!(out, "{ss:02}"),
            'j' => write!(out, "{yday:03}"),
            'F' => write!(out, "{y}-{m:02}-{d:02}"),
            'T' => write!(out, "{hh:02}:{mm:02}:{ss:02}"),
            'Z' => write!(out, "UTC"),
            'z' => write!(out, "+0000"),
            '%' => write!(out, "%"),
            other => write!(out, "%{other}"),
        };
    }
    out
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 -> (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&str, &str)]) -> Metadata {
        let mut md = Metadata::default();
        for (k, v) in pairs {
            md.insert(k.to_string(), crate::gguf::Value::String(v.to_string()));
        }
        md
    }

    #[test]
    fn template_from_metadata_or_builtin() {
        let msgs = [serde_json::json!({"role": "user", "content": "Hi"})];
        let req = RenderRequest::new(&msgs);

        let md = metadata(&[
            ("general.architecture", "gemma3"),
            ("tokenizer.chat_template", "[{{ messages[0]['content'] }}]"),
        ]);
        let t = ChatTemplate::from_gguf(&md).unwrap().unwrap();
        assert_eq!(t.render(&req).unwrap(), "[Hi]");

        // Gemma 3 270M ships without a template: the built-in one is used.
        let md = metadata(&[("general.architecture", "gemma3")]);
        assert!(ChatTemplate::from_gguf(&md).unwrap().is_none());
        let t = ChatTemplate::from_gguf_or_builtin(&md).unwrap();
        assert_eq!(
            t.render(&req).unwrap(),
            "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
        );
        let md = metadata(&[("general.architecture", "gemma4")]);
        let t = ChatTemplate::from_gguf_or_builtin(&md).unwrap();
        assert_eq!(
            t.render(&req).unwrap(),
            "<bos><|turn>user\nHi<turn|>\n<|turn>model\n<|channel>thought\n<channel|>"
        );
        let md = metadata(&[("general.architecture", "llama")]);
        let err = ChatTemplate::from_gguf_or_builtin(&md).unwrap_err();
        assert!(err.to_string().contains("`llama`"), "{err}");
    }

    #[test]
    fn float_repr_matches_python() {
        // Expected strings are Python 3 `repr(float)`.
        for (x, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (912.5, "912.5"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (-0.0, "-0.0"),
            (123456789.125, "123456789.125"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ] {
            assert_eq!(py_float(x, false), want, "{x}");
        }
    }

    #[test]
    fn strftime_known_instant() {
        // 2024-02-29T13:05:09Z, a Thursday, day 60 of a leap year.
        let t = 1_709_211_909;
        assert_eq!(
            strftime("%Y-%m-%d %H:%M:%S %a %A %b %B %j %I%p %-d %%", t),
            "2024-02-29 13:05:09 Thu Thursday Feb February 060 01PM 29 %"
        );
        assert_eq!(strftime("%d %B %Y", 0), "01 January 1970");
    }
}

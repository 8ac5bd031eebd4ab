"""Drive `lode serve` with the real `openai` Python client (PyPI).

Run by tests/serve_openai.rs:  python3 tests/serve_openai.py BASE_URL API_KEY
Exits non-zero (with a traceback) on the first failed check.
"""

import json
import sys
import urllib.error
import urllib.request

import openai
from openai import OpenAI

base, key = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=300)
checks = []


def check(name):
    def wrap(f):
        f()
        checks.append(name)
        print(f"ok   {name}", flush=True)
        return f

    return wrap


MESSAGES = [{"role": "user", "content": "Q: What is 12 * 7?\nA:"}]


def greedy_chat(**kw):
    """A greedy chat completion of MESSAGES with the further arguments `kw`."""
    return client.chat.completions.create(
        model="lode", messages=MESSAGES, temperature=0, **kw
    )


@check("models")
def _():
    ids = [m.id for m in client.models.list().data]
    assert ids, ids


@check("chat, then streaming gives the same text")
def _():
    r = greedy_chat(max_tokens=16)
    msg = r.choices[0].message
    assert msg.role == "assistant" and msg.content, r
    assert r.choices[0].finish_reason in ("stop", "length"), r
    u = r.usage
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens > 0, u

    stream = greedy_chat(
        max_tokens=16, stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == msg.content, (text, msg.content)
    assert finish == r.choices[0].finish_reason, finish
    assert usage and usage.completion_tokens == u.completion_tokens, usage


@check("tools request")
def _():
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    r = client.chat.completions.create(
        model="lode",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools,
        tool_choice="auto",
        max_tokens=16,
        temperature=0,
    )
    m = r.choices[0].message
    assert m.content is not None or m.tool_calls, r
    for call in m.tool_calls or []:
        json.loads(call.function.arguments)


@check("completions")
def _():
    r = client.completions.create(
        model="lode", prompt="Q: What is 12 * 7?\nA:", max_tokens=12, temperature=0
    )
    assert "144" in r.choices[0].text, r


@check("over-long prompt is 400 with a clear message")
def _():
    try:
        client.chat.completions.create(
            model="lode",
            messages=[{"role": "user", "content": "lorem ipsum " * 1000}],
            max_tokens=8,
        )
    except openai.BadRequestError as e:
        assert e.status_code == 400
        msg = e.body["message"]
        assert "context holds" in msg and "tokens" in msg, msg
        assert e.code == "context_length_exceeded", e.code
    else:
        raise AssertionError("no error")


@check("bad API key is 401")
def _():
    bad = OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0)
    try:
        bad.chat.completions.create(model="lode", messages=MESSAGES, max_tokens=4)
    except openai.AuthenticationError as e:
        assert e.status_code == 401
    else:
        raise AssertionError("no error")


@check("malformed request is 400 (through the client and as raw bytes)")
def _():
    try:
        client.chat.completions.create(model="lode", messages=MESSAGES, max_tokens=-5)
    except openai.BadRequestError as e:
        assert e.status_code == 400, e
    else:
        raise AssertionError("no error")
    req = urllib.request.Request(
        f"{base}/v1/chat/completions",
        data=b'{"messages": [',
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(req)
    except urllib.error.HTTPError as e:
        assert e.code == 400
        err = json.loads(e.read())["error"]
        assert set(err) == {"message", "type", "param", "code"}, err
    else:
        raise AssertionError("no error")


@check("models.retrieve: the served model, 404 for another")
def _():
    mid = client.models.list().data[0].id
    m = client.models.retrieve(mid)
    assert m.id == mid and m.object == "model", m
    try:
        client.models.retrieve("no-such-model")
    except openai.NotFoundError as e:
        assert e.status_code == 404 and e.code == "model_not_found", e
    else:
        raise AssertionError("no error")


PROMPT = "Q: What is 12 * 7?\nA:"


def stop_for(text):
    """A stop string that occurs in `text` after its start, and the text before it."""
    for k in range(4, len(text) - 2):
        stop = text[k : k + 2]
        if stop.strip() and text.find(stop) >= 4:
            return stop, text[: text.find(stop)]
    raise AssertionError(f"no stop string to pick in {text!r}")


@check("stop on completions and chat: text ends before it, finish_reason stop")
def _():
    full = client.completions.create(
        model="lode", prompt=PROMPT, max_tokens=24, temperature=0
    ).choices[0].text
    stop, want = stop_for(full)
    r = client.completions.create(
        model="lode", prompt=PROMPT, max_tokens=24, temperature=0, stop=[stop, "@@@"]
    )
    assert r.choices[0].text == want, (r.choices[0].text, want, stop)
    assert r.choices[0].finish_reason == "stop", r

    full = greedy_chat(max_tokens=24).choices[0].message.content
    stop, want = stop_for(full)
    r = greedy_chat(max_tokens=24, stop=stop)
    assert r.choices[0].message.content == want, (r.choices[0].message.content, want)
    assert r.choices[0].finish_reason == "stop", r


@check("streaming with stop: the same text, never a part of the stop string")
def _():
    full = greedy_chat(max_tokens=24).choices[0].message.content
    stop, want = stop_for(full)
    stream = greedy_chat(max_tokens=24, stop=[stop], stream=True)
    text, finish = "", None
    for chunk in stream:
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
            assert stop not in text, (text, stop)
    assert text == want and finish == "stop", (text, want, finish)


@check("logprobs: chat (top_logprobs) and completions (logprobs: N)")
def _():
    with_logprobs = dict(max_tokens=12, logprobs=True, top_logprobs=3)
    r = greedy_chat(**with_logprobs)
    c = r.choices[0]
    entries = c.logprobs.content
    assert entries, c
    assert "".join(e.token for e in entries) == c.message.content, (entries, c.message)
    for e in entries:
        assert e.logprob <= 0 and bytes(e.bytes).decode("utf-8", "replace") == e.token, e
        tops = [t.logprob for t in e.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True), e
        # greedy: the chosen token is the most likely one
        assert e.top_logprobs[0].token == e.token and abs(tops[0] - e.logprob) < 1e-6, e

    stream = greedy_chat(**with_logprobs, stream=True)
    streamed = []
    for chunk in stream:
        for ch in chunk.choices:
            if ch.logprobs and ch.logprobs.content:
                streamed += ch.logprobs.content
    assert [(e.token, e.logprob) for e in streamed] == [
        (e.token, e.logprob) for e in entries
    ]

    r = client.completions.create(
        model="lode", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=2
    )
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == r.choices[0].text, lp
    assert len(lp.token_logprobs) == len(lp.tokens) == len(lp.top_logprobs), lp
    assert all(len(t) <= 2 for t in lp.top_logprobs), lp
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset), lp


@check("unsupported fields and response_format JSON are 400 naming the field")
def _():
    for extra in ({"logit_bias": {"1": 5}}, {"response_format": {"type": "json_object"}}):
        try:
            client.chat.completions.create(
                model="lode", messages=MESSAGES, max_tokens=4, **extra
            )
        except openai.BadRequestError as e:
            name = next(iter(extra))
            assert name in e.body["message"], e.body
        else:
            raise AssertionError(f"no error for {extra}")
    try:
        client.chat.completions.create(model="lode", messages=MESSAGES, max_tokens=4, n=2)
    except openai.BadRequestError as e:
        assert e.body["param"] == "n", e.body
    else:
        raise AssertionError("no error for n=2")


print(f"all {len(checks)} checks passed")

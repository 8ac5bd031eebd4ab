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


@check("models")
def _():
    ids = [m.id for m in client.models.list().data]
    assert ids, ids


@check("chat, then streaming gives the same text")
def _():
    r = client.chat.completions.create(
        model="lode", messages=MESSAGES, max_tokens=16, temperature=0
    )
    msg = r.choices[0].message
    assert msg.role == "assistant" and msg.content, r
    assert r.choices[0].finish_reason in ("stop", "length"), r
    u = r.usage
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens > 0, u

    stream = client.chat.completions.create(
        model="lode",
        messages=MESSAGES,
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
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


print(f"all {len(checks)} checks passed")

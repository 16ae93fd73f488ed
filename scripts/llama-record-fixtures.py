#!/usr/bin/env python3
"""Records real llama-server responses (JSON bodies and SSE byte streams) as unit-test fixtures.

Run through the server wrapper so a server is started and stopped around it:

    scripts/llama-server.sh with-server scripts/llama-record-fixtures.py

Writes filter/tests/fixtures/streams/llama-*.{json,sse} and requests.json (the request body
behind each fixture). Temperature 0 and a fixed seed keep the text reproducible, so the
stream with `include_usage` and the one without carry the same tokens.
"""
import http.client
import json
import os
import pathlib
import sys
import urllib.parse

OUT = pathlib.Path(__file__).resolve().parent.parent / "filter/tests/fixtures/streams"
MODEL = "smollm2-135m"

CHAT_PROMPTS = {
    "a": [{"role": "user", "content": "Name three primary colors."}],
    "b": [
        {"role": "system", "content": "You answer in one short paragraph."},
        {"role": "user", "content": "Explain why the sky is blue. Use an emoji or two 🌈."},
    ],
    "c": [
        {"role": "user", "content": "Write a Python function that reverses a string."},
        {"role": "assistant", "content": "def rev(s):\n    return s[::-1]"},
        {"role": "user", "content": "Now in Rust, with a doc comment. Bonne chance, café ☕!"},
    ],
}


def post(url, path, body):
    # llama-server closes the connection after a stream, so one connection per request.
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    resp = conn.getresponse()
    raw = resp.read()  # http.client undoes chunked framing: these are the body bytes Envoy sees
    conn.close()
    if resp.status != 200:
        sys.exit(f"{path}: HTTP {resp.status}: {raw[:200]!r}")
    return raw


def main():
    url = urllib.parse.urlparse(os.environ["LLAMA_URL"])
    OUT.mkdir(parents=True, exist_ok=True)
    requests = {}

    def record(name, path, body):
        raw = post(url, path, body)
        (OUT / name).write_bytes(raw)
        requests[name] = {"path": path, "body": body}
        print(f"{name}: {len(raw)} bytes", file=sys.stderr)

    base = {"model": MODEL, "temperature": 0, "seed": 42}
    for key, messages in CHAT_PROMPTS.items():
        chat = {**base, "messages": messages, "max_tokens": 48 if key != "a" else 24}
        record(f"llama-chat-{key}.json", "/v1/chat/completions", chat)
        record(
            f"llama-chat-{key}-stream-usage.sse",
            "/v1/chat/completions",
            {**chat, "stream": True, "stream_options": {"include_usage": True}},
        )
        record(f"llama-chat-{key}-stream-plain.sse", "/v1/chat/completions", {**chat, "stream": True})
    completion = {**base, "prompt": "The three laws of thermodynamics are", "max_tokens": 32}
    record("llama-completion.json", "/v1/completions", completion)
    record(
        "llama-completion-stream-usage.sse",
        "/v1/completions",
        {**completion, "stream": True, "stream_options": {"include_usage": True}},
    )
    record(
        "llama-embeddings.json",
        "/v1/embeddings",
        {"model": MODEL, "input": ["The quick brown fox", "jumps over the lazy dog."]},
    )
    (OUT / "requests.json").write_text(json.dumps(requests, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()

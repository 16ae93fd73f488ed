"""Drives an OpenAI-compatible server with the official OpenAI Python SDK, used as any client
would use it (only base_url and api_key are ours). Prints one JSON object per request on stdout.

    llama_sdk.py BASE_URL API_KEY MODEL exact   the requests whose counts tests/tests/llama.rs checks
    llama_sdk.py BASE_URL API_KEY MODEL bench N N streamed requests, timed

Greedy decoding with a fixed seed, so the same request gives the same tokens through the
gateway and directly.
"""

import json
import sys
import time

from openai import OpenAI

MAX_TOKENS = 16
PARAMS = {"max_tokens": MAX_TOKENS, "temperature": 0, "seed": 7}
CHAT = [{"role": "user", "content": "Name three colours of the rainbow."}]
PROMPT = "The capital of France is"
EMBED_INPUT = ["Modelgate counts tokens.", "Envoy runs the filter."]
BENCH_CHAT = [{"role": "user", "content": "Write a short sentence about the sea."}]


def usage_of(usage):
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": getattr(usage, "completion_tokens", None),
        "total_tokens": usage.total_tokens,
    }


def emit(**fields):
    print(json.dumps(fields), flush=True)


def request_id(raw):
    return raw.headers.get("x-modelgate-request-id")


def streamed(raw, text_of):
    """Reads a stream to its end: text, usage chunks seen, chunk count."""
    text, usages, chunks = "", [], 0
    for chunk in raw.parse():
        chunks += 1
        if chunk.usage is not None:
            usages.append(usage_of(chunk.usage))
        for choice in chunk.choices:
            text += text_of(choice) or ""
    return text, usages, chunks


def chat_text(choice):
    return choice.delta.content


def completion_text(choice):
    return choice.text


def exact(client, model):
    raw = client.chat.completions.with_raw_response.create(model=model, messages=CHAT, **PARAMS)
    reply = raw.parse()
    emit(name="chat", request_id=request_id(raw), usage=usage_of(reply.usage),
         text=reply.choices[0].message.content)

    for name, options in [("chat_stream_usage", {"include_usage": True}), ("chat_stream_plain", None)]:
        extra = {"stream_options": options} if options else {}
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=CHAT, stream=True, **extra, **PARAMS)
        text, usages, chunks = streamed(raw, chat_text)
        emit(name=name, request_id=request_id(raw), usage=usages[-1] if usages else None,
             usage_chunks=len(usages), chunks=chunks, text=text)

    raw = client.completions.with_raw_response.create(model=model, prompt=PROMPT, **PARAMS)
    reply = raw.parse()
    emit(name="completion", request_id=request_id(raw), usage=usage_of(reply.usage),
         text=reply.choices[0].text)

    for name, options in [("completion_stream_usage", {"include_usage": True}),
                          ("completion_stream_plain", None)]:
        extra = {"stream_options": options} if options else {}
        raw = client.completions.with_raw_response.create(
            model=model, prompt=PROMPT, stream=True, **extra, **PARAMS)
        text, usages, chunks = streamed(raw, completion_text)
        emit(name=name, request_id=request_id(raw), usage=usages[-1] if usages else None,
             usage_chunks=len(usages), chunks=chunks, text=text)

    raw = client.embeddings.with_raw_response.create(model=model, input=EMBED_INPUT)
    reply = raw.parse()
    emit(name="embeddings", request_id=request_id(raw), usage=usage_of(reply.usage),
         vectors=len(reply.data), dimensions=len(reply.data[0].embedding))


def bench(client, model, runs):
    for _ in range(runs):
        start = time.perf_counter()
        first = last = None
        usage = None
        stream = client.chat.completions.create(
            model=model, messages=BENCH_CHAT, stream=True,
            stream_options={"include_usage": True}, **PARAMS)
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            if any(c.delta.content for c in chunk.choices):
                last = time.perf_counter()
                if first is None:
                    first = last
        emit(name="bench", ttft_s=first - start, total_s=last - start,
             completion_tokens=usage.completion_tokens)


def main():
    base_url, api_key, model, mode = sys.argv[1:5]
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60)
    if mode == "exact":
        exact(client, model)
    elif mode == "bench":
        bench(client, model, int(sys.argv[5]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

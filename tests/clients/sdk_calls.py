"""Sends chat completions with the official OpenAI Python SDK, as an application given a
LiteLLM virtual key would (only base_url and api_key are ours; retries off, so a refusal is
seen rather than retried). Prints one JSON object per request on stdout:
{"model", "outcome": "ok" or the SDK's exception class, "status", "code"}.

    sdk_calls.py BASE_URL API_KEY MODEL COUNT [parallel]
    sdk_calls.py BASE_URL API_KEY MODEL retrieve

COUNT requests one after another, or all at once with `parallel`; or `models.retrieve(MODEL)`,
printing {"model", "outcome", "status", "id", "object"}.
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import openai
from openai import OpenAI


def call(client, model):
    try:
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=5,
        )
        return {"model": model, "outcome": "ok", "status": 200, "code": None}
    except openai.APIStatusError as err:
        body = err.body if isinstance(err.body, dict) else {}
        error = body.get("error", body) if isinstance(body, dict) else {}
        return {
            "model": model,
            "outcome": type(err).__name__,
            "status": err.status_code,
            "code": error.get("code") if isinstance(error, dict) else None,
        }


def retrieve(client, model):
    try:
        found = client.models.retrieve(model)
        return {"model": model, "outcome": "ok", "status": 200, "id": found.id, "object": found.object}
    except openai.APIStatusError as err:
        return {"model": model, "outcome": type(err).__name__, "status": err.status_code}


def main():
    base_url, api_key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60)
    if sys.argv[4] == "retrieve":
        print(json.dumps(retrieve(client, model)), flush=True)
        return
    count = int(sys.argv[4])
    parallel = len(sys.argv) > 5 and sys.argv[5] == "parallel"
    if parallel:
        with ThreadPoolExecutor(max_workers=count) as pool:
            results = list(pool.map(lambda _: call(client, model), range(count)))
    else:
        results = [call(client, model) for _ in range(count)]
    for result in results:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

"""Sends one request that the gateway refuses with the official OpenAI Python SDK and prints
what the SDK made of the error, as one JSON object: status, code, type, message (code and
type are only set when the SDK could parse the body as an OpenAI error).

    sdk_errors.py BASE_URL API_KEY MODEL CASE
    CASE: huge_header (a 100 KB header), unrouted (POST /unknown/endpoint), chat
"""

import json
import sys

import openai
from openai import OpenAI

base_url, api_key, model, case = sys.argv[1:5]
client = OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key=api_key, max_retries=0)
chat = {"model": model, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8}

try:
    if case == "huge_header":
        client.chat.completions.create(**chat, extra_headers={"x-huge": "a" * 100_000})
    elif case == "unrouted":
        OpenAI(base_url=base_url, api_key=api_key, max_retries=0).post(
            "/unknown/endpoint", body={}, cast_to=object
        )
    elif case == "chat":
        client.chat.completions.create(**chat)
    else:
        sys.exit(f"unknown case {case}")
    print(json.dumps({"status": 200}))
except openai.APIStatusError as error:
    print(
        json.dumps(
            {
                "status": error.status_code,
                "code": error.code,
                "type": error.type,
                "message": error.message,
            }
        )
    )

#!/usr/bin/env python3
"""Measures the token estimator against a real llama-server's own counts.

    scripts/llama-server.sh with-server scripts/llama-estimator-eval.py [--n 300]

Sends a few hundred varied prompts (English questions, long context, code, numbers, several
languages and scripts, emoji, JSON/markdown; with and without system messages; multi-turn;
chat and completions) to the server, and records for each the request, the generated text,
the server's `usage` and the exact tokenizer count (`/tokenize`) of every text involved, in
filter/tests/fixtures/streams/estimator-eval.jsonl. Even-numbered prompts are the calibration
half, odd-numbered ones are held out. Then it runs the Rust test that reports the estimator's
error on both halves (`usage::estimator_eval::estimator_error_on_real_counts`).
"""
import argparse
import http.client
import json
import os
import pathlib
import random
import subprocess
import sys
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "filter/tests/fixtures/streams/estimator-eval.jsonl"
MODEL = "smollm2-135m"

TOPICS = [
    "photosynthesis", "the French Revolution", "black holes", "compound interest", "TCP handshakes",
    "the water cycle", "quantum entanglement", "sourdough bread", "the Roman Empire", "vaccines",
    "climate change", "machine learning", "the stock market", "plate tectonics", "jazz music",
    "the human heart", "electric cars", "chess openings", "volcanoes", "the printing press",
    "honeybees", "cryptography", "the Moon landing", "coral reefs", "public key infrastructure",
]
QUESTIONS = [
    "What is {t}?", "Explain {t} to a ten-year-old.", "Give me three facts about {t}.",
    "Why does {t} matter?", "Write a haiku about {t}.", "Summarize the history of {t} in two sentences.",
    "What are common misconceptions about {t}?", "Compare {t} and {u} briefly.",
    "List the pros and cons of {t}.", "How would you teach {t} in one lesson?",
]
SENTENCES = [
    "The committee reviewed the proposal and asked for a revised budget by Friday.",
    "Internationalization requires careful handling of pluralization and date formats.",
    "She said it was, without a doubt, the strangest thing she'd ever seen!",
    "Our latency p99 went from 250ms to 1.2s after the deploy on 2024-03-17.",
    "Uncharacteristically, the antidisestablishmentarian argument went unchallenged.",
    "Please don't forget: the meeting's at 10:30 (room B-204), not 11:00.",
    "A well-formed URL looks like https://example.com/path?query=value&x=1.",
    "The function returned NaN because the denominator was 0.0 in the edge case.",
    "Mr. O'Neill's e-mail (o.neill@example.org) bounced twice yesterday.",
    "Version 3.11.7 fixed a regression introduced in 3.11.5; upgrade when possible.",
]
CODE = [
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
    "fn main() {\n    let v: Vec<u32> = (1..=10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "const fetchUser = async (id) => {\n  const res = await fetch(`/api/users/${id}`);\n  if (!res.ok) throw new Error(res.statusText);\n  return res.json();\n};\n",
    "SELECT u.id, COUNT(o.id) AS orders\nFROM users u LEFT JOIN orders o ON o.user_id = u.id\nGROUP BY u.id HAVING COUNT(o.id) > 5;\n",
    "#include <stdio.h>\nint main(void) {\n    for (int i = 0; i < 3; i++) printf(\"%d\\n\", i);\n    return 0;\n}\n",
    "class LRUCache:\n    def __init__(self, capacity: int):\n        self.capacity = capacity\n        self.cache = OrderedDict()\n",
    "kubectl get pods -n kube-system -o wide | grep -v Running\n",
    "{\n  \"name\": \"modelgate\",\n  \"version\": \"0.1.0\",\n  \"dependencies\": {\"serde\": \"1\", \"tokio\": \"1\"}\n}\n",
]
FOREIGN = [
    "Quelle est la différence entre un café crème et un café au lait ?",
    "Wie funktioniert die Photosynthese bei Pflanzen? Erkläre es kurz.",
    "¿Cuáles son los beneficios de aprender un segundo idioma?",
    "Почему небо голубое? Объясни простыми словами.",
    "请用简单的语言解释什么是人工智能。",
    "日本の首都はどこですか？簡単に説明してください。",
    "ما هي فوائد القراءة اليومية؟",
    "क्या आप मुझे भारत के इतिहास के बारे में बता सकते हैं?",
    "Qual é a capital do Brasil e por que ela foi construída?",
    "Czy możesz wyjaśnić, jak działa silnik elektryczny?",
    "Bir elma günde doktoru uzak tutar mı?",
    "안녕하세요! 오늘 날씨가 어때요?",
]
EMOJI = ["🚀", "🔥", "😀", "🎉", "👍🏽", "🇫🇷", "❤️", "🤖", "✅", "📈"]
SYSTEMS = [
    "You are a helpful assistant.", "You are a terse expert. Answer in at most two sentences.",
    "You are a pirate. Stay in character.", "Answer only in JSON.",
    "You are a senior software engineer reviewing code.",
]


def make_prompt(rng, i):
    kind = i % 9
    t, u = rng.sample(TOPICS, 2)
    if kind == 0:
        text = rng.choice(QUESTIONS).format(t=t, u=u)
    elif kind == 1:
        text = " ".join(rng.sample(SENTENCES, rng.randint(3, 8))) + "\n\nSummarize the text above."
    elif kind == 2:
        text = "Explain what this code does:\n\n```\n" + rng.choice(CODE) + "```"
    elif kind == 3:
        a, b = rng.randint(10, 99999), rng.randint(2, 9999)
        text = f"What is {a} * {b}? Also convert {rng.randint(1, 500)} km to miles and {rng.random() * 100:.2f}% of ${a:,}."
    elif kind == 4:
        text = rng.choice(FOREIGN)
    elif kind == 5:
        text = f"{''.join(rng.choices(EMOJI, k=rng.randint(1, 6)))} {rng.choice(QUESTIONS).format(t=t, u=u)} {rng.choice(EMOJI)}"
    elif kind == 6:
        items = "\n".join(f"- **{x}**: {rng.choice(SENTENCES)}" for x in rng.sample(TOPICS, 3))
        text = f"# Notes\n\n{items}\n\nTurn these notes into a table."
    elif kind == 7:
        text = rng.choice(QUESTIONS).format(t=t, u=u).upper() if rng.random() < 0.3 else rng.choice(SENTENCES)
    else:
        text = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(8, 20))) + "\nWhat is the main point?"
    messages = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": rng.choice(SYSTEMS)})
    if rng.random() < 0.25:
        messages += [
            {"role": "user", "content": rng.choice(QUESTIONS).format(t=u, u=t)},
            {"role": "assistant", "content": " ".join(rng.sample(SENTENCES, 2))},
        ]
    messages.append({"role": "user", "content": text})
    return messages


class Server:
    def __init__(self, url):
        self.url = urllib.parse.urlparse(url)

    def post(self, path, body):
        conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=300)
        conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if resp.status != 200:
            sys.exit(f"{path}: HTTP {resp.status}: {data[:300]!r}")
        return json.loads(data)

    def count(self, text):
        return len(self.post("/tokenize", {"content": text, "add_special": False})["tokens"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args()
    server = Server(os.environ["LLAMA_URL"])
    rng = random.Random(args.seed)
    with open(args.out, "w") as out:
        for i in range(args.n):
            messages = make_prompt(rng, i)
            max_tokens = rng.choice([16, 32, 48, 64, 96])
            common = {"model": MODEL, "max_tokens": max_tokens, "temperature": 0.7, "seed": i}
            if i % 6 == 5:
                prompt = "\n".join(m["content"] for m in messages)
                request = {**common, "prompt": prompt}
                resp = server.post("/v1/completions", request)
                text = resp["choices"][0]["text"]
                texts = [prompt]
            else:
                request = {**common, "messages": messages}
                resp = server.post("/v1/chat/completions", request)
                text = resp["choices"][0]["message"].get("content") or ""
                texts = [m["content"] for m in messages]
            record = {
                "i": i,
                "split": "calibrate" if i % 2 == 0 else "holdout",
                "request": request,
                "text": text,
                "finish_reason": resp["choices"][0].get("finish_reason"),
                "usage": resp["usage"],
                "prompt_text_tokens": [server.count(t) for t in texts],
                "text_tokens": server.count(text),
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            if i % 25 == 0:
                print(f"{i}/{args.n}", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    env = {**os.environ, "CARGO_TARGET_DIR": os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))}
    subprocess.run(
        ["cargo", "test", "-q", "-p", "modelgate-filter", "--lib", "estimator_error_on_real_counts", "--", "--nocapture"],
        cwd=ROOT, env=env, check=True,
    )


if __name__ == "__main__":
    main()

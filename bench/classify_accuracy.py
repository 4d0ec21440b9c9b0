"""Reply classifier benchmark: accuracy on the labelled replies and time per classification.

    .venv/bin/python bench/classify_accuracy.py [--rounds 30] [--data FILE]

Classifies every reply of FILE (default tests/data/replies_labelled.yaml, see its header) and
prints the accuracy, per-class precision and recall, the confusion matrix, how the auto-reply
threshold (confidence >= 70) splits right from wrong answers, then the time per classify()
call: every reply classified `--rounds` times after one warm-up round, best round reported
(the others absorb noise from the rest of the machine). classify() is on the inbound webhook's
hot path, which targets 700 requests/s on 2 cores for the whole request: it should stay well
under 200 us. No database, no network. The last line printed is one JSON object."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from outreach_core.replies.classes import ReplyClass  # noqa: E402
from outreach_core.replies.classify import (  # noqa: E402
    Classification,
    classify,
    load_classification_rules,
)

DATA = ROOT / "tests" / "data" / "replies_labelled.yaml"
CLASSES = [c.value for c in ReplyClass]


def load(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["replies"])


def run(item: dict[str, Any]) -> Classification:
    return classify(
        item["text"],
        item["client"],
        opt_out_type=item.get("opt_out_type"),
        is_call=bool(item.get("is_call", False)),
    )


def correct(item: dict[str, Any], result: Classification) -> bool:
    """Right class, and for an email capture the right address."""
    if result.id != item["expected"]:
        return False
    return item["expected"] != ReplyClass.EMAIL_CAPTURE or result.fields.get("email") == item.get(
        "email"
    )


def confusion_table(pairs: list[tuple[str, str]]) -> str:
    """Rows: expected class; columns: predicted class (abbreviated in the header)."""
    counts = Counter(pairs)
    short = {
        c: c.replace("called-phone-line", "call").replace("email-capture", "email") for c in CLASSES
    }
    width = max(len(c) for c in CLASSES)
    header = " " * width + " | " + " ".join(f"{short[c][:8]:>8}" for c in CLASSES)
    lines = [header, "-" * len(header)]
    for expected in CLASSES:
        cells = " ".join(f"{counts[(expected, got)] or '.':>8}" for got in CLASSES)
        lines.append(f"{expected:>{width}} | {cells}")
    return "\n".join(lines)


def per_class(pairs: list[tuple[str, str]]) -> list[str]:
    lines = [f"{'class':>18}  precision  recall  support"]
    for reply_class in CLASSES:
        true_pos = sum(1 for e, g in pairs if e == g == reply_class)
        predicted = sum(1 for _, g in pairs if g == reply_class)
        support = sum(1 for e, _ in pairs if e == reply_class)
        precision = true_pos / predicted if predicted else float("nan")
        recall = true_pos / support if support else float("nan")
        lines.append(f"{reply_class:>18}  {precision:9.3f}  {recall:6.3f}  {support:7d}")
    return lines


def time_per_reply_us(items: list[dict[str, Any]], rounds: int) -> tuple[float, float]:
    """(best, median) microseconds per classify() over `rounds` passes over `items`."""
    calls = [
        (i["text"], i["client"], i.get("opt_out_type"), bool(i.get("is_call", False)))
        for i in items
    ]
    for text, client, opt_out_type, is_call in calls:  # warm-up: caches, branch predictors
        classify(text, client, opt_out_type=opt_out_type, is_call=is_call)
    per_round = []
    for _ in range(rounds):
        started = time.perf_counter()
        for text, client, opt_out_type, is_call in calls:
            classify(text, client, opt_out_type=opt_out_type, is_call=is_call)
        per_round.append((time.perf_counter() - started) / len(calls) * 1e6)
    return min(per_round), statistics.median(per_round)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()

    started = time.perf_counter()
    threshold = load_classification_rules().scoring.auto_reply_threshold
    classify("warm up", "nextier")
    load_ms = (time.perf_counter() - started) * 1000

    items = load(args.data)
    results = [run(item) for item in items]
    pairs = [
        (item["expected"], result.id.value) for item, result in zip(items, results, strict=True)
    ]
    right = [correct(item, result) for item, result in zip(items, results, strict=True)]
    accuracy = sum(right) / len(items)

    print(
        f"{len(items)} labelled replies ({args.data}), by client: "
        f"{dict(Counter(item['client'] for item in items))}"
    )
    print(f"accuracy {accuracy:.4f} ({sum(right)}/{len(items)})")
    print(*per_class(pairs), sep="\n")
    print("confusion matrix (rows expected, columns predicted):")
    print(confusion_table(pairs))

    opt_out_missed = sum(1 for e, g in pairs if e == "opt-out" != g)
    false_opt_outs = sum(1 for e, g in pairs if g == "opt-out" != e)
    confident = [ok for ok, r in zip(right, results, strict=True) if r.confidence >= threshold]
    ambiguous_high = sum(
        1
        for item, r in zip(items, results, strict=True)
        if item.get("ambiguous") and r.confidence >= threshold
    )
    print(f"opt-outs missed {opt_out_missed}, false opt-outs {false_opt_outs}")
    print(
        f"confidence >= {threshold} (auto-reply): {len(confident)} replies, "
        f"{sum(confident)} right ({sum(confident) / max(len(confident), 1):.4f}); "
        f"labelled ambiguous yet >= {threshold}: {ambiguous_high}"
    )
    for item, result, ok in zip(items, results, right, strict=True):
        if not ok:
            print(
                f"  wrong: {item['text']!r} ({item['client']}) expected {item['expected']}, "
                f"got {result.id.value} {result.confidence} {result.fields or ''} {result.matched}"
            )

    best_us, median_us = time_per_reply_us(items, args.rounds)
    print(
        f"classify(): {best_us:.1f} us a reply (best of {args.rounds} rounds; median "
        f"{median_us:.1f} us); rules loaded and compiled in {load_ms:.0f} ms; machine: "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        json.dumps(
            {
                "bench": "classify",
                "replies": len(items),
                "accuracy": round(accuracy, 4),
                "opt_out_missed": opt_out_missed,
                "false_opt_outs": false_opt_outs,
                "us_per_reply": round(best_us, 1),
                "us_per_reply_median": round(median_us, 1),
            }
        )
    )


if __name__ == "__main__":
    main()

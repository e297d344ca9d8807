"""The calibration behind the Claude token estimates (pam_hybrid/providers/tokens.py): Anthropic's legacy tokenizer
against o200k_base on this repository's own prose (Markdown) and code (Python).

Anthropic publishes no tokenizer for its current models; the legacy one (Claude 2's) shipped in its SDK up to 0.38.
It needs the `tokenizers` package, which the project does not depend on, so run it from a scratch environment:

    python3 -m venv /tmp/calib && /tmp/calib/bin/pip install tokenizers tiktoken==0.14.0
    .venv/bin/pip download anthropic==0.38.0 --no-deps -d /tmp/calib
    unzip -o /tmp/calib/anthropic-0.38.0-*.whl anthropic/tokenizer.json -d /tmp/calib
    /tmp/calib/bin/python bench/claude_ratio.py /tmp/calib/anthropic/tokenizer.json
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tokenizers import Tokenizer  # noqa: E402 (only in the scratch environment)

from pam_hybrid.providers.encodings import get_encoding  # noqa: E402

GROUPS = {"prose (*.md)": "*.md", "code (*.py)": "*.py"}
SKIP = (".venv", "node_modules", ".git")


def files(pattern: str) -> list[Path]:
    return sorted(p for p in ROOT.rglob(pattern) if not any(part in SKIP for part in p.parts))


def main(tokenizer_json: str) -> None:
    claude = Tokenizer.from_file(tokenizer_json)
    o200k = get_encoding("o200k_base")
    print(f"{'corpus':<14} {'files':>5} {'chars':>9} {'legacy':>8} {'o200k':>8} {'ratio':>6} {'worst file':>10}")
    for name, pattern in GROUPS.items():
        legacy_total = o200k_total = chars = 0
        worst = 0.0
        paths = [p for p in files(pattern) if p.read_text(encoding="utf-8").strip()]
        for path in paths:
            text = path.read_text(encoding="utf-8")
            legacy, ours = len(claude.encode(text).ids), len(o200k.encode_ordinary(text))
            legacy_total, o200k_total, chars = legacy_total + legacy, o200k_total + ours, chars + len(text)
            if ours > 50:
                worst = max(worst, legacy / ours)
        print(f"{name:<14} {len(paths):>5} {chars:>9} {legacy_total:>8} {o200k_total:>8} "
              f"{legacy_total / o200k_total:>6.3f} {worst:>10.3f}")


if __name__ == "__main__":
    main(sys.argv[1])

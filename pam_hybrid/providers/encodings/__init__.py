"""OpenAI's BPE encodings for tiktoken, loaded from files shipped in this package (never downloaded).

tiktoken fetches its encoding files from the network at first use; this machine and CI reach only package
registries. The two files here are byte-identical to the ones tiktoken expects (checked against tiktoken's own
SHA-256 on every load), gzipped; see README.md beside them for where they came from and LICENSE for their terms.
The split patterns and special tokens are tiktoken's (`tiktoken_ext/openai_public.py`, tiktoken 0.14.0).
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import tiktoken

DIRECTORY = Path(__file__).resolve().parent
DEFAULT_ENCODING = "o200k_base"

_ENDOFTEXT = "<|endoftext|>"


@dataclass(frozen=True, slots=True)
class _Spec:
    sha256: str
    pat_str: str
    special_tokens: dict[str, int]


_O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)

SPECS = {
    "o200k_base": _Spec(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str=_O200K_PATTERN,
        special_tokens={_ENDOFTEXT: 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": _Spec(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=_CL100K_PATTERN,
        special_tokens={_ENDOFTEXT: 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                        "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276},
    ),
}


class EncodingFileError(RuntimeError):
    """A shipped encoding file is missing or not the one tiktoken expects."""


def _ranks(name: str, spec: _Spec) -> dict[bytes, int]:
    path = DIRECTORY / f"{name}.tiktoken.gz"
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise EncodingFileError(f"cannot read {path}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise EncodingFileError(f"{path} is not the {name} file tiktoken expects (SHA-256 differs)")
    return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines() if line)}


_BUILDING = threading.Lock()


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The named encoding, built once per process from its shipped file (about 0.3 s for o200k_base).

    Built under a lock: on a cold server a burst of sockets each warms the estimator up in a worker thread, and
    unguarded each of those threads built its own copy (a high-water mark of about 350 MB that stayed)."""
    with _BUILDING:
        return _built(name)


@functools.cache
def _built(name: str) -> tiktoken.Encoding:
    spec = SPECS.get(name)
    if spec is None:
        raise KeyError(f"no shipped encoding {name!r}; shipped: {', '.join(sorted(SPECS))}")
    return tiktoken.Encoding(name, pat_str=spec.pat_str, mergeable_ranks=_ranks(name, spec),
                             special_tokens=spec.special_tokens)


def forget_encodings() -> None:
    """Drop the built encodings (tests that load them anew)."""
    get_encoding.cache_clear()
    _built.cache_clear()


def encoding_name_for_model(model: str) -> str:
    """tiktoken's encoding for an OpenAI model; o200k_base (every current OpenAI model's) for names it does not know,
    such as models served by OpenAI-compatible servers, whose own tokenizers are not shipped here."""
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        return DEFAULT_ENCODING
    return name if name in SPECS else DEFAULT_ENCODING

"""The router's features: named, explainable signals of what a query asks (task verbs, constraints, structure,
code, maths, translation, the conversation so far) plus hashed word uni/bigrams for the learned part.

Computed in microseconds: one lower-casing and one word split over at most `SCAN_CHARS` characters (the head and
the tail of a long message, where the ask usually is), set lookups, and a few precompiled regexes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from zlib import crc32

FEATURES_VERSION = 4
"""Bumped whenever a feature is computed differently: a model's weights only mean something with the features it
was trained on."""
HASH_BITS = 12
HASH_SIZE = 1 << HASH_BITS
SCAN_CHARS = 700
"""Characters of a message read for features: the first 2/3 and the last 1/3 of this many."""
HISTORY_TURNS = 20
"""Earlier turns the router reads (user and assistant texts, the most recent)."""
HEAD_WORDS = 40
TAIL_WORDS = 10
"""Words of a message hashed into uni/bigrams: the first HEAD_WORDS and the last TAIL_WORDS."""

_DIGITS = frozenset("0123456789")
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_+#'")
_SPLIT_TABLE = str.maketrans(
    {**{chr(code): " " for code in range(128) if chr(code) not in _WORD_CHARS}, **dict.fromkeys("“”‘«»—–…", " "),
     "’": "'"}
)
"""Lower-cased text -> words: every ASCII character but letters, digits and _+#' becomes a space (faster than a
regex)."""
_FENCE_MARKS = ("```", "\n    ", "\n\t")
_CODE_WORDS = frozenset({
    "def", "class", "import", "return", "const", "let", "var", "function", "fn", "func", "public", "void", "async",
    "await", "lambda", "elif", "printf", "println", "console", "self", "this", "null", "none", "nil", "struct",
})
_CODE_MARKS = ("=>", "->", "::", "{\n", ";\n", "&&", "==", "()")
_TRACE_MARKS = ("traceback", "error:", "exception", ", line ")
_LIMIT_UNITS = frozenset({
    "word", "words", "sentence", "sentences", "paragraph", "paragraphs", "line", "lines", "character", "characters",
    "chars", "bullet", "bullets", "point", "points", "page", "pages", "item", "items", "tweet", "tweets", "slides",
})
_NUMBER_WORDS = frozenset({"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"})
_NUMBERED_RE = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+\S", re.MULTILINE)
_EQUATION_MARKS = ("=", "^", "<", ">", "≤", "≥")
_LATEX_MARKS = ("\\frac", "\\int", "\\sum", "\\sqrt")
_MATHS_SYMBOLS_RE = re.compile(r"[∫∑∏√≤≥∂π]")
_EQUATION_RE = re.compile(r"[=^<>≤≥]\s*[-\d(a-z]")
"""An operator followed by an operand; `_equation` checks that an operand precedes it too (a pattern that starts
with the operator is searched for quickly: one starting with a letter is tried at every letter)."""
_QUOTE_MARKS = ('"', "“", "«", "\n\n")

_VERBS: dict[str, frozenset[str]] = {
    "verb_write": frozenset({
        "write", "draft", "compose", "rewrite", "essay", "story", "poem", "letter", "speech", "article", "proposal",
        "memo", "report", "cover", "blog", "script", "narrative",
    }),
    "verb_design": frozenset({
        "design", "architect", "architecture", "plan", "strategy", "roadmap", "schema", "migrate", "migration",
        "propose", "model", "structure", "scalable", "system",
    }),
    "verb_prove": frozenset({"prove", "proof", "derive", "derivation", "show", "lemma", "theorem", "induction"}),
    "verb_build": frozenset({
        "implement", "build", "refactor", "optimise", "optimize", "debug", "fix", "code", "program", "algorithm",
        "function", "query", "script", "parse", "automate",
    }),
    "verb_analyse": frozenset({
        "compare", "critique", "evaluate", "analyse", "analyze", "analysis", "review", "assess", "tradeoffs",
        "trade-offs", "tradeoff", "pros", "cons", "argue", "justify", "weigh", "recommend", "diagnose", "why",
    }),
    "verb_explain": frozenset({"explain", "describe", "elaborate", "walk", "teach", "outline"}),
    "verb_translate": frozenset({"translate", "translation", "translating"}),
    "verb_summarise": frozenset({"summarise", "summarize", "summary", "tl;dr", "condense", "shorten"}),
    "verb_lookup": frozenset({
        "define", "definition", "spell", "synonym", "antonym", "convert", "meaning", "pronounce", "abbreviation",
        "capital", "population", "list", "name",
    }),
}
_TASK_VERBS = ("verb_write", "verb_design", "verb_prove", "verb_build", "verb_analyse", "verb_summarise")
_CONSTRAINT_WORDS = frozenset({
    "must", "without", "should", "ensure", "avoid", "only", "exactly", "limit", "maximum", "minimum", "strictly",
    "never", "always", "include", "including", "require", "requirements", "constraint", "constraints", "cite",
    "keep", "preserve", "assume", "given", "budget", "deadline",
})
_CONSTRAINT_PHRASES = ("at least", "at most", "no more than", "don't", "do not", "make sure", "in the style of",
                       "for an audience", "for a ", "aimed at", "suitable for", "no longer than")
_TONE_WORDS = frozenset({
    "tone", "formal", "informal", "casual", "friendly", "professional", "persuasive", "playful", "witty", "humorous",
    "audience", "register", "voice", "style", "polite", "empathetic", "diplomatic", "academic", "idiom", "idioms",
    "idiomatic", "nuance", "nuances", "wordplay", "rhyme", "rhyming", "meter", "sarcastic",
})
_FORMAT_WORDS = frozenset({"json", "yaml", "markdown", "csv", "latex", "html", "xml", "format", "formatted"})
_STRUCTURE_WORDS = frozenset({
    "table", "steps", "step-by-step", "outline", "sections", "section", "bullet", "bullets", "headings", "checklist",
    "timeline", "phases", "milestones", "matrix", "diagram", "agenda", "itinerary", "syllabus", "curriculum",
})
_SQL_WORDS = frozenset({"select", "join", "group", "partition", "over", "having", "window", "cte", "sql", "rank",
                        "row_number", "lag", "lead", "postgres", "postgresql", "mysql", "sqlite", "index"})
_SQL_CONTEXT = frozenset({"sql", "postgres", "postgresql", "mysql", "sqlite", "tables", "columns", "query", "select",
                          "bigquery", "snowflake", "join", "joins"})
_SQL_AGGREGATE = frozenset({
    "per", "each", "top", "pivot", "running", "cumulative", "median", "average", "avg", "sum", "rank", "most",
    "least", "distinct", "duplicates", "consecutive", "monthly", "month", "but", "never", "retention", "cohort",
    "percentile", "times", "total", "totals", "ratio",
})
_SQL_HEAVY = frozenset({"join", "partition", "having", "window", "row_number", "rank", "lag", "lead", "cte"})
_MATHS_WORDS = frozenset({
    "prove", "integral", "integrate", "derivative", "differentiate", "probability", "expected", "variance",
    "eigenvalue", "eigenvalues", "matrix", "theorem", "lemma", "equation", "equations", "solve", "limit",
    "converge", "converges", "series", "induction", "polynomial", "modulo", "prime", "primes", "bayes",
    "combinatorics", "permutations", "combinations", "optimise", "minimise", "maximise", "rate", "compound",
    "interest", "percent", "ratio", "distribution", "regression", "hypothesis", "irrational", "sqrt", "log",
})
_FACT_STARTS = (
    "what is", "what's", "what are", "who is", "who was", "who wrote", "who invented", "when is", "when was",
    "when did", "where is", "where was", "how many", "how much", "how tall", "how old", "how far", "how long is",
    "define", "convert", "what does", "which is", "is it", "spell", "name the", "what year", "what time",
)
_LITERAL_ASKS = (
    "what time", "what date", "what's the date", "what day", "when", "how many", "how much", "how long", "how old",
    "who", "which", "where", "what language", "is there", "does it", "does this", "did ", "find the", "extract",
    "list the", "what's the name", "what is the name", "what's the cost", "what is the cost", "what's the total",
    "what's the price", "is this", "is it",
)
_MECHANISM_STARTS = ("how does", "how do computers", "how do vaccines", "why does", "why do ", "why is", "why are",
                     "how is it that", "what happens when", "what causes")
"""A question about how or why something works (rubric C11), as opposed to "how do I ..." (S8)."""
_SCHEMA_RE = re.compile(r"\((?:[a-z_]+, ?)+[a-z_]+\)")
"""The columns of a table written as name(column, column, ...), as SQL questions give them: two or more tables
mean a join (C6). `_schemas` checks the name before it (a pattern starting with the name's letter would be tried at
every letter)."""
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_")
_JUDGEMENTS = ("should", "normal", "fair", "reasonable", "risk", "worth", "better", "safe", "legal", "enough",
               "convincing", "wrong with", "push back")
"""Words that turn a question about pasted material from reading a fact off it (S7) into judging it (C10)."""
_LIGHT_EDITS = ("typo", "grammar", "spelling", "proofread", "shorter", "polite", "rephrase", "reword", "punctuation",
                "capitali", "format this", "fix the")
_LANGUAGES = frozenset({
    "french", "spanish", "german", "italian", "portuguese", "japanese", "chinese", "mandarin", "korean", "arabic",
    "russian", "dutch", "polish", "swedish", "hindi", "turkish", "greek", "english", "hebrew", "vietnamese",
    "norwegian", "danish", "finnish", "czech", "ukrainian", "thai", "indonesian", "latin",
})
_REFER_BACK = frozenset({
    "same", "it", "now", "also", "again", "that", "this", "those", "these", "instead", "above", "previous", "more",
    "shorter", "longer", "simpler", "another", "too", "continue", "expand", "redo", "version",
})
_DEPTH_WORDS = frozenset({
    "detailed", "detail", "thorough", "comprehensive", "in-depth", "rigorous", "rigorously", "carefully",
    "step", "reasoning", "edge", "cases", "complexity", "performance", "production", "scale", "concurrency",
    "security", "tradeoffs", "alternatives", "implications", "nuanced",
})
_SIMPLE_WORDS = frozenset({"quick", "quickly", "briefly", "simple", "short", "one-word", "yes", "no", "just"})
_EDIT_STARTS = ("fix the", "fix typos", "fix my", "fix this", "make this", "make it", "rephrase", "reword",
                "proofread", "correct the", "correct this", "shorten", "shorter version", "rewrite '", 'rewrite "',
                "rewrite this sentence", "paraphrase", "improve this sentence")
"""How a light edit of a short text starts (rubric S4)."""
_QUOTED_TEXT = ("'", '"', ":", "“", "‘")
"""How a light edit gives the text to edit, in the message itself."""
_TRANSFORMS = frozenset({
    "translate", "rewrite", "rephrase", "reword", "shorter", "longer", "shorten", "formal", "informal", "friendlier",
    "simpler", "version", "again", "same", "redo", "expand", "extend", "add", "change", "convert", "adapt", "tweak",
    "polish", "tighten", "bullet", "bullets", "table", "summarise", "summarize",
})
"""Words of a follow-up asking to redo or transform the previous turn (rubric H1, H2)."""
_CHALLENGES = ("why", "why?", "how come", "are you sure", "really?", "is that right", "explain", "how so",
               "what do you mean")
"""A bare challenge of the previous answer (rubric H3)."""
_NEW_TOPIC = ("unrelated", "different question", "new question", "another question", "off topic", "by the way",
              "btw", "random question", "quick question", "ok different", "separate question", "changing topic")
"""A follow-up that starts a new topic (rubric H4): read on its own."""

NAMED_FEATURES: tuple[str, ...] = (
    "log_chars", "log_words", "long_text", "very_long_text", "lines",
    *_VERBS, "task_verbs",
    "constraints", "word_limit", "tone_or_audience", "format_request", "numbered_items",
    "structure_request", "depth_request", "brevity_request",
    "code_fence", "code_tokens", "stack_trace", "sql", "sql_advanced", "table_schemas",
    "maths_terms", "equation", "quantities",
    "fact_question", "mechanism_question", "short_question", "question_marks",
    "translation", "translation_keep_tone", "translation_long_text", "language_named", "quoted_text",
    "pasted_material", "pasted_literal_ask", "pasted_light_edit", "light_edit",
    "earlier_turns", "last_answer_length", "refers_back", "short_follow_up", "earlier_ask_demanding",
    "follow_up_on_long_answer", "translate_long_answer",
    "transform_follow_up", "transforms_long_answer", "inherits_demanding_ask", "challenge_follow_up",
    "challenges_demanding_ask", "new_topic",
)
"""Every named feature, in the model file's order."""


@dataclass(frozen=True, slots=True)
class Extracted:
    """A query's named feature values (only those not zero) and its hashed uni/bigram buckets."""

    named: dict[str, float]
    buckets: frozenset[int]


def _scanned(text: str) -> str:
    if len(text) <= SCAN_CHARS:
        return text
    head = SCAN_CHARS * 2 // 3
    return text[:head] + "\n" + text[-(SCAN_CHARS - head):]


def hashed_buckets(words: Sequence[str]) -> frozenset[int]:
    """The buckets of the words' unigrams and bigrams (of the first HEAD_WORDS and last TAIL_WORDS words): one
    crc32 per word, a bigram's bucket mixed from its two words' hashes."""
    if len(words) > HEAD_WORDS + TAIL_WORDS:
        words = [*words[:HEAD_WORDS], *words[-TAIL_WORDS:]]
    mask = HASH_SIZE - 1
    hashes = [crc32(word.encode()) for word in words]
    buckets = {current & mask for current in hashes}
    buckets.update([((previous * 0x9E3779B1) ^ current) >> 7 & mask
                    for previous, current in zip([0, *hashes], hashes, strict=False)])
    return frozenset(buckets)


def _words(lowered: str) -> list[str]:
    return lowered.translate(_SPLIT_TABLE).split()


def _equation(lowered: str) -> bool:
    for match in _EQUATION_RE.finditer(lowered):
        before = lowered[:match.start()].rstrip()[-1:]
        if before and (before.isalnum() or before == ")"):
            return True
    return False


def _limits(words: list[str], word_set: set[str]) -> int:
    """How many length limits the words set ("500 words", "three bullets"): a count just before a unit."""
    if _LIMIT_UNITS.isdisjoint(word_set):
        return 0
    return len([word for before, word in pairwise(words)
                if word in _LIMIT_UNITS and (before in _NUMBER_WORDS or before.isdigit())])


def _schemas(lowered: str) -> int:
    if "(" not in lowered:
        return 0
    return len([match for match in _SCHEMA_RE.finditer(lowered) if lowered[match.start() - 1:match.start()]
                in _NAME_CHARS])


def _marks(text: str, marks: Sequence[str]) -> int:
    return len([mark for mark in marks if mark in text])


def _demanding(lowered: str, word_set: frozenset[str] | set[str], n_words: int) -> float:
    """How demanding an earlier user turn looked (task verbs, constraints, tone, structure, code, maths, SQL,
    length), 0 to 2."""
    task = sum(1 for key in _TASK_VERBS if not _VERBS[key].isdisjoint(word_set))
    score = task + min(len(word_set & _CONSTRAINT_WORDS), 3) + (2 if "```" in lowered else 0)
    score += min(len(word_set & _TONE_WORDS), 2) + min(len(word_set & _STRUCTURE_WORDS), 2)
    score += min(len(word_set & _MATHS_WORDS), 2) + (not _SQL_HEAVY.isdisjoint(word_set))
    return min(score, 5) / 5 + min(n_words, 400) / 400


def _size_features(text: str, lowered: str, n_words: int, named: dict[str, float]) -> None:
    named["log_chars"] = math.log1p(len(text)) / 5
    named["log_words"] = math.log1p(n_words) / 4
    named["long_text"] = float(len(text) > 800)
    named["very_long_text"] = float(len(text) > 3000)
    named["lines"] = min(lowered.count("\n"), 40) / 10


def _task_features(lowered: str, word_set: set[str], named: dict[str, float]) -> None:
    task = 0
    for key, vocabulary in _VERBS.items():
        if not vocabulary.isdisjoint(word_set):
            named[key] = 1.0
            task += key in _TASK_VERBS
    if len(lowered) < 250 and lowered.lstrip().startswith(_EDIT_STARTS) and _marks(lowered, _QUOTED_TEXT) > 0:
        # "fix the grammar: '...'", "make this more polite: '...'": the verbs name a light edit of the text given
        # with them, not a task (S4); "fix the race condition in ..." quotes nothing and stays a task.
        named["light_edit"], task = 1.0, 0
    named["task_verbs"] = float(task)
    named["structure_request"] = min(len(word_set & _STRUCTURE_WORDS), 3) + float("step by step" in lowered)
    named["depth_request"] = min(len(word_set & _DEPTH_WORDS), 4) / 2
    named["brevity_request"] = float(not _SIMPLE_WORDS.isdisjoint(word_set))


def _constraint_features(scanned: str, lowered: str, words: list[str], word_set: set[str],
                         named: dict[str, float]) -> int:
    """Constraint features; returns how many tone/audience words there are."""
    limits = _limits(words, word_set)
    tone = len(word_set & _TONE_WORDS)
    numbered = len(_NUMBERED_RE.findall(scanned)) if "\n" in scanned else 0
    constraints = len(word_set & _CONSTRAINT_WORDS) + _marks(lowered, _CONSTRAINT_PHRASES)
    constraints += limits + min(tone, 2) + min(numbered, 6)
    named["constraints"] = min(constraints, 10) / 2
    named["word_limit"] = float(limits > 0)
    named["tone_or_audience"] = float(tone > 0)
    named["format_request"] = float(not _FORMAT_WORDS.isdisjoint(word_set))
    named["numbered_items"] = min(numbered, 10) / 3
    return tone


def _code_maths_features(scanned: str, lowered: str, words: list[str], word_set: set[str],
                         named: dict[str, float]) -> None:
    named["code_fence"] = float(_marks(scanned, _FENCE_MARKS) > 0)
    named["code_tokens"] = min(len(word_set & _CODE_WORDS) + _marks(scanned, _CODE_MARKS), 12) / 4
    named["stack_trace"] = float(_marks(lowered, _TRACE_MARKS) > 0)
    sql = len(word_set & _SQL_WORDS)
    named["sql"] = float(sql >= 2 or "sql" in word_set)
    in_sql = named["sql"] > 0 or not _SQL_CONTEXT.isdisjoint(word_set)
    named["sql_advanced"] = float(in_sql and (not _SQL_HEAVY.isdisjoint(word_set) or "group by" in lowered
                                              or not _SQL_AGGREGATE.isdisjoint(word_set)))
    named["table_schemas"] = min(_schemas(lowered), 4) / 2
    named["maths_terms"] = min(len(word_set & _MATHS_WORDS), 4) / 2
    # The symbols are not ASCII and every LaTeX mark has a backslash: both searches are skipped on most texts.
    symbols = not lowered.isascii() and _MATHS_SYMBOLS_RE.search(lowered) is not None
    latex = "\\" in lowered and _marks(lowered, _LATEX_MARKS) > 0
    named["equation"] = float(symbols or latex or (_marks(lowered, _EQUATION_MARKS) > 0 and _equation(lowered)))
    named["quantities"] = min(len([word for word in words[:60] if word[0] in _DIGITS]), 8) / 4


def _question_features(text: str, lowered: str, word_set: set[str], n_words: int, tone: int,
                       named: dict[str, float]) -> None:
    # "how many ways can 8 people sit...", "how many grams of CO2..., show steps": worked problems, not facts (C7).
    worked = named.get("structure_request", 0) or named.get("depth_request", 0) or named.get("quantities", 0) >= 0.5
    start = lowered.lstrip()
    named["fact_question"] = float(not worked and start.startswith(_FACT_STARTS))
    named["mechanism_question"] = float(start.startswith(_MECHANISM_STARTS) and n_words >= 5)
    named["short_question"] = float(n_words <= 12 and "?" in lowered)
    named["question_marks"] = min(lowered.count("?"), 5) / 2
    languages = not _LANGUAGES.isdisjoint(word_set)
    translation = "verb_translate" in named or (languages and ("in " in lowered or "into " in lowered))
    named["translation"] = float(translation)
    named["language_named"] = float(languages)
    named["translation_keep_tone"] = float(translation and tone > 0)
    named["translation_long_text"] = float(translation and len(text) > 300)
    named["quoted_text"] = float(len(text) > 200 and _marks(lowered, _QUOTE_MARKS) > 0)


def _pasted_ask(lowered: str, text_length: int) -> str | None:
    """The ask of a message that pastes material (a short first or last line beside a longer text), or None."""
    if text_length < 250:
        return None
    cut = lowered.find("\n")
    if cut < 0:
        return None
    ask = lowered[:cut]
    if len(ask) > 200 or text_length - cut < 150:
        ask = lowered[lowered.rfind("\n") + 1:]
        if len(ask) > 200:
            return None
    ask = ask.strip()
    return ask or None


def _pasted_features(ask: str, named: dict[str, float]) -> None:
    """A short ask about pasted material: a literal question (read it off the text) or a light edit is not the
    same task as analysing the material."""
    named["pasted_material"] = 1.0
    literal = ask.startswith(_LITERAL_ASKS) or "just the" in ask
    named["pasted_literal_ask"] = float(literal and _marks(ask, _JUDGEMENTS) == 0)
    named["pasted_light_edit"] = float(_marks(ask, _LIGHT_EDITS) > 0)


def _conversation_features(lowered: str, words: list[str], history: Sequence[str], named: dict[str, float]) -> None:
    """The conversation so far: a follow-up that redoes, transforms or challenges the previous turn inherits how
    demanding that turn was (rubric H1 to H3); one that opens a new topic does not (H4)."""
    turns = len(history)
    named["earlier_turns"] = min(turns, 20) / 4
    last_answer = history[-1] if turns % 2 == 0 else (history[-2] if turns >= 2 else "")
    named["last_answer_length"] = math.log1p(len(last_answer)) / 8
    head = words[:12]
    named["refers_back"] = float(not _REFER_BACK.isdisjoint(head))
    short = len(words) <= 12
    named["short_follow_up"] = float(short)
    last_user = history[-2] if turns % 2 == 0 else history[-1]
    earlier = last_user[:SCAN_CHARS].lower()
    earlier_words = _words(earlier)
    demanding = _demanding(earlier, set(earlier_words), len(earlier_words))
    named["earlier_ask_demanding"] = demanding
    long_answer = len(last_answer) > 600
    named["follow_up_on_long_answer"] = float(long_answer and (named["refers_back"] > 0 or short))
    named["translate_long_answer"] = float(long_answer and named.get("translation", 0) > 0)
    if lowered.lstrip().startswith(_NEW_TOPIC):
        named["new_topic"] = 1.0
        return
    transform = short and (named.get("translation", 0) > 0 or named.get("language_named", 0) > 0
                           or not _TRANSFORMS.isdisjoint(head))
    named["transform_follow_up"] = float(transform)
    named["transforms_long_answer"] = float(transform) * min(len(last_answer), 2400) / 1200
    named["inherits_demanding_ask"] = demanding * (transform or named["refers_back"] > 0)
    challenge = len(words) <= 8 and lowered.lstrip().startswith(_CHALLENGES)
    if challenge:
        # "why?" asks for the reasons behind the previous answer: as demanding as what it answered (H3).
        named["challenge_follow_up"], named["challenges_demanding_ask"] = 1.0, demanding
        named.pop("task_verbs", None)
        named.pop("verb_analyse", None)


def extract(text: str, history: Sequence[str] = ()) -> Extracted:
    """The features of `text`, the new user message, after `history` (earlier turns, alternating user and
    assistant texts, oldest first)."""
    scanned = _scanned(text)
    lowered = scanned.lower()
    words = _words(lowered)
    word_set = set(words)
    n_words = len(words) if scanned is text else len(text) // 6
    named: dict[str, float] = {}
    _size_features(text, lowered, n_words, named)
    _code_maths_features(scanned, lowered, words, word_set, named)
    ask = _pasted_ask(lowered, len(text))
    if ask is not None:
        # The task is what the ask says, not what the pasted material happens to contain.
        _pasted_features(ask, named)
        scanned = lowered = ask
        words = _words(ask)
        word_set = set(words)
    _task_features(lowered, word_set, named)
    tone = _constraint_features(scanned, lowered, words, word_set, named)
    _question_features(text, lowered, word_set, n_words, tone, named)
    if history:
        _conversation_features(lowered, words, history, named)
    return Extracted(named={key: value for key, value in named.items() if value}, buckets=hashed_buckets(words))

"""The router's reasons in plain words, for staff: the named features that pushed hardest toward the route chosen."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pam_hybrid.domain.routes import Route

MAX_REASONS = 3
_WORDING = "its wording (learned word pairs)"


def _count(label: str, scale: float, plural: str = "") -> Callable[[float], str]:
    def describe(value: float) -> str:
        count = max(1, round(value * scale))
        return f"{count} {label if count == 1 else plural or label + 's'}"
    return describe


def _fixed(text: str) -> Callable[[float], str]:
    return lambda value: text


_PHRASES: dict[str, Callable[[float], str]] = {
    "log_chars": _fixed("its length"), "log_words": _fixed("its length in words"),
    "long_text": _fixed("a long message"), "very_long_text": _fixed("a very long message"),
    "lines": _fixed("many lines"),
    "verb_write": _fixed("asks for writing"), "verb_design": _fixed("asks for a design or plan"),
    "verb_prove": _fixed("asks for a proof or derivation"), "verb_build": _fixed("asks to build or fix code"),
    "verb_analyse": _fixed("asks for analysis or comparison"), "verb_explain": _fixed("asks for an explanation"),
    "verb_translate": _fixed("asks for a translation"), "verb_summarise": _fixed("asks for a summary"),
    "verb_lookup": _fixed("asks to look something up"), "task_verbs": _count("demanding task verb", 1),
    "constraints": _count("constraint", 2), "word_limit": _fixed("a length limit"),
    "tone_or_audience": _fixed("a tone or audience to keep"), "format_request": _fixed("a required format"),
    "numbered_items": _count("numbered requirement", 3), "structure_request": _fixed("asks for structure"),
    "depth_request": _fixed("asks for depth"), "brevity_request": _fixed("asks for brevity"),
    "code_fence": _fixed("contains code"), "code_tokens": _fixed("code tokens"),
    "stack_trace": _fixed("an error trace"),
    "sql": _fixed("SQL"), "sql_advanced": _fixed("SQL joins, grouping or window functions"),
    "table_schemas": _count("table layout", 2), "mechanism_question": _fixed("asks how or why something works"),
    "maths_terms": _fixed("maths terms"), "equation": _fixed("an equation"),
    "quantities": _count("quantity", 4, "quantities"),
    "fact_question": _fixed("a quick fact question"), "short_question": _fixed("a short question"),
    "question_marks": _fixed("several questions"),
    "translation": _fixed("a translation"), "translation_keep_tone": _fixed("a translation that must keep tone"),
    "translation_long_text": _fixed("a long text to translate"), "language_named": _fixed("names a language"),
    "quoted_text": _fixed("quotes a text"),
    "pasted_material": _fixed("pasted material"), "pasted_literal_ask": _fixed("a literal question about pasted text"),
    "pasted_light_edit": _fixed("a light edit of pasted text"), "light_edit": _fixed("a light edit of a short text"),
    "follow_up_on_long_answer": _fixed("follows up a long answer"),
    "translate_long_answer": _fixed("translates a long answer"),
    "earlier_turns": _count("earlier turn", 4), "last_answer_length": _fixed("a long previous answer"),
    "refers_back": _fixed("refers back to the conversation"), "short_follow_up": _fixed("a short follow-up"),
    "earlier_ask_demanding": _fixed("the earlier request was demanding"),
    "transform_follow_up": _fixed("asks to redo or transform the previous answer"),
    "transforms_long_answer": _fixed("transforms a long previous answer"),
    "inherits_demanding_ask": _fixed("carries on a demanding earlier request"),
    "challenge_follow_up": _fixed("questions the previous answer"),
    "challenges_demanding_ask": _fixed("questions the answer to a demanding request"),
    "new_topic": _fixed("starts a new topic"),
}


def reasons_for(
    route: Route, contributions: Mapping[str, float], values: Mapping[str, float], hashed_part: float
) -> tuple[str, ...]:
    """Up to MAX_REASONS phrases for the contributions (feature -> weight × value) that pushed toward `route`,
    strongest first; the hashed word features count as one reason."""
    sign = 1.0 if route == "complex" else -1.0
    pushes = [(sign * weight, name) for name, weight in contributions.items() if sign * weight > 0]
    if sign * hashed_part > 0:
        pushes.append((sign * hashed_part, ""))
    pushes.sort(reverse=True)
    return tuple(
        _PHRASES[name](values[name]) if name else _WORDING for _, name in pushes[:MAX_REASONS]
    )

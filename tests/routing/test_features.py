"""The router's named features fire on the texts they describe, and stay quiet on plain ones."""

from __future__ import annotations

import pytest

from pam_hybrid.routing.features import HASH_SIZE, NAMED_FEATURES, extract


@pytest.mark.parametrize(
    ("text", "fired"),
    [
        ("Design a schema for a multi-tenant invoicing app", {"verb_design", "task_verbs"}),
        ("prove that sqrt 2 is irrational", {"verb_prove", "maths_terms"}),
        ("Write a 500 word blog post for HR managers, friendly tone, must end with 3 takeaways",
         {"verb_write", "word_limit", "tone_or_audience", "constraints"}),
        ("Give me the steps as a table with sections", {"structure_request"}),
        ("```python\ndef f(x):\n    return x[0]\n```\nwhy does this fail?", {"code_fence", "code_tokens"}),
        ("Traceback (most recent call last):\n  File \"a.py\", line 3\nKeyError: 'x'", {"stack_trace"}),
        ("sql: running total per customer with a window function, partition by customer",
         {"sql", "sql_advanced"}),
        ("solve x^2 + 3x = 10 and find the integral of it", {"equation", "maths_terms"}),
        ("What is the capital of France?", {"fact_question", "short_question"}),
        ("translate this into japanese for a client apology, keep the tone very polite",
         {"translation", "translation_keep_tone", "language_named"}),
    ],
)
def test_named_features_fire_on_what_they_name(text: str, fired: set[str]) -> None:
    named = extract(text).named
    assert fired <= set(named), set(named)
    assert set(named) <= set(NAMED_FEATURES)


def test_a_plain_fact_question_has_no_task_code_or_constraint_features() -> None:
    named = extract("who wrote hamlet").named
    assert not {"task_verbs", "constraints", "code_fence", "code_tokens", "sql", "equation"} & set(named)


def test_constraints_are_counted() -> None:
    one = extract("write a poem about rain").named.get("constraints", 0)
    many = extract("write a poem about rain, at most 8 lines, must rhyme, avoid the word wet, formal tone").named
    assert many["constraints"] > one and many["word_limit"] == 1


def test_conversation_features_read_the_history() -> None:
    alone = extract("now in French").named
    history = ("Write a 300 word apology email to a client, formal tone", "Dear Ms Smith, " + "we are sorry. " * 80)
    followed = extract("now in French", history).named
    assert "earlier_turns" not in alone
    assert followed["earlier_turns"] == 0.5 and followed["refers_back"] == 1 and followed["short_follow_up"] == 1
    assert followed["last_answer_length"] > 0 and followed["earlier_ask_demanding"] > 0
    assert followed["translate_long_answer"] == 1 and followed["follow_up_on_long_answer"] == 1


def test_a_literal_question_about_pasted_text_reads_the_task_from_the_ask() -> None:
    pasted = "Our team has been working hard to design and implement a new architecture. " * 10
    named = extract("when is the launch date?\n\n" + pasted).named
    assert named["pasted_material"] == 1 and named["pasted_literal_ask"] == 1
    assert "verb_design" not in named and "verb_build" not in named


def test_hashed_buckets_are_stable_and_in_range() -> None:
    first, second = extract("the same words twice"), extract("the same words twice")
    assert first.buckets == second.buckets and first.buckets
    assert all(0 <= bucket < HASH_SIZE for bucket in first.buckets)
    assert extract("other words entirely").buckets != first.buckets


def test_a_32000_character_message_is_read_with_its_length() -> None:
    named = extract("lorem ipsum " * 2700 + "\nsummarise this").named
    assert named["very_long_text"] == 1 and named["log_chars"] > extract("lorem ipsum " * 100).named["log_chars"]


EMAIL_ASK = "Write a 300 word apology email to a client, formal tone"
EMAIL = "Dear Ms Smith, " + "we are sorry for the delay and have refunded your shipping. " * 20


def test_a_follow_up_transforming_the_last_turn_inherits_how_demanding_and_long_it_was() -> None:
    after_email = extract("and now in French", (EMAIL_ASK, EMAIL)).named
    after_fact = extract("and now in French", ("capital of peru", "Lima.")).named
    assert after_email["transform_follow_up"] == after_fact["transform_follow_up"] == 1
    assert after_email["transforms_long_answer"] > 10 * after_fact["transforms_long_answer"]
    assert after_email["inherits_demanding_ask"] > after_fact.get("inherits_demanding_ask", 0)


def test_a_bare_challenge_is_weighed_by_the_earlier_request_and_a_new_topic_stands_alone() -> None:
    why = extract("why?", ("should we use postgres or mongodb for orders with heavy reporting", "Postgres.")).named
    assert why["challenge_follow_up"] == 1 and why["challenges_demanding_ask"] > 0
    assert "task_verbs" not in why  # "why" asks for the earlier answer's reasons, not an analysis of its own
    new = extract("unrelated, what's the capital of chile", (EMAIL_ASK, EMAIL)).named
    assert new["new_topic"] == 1 and "transform_follow_up" not in new and "inherits_demanding_ask" not in new


def test_a_light_edit_of_a_short_text_is_not_a_task() -> None:
    edit = extract("fix the grammar: 'me and him goes to the store yesterday'").named
    assert edit["light_edit"] == 1 and "task_verbs" not in edit
    assert "light_edit" not in extract("fix the race condition in this queue consumer and add tests").named


def test_a_judgement_about_pasted_text_is_not_a_literal_question() -> None:
    clause = '"Tenant shall be responsible for all repairs to the property, including structural ones." ' * 4
    assert extract("is this clause normal or should I push back?\n\n" + clause).named.get("pasted_literal_ask", 0) == 0
    assert extract("is this clause dated?\n\n" + clause).named["pasted_literal_ask"] == 1


@pytest.mark.parametrize(
    ("text", "limits"),
    [("write 500 words, 3 bullets and a one-word title", 3), ("twenty-one words, a ten-point list", 2),
     ("500words, 3 takeaways, 1,000 pages", 1), ("a paragraph about lines", 0)],
)
def test_length_limits_are_a_count_before_a_unit(text: str, limits: int) -> None:
    named = extract(text).named
    assert named.get("word_limit", 0) == float(limits > 0)


def test_tables_given_as_name_and_columns_are_counted() -> None:
    two = extract("sql: every employee with their department, employees(id, name, dept_id), departments(id, name)")
    assert two.named["table_schemas"] == 1
    assert "table_schemas" not in extract("f (a, b) is a pair, (x, y) too").named

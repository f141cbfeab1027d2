"""Telling a continuation from a reply, and cleaning machine text up (srcflask.ml.continuation)."""

from __future__ import annotations

import pytest

from srcflask.ml.continuation import (
    clean_output,
    distinct_ngram_rate,
    ends_cleanly,
    judge,
    strip_preamble,
    trim_to_sentence_end,
)
from srcflask.ml.engine import document_tail

# Outputs a chat model wrote for ordinary documents: replies to the document, not its next words.
REPLIES = [
    ("Here's a revised version of your text: The meeting was moved.", "presents-a-version"),
    ("Here's the continuation of the notes: The launch is now in May.", "presents-a-version"),
    ("Here is a breakdown of the code:\n\n1. The loop reads the file.", "presents-a-version"),
    ("Here's the next paragraph:\nWe will plant the beds in April.", "presents-a-version"),
    ("I'm glad to hear that the garden is doing well!", "reacts-to-writer"),
    ("I'm so happy you shared this story with me.", "reacts-to-writer"),
    ("It sounds like you had a wonderful trip through the mountains.", "reacts-to-writer"),
    ("What a lovely recipe! Lentils are a great choice.", "reacts-to-writer"),
    ("Great question! Mowing a lawn starts with the right mower.", "reacts-to-writer"),
    ("Sure! The board then voted on the second option.", "interjection"),
    ("Certainly. The third step is to add the stock.", "interjection"),
    ("I'm ready to help. What's your document?", "offers-help"),
    ("I'd be happy to help you continue this letter.", "offers-help"),
    ("Let me continue the story for you.", "offers-help"),
    ("Thank you for sharing your notes on the water cycle.", "thanks-for-sharing"),
    ("This document outlines the steps to reproduce the crash.", "talks-about-document"),
    ("The text describes a quarterly sales report for the eastern region.", "talks-about-document"),
    ("Continuation: the keeper lit the lamp at dusk.", "names-the-task"),
    (
        "The launch moved to spring. As a writing assistant, I kept your tone.",
        "speaks-as-assistant",
    ),
    ("The launch moved to spring. I made a few tweaks to enhance clarity.", "describes-its-edits"),
    ("Add the onions and stir for five minutes. I hope this helps!", "hopes-it-helps"),
    ("The crash happens on rotation. If you'd like me to add logs, say so.", "offers-more"),
    ("The board met again.<|im_end|>", "template-leak"),
    # What SmolLM2-135M-Instruct wrote for benchmark documents in the chat format.
    ("Please go ahead and share it with me, and I'll help you refine it.", "asks-for-document"),
    (
        "You're a writing assistant, and I'm happy to help you refine your writing.",
        "speaks-as-assistant",
    ),
    ("You're an AI assistant for text re-writing. Rewrite the input text.", "speaks-as-assistant"),
    ("I'm here to help you with your writing, whether a novel or a poem.", "offers-help"),
    (
        "Your cover letter is well-written and professional, but I would suggest a few tweaks.",
        "judges-the-writing",
    ),
    ("The document concludes with a continuation of the document.", "talks-about-document"),
    ("The recipe is classic. I can help you polish the next step too.", "offers-to-edit"),
    ("", "empty"),
    ("   \n ", "empty"),
]

# Next paragraphs that people wrote, including ones that look like replies to a naive check.
CONTINUATIONS = [
    "Thank you for your order. Unfortunately the blue armchair is out of stock until May.",
    "Please let me know if you have any questions about the new office before the move.",
    "Here are the three options:\n(a) repair the line, (b) buy a tank, (c) do nothing.",
    "I am happy to recommend Ms Okafor without reservation for your nursing programme.",
    "I'm writing to apply for the laboratory technician position advertised last week.",
    "Sure enough, the fox was back at the river the next morning, paws in the water.",
    "Great Aunt Mabel never trusted the bakery's new oven, and she said so every Sunday.",
    "The text of the agreement will be circulated to all plot holders before the vote.",
    "Workaround\nUntil a fix ships, rename the customer to remove the ampersand.",
    "Step 4. Add the lentils and the stock, bring to a boil, then simmer for 25 minutes.",
    "4. Spring disco\nThe hall is booked for 12 April, and tickets will cost £3.",
    "Remediation and actions\nThe rectifier module was replaced by the vendor on 18 May.",
    "We thank the volunteers who gave up their Saturday to clear the east beds.",
    "OK Computer was playing in the back room when the power went out.",
    "The train climbed on through the snow. I hope the pass is open tomorrow.",
    "Let me explain how the barcode scanner reconnects after it loses the network.",
    "Your order is important to us, and the replacement sofa leaves the warehouse on Monday.",
    "The report is due on Friday; Priya will circulate a draft on Wednesday.",
]


@pytest.mark.parametrize(("text", "rule"), REPLIES)
def test_replies_are_told_from_continuations_by_a_named_rule(text, rule):
    verdict = judge(text)
    assert not verdict.continues
    assert rule in verdict.reasons


@pytest.mark.parametrize("text", CONTINUATIONS)
def test_real_next_paragraphs_pass(text):
    verdict = judge(text)
    assert verdict.continues, verdict.reasons


def test_labelled_examples_are_all_told_apart():
    """The detector's accuracy on its own labelled examples is 100%."""
    correct = sum(not judge(t).continues for t, _ in REPLIES) + sum(
        judge(t).continues for t in CONTINUATIONS
    )
    assert correct == len(REPLIES) + len(CONTINUATIONS)


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (
            "Here's the continuation of the meeting notes: The launch is now in May.",
            "The launch is now in May.",
        ),
        ("Sure! Here is the next part:\n\nThe keeper climbed.", "The keeper climbed."),
        ("**Continuation:** The stew thickens.", "The stew thickens."),
        # Not preambles: ordinary first sentences stay.
        ("Here are the three options: repair, replace, wait.", None),
        ("The board voted. It was close.", None),
        # A reply with nothing after it is left for the detector to flag.
        ("Sure!", None),
    ],
)
def test_a_leading_preamble_is_removed(raw, kept):
    assert strip_preamble(raw) == (kept if kept is not None else raw)


@pytest.mark.parametrize(
    ("text", "trimmed"),
    [
        ("The board met. It voted to buy a tank and", "The board met."),
        ('She said "enough." Then the lamp', 'She said "enough."'),
        ("Is it open? Nobody knows when the", "Is it open?"),
        ("1. Repair the line.\n2. Buy a tank.\n3. Do", "1. Repair the line.\n2. Buy a tank."),
        ("no sentence end at all in this text", "no sentence end at all in this text"),
        ("Prices rose 4.5 percent in the", "Prices rose 4.5 percent in the"),
    ],
)
def test_text_cut_by_the_token_cap_ends_at_its_last_sentence_end(text, trimmed):
    assert trim_to_sentence_end(text) == trimmed


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("The board met.", True),
        ("Was it open?", True),
        ('He said "no."', True),
        ("(See the appendix.)", True),
        ("The board met and", False),
        ("Three options:", False),
        ("1. Repair.\n2.", False),
        ("", False),
    ],
)
def test_clean_endings(text, clean):
    assert ends_cleanly(text) is clean


def test_clean_output_drops_broken_characters_preambles_and_remarks():
    raw = "Sure! Here's the continuation: The café opened at 7.\ufffd I hope this helps! Let"
    assert clean_output(raw, cut_by_length=True, strip_replies=True) == "The café opened at 7."
    # A base model's text keeps a first sentence that merely looks like a preamble.
    raw_base = "Here is the plan: we dig on Monday."
    assert clean_output(raw_base, cut_by_length=False, strip_replies=False) == raw_base


def test_clean_output_drops_control_characters_but_keeps_tabs_and_line_breaks():
    # A model can write NUL through a byte token: Postgres cannot store it.
    raw = "Total:\x00 12\tunits\x07\x1b.\r\nNext\x7f line."
    assert clean_output(raw, cut_by_length=False, strip_replies=False) == (
        "Total: 12\tunits.\r\nNext line."
    )


def test_distinct_ngram_rate_sees_repetition():
    assert distinct_ngram_rate("the board met on a cold Tuesday in March") == 1.0
    looped = "pay the bill and " * 6
    assert distinct_ngram_rate(looped) < 0.3
    assert distinct_ngram_rate("too short") is None


def test_the_continue_format_repeats_the_documents_last_sentence():
    document = "Minutes\n\nThe board met on Tuesday. Three options are on the table:"
    assert document_tail(document) == "Three options are on the table:"
    assert document_tail("One paragraph.\n\nSecond one. Its end.") == "Its end."

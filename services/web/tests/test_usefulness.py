"""What an editor would keep: the checks of machine text, pinned by labelled examples.

Positives are texts the model wrote for real documents; negatives are the true
next paragraphs of the quality benchmark, which no check may flag.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from srcflask.config import QUALITY_FILES
from srcflask.ml import usefulness
from srcflask.ml.quality import load_documents
from srcflask.ml.stopping import DocumentRules, ends_in_list

BENCH = Path(__file__).resolve().parent.parent / "bench"
TRUE_PARAGRAPHS = [d for name in QUALITY_FILES for d in load_documents(BENCH / name)]

# Machine texts the model wrote (beam search, 5 beams, 100 new tokens), and the rule each breaks.
LOOPS = {
    "travel-diary": (
        "we took the tram back to the city centre.\n\nDay four in Lisbon.\n\nDay five in Lisbon"
        "\n\nDay six in Lisbon. This was our last day in the city.\n\nDay seven in Lisbon. "
        "The last day of the tour.",
        "repeated-sentence",  # numbers and number words alike: "day # in lisbon"
        "Day five in Lisbon",
    ),
    "meeting-minutes": (
        "4. New product. Chen said the team has a new product that they are working on. "
        "5. New product release. The team will release the product in May. "
        "6. New product launch.",
        "repeated-skeleton",
        "5. New product release.",
    ),
    "sentence-twice": (
        "The board approved the budget for the spring. Ellis will order the water butts. "
        "The board approved the budget for the spring.",
        "repeated-sentence",
        "The board approved the budget for the spring.",
    ),
    "word-run": (
        "The new system is very very very fast and reliable.",
        "looping-words",
        "very very fast",
    ),
}


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_a_text_that_repeats_itself_is_degenerate_from_where_the_loop_begins(name):
    text, rule, loop_opens = LOOPS[name]
    loop = usefulness.loop_start(text)
    assert loop is not None and loop.rule == rule
    assert text[loop.start :].startswith(loop_opens)
    assert usefulness.is_degenerate(text)


@pytest.mark.parametrize("document", TRUE_PARAGRAPHS, ids=lambda d: d.id)
def test_no_true_next_paragraph_is_flagged(document):
    found = usefulness.assess(document.continuation, document.prompt)
    assert found.loop is None
    assert found.markup == ()
    assert found.contacts == ()


def test_the_benchmark_holds_enough_documents_and_a_held_out_part():
    kinds = {d.kind for d in TRUE_PARAGRAPHS}
    held_out = [d for d in TRUE_PARAGRAPHS if d.split == "held-out"]
    assert len(TRUE_PARAGRAPHS) >= 60 and len(kinds) >= 20
    assert len(held_out) >= 12 and len({d.kind for d in held_out}) >= 12


def test_counting_and_honest_lists_are_not_loops():
    assert usefulness.loop_start("We counted 1 2 3 4 5 6 plants in each bed.") is None
    assert usefulness.loop_start("Step 2. Cancel any jobs. Step 3. Open the tray.") is None


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("<h2>Deploying ML to Heroku</h2>", {"html-tag"}),
        ("Run <code>kubectl create</code> first.", {"html-tag"}),
        ("## Next steps\nWe will meet again.", {"markdown-heading"}),
        ("It is **very** important.", {"markdown-emphasis"}),
        ("Run `make test` first.", {"markdown-code"}),
        ("See [the guide](https://example.org/guide).", {"markdown-link"}),
        ("Fish&nbsp;and chips.", {"html-entity"}),
    ],
)
def test_markup_the_document_does_not_use_is_found(text, kinds):
    assert {span.kind for span in usefulness.unused_markup(text, "A plain document.")} == kinds
    # ... and markup the document itself uses is not.
    assert usefulness.unused_markup(text, text) == []


def test_the_issue_number_and_the_math_are_not_markup():
    plain = "Fixed in issue #42, where x < 5 and y > 2."
    assert usefulness.unused_markup(plain, "A plain document.") == []


def test_invented_contact_details_are_found_and_known_ones_are_not():
    text = (
        "Please contact the board at 206-222-2200 or by email at garden.board@gmail.com, "
        "or see www.larkfield-garden.org. The office number is 01632 555 218."
    )
    document = "Call us on 01632 555 218 or write to the office."
    found = usefulness.invented_contacts(text, document)
    assert [(s.kind, s.text) for s in found] == [
        ("phone", "206-222-2200"),
        ("e-mail", "garden.board@gmail.com"),
        ("web-address", "www.larkfield-garden.org"),
    ]
    assert text[found[0].start : found[0].end] == "206-222-2200"


@pytest.mark.parametrize(
    "text",
    ["The years 1990-2000 were quiet.", "Due on 2024-03-14.", "A balance of $2,914.60.", "v5.14.2"],
)
def test_years_dates_and_amounts_are_not_phone_numbers(text):
    assert usefulness.contacts(text) == []


def test_invented_specifics_are_numbers_dates_and_names_the_document_lacks():
    document = "The board met on 14 March. Tomasz reported a balance of $2,914.60."
    text = (
        "4. Budget. Tomasz said the balance of $2,914.60 would last until May 15, and "
        "Helen Marsh offered $5000 from the council.\n5. Any other business."
    )
    found = usefulness.invented_specifics(text, document)
    assert [(s.kind, s.text) for s in found] == [
        ("date", "May"),
        ("number", "15"),
        ("name", "Helen Marsh"),
        ("number", "$5000"),
    ]


def test_a_heading_opens_a_sentence_so_its_first_word_is_not_a_name():
    # What the model wrote for a bug report that uses Markdown headings, through the product.
    document = "## Steps to reproduce\n\n1. Connect a Google calendar.\n\n## Notes\n\nThe sync job."
    text = (
        "## Troubleshooting\n\n1. Check that the calendar connection is active.\n\n"
        "> Quoted Hilda said so."
    )
    found = usefulness.invented_specifics(text, document)
    assert [(s.kind, s.text) for s in found] == [("name", "Hilda")]


def test_check_marks_do_not_overlap_and_a_contact_wins_over_its_digits():
    text = "Call 206-222-2200 before Friday."
    marks = usefulness.check_marks(text, "Call the office before the meeting.")
    assert [(m.kind, m.text) for m in marks] == [("phone", "206-222-2200"), ("date", "Friday")]


# -- where a text stops ------------------------------------------------------------

PARAGRAPH = DocumentRules(document="Notes.\n\nA first paragraph.", stop_at="paragraph")


def test_a_text_stops_at_the_end_of_its_first_full_paragraph():
    text = (
        "\n\nThe garden centre on Mill Road will deliver the four water butts on Friday "
        "morning.\n\nThe next meeting is on 11 April."
    )
    end = PARAGRAPH.stop(text)
    assert text[:end].endswith("Friday morning.")


def test_a_heading_alone_is_not_a_paragraph():
    text = (
        "\n\nRemediation and actions\n\nThe rectifier module in UPS B2 was replaced by the "
        "vendor on the same day and tested under load.\n\nNext"
    )
    assert text[: PARAGRAPH.stop(text)].endswith("under load.")


def test_a_document_ending_in_a_list_stops_at_the_end_of_the_next_item():
    document = "Actions:\n- Rosa to write to local businesses by 14 March."
    rules = DocumentRules(document=document, stop_at="paragraph", list_item=ends_in_list(document))
    text = "\n- Tom to book the hall for the spring disco and ask the caretaker.\n- Lucy to"
    assert rules.list_item
    assert text[: rules.stop(text)].endswith("ask the caretaker.")


def test_a_looping_text_stops_where_the_loop_begins():
    text, _, loop_opens = LOOPS["travel-diary"]
    cut, reason = PARAGRAPH.finish(text.replace("\n\n", " "))
    assert reason == "loop" and loop_opens not in cut and cut.endswith("Day four in Lisbon.")


def test_a_sentence_with_an_invented_phone_number_is_cut_with_what_follows():
    text = (
        "The board thanked everyone for coming. For questions, call 206-222-2200 any day. "
        "The meeting closed at nine."
    )
    cut, reason = PARAGRAPH.finish(text)
    assert (cut, reason) == ("The board thanked everyone for coming.", "contact")


def test_lengthwise_rules_cut_nothing():
    rules = DocumentRules(document="Notes.", stop_at="length")
    text = "One paragraph here with words enough to count.\n\nAnother."
    assert rules.stop(text) is None and rules.finish(text) == (text, None)


# -- alternatives ----------------------------------------------------------------------


def test_alternatives_are_clearly_different_texts_that_pass_the_checks():
    text = "The board agreed to buy four new water butts from the garden centre."
    candidates = [
        "The board agreed to buy four new water butts from the garden shop.",  # a word off
        "Too short.",
        "Day four in Lisbon. Day five in Lisbon. Day six in Lisbon and more.",  # a loop
        "Ellis will collect them on Saturday morning and fit them along the east fence.",
        "For details call 206-222-2200 or write to the board secretary soon.",  # a contact
        "Priya asked whether the old butts could be recycled; nobody knew the answer yet.",
        "Marcus offered to drive the old ones to the tip in his van next week.",  # a third
    ]
    assert usefulness.distinct_alternatives(text, candidates, "Minutes.") == [
        candidates[3],
        candidates[5],
    ]
    assert usefulness.word_similarity(text, candidates[0]) > usefulness.MOST_SIMILAR

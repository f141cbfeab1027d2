// srcflask's page behaviour. Loaded as a file: the Content-Security-Policy forbids inline scripts.
"use strict";

// Forms marked data-confirm ask before they submit (reject, suspend, delete...).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Forms marked data-busy say so on their button while the server works (a long request).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (event.defaultPrevented || !(form instanceof HTMLFormElement) || !form.dataset.busy) return;
  const button = form.querySelector("button[type=submit]");
  if (button) {
    button.disabled = true;
    button.textContent = form.dataset.busy;
  }
});

// Text boxes with data-count-max show how long their text is, and say when it is too long
// (no maxlength: a browser would silently cut a long paste).
document.addEventListener("DOMContentLoaded", () => {
  for (const box of document.querySelectorAll("textarea[data-count-max]")) {
    const max = Number(box.dataset.countMax);
    const counter = document.createElement("p");
    counter.className = "counter";
    counter.setAttribute("aria-live", "polite");
    counter.dataset.counter = "";
    box.insertAdjacentElement("afterend", counter);
    const update = () => {
      // Count as the server does: line breaks as one character each.
      const length = box.value.replace(/\r\n/g, "\n").length;
      const over = length - max;
      counter.textContent = over > 0
        ? `${length.toLocaleString("en")} of ${max.toLocaleString("en")} characters: ` +
          `${over.toLocaleString("en")} too many`
        : `${length.toLocaleString("en")} of ${max.toLocaleString("en")} characters`;
      counter.classList.toggle("counter-over", over > 0);
    };
    box.addEventListener("input", update);
    update();
  }
});

// Copy buttons: data-copy names the element whose text they copy.
document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = source.textContent.trim();
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch (error) {
    // No clipboard here (a page not served over HTTPS): select the text for Ctrl+C instead.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
});

// A running fine-tuning run: follow its progress (data-follow is its progress URL), and
// reload the page once it has ended, to show its results.
document.addEventListener("DOMContentLoaded", () => {
  const box = document.querySelector("[data-follow]");
  if (!box) return;
  const bar = box.querySelector("progress");
  const words = box.querySelector("[data-progress-words]");
  const follow = async () => {
    try {
      const response = await fetch(box.dataset.follow, {
        headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      if (!response.ok) throw new Error(String(response.status));
      const state = await response.json();
      if (state.finished) {
        window.location.reload();
        return;
      }
      if (bar && state.total_steps) {
        bar.max = state.total_steps;
        bar.value = state.step;
      }
      if (words) {
        const loss = state.loss === null ? "" : `, loss ${state.loss.toFixed(3)}`;
        words.textContent = state.status === "queued"
          ? "Queued: waiting for the runner."
          : `Step ${state.step} of ${state.total_steps} (${state.percent}%)${loss}`;
      }
    } catch (error) {
      if (words) words.textContent = "Could not reach the server; trying again.";
    }
    window.setTimeout(follow, 3000);
  };
  window.setTimeout(follow, 3000);
});

// The review page's keys, shown on its buttons: outside a text box, A accepts, R rejects,
// 1-9 keep the machine text up to that sentence and E goes to the edit box; in the edit
// box, Ctrl+Enter saves the edit.
document.addEventListener("keydown", (event) => {
  const review = document.querySelector("[data-review-form] form");
  if (!review || event.altKey || event.metaKey || event.isComposing || event.repeat) return;
  const target = event.target;
  const typing = target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  const press = (selector) => {
    const button = document.querySelector(selector);
    if (button && !button.disabled) {
      event.preventDefault();
      button.click();
    }
  };
  if (typing) {
    if (event.ctrlKey && event.key === "Enter" && target.matches("[data-review-text]")) {
      press("[data-review-form] button[value=edit]");
    }
    return;
  }
  if (event.ctrlKey || event.shiftKey) return;
  const key = event.key.toLowerCase();
  if (key === "a") press("[data-review-form] button[value=accept]");
  else if (key === "r") press("[data-review-form] button[value=reject]");
  else if (/^[1-9]$/.test(key)) press(`[data-keep="${key}"]`);
  else if (key === "e") {
    const box = document.querySelector("[data-review-text]");
    if (box) {
      event.preventDefault();
      box.focus();
    }
  }
});

// The review page's buttons say what they will do: once the editor changes the text in the
// edit box, Accept saves that edit (the server does the same), and "Keep up to here", which
// keeps the machine text as written, waits until the box holds the machine text again.
document.addEventListener("DOMContentLoaded", () => {
  const box = document.querySelector("[data-review-text]");
  const accept = document.querySelector("[data-review-form] button[value=accept]");
  if (!box || !accept) return;
  const label = accept.querySelector("[data-label]");
  const note = document.querySelector("[data-box-changed]");
  const update = () => {
    const changed = box.value.trim() !== box.defaultValue.trim();
    if (label) label.textContent = changed ? "Accept your edit" : "Accept";
    if (note) note.hidden = !changed;
    for (const keep of document.querySelectorAll("[data-keep]")) {
      keep.disabled = changed;
      keep.title = changed ? "You changed the text in the edit box: accept your edit, or undo it to keep part." : "";
    }
  };
  box.addEventListener("input", update);
  update();
});

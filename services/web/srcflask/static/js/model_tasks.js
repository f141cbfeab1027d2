// The Models page's background actions (Try a prompt, Measure now, Fetch): each form marked
// data-task-form starts its action without leaving the page, and the box it names (the
// action's progress, then its result) is followed where it is. The server renders every box;
// this script swaps in the new rendering, so the page reads the same with or without it.
"use strict";

(() => {
  const POLL_MS = 1000;

  function swap(id, html) {
    const box = document.getElementById(id);
    if (!box) return null;
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const fresh = template.content.firstElementChild;
    if (!fresh) return box;
    box.replaceWith(fresh);
    // A form outside its box (Try a prompt) waits while the action runs.
    for (const form of document.querySelectorAll(`form[data-task-form="${id}"]`)) {
      const button = form.querySelector("button[type=submit]");
      if (button && !fresh.contains(form)) button.disabled = Boolean(fresh.dataset.taskUrl);
    }
    return fresh;
  }

  function problem(id, message) {
    const box = document.getElementById(id);
    if (!box) return;
    let line = box.querySelector("[data-task-problem]");
    if (!line) {
      line = document.createElement("p");
      line.className = "task-failed";
      line.setAttribute("role", "alert");
      line.dataset.taskProblem = "";
      box.append(line);
    }
    line.textContent = message;  // textContent: the message is shown as text
  }

  function follow(box) {
    if (!box || !box.dataset.taskUrl) return;
    const id = box.id;
    let failures = 0;
    const tick = async () => {
      const current = document.getElementById(id);
      if (!current || !current.dataset.taskUrl) return;
      try {
        const response = await fetch(current.dataset.taskUrl, {
          headers: { Accept: "application/json" }, credentials: "same-origin",
        });
        if (!response.ok) throw new Error(`status ${response.status}`);
        const state = await response.json();
        failures = 0;
        const fresh = swap(id, state.html);
        if (fresh && fresh.dataset.taskUrl) {
          window.setTimeout(tick, POLL_MS);
        } else if (fresh) {
          // Finished: its result where the button is, in view.
          fresh.scrollIntoView({ block: "nearest" });
        }
      } catch (error) {
        failures += 1;
        problem(id, "Could not reach the server; trying again.");
        window.setTimeout(tick, Math.min(POLL_MS * 2 ** failures, 30000));
      }
    };
    window.setTimeout(tick, POLL_MS);
  }

  function reason(body, status) {
    const error = body && body.error;
    if (error && error.message) return error.message;
    return `The server answered ${status}; reload the page and try again.`;
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.taskForm || event.defaultPrevented) {
      return;
    }
    event.preventDefault();
    const id = form.dataset.taskForm;
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      const body = await response.json().catch(() => null);
      if (response.ok && body && body.task) {
        follow(swap(id, body.task.html));
        return;
      }
      problem(id, reason(body, response.status));
    } catch (error) {
      problem(id, "Could not reach the server; try again.");
    }
    if (button && document.contains(button)) button.disabled = false;
  });

  document.addEventListener("DOMContentLoaded", () => {
    for (const box of document.querySelectorAll("[data-task-box][data-task-url]")) follow(box);
  });
})();

// Keeps a machine-text panel up to date while the model writes, without reloading the page.
// Polls the JSON status endpoint named in data-status-url while the text is queued or running.
"use strict";

(() => {
  const LABELS = {
    waiting: "Waiting", queued: "Queued", running: "Writing…", done: "Ready", failed: "Failed",
    superseded: "Superseded",
  };
  const POLL_MS = 1500;

  function show(panel, status) {
    panel.dataset.status = status;
    // The latest revision's line in the history table, where there is one.
    for (const badge of document.querySelectorAll("[data-latest-status]")) {
      badge.textContent = LABELS[status] || status;
      badge.className = `mt-status mt-status-${status}`;
    }
    for (const block of panel.querySelectorAll("[data-when]")) {
      block.hidden = block.dataset.when !== status;
    }
    const badge = panel.querySelector('[data-field="status"]');
    badge.textContent = LABELS[status] || status;
    badge.className = `mt-status mt-status-${status}`;
  }

  function render(panel, state) {
    show(panel, state.status);
    const field = (name) => panel.querySelector(`[data-field="${name}"]`);
    if (state.status === "queued") {
      field("queue").textContent = state.queue_position
        ? `number ${state.queue_position} in the queue` : "in the queue";
    } else if (state.status === "running") {
      const max = state.progress && state.progress.max_tokens;
      const done = (state.progress && state.progress.tokens) || 0;
      const bar = field("progress");
      bar.max = max || 100;
      bar.value = done;
      field("progress-text").textContent = max ? `${done} of ${max} tokens` : "starting";
    } else if (state.status === "done") {
      // textContent, never innerHTML: model output is shown as text.
      const text = field("text");  // absent on the review page: the edit box shows it
      if (text) text.textContent = state.text || "";
      field("meta").textContent = `Written by ${state.model_version}: ${state.generated_tokens} tokens` +
        (state.truncated ? ", from the most recent part of a long document." : ".");
      document.dispatchEvent(new CustomEvent("machine-text-ready", { detail: state }));
    } else if (state.status === "failed") {
      field("error").textContent = state.error || "The machine text could not be written.";
    }
  }

  function watch(panel) {
    const url = panel.dataset.statusUrl;
    let failures = 0;
    const tick = async () => {
      if (!["waiting", "queued", "running"].includes(panel.dataset.status)) return;
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!response.ok) throw new Error(`status ${response.status}`);
        render(panel, await response.json());
        failures = 0;
      } catch (error) {
        failures += 1;
      }
      // Back off while the server does not answer, up to 30 seconds.
      setTimeout(tick, Math.min(POLL_MS * 2 ** failures, 30000));
    };
    setTimeout(tick, POLL_MS);
  }

  // On the review page: fill the edit box when the text arrives, unless the editor typed already.
  document.addEventListener("machine-text-ready", (event) => {
    const box = document.querySelector("[data-review-text]");
    if (box && !box.value.trim()) box.value = event.detail.text || "";
    for (const button of document.querySelectorAll("[data-needs-done]")) button.disabled = false;
  });

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-machine-text]").forEach(watch);
  });
})();

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

  // As the server's about_seconds filter words it.
  function aboutSeconds(seconds) {
    if (seconds < 90) return `about ${Math.max(5, Math.round(seconds / 5) * 5)} seconds`;
    return `about ${Math.round(seconds / 60)} minutes`;
  }

  function render(panel, state) {
    show(panel, state.status);
    const field = (name) => panel.querySelector(`[data-field="${name}"]`);
    // The model loads once after each start of the server: say so, with how long it has left.
    const loading = state.loading_model;
    field("loading").hidden = !loading;
    field("loading-estimate").textContent = loading ? `${aboutSeconds(loading.seconds_left)} left` : "";
    if (loading) field("status").textContent = "Loading the model";
    const writing = field("writing");
    if (writing) writing.hidden = Boolean(loading);
    const estimate = state.estimate_seconds ? `Ready in ${aboutSeconds(state.estimate_seconds)}.` : "";
    if (state.status === "queued") {
      field("queue").textContent = state.queue_position
        ? `number ${state.queue_position} in the queue` : "in the queue";
      field("estimate").textContent = estimate;
    } else if (state.status === "running") {
      const max = state.progress && state.progress.max_tokens;
      const done = (state.progress && state.progress.tokens) || 0;
      const bar = field("progress");
      bar.max = max || 100;
      bar.value = done;
      field("progress-text").textContent = max ? `${done} of ${max} tokens` : "starting";
      field("estimate-running").textContent = estimate;
    } else if (state.status === "done") {
      // textContent, never innerHTML: model output is shown as text.
      const text = field("text");  // absent on the review page: the edit box shows it
      if (text) text.textContent = state.text || "";
      field("meta").textContent = (state.blind
        ? "Written by one of the model versions being compared (which one is not shown while they are)"
        : `Written by ${state.model_version}: ${state.generated_tokens} tokens`) +
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

  // On the review page: when the text arrives and the editor has typed nothing, show the page
  // again from the server, which lays the text out sentence by sentence with its check marks
  // and alternatives; if they typed, fill nothing and keep what they typed.
  document.addEventListener("machine-text-ready", (event) => {
    const box = document.querySelector("[data-review-text]");
    if (box && !box.value.trim() && (event.detail.text || "").trim()) {
      window.location.reload();
      return;
    }
    for (const button of document.querySelectorAll("[data-needs-done]")) button.disabled = false;
  });

  // The "being written" note of a save goes once the text is ready.
  document.addEventListener("machine-text-ready", () => {
    for (const note of document.querySelectorAll(".flash-machine-text")) {
      note.textContent = "The machine text is ready.";
      note.className = "flash flash-success";
    }
  });

  // Lists: rows whose machine text is on its way refresh their badges by themselves.
  const DECISIONS = {
    accepted: "Accepted", edited: "Accepted with edits", kept_part: "Kept in part", rejected: "Rejected",
  };
  const PENDING = ["waiting", "queued", "running"];

  function badge(text, className) {
    const span = document.createElement("span");
    span.className = className;
    span.textContent = text;
    return span;
  }

  function reviewBadge(state) {
    if (state.decision) {
      return badge(DECISIONS[state.decision], `review-state review-${state.decision}`);
    }
    if (state.review === "needs-review" && !state.has_editor) {
      return badge("No editor yet", "review-state review-unassigned");
    }
    if (state.review === "needs-review") return badge("Needs review", "review-state review-needed");
    if (state.review === "reviewed") {
      return badge(DECISIONS[state.origin] || "Accepted", "review-state review-accepted");
    }
    return badge("—", "muted");
  }

  function watchList(table) {
    const url = table.dataset.listStatusUrl;
    let failures = 0;
    const tick = async () => {
      const rows = [...table.querySelectorAll("[data-row-document]")]
        .filter((row) => PENDING.includes(row.dataset.rowStatus));
      if (!rows.length) return;
      const ids = rows.map((row) => row.dataset.rowDocument).join(",");
      try {
        const response = await fetch(`${url}?ids=${ids}`,
          { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!response.ok) throw new Error(`status ${response.status}`);
        const states = (await response.json()).documents;
        for (const row of rows) {
          const state = states[row.dataset.rowDocument];
          if (!state) continue;
          row.dataset.rowStatus = state.status || "";
          const status = row.querySelector('[data-cell="status"]');
          status.replaceChildren(state.status
            ? badge(LABELS[state.status] || state.status, `mt-status mt-status-${state.status}`)
            : badge("—", "muted"));
          row.querySelector('[data-cell="review"]').replaceChildren(reviewBadge(state));
        }
        failures = 0;
      } catch (error) {
        failures += 1;
      }
      setTimeout(tick, Math.min(POLL_MS * 2 * 2 ** failures, 30000));
    };
    setTimeout(tick, POLL_MS * 2);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-machine-text]").forEach(watch);
    document.querySelectorAll("[data-list-status-url]").forEach(watchList);
  });
})();

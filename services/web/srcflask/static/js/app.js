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

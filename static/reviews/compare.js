/* The blind comparison page: two videos driven by one set of controls, a verdict sent once. */
(function () {
  "use strict";

  const form = document.getElementById("compare-form");
  if (!form) return;
  const player = window.FeedbackPlayer.create(document.getElementById("player"));
  const submitButton = document.getElementById("submit-comparison");
  const secondsInput = document.getElementById("id_seconds_spent");
  const openedAt = performance.now();
  let submitting = false;
  const firstInvalid = form.querySelector("#form-errors") && form.querySelector('input[name="winner"]');
  if (firstInvalid) firstInvalid.focus();

  form.addEventListener("submit", (event) => {
    if (submitting) {
      event.preventDefault();
      return;
    }
    submitting = true;
    secondsInput.value = ((performance.now() - openedAt) / 1000).toFixed(1);
    submitButton.disabled = true;
    submitButton.textContent = "Saving…";
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      submitting = false;
      submitButton.disabled = false;
    }
  });

  player.bindShortcuts((event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      form.requestSubmit();
      return true;
    }
    return false;
  });
})();

// Every page: a form marked data-once submits once, however often it is
// clicked; durations of what is still running keep ticking.
(function () {
  "use strict";

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-once")) return;
    if (form.dataset.sent) {
      event.preventDefault();
      return;
    }
    form.dataset.sent = "1";
    form.setAttribute("aria-busy", "true");
    // After this event, so the pressed button's own value is still sent.
    setTimeout(() => {
      for (const button of form.querySelectorAll("button")) button.disabled = true;
    });
  });

  // Back to a page kept in the browser's memory: its forms may be sent again,
  // as a new request (a new token: the server would take it for a double click).
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    for (const form of document.querySelectorAll("form[data-once]")) {
      delete form.dataset.sent;
      form.removeAttribute("aria-busy");
      for (const button of form.querySelectorAll("button")) button.disabled = false;
      const token = form.querySelector("input[name=token]");
      if (token) token.value = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    }
  });

  // As runs/live/watch.py's format_duration: 3.2 s, 4 min 05 s, 2 h 03 min.
  // Shared with the other scripts (they load after this one).
  function formatDuration(seconds) {
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const whole = Math.floor(seconds);
    const minutes = Math.floor(whole / 60);
    if (minutes < 60) return `${minutes} min ${String(whole % 60).padStart(2, "0")} s`;
    return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
  }

  window.orchestrator = { formatDuration };

  setInterval(() => {
    const now = Date.now() / 1000;
    for (const span of document.querySelectorAll("[data-since]")) {
      span.textContent = formatDuration(Math.max(0, now - parseFloat(span.dataset.since)));
    }
  }, 200);
})();

// The run page, live: say which log lines the page has on every (re)connect,
// follow each log at the bottom unless the reader scrolled up, keep a bounded
// number of lines per step, and grow the timeline each second.
(function () {
  "use strict";

  const live = document.getElementById("run-live");
  if (!live) return;
  const keep = parseInt(live.dataset.liveLines, 10) || 5000;
  let following = new Set(); // logs the reader was at the bottom of, before a message

  function logs() {
    return live.querySelectorAll(".log[data-step]");
  }

  function atBottom(log) {
    return log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  }

  function trim(log) {
    const lines = log.querySelectorAll(":scope > .line");
    const extra = lines.length - keep;
    if (extra <= 0) return;
    const before = log.scrollHeight;
    for (let i = 0; i < extra; i++) lines[i].remove();
    let note = log.querySelector(":scope > .log-trimmed");
    if (!note) {
      note = document.createElement("div");
      note.className = "log-note log-trimmed";
      const link = document.createElement("a");
      link.href = log.dataset.full;
      link.textContent = "full log";
      note.append(`Only the last ${keep.toLocaleString()} lines are kept here; earlier ones are in the `, link, ".");
      log.prepend(note);
    }
    if (!following.has(log)) log.scrollTop -= before - log.scrollHeight;
  }

  // Whether to follow is decided just before new lines arrive: at the
  // bottom then, the reader is following; anywhere else, they are reading.
  // A step's head is drawn again when the step changes: what the reader
  // opened in it (the Worker line) stays open, and a comment being typed
  // for an approval stays typed.
  let opened = new Set();
  let typed = new Map();

  function notePositions() {
    following = new Set([...logs()].filter(atBottom));
    opened = new Set(
      [...live.querySelectorAll(".step-head details[open]")].map((d) => d.closest(".step-head").id),
    );
    typed = new Map(
      [...live.querySelectorAll(".step-head textarea")]
        .filter((t) => t.value)
        .map((t) => [t.closest(".step-head").id, t.value]),
    );
  }

  function settle() {
    for (const log of logs()) {
      trim(log);
      if (following.has(log)) log.scrollTop = log.scrollHeight;
    }
    for (const id of opened) {
      const details = document.querySelector(`#${CSS.escape(id)} details`);
      if (details) details.open = true;
    }
    for (const [id, value] of typed) {
      const textarea = document.querySelector(`#${CSS.escape(id)} textarea`);
      if (textarea && !textarea.value) textarea.value = value;
    }
  }

  live.addEventListener("htmx:wsOpen", (event) => {
    const seen = {};
    for (const log of logs()) {
      const lines = log.querySelectorAll(":scope > .line[data-seq]");
      if (lines.length) seen[log.dataset.step] = parseInt(lines[lines.length - 1].dataset.seq, 10);
    }
    event.detail.socketWrapper.send(JSON.stringify({ seen }));
    setState("");
  });
  live.addEventListener("htmx:wsClose", () => {
    if (!live.querySelector("#run-status.status-running, #run-status.status-queued, #run-status.status-paused")) return;
    setState("Connection lost; reconnecting…");
  });
  live.addEventListener("htmx:wsBeforeMessage", notePositions);
  live.addEventListener("htmx:wsAfterMessage", settle);

  function setState(text) {
    const state = document.getElementById("live-state");
    if (state) state.textContent = text;
  }

  // The timeline grows between the server's updates (durations: app.js).
  function tick() {
    const now = Date.now() / 1000;
    const timeline = document.getElementById("run-timeline");
    if (timeline && timeline.dataset.start && !timeline.dataset.end) {
      const start = parseFloat(timeline.dataset.start);
      const span = Math.max(now - start, 0.001);
      for (const bar of timeline.querySelectorAll(".gantt-bar")) {
        const from = parseFloat(bar.dataset.start);
        const to = bar.dataset.end ? parseFloat(bar.dataset.end) : now;
        bar.style.left = `${Math.max(0, ((from - start) / span) * 100)}%`;
        bar.style.width = `${Math.max(0, ((to - from) / span) * 100)}%`;
      }
    }
  }

  following = new Set(logs()); // on load, every log shows its newest line
  settle();
  setInterval(tick, 1000);
})();

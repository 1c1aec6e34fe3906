// The log view: open at the end (or at the line asked for), fetch earlier
// lines when the reader nears the top and later ones near the bottom,
// keeping what they look at in place; a bare #L123 address opens line 123.
// At the end of a running step's log, the websocket appends new lines: say
// which line the page has on every (re)connect, and stay at the bottom if
// the reader was there.
(function () {
  "use strict";

  const log = document.getElementById("log-lines");
  if (!log) return;
  const NEAR = 300; // pixels from an edge at which the next page is fetched
  let loading = false;

  const wanted = /^#L(\d+)$/.exec(location.hash);
  if (wanted && !document.getElementById(`L${wanted[1]}`)) {
    // The server places a page by ?line=; a hash alone never reaches it.
    const query = new URLSearchParams(location.search);
    query.set("line", wanted[1]);
    location.replace(`?${query}${location.hash}`);
    return;
  }

  function show() {
    const target = wanted && document.getElementById(`L${wanted[1]}`);
    const current = log.querySelector(".line.match.current") || target;
    if (current) {
      current.classList.add("current");
      const offset = current.getBoundingClientRect().top - log.getBoundingClientRect().top;
      log.scrollTop += offset - log.clientHeight / 3;
    } else {
      log.scrollTop = log.scrollHeight;
    }
  }

  function more(direction) {
    return log.querySelector(`.log-more[data-more="${direction}"]`);
  }

  function fetchPage(sentinel) {
    if (loading || !sentinel) return;
    loading = true;
    htmx.trigger(sentinel, "load-more");
  }

  log.addEventListener("scroll", () => {
    if (log.scrollTop < NEAR) fetchPage(more("before"));
    else if (log.scrollHeight - log.scrollTop - log.clientHeight < NEAR) fetchPage(more("after"));
  }, { passive: true });

  // Lines added above the reader push the page down: keep what they read in place.
  let heightBefore = 0;
  log.addEventListener("htmx:beforeSwap", () => { heightBefore = log.scrollHeight; });
  log.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.elt.dataset.more === "before") {
      log.scrollTop += log.scrollHeight - heightBefore;
    }
    loading = false;
  });
  log.addEventListener("htmx:responseError", () => { loading = false; });

  let following = false;
  document.addEventListener("htmx:wsOpen", (event) => {
    const lines = log.querySelectorAll(":scope > .line[data-seq]");
    const seen = {};
    if (lines.length) seen[log.dataset.step] = parseInt(lines[lines.length - 1].dataset.seq, 10);
    event.detail.socketWrapper.send(JSON.stringify({ seen }));
  });
  document.addEventListener("htmx:wsBeforeMessage", () => {
    following = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  });
  document.addEventListener("htmx:wsAfterMessage", () => {
    trim();
    if (following) log.scrollTop = log.scrollHeight;
  });

  // A step that prints for hours: the page keeps its newest lines (as the
  // run page does), and "Earlier lines…" goes on from the first one kept.
  const keep = parseInt(log.dataset.liveLines, 10) || 5000;

  function trim() {
    const lines = log.querySelectorAll(":scope > .line[data-seq]");
    const extra = lines.length - keep;
    if (extra <= 0) return;
    const before = log.scrollHeight;
    for (let i = 0; i < extra; i++) lines[i].remove();
    for (const skip of log.querySelectorAll(":scope > .log-skip")) skip.remove();
    const first = lines[extra].dataset.seq;
    const old = more("before");
    const sentinel = document.createElement("div");
    sentinel.className = "log-more";
    sentinel.dataset.more = "before";
    sentinel.setAttribute("hx-get", `?before=${first}`);
    sentinel.setAttribute("hx-trigger", "load-more");
    sentinel.setAttribute("hx-swap", "outerHTML");
    sentinel.textContent = "Earlier lines…";
    if (old) old.replaceWith(sentinel);
    else log.prepend(sentinel);
    htmx.process(sentinel);
    if (!following) log.scrollTop -= before - log.scrollHeight;
  }

  // The current search match is the line the address names.
  const line = log.dataset.line;
  if (line) {
    const current = document.getElementById(`L${line}`);
    if (current) current.classList.add("current");
  }
  show();
})();

// The runs list, live: tell the server which rows the page shows (and their
// statuses) and whether new runs belong on top, on every connect and after
// every filter or page change; a row the server adds replaces "No runs yet".
(function () {
  "use strict";

  let socket = null;

  function hello() {
    const history = document.getElementById("history");
    if (!socket || !history) return;
    const rows = {};
    for (const row of history.querySelectorAll("#history-rows > tr[id^='run-row-']")) {
      const id = row.id.slice("run-row-".length);
      const status = row.querySelector(`#run-status-${id} .status`);
      const match = status && /\bstatus-(\w+)/.exec(status.className);
      rows[id] = match ? match[1] : "";
    }
    const newest = "newest" in history.dataset ? history.dataset.newest : null;
    socket.send(JSON.stringify({ rows, newest }));
  }

  document.addEventListener("htmx:wsOpen", (event) => {
    if (!document.getElementById("history")) return;
    socket = event.detail.socketWrapper;
    hello();
  });
  document.addEventListener("htmx:wsClose", () => { socket = null; });
  // The filters and the page links replace #history; the new one settles.
  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.target.id === "history") hello();
  });
  document.addEventListener("htmx:wsAfterMessage", () => {
    const history = document.getElementById("history");
    if (!history || !history.querySelector("#history-rows > tr")) return;
    for (const empty of history.querySelectorAll(":scope > .empty")) empty.remove();
    const table = history.querySelector("table[hidden]");
    if (table) table.hidden = false;
    trim(history);
  });

  // New runs go on top: past a page's worth, the oldest rows leave the
  // table (a tab left open stays one page long, and its hello stays within
  // what the server takes), and "Older ›" goes on from the last row kept.
  function trim(history) {
    const body = history.querySelector("#history-rows");
    const size = (body && parseInt(body.dataset.pageSize, 10)) || 50;
    const rows = history.querySelectorAll("#history-rows > tr[id^='run-row-']");
    if (rows.length <= size) return;
    for (const row of [...rows].slice(size)) row.remove();
    const last = rows[size - 1].id.slice("run-row-".length);
    const nav = history.querySelector("nav.pages");
    if (!nav) return;
    const old = nav.querySelector("a[rel='next']");
    const url = new URL(old ? old.href : location.href, location.href);
    url.searchParams.delete("after");
    url.searchParams.set("before", last);
    const link = document.createElement("a");
    link.rel = "next";
    link.href = url.pathname + url.search;
    link.setAttribute("hx-get", link.getAttribute("href"));
    link.textContent = "Older ›";
    if (old) old.replaceWith(link);
    else nav.append(link);
    htmx.process(link);
  }
})();

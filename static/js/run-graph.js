// The run page's graph, live: colour each node by its step's state, and
// take the reader to a step's card when its node is clicked.
//
// static/js/graph.js draws the graph once, from its JSON (which never
// changes here). Node states arrive in <script id="run-graph-status">: on
// the page, every node; in each websocket message, the nodes that changed
// ({"build": "running", "fetch": "succeeded reused"}: a status, then marks;
// a map's last mark is its items done of all, "12/50", drawn as a badge).
// They only move classes on g.graph-node[data-key]: the layout stays as it
// is. Should the graph be drawn again (graph.js redraws when its JSON
// changes), the states known so far are put back on the new nodes.
(function () {
  "use strict";

  const svg = document.querySelector("svg[data-run-graph]");
  if (!svg) return;
  const states = new Map(); // step key -> "status mark…", as last heard
  const applied = new WeakSet(); // status elements already read
  const TOKEN = /^[a-z_]+$/;
  const PROGRESS = /^[0-9]+\/[0-9]+$/;
  const SVG_NS = "http://www.w3.org/2000/svg";

  function nodeOf(key) {
    return svg.querySelector(`g.graph-node[data-key="${CSS.escape(key)}"]`);
  }

  function setState(node, state) {
    const tokens = state.split(" ").filter((token) => TOKEN.test(token));
    const progress = state.split(" ").find((token) => PROGRESS.test(token)) || "";
    for (const name of [...node.classList]) {
      if (name.startsWith("graph-node--")) node.classList.remove(name);
    }
    for (const token of tokens) node.classList.add("graph-node--" + token);
    node.dataset.status = tokens[0] || "";
    const title = node.querySelector(":scope > title");
    if (title) {
      const facts = [baseTitle(node, title), tokens.join(", ")];
      if (progress) facts.push(progress.replace("/", " of ") + " items done");
      title.textContent = facts.join(" \u00b7 ");
    }
    badge(node, tokens.includes("reused"));
    itemsBadge(node, progress);
  }

  // A map's node: how many of its items are done, of all, at its bottom right.
  function itemsBadge(node, progress) {
    let mark = node.querySelector(":scope > .run-graph__items");
    if (!progress) {
      if (mark) mark.remove();
      return;
    }
    const box = node.querySelector(":scope > .graph-node__box");
    const width = box ? parseFloat(box.getAttribute("width")) || 96 : 96;
    const height = box ? parseFloat(box.getAttribute("height")) || 44 : 44;
    const badgeWidth = 10 + progress.length * 7;
    if (!mark) {
      mark = document.createElementNS(SVG_NS, "g");
      mark.setAttribute("class", "run-graph__items");
      const back = document.createElementNS(SVG_NS, "rect");
      back.setAttribute("height", "14");
      back.setAttribute("rx", "7");
      const text = document.createElementNS(SVG_NS, "text");
      text.setAttribute("y", "7");
      text.setAttribute("text-anchor", "middle");
      text.setAttribute("dominant-baseline", "central");
      mark.append(back, text);
      node.append(mark);
    }
    mark.setAttribute("transform", `translate(${width - badgeWidth - 6} ${height - 7})`);
    mark.querySelector("rect").setAttribute("width", String(badgeWidth));
    const text = mark.querySelector("text");
    text.setAttribute("x", String(badgeWidth / 2));
    text.textContent = progress;
  }

  // The tooltip graph.js wrote (label · kind · status), without its status.
  function baseTitle(node, title) {
    if (node.dataset.title === undefined) {
      const parts = title.textContent.split(" \u00b7 ");
      if (parts.length > 1 && TOKEN.test(parts[parts.length - 1])) parts.pop();
      node.dataset.title = parts.join(" \u00b7 ");
    }
    return node.dataset.title;
  }

  // A reused step ran in an earlier run: a corner badge says so.
  function badge(node, shown) {
    let mark = node.querySelector(":scope > .run-graph__badge");
    if (!shown) {
      if (mark) mark.remove();
      return;
    }
    if (mark) return;
    const box = node.querySelector(":scope > .graph-node__box");
    const width = box ? parseFloat(box.getAttribute("width")) || 96 : 96;
    mark = document.createElementNS(SVG_NS, "g");
    mark.setAttribute("class", "run-graph__badge");
    mark.setAttribute("transform", `translate(${width - 46} -8)`);
    const back = document.createElementNS(SVG_NS, "rect");
    back.setAttribute("width", "46");
    back.setAttribute("height", "14");
    back.setAttribute("rx", "7");
    const text = document.createElementNS(SVG_NS, "text");
    text.setAttribute("x", "23");
    text.setAttribute("y", "7");
    text.setAttribute("text-anchor", "middle");
    text.setAttribute("dominant-baseline", "central");
    text.textContent = "reused";
    mark.append(back, text);
    node.append(mark);
  }

  function readStatus() {
    const source = document.getElementById("run-graph-status");
    if (!source || applied.has(source)) return;
    applied.add(source);
    let changes;
    try {
      changes = JSON.parse(source.textContent);
    } catch (error) {
      return; // a note in place of a part too large: the page says to reload
    }
    for (const [key, state] of Object.entries(changes || {})) {
      if (typeof state !== "string") continue;
      states.set(key, state);
      const node = nodeOf(key);
      if (node) setState(node, state);
    }
  }

  // Every node the graph has drawn: focusable, a link to its step's card.
  function prepare() {
    for (const node of svg.querySelectorAll("g.graph-node[data-key]")) {
      if (node.hasAttribute("tabindex")) continue;
      node.setAttribute("tabindex", "0");
      node.setAttribute("role", "link");
      const state = states.get(node.dataset.key);
      if (state) setState(node, state);
    }
  }

  function goTo(key) {
    const card = document.getElementById("step-" + key);
    if (!card) return;
    card.scrollIntoView({ block: "start", behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
    card.classList.remove("run-graph-target");
    void card.offsetWidth; // restart the highlight when the same card is chosen again
    card.classList.add("run-graph-target");
    for (const details of card.querySelectorAll("details")) details.open = true;
    const log = document.getElementById("log-" + key);
    const focus = log && log.childElementCount ? log : card;
    if (!focus.hasAttribute("tabindex")) focus.setAttribute("tabindex", "-1");
    focus.focus({ preventScroll: true });
    if (log && log.childElementCount) log.scrollTop = log.scrollHeight;
    history.replaceState(history.state, "", "#step-" + key);
  }

  function chosen(event) {
    const node = event.target.closest && event.target.closest("g.graph-node[data-key]");
    return node && svg.contains(node) ? node.dataset.key : null;
  }

  svg.addEventListener("click", (event) => {
    const key = chosen(event);
    if (key) goTo(key);
  });
  svg.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    const key = chosen(event);
    if (!key) return;
    event.preventDefault();
    goTo(key);
  });

  // graph.js replaces the svg's children when it draws: states go back on.
  new MutationObserver(prepare).observe(svg, { childList: true });
  document.addEventListener("htmx:wsAfterMessage", readStatus);

  prepare();
  readStatus();
})();

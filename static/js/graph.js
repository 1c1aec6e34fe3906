/*
 * Draws a workflow's steps and their `needs` as a left-to-right graph.
 *
 * Markup: an <svg data-workflow-graph> and, in the same parent element, a
 * <script type="application/json"> that holds the graph (what Django's
 * `json_script` filter writes):
 *
 *   <div class="workflow-graph">
 *     {{ graph|json_script }}
 *     <svg data-workflow-graph role="img" aria-label="Steps of {{ workflow.name }}"></svg>
 *   </div>
 *
 * where graph is
 *
 *   {"nodes": [{"id": "build", "label": "Build", "kind": "shell", "status": "pending",
 *               "run_if": "failure", "retries": 3, "continue_on_failure": true,
 *               "for_each": true}],
 *    "edges": [{"from": "fetch", "to": "build"}]}
 *
 * Only `id` is required (`label` defaults to `id`; run_if to "success",
 * retries to 0, continue_on_failure and for_each to false). The script may come before
 * or after the svg: the nearest previous one is used, else the nearest
 * next one; give each graph a wrapper of its own. Needs dagre
 * (static/vendor/dagre-<version>/dagre.min.js) loaded before this file, and
 * static/css/graph.css for the colours.
 *
 * Output, inside the svg (its previous content is replaced):
 *   <g class="graph-node graph-node--<status>" data-key="<id>" data-kind="<kind>"
 *      data-run-if="<run_if>"> box, label, kind, badges (↻N retries,
 *      "for each", "continues on failure"); an approval step is a pill with a person icon </g>
 *   <path class="graph-edge graph-edge--<run_if of the step it goes into>"
 *         data-from="<from>" data-to="<to>"> with an arrowhead (a dot for "always")
 * and a viewBox (plus width and height) that fits the drawing.
 *
 * With the attribute data-graph-pan-zoom the svg is a window onto the
 * drawing instead: as wide as its box, as tall as the drawing needs (within
 * bounds), dragged on the background to pan, zoomed with Ctrl+wheel. Buttons
 * anywhere on the page with data-graph-control="zoom-in|zoom-out|fit" and
 * aria-controls="<the svg's id>" drive it (they are shown once it is drawn:
 * give them `hidden`). The view is kept across redraws of an svg with the
 * same id, so a page that swaps the graph in again keeps its pan and zoom.
 *
 * Every svg is drawn when the page loads and drawn again whenever its JSON
 * changes: after each htmx swap (htmx:afterSettle) and each websocket message
 * (htmx:wsAfterMessage: the ws extension's out-of-band swaps do not fire
 * afterSettle). window.orchestratorGraph.render(svg) draws one svg now.
 * Each drawing fires "orchestrator:graph-drawn" (bubbling) on its svg, for
 * scripts that add to it (static/js/graph-edit.js in the editor).
 *
 * Labels are user text: they only ever go through textContent.
 */
(function () {
  "use strict";

  const NODE_MIN_WIDTH = 112;
  const NODE_MAX_LABEL = 40; // characters; longer labels are cut, the full one is the tooltip
  const NODE_HEIGHT = 44;
  const PAD_X = 12;
  const ICON_WIDTH = 18; // the person drawn before an approval's label
  const MARGIN = 8;
  const CHAR_WIDTH = 7.5; // for when the svg is not rendered and text cannot be measured
  const BADGE_HEIGHT = 16;
  const RUN_IF_WORDS = { failure: "on failure", always: "always" };

  // A panned and zoomed graph: its window's height stays within these
  // (pixels); it opens at a scale where text stays readable.
  const FRAME_MIN_HEIGHT = 120;
  const FRAME_MAX_HEIGHT = 560;
  const FRAME_PAD = 16;
  const READABLE_SCALE = 0.7;
  const MIN_SCALE = 0.15;
  const MAX_SCALE = 3;
  const MAX_FIT_SCALE = 1.5;
  const PAN_THRESHOLD = 4; // pixels a press moves before it pans (less is a click)

  // What each svg was last drawn from, so a re-scan redraws only what changed.
  const drawnFrom = new WeakMap();
  // The drawn size of each panned and zoomed svg, and its view by svg id:
  // {mode: "auto" | "fit" | "user", k, x, y}.
  const drawings = new WeakMap();
  const views = new Map();
  const wired = new WeakSet();
  let markerCount = 0;
  // New elements take the namespace of the svg they are drawn into.
  let namespace = null;

  function graphSource(svg) {
    for (const direction of ["previousElementSibling", "nextElementSibling"]) {
      for (let el = svg[direction]; el; el = el[direction]) {
        if (el.matches('script[type="application/json"]')) return el;
      }
    }
    return null;
  }

  function svgElement(name, attributes, classes) {
    const el = document.createElementNS(namespace, name);
    for (const [key, value] of Object.entries(attributes || {})) el.setAttribute(key, value);
    if (classes) el.setAttribute("class", classes);
    return el;
  }

  function textElement(text, classes, attributes) {
    const el = svgElement("text", attributes, classes);
    el.textContent = text;
    return el;
  }

  function shortened(label) {
    return label.length > NODE_MAX_LABEL ? label.slice(0, NODE_MAX_LABEL - 1) + "\u2026" : label;
  }

  function measure(text) {
    const width = text.getComputedTextLength ? text.getComputedTextLength() : 0;
    return width > 0 ? width : text.textContent.length * CHAR_WIDTH;
  }

  // Only known-safe characters reach a class name.
  function statusClass(status) {
    return typeof status === "string" && /^[a-z_]+$/.test(status) ? " graph-node--" + status : "";
  }

  function parse(text) {
    const data = JSON.parse(text);
    const nodes = [];
    const seen = new Map();
    for (const node of Array.isArray(data.nodes) ? data.nodes : []) {
      const id = node && node.id != null ? String(node.id) : "";
      if (!id || seen.has(id)) continue;
      const retries = Number(node.retries);
      const parsed = {
        id: id,
        label: node.label != null && node.label !== "" ? String(node.label) : id,
        kind: node.kind != null ? String(node.kind) : "",
        status: node.status,
        runIf: node.run_if in RUN_IF_WORDS ? node.run_if : "success",
        retries: Number.isInteger(retries) && retries > 0 ? retries : 0,
        continues: node.continue_on_failure === true,
        forEach: node.for_each === true,
      };
      seen.set(id, parsed);
      nodes.push(parsed);
    }
    // An edge to an unknown node would make dagre invent a node without a
    // size; a repeated edge would be drawn twice over itself.
    const edges = new Map();
    for (const edge of Array.isArray(data.edges) ? data.edges : []) {
      if (!edge) continue;
      const from = String(edge.from);
      const to = String(edge.to);
      if (from !== to && seen.has(from) && seen.has(to)) {
        edges.set(from + "\n" + to, { from: from, to: to, runIf: seen.get(to).runIf });
      }
    }
    return { nodes: nodes, edges: [...edges.values()] };
  }

  // One marker per kind of edge end: the colour of a marker is its own.
  function markers(defs) {
    markerCount += 1;
    const ids = {};
    const shapes = {
      success: ["M 0 0 L 10 5 L 0 10 z", "graph-arrow"],
      failure: ["M 0 0 L 10 5 L 0 10 z", "graph-arrow graph-arrow--failure"],
      always: ["M 1 5 A 4 4 0 1 0 9 5 A 4 4 0 1 0 1 5 z", "graph-arrow graph-arrow--always"],
    };
    for (const [runIf, [d, classes]] of Object.entries(shapes)) {
      const id = "orchestrator-graph-" + runIf + "-" + markerCount;
      const marker = svgElement("marker", {
        id: id,
        viewBox: "0 0 10 10",
        refX: "9",
        refY: "5",
        markerWidth: "8",
        markerHeight: "8",
        orient: "auto-start-reverse",
      });
      marker.appendChild(svgElement("path", { d: d }, classes));
      defs.appendChild(marker);
      ids[runIf] = id;
    }
    return ids;
  }

  // A smooth line through dagre's points: straight at the ends, curved at the bends.
  function edgePath(points) {
    const first = points[0];
    const last = points[points.length - 1];
    let d = "M " + first.x + " " + first.y;
    for (let i = 1; i < points.length - 1; i += 1) {
      const next = points[i + 1];
      const midX = (points[i].x + next.x) / 2;
      const midY = (points[i].y + next.y) / 2;
      d += " Q " + points[i].x + " " + points[i].y + " " + midX + " " + midY;
    }
    return d + " L " + last.x + " " + last.y;
  }

  // dagre ends an edge where it crosses the node's border, which for a wide
  // node can be its top; move the end to the right side (side 1) or the left
  // side (side -1), at the same height where possible, so edges read left to right.
  function onSide(node, point, side) {
    const inset = 8;
    const top = node.y - node.height / 2 + inset;
    const bottom = node.y + node.height / 2 - inset;
    return { x: node.x + (side * node.width) / 2, y: Math.min(Math.max(point.y, top), bottom) };
  }

  function clear(svg) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
  }

  // A small person: an approval step waits for one.
  function personIcon() {
    const icon = svgElement("g", { transform: "translate(" + PAD_X + " 13)" }, "graph-node__icon");
    icon.append(
      svgElement("circle", { cx: "6", cy: "4.5", r: "4" }),
      svgElement("path", { d: "M 0 18 C 0 11 12 11 12 18 z" }),
    );
    return icon;
  }

  // A pill on the node's border that says something of how it runs.
  function badge(text, tooltip, classes) {
    const group = svgElement("g", {}, "graph-badge " + classes);
    const title = svgElement("title");
    title.textContent = tooltip;
    const box = svgElement(
      "rect",
      { height: String(BADGE_HEIGHT), rx: "8", ry: "8" },
      "graph-badge__box",
    );
    const label = textElement(text, "graph-badge__text", {
      x: "7",
      y: String(BADGE_HEIGHT / 2),
      "dominant-baseline": "central",
    });
    group.append(title, box, label);
    return { group: group, box: box, label: label };
  }

  function drawNode(node, nodeLayer) {
    const group = svgElement("g", {}, "graph-node" + statusClass(node.status));
    group.setAttribute("data-key", node.id);
    if (node.kind) group.setAttribute("data-kind", node.kind);
    group.setAttribute("data-run-if", node.runIf);
    const approval = node.kind === "approval";
    const facts = [node.label, node.kind, node.status];
    if (node.runIf !== "success") facts.push("runs " + RUN_IF_WORDS[node.runIf]);
    if (node.retries) facts.push("retried up to " + node.retries + " times");
    if (node.continues) facts.push("continues on failure");
    if (node.forEach) facts.push("runs once per item of a list");
    const title = svgElement("title");
    title.textContent = facts.filter(Boolean).join(" \u00b7 ");
    const radius = approval ? NODE_HEIGHT / 2 : 6;
    const box = svgElement(
      "rect",
      { rx: String(radius), ry: String(radius), height: String(NODE_HEIGHT) },
      "graph-node__box",
    );
    const kindText = [node.kind, RUN_IF_WORDS[node.runIf]].filter(Boolean).join(" \u00b7 ");
    const label = textElement(shortened(node.label), "graph-node__label", {
      y: kindText ? "16" : String(NODE_HEIGHT / 2),
      "dominant-baseline": "central",
    });
    group.append(title, box, label);
    let kind = null;
    if (kindText) {
      kind = textElement(kindText, "graph-node__kind", { y: "31", "dominant-baseline": "central" });
      group.appendChild(kind);
    }
    const badges = [];
    if (node.retries) {
      const tooltip = "retried up to " + node.retries + " times";
      badges.push(["top", badge("\u21bb" + node.retries, tooltip, "graph-badge--retries")]);
    }
    if (node.continues) {
      const tooltip = "a failure does not fail the run";
      badges.push(["bottom", badge("continues on failure", tooltip, "graph-badge--continues")]);
    }
    if (node.forEach) {
      const tooltip = "runs once per item of a list (for_each)";
      badges.push(["top-left", badge("for each", tooltip, "graph-badge--for-each")]);
    }
    for (const [, made] of badges) group.appendChild(made.group);
    // In the document, so the text has its CSS font size when measured.
    nodeLayer.appendChild(group);
    const left = PAD_X + (approval ? ICON_WIDTH + 4 : 0);
    let width = measure(label);
    if (kind) width = Math.max(width, measure(kind));
    width = Math.max(NODE_MIN_WIDTH, Math.ceil(width + left + PAD_X));
    for (const [, made] of badges) {
      const badgeWidth = Math.ceil(measure(made.label) + 14);
      made.box.setAttribute("width", String(badgeWidth));
      width = Math.max(width, badgeWidth + 2 * PAD_X);
    }
    // Retries at the top right, "for each" at the top left, "continues on
    // failure" at the bottom left, on the border.
    for (const [where, made] of badges) {
      const x = where === "top" ? width - Number(made.box.getAttribute("width")) - PAD_X : PAD_X;
      const y = where === "bottom" ? NODE_HEIGHT - BADGE_HEIGHT / 2 : -BADGE_HEIGHT / 2;
      made.group.setAttribute("transform", "translate(" + x + " " + y + ")");
    }
    box.setAttribute("width", String(width));
    label.setAttribute("x", String(left));
    if (kind) kind.setAttribute("x", String(left));
    if (approval) group.insertBefore(personIcon(), label);
    return { group: group, width: width };
  }

  function render(svg) {
    const source = graphSource(svg);
    const text = source ? source.textContent : "";
    drawnFrom.set(svg, text);
    namespace = svg.namespaceURI;
    clear(svg);
    svg.removeAttribute("data-graph-error");
    if (!source) {
      return fail(svg, "no <script type=\"application/json\"> beside the svg");
    }
    if (!window.dagre) {
      return fail(svg, "dagre is not loaded");
    }
    let graph;
    try {
      graph = parse(text);
    } catch (error) {
      return fail(svg, "the graph's JSON is unusable: " + error.message);
    }

    const panZoom = svg.hasAttribute("data-graph-pan-zoom");
    const defs = svgElement("defs");
    const ends = markers(defs);
    const edgeLayer = svgElement("g", {}, "graph-edges");
    const nodeLayer = svgElement("g", {}, "graph-nodes");
    svg.appendChild(defs);
    if (panZoom) {
      // A background to press on (an svg takes pointer events only where it paints).
      svg.appendChild(svgElement("rect", { width: "100%", height: "100%" }, "graph-background"));
      const viewport = svgElement("g", {}, "graph-viewport");
      viewport.append(edgeLayer, nodeLayer);
      svg.appendChild(viewport);
    } else {
      svg.append(edgeLayer, nodeLayer);
    }

    // Draw the nodes first, so their text can be measured for dagre.
    const layout = new window.dagre.graphlib.Graph();
    layout.setGraph({
      rankdir: "LR",
      nodesep: 28,
      ranksep: 56,
      marginx: MARGIN,
      marginy: MARGIN + BADGE_HEIGHT / 2, // room for the badges on the border
    });
    layout.setDefaultEdgeLabel(() => ({}));
    const groups = new Map();
    for (const node of graph.nodes) {
      const drawn = drawNode(node, nodeLayer);
      groups.set(node.id, drawn.group);
      layout.setNode(node.id, { width: drawn.width, height: NODE_HEIGHT });
    }
    for (const edge of graph.edges) layout.setEdge(edge.from, edge.to);
    window.dagre.layout(layout);

    for (const [id, group] of groups) {
      const placed = layout.node(id);
      const left = placed.x - placed.width / 2;
      const top = placed.y - placed.height / 2;
      group.setAttribute("transform", "translate(" + left + " " + top + ")");
    }
    for (const edge of graph.edges) {
      const points = layout.edge(edge.from, edge.to).points.slice();
      points[0] = onSide(layout.node(edge.from), points[0], 1);
      points[points.length - 1] = onSide(layout.node(edge.to), points[points.length - 1], -1);
      const classes = "graph-edge graph-edge--" + edge.runIf;
      const path = svgElement("path", { d: edgePath(points) }, classes);
      path.setAttribute("data-from", edge.from);
      path.setAttribute("data-to", edge.to);
      path.setAttribute("marker-end", "url(#" + ends[edge.runIf] + ")");
      edgeLayer.appendChild(path);
    }

    const size = layout.graph();
    const width = Math.max(Math.ceil(size.width || 0), 2 * MARGIN);
    const height = Math.max(Math.ceil(size.height || 0), 2 * MARGIN);
    if (panZoom) {
      svg.removeAttribute("viewBox");
      svg.removeAttribute("width");
      drawings.set(svg, { width: width, height: height });
      wire(svg);
      frame(svg);
      showControls(svg);
    } else {
      svg.setAttribute("viewBox", "0 0 " + width + " " + height);
      svg.setAttribute("width", String(width));
      svg.setAttribute("height", String(height));
    }
    svg.dispatchEvent(new CustomEvent("orchestrator:graph-drawn", { bubbles: true }));
    return svg;
  }

  function fail(svg, reason) {
    svg.setAttribute("data-graph-error", reason);
    console.error("workflow graph:", reason, svg);
    return svg;
  }

  // --- Pan and zoom -------------------------------------------------------

  function clamp(value, low, high) {
    return Math.min(Math.max(value, low), high);
  }

  function viewOf(svg) {
    const key = svg.id || "";
    if (!views.has(key)) views.set(key, { mode: "auto", k: 1, x: FRAME_PAD, y: FRAME_PAD });
    return views.get(key);
  }

  function boxWidth(svg, drawing) {
    const width = svg.getBoundingClientRect().width;
    return width > 0 ? width : drawing.width + 2 * FRAME_PAD;
  }

  // The window's height follows the drawing (at a readable scale), and the
  // view is placed again unless the person moved it.
  function frame(svg) {
    const drawing = drawings.get(svg);
    if (!drawing) return;
    const width = boxWidth(svg, drawing);
    const readable = clamp((width - 2 * FRAME_PAD) / drawing.width, READABLE_SCALE, 1);
    const height = clamp(
      Math.ceil(drawing.height * readable + 2 * FRAME_PAD),
      FRAME_MIN_HEIGHT,
      FRAME_MAX_HEIGHT,
    );
    svg.setAttribute("height", String(height));
    svg.style.height = height + "px"; // over any stylesheet's height: auto
    const view = viewOf(svg);
    if (view.mode === "auto") {
      const k = clamp(wholeScale(width, height, drawing), READABLE_SCALE, 1);
      view.k = k;
      view.x = FRAME_PAD; // read from the start, left to right
      view.y = Math.max(FRAME_PAD, (height - drawing.height * k) / 2);
    } else if (view.mode === "fit") {
      fitView(view, width, height, drawing);
    }
    apply(svg);
  }

  // The scale at which the whole drawing fits a window of this size.
  function wholeScale(width, height, drawing) {
    return Math.min(
      (width - 2 * FRAME_PAD) / drawing.width,
      (height - 2 * FRAME_PAD) / drawing.height,
    );
  }

  function fitView(view, width, height, drawing) {
    const k = clamp(wholeScale(width, height, drawing), MIN_SCALE, MAX_FIT_SCALE);
    view.k = k;
    view.x = (width - drawing.width * k) / 2;
    view.y = (height - drawing.height * k) / 2;
  }

  function apply(svg) {
    const view = viewOf(svg);
    const viewport = svg.querySelector(":scope > .graph-viewport");
    if (!viewport) return;
    viewport.setAttribute(
      "transform",
      "translate(" + view.x.toFixed(1) + " " + view.y.toFixed(1) + ") " +
        "scale(" + view.k.toFixed(4) + ")",
    );
    svg.setAttribute("data-graph-scale", view.k.toFixed(2));
  }

  function zoomAt(svg, factor, px, py) {
    const view = viewOf(svg);
    const k = clamp(view.k * factor, MIN_SCALE, MAX_SCALE);
    view.x = px - ((px - view.x) * k) / view.k;
    view.y = py - ((py - view.y) * k) / view.k;
    view.k = k;
    view.mode = "user";
    apply(svg);
  }

  function fit(svg) {
    const drawing = drawings.get(svg);
    if (!drawing) return;
    const view = viewOf(svg);
    view.mode = "fit";
    const box = svg.getBoundingClientRect();
    fitView(view, boxWidth(svg, drawing), box.height || FRAME_MIN_HEIGHT, drawing);
    apply(svg);
  }

  function showControls(svg) {
    if (!svg.id) return;
    const selector = '[data-graph-control][aria-controls="' + CSS.escape(svg.id) + '"]';
    for (const control of document.querySelectorAll(selector)) control.hidden = false;
  }

  // Listeners once per svg element (a swapped-in svg is a new element).
  function wire(svg) {
    if (wired.has(svg)) return;
    wired.add(svg);
    resized.observe(svg);
    let press = null;
    let justPanned = false;
    svg.addEventListener(
      "wheel",
      function (event) {
        // The graph sits in a page that scrolls: the wheel alone scrolls
        // it; with Ctrl (or ⌘, or a touchpad's pinch, which comes as Ctrl)
        // it zooms the graph.
        if (!event.ctrlKey && !event.metaKey) return;
        event.preventDefault();
        const box = svg.getBoundingClientRect();
        const lines = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? box.height : 1;
        const factor = Math.exp(-event.deltaY * lines * 0.002);
        zoomAt(svg, factor, event.clientX - box.left, event.clientY - box.top);
      },
      { passive: false },
    );
    svg.addEventListener("pointerdown", function (event) {
      // Nodes are for clicking (and, in the editor, linking): the rest pans.
      if (event.button !== 0 || event.target.closest(".graph-node")) return;
      const view = viewOf(svg);
      press = {
        id: event.pointerId,
        x: event.clientX,
        y: event.clientY,
        fromX: view.x,
        fromY: view.y,
        moved: false,
      };
    });
    svg.addEventListener("pointermove", function (event) {
      if (!press || event.pointerId !== press.id) return;
      const dx = event.clientX - press.x;
      const dy = event.clientY - press.y;
      if (!press.moved && Math.hypot(dx, dy) < PAN_THRESHOLD) return;
      if (!press.moved) {
        press.moved = true;
        svg.setPointerCapture(event.pointerId);
        svg.classList.add("is-panning");
      }
      const view = viewOf(svg);
      view.x = press.fromX + dx;
      view.y = press.fromY + dy;
      view.mode = "user";
      apply(svg);
    });
    function release(event) {
      if (!press || event.pointerId !== press.id) return;
      justPanned = press.moved;
      press = null;
      svg.classList.remove("is-panning");
    }
    svg.addEventListener("pointerup", release);
    svg.addEventListener("pointercancel", release);
    // The click that ends a pan selects nothing.
    svg.addEventListener(
      "click",
      function (event) {
        if (!justPanned) return;
        justPanned = false;
        event.stopPropagation();
        event.preventDefault();
      },
      true,
    );
    svg.addEventListener("pointerdown", () => (justPanned = false), true);
  }

  document.addEventListener("click", function (event) {
    const control = event.target.closest && event.target.closest("[data-graph-control]");
    if (!control) return;
    const svg = document.getElementById(control.getAttribute("aria-controls"));
    if (!svg || !drawings.has(svg)) return;
    const box = svg.getBoundingClientRect();
    const action = control.getAttribute("data-graph-control");
    if (action === "fit") fit(svg);
    else if (action === "zoom-in") zoomAt(svg, 1.25, box.width / 2, box.height / 2);
    else if (action === "zoom-out") zoomAt(svg, 0.8, box.width / 2, box.height / 2);
  });

  // A window that changes width (the browser's, or a hidden tab shown)
  // frames the drawing again; a removed svg is let go of.
  const resized = new ResizeObserver(function (entries) {
    for (const entry of entries) {
      if (entry.target.isConnected) frame(entry.target);
      else resized.unobserve(entry.target);
    }
  });

  function renderAll(root) {
    for (const svg of (root || document).querySelectorAll("svg[data-workflow-graph]")) {
      const source = graphSource(svg);
      const text = source ? source.textContent : "";
      if (drawnFrom.get(svg) !== text) render(svg);
    }
  }

  window.orchestratorGraph = { render: render, renderAll: renderAll, fit: fit };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => renderAll(document));
  } else {
    renderAll(document);
  }
  document.addEventListener("htmx:afterSettle", () => renderAll(document));
  document.addEventListener("htmx:wsAfterMessage", () => renderAll(document));
})();

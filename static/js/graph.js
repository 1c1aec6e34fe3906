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
 *   {"nodes": [{"id": "build", "label": "Build", "kind": "shell", "status": "pending"}],
 *    "edges": [{"from": "fetch", "to": "build"}]}
 *
 * `kind` and `status` are optional (`label` defaults to `id`). The script
 * may come before or after the svg: the nearest previous one is used, else
 * the nearest next one; give each graph a wrapper of its own. Needs dagre
 * (static/vendor/dagre-<version>/dagre.min.js) loaded before this file, and
 * static/css/graph.css for the colours.
 *
 * Output, inside the svg (its previous content is replaced):
 *   <g class="graph-node graph-node--<status>" data-key="<id>"> rect, label, kind </g>
 *   <path class="graph-edge" data-from="<from>" data-to="<to>"> with an arrowhead
 * and a viewBox (plus width and height) that fits the drawing.
 *
 * Every svg is drawn when the page loads and drawn again whenever its JSON
 * changes: after each htmx swap (htmx:afterSettle) and each websocket message
 * (htmx:wsAfterMessage: the ws extension's out-of-band swaps do not fire
 * afterSettle). window.orchestratorGraph.render(svg) draws one svg now.
 *
 * Labels are user text: they only ever go through textContent.
 */
(function () {
  "use strict";

  const NODE_MIN_WIDTH = 96;
  const NODE_MAX_LABEL = 40; // characters; longer labels are cut, the full one is the tooltip
  const NODE_HEIGHT = 44;
  const PAD_X = 12;
  const MARGIN = 8;
  const CHAR_WIDTH = 7.5; // for when the svg is not rendered and text cannot be measured

  // What each svg was last drawn from, so a re-scan redraws only what changed.
  const drawnFrom = new WeakMap();
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
    const seen = new Set();
    for (const node of Array.isArray(data.nodes) ? data.nodes : []) {
      const id = node && node.id != null ? String(node.id) : "";
      if (!id || seen.has(id)) continue;
      seen.add(id);
      nodes.push({
        id: id,
        label: node.label != null && node.label !== "" ? String(node.label) : id,
        kind: node.kind != null ? String(node.kind) : "",
        status: node.status,
      });
    }
    // An edge to an unknown node would make dagre invent a node without a
    // size; a repeated edge would be drawn twice over itself.
    const edges = new Map();
    for (const edge of Array.isArray(data.edges) ? data.edges : []) {
      if (!edge) continue;
      const from = String(edge.from);
      const to = String(edge.to);
      if (from !== to && seen.has(from) && seen.has(to)) edges.set(from + "\n" + to, { from, to });
    }
    return { nodes: nodes, edges: [...edges.values()] };
  }

  function arrowMarker(defs) {
    markerCount += 1;
    const id = "orchestrator-graph-arrow-" + markerCount;
    const marker = svgElement("marker", {
      id: id,
      viewBox: "0 0 10 10",
      refX: "9",
      refY: "5",
      markerWidth: "8",
      markerHeight: "8",
      orient: "auto-start-reverse",
    });
    marker.appendChild(svgElement("path", { d: "M 0 0 L 10 5 L 0 10 z" }, "graph-arrow"));
    defs.appendChild(marker);
    return id;
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

    const defs = svgElement("defs");
    const arrow = arrowMarker(defs);
    const edgeLayer = svgElement("g", {}, "graph-edges");
    const nodeLayer = svgElement("g", {}, "graph-nodes");
    svg.append(defs, edgeLayer, nodeLayer);

    // Draw the nodes first, so their text can be measured for dagre.
    const layout = new window.dagre.graphlib.Graph();
    layout.setGraph({ rankdir: "LR", nodesep: 20, ranksep: 48, marginx: MARGIN, marginy: MARGIN });
    layout.setDefaultEdgeLabel(() => ({}));
    const groups = new Map();
    for (const node of graph.nodes) {
      const group = svgElement("g", {}, "graph-node" + statusClass(node.status));
      group.setAttribute("data-key", node.id);
      const title = svgElement("title");
      title.textContent = [node.label, node.kind, node.status].filter(Boolean).join(" \u00b7 ");
      const box = svgElement("rect", { rx: "6", ry: "6", height: String(NODE_HEIGHT) }, "graph-node__box");
      const label = textElement(shortened(node.label), "graph-node__label", {
        y: node.kind ? "16" : String(NODE_HEIGHT / 2),
        "dominant-baseline": "central",
      });
      group.append(title, box, label);
      let kind = null;
      if (node.kind) {
        kind = textElement(node.kind, "graph-node__kind", { y: "31", "dominant-baseline": "central" });
        group.appendChild(kind);
      }
      // In the document, so the text has its CSS font size when measured.
      nodeLayer.appendChild(group);
      let width = measure(label);
      if (kind) width = Math.max(width, measure(kind));
      width = Math.max(NODE_MIN_WIDTH, Math.ceil(width + 2 * PAD_X));
      box.setAttribute("width", String(width));
      label.setAttribute("x", String(PAD_X));
      if (kind) kind.setAttribute("x", String(PAD_X));
      groups.set(node.id, group);
      layout.setNode(node.id, { width: width, height: NODE_HEIGHT });
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
      const path = svgElement("path", { d: edgePath(points) }, "graph-edge");
      path.setAttribute("data-from", edge.from);
      path.setAttribute("data-to", edge.to);
      path.setAttribute("marker-end", "url(#" + arrow + ")");
      edgeLayer.appendChild(path);
    }

    const size = layout.graph();
    const width = Math.max(Math.ceil(size.width || 0), 2 * MARGIN);
    const height = Math.max(Math.ceil(size.height || 0), 2 * MARGIN);
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    return svg;
  }

  function fail(svg, reason) {
    svg.setAttribute("data-graph-error", reason);
    console.error("workflow graph:", reason, svg);
    return svg;
  }

  function renderAll(root) {
    for (const svg of (root || document).querySelectorAll("svg[data-workflow-graph]")) {
      const source = graphSource(svg);
      const text = source ? source.textContent : "";
      if (drawnFrom.get(svg) !== text) render(svg);
    }
  }

  window.orchestratorGraph = { render: render, renderAll: renderAll };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => renderAll(document));
  } else {
    renderAll(document);
  }
  document.addEventListener("htmx:afterSettle", () => renderAll(document));
  document.addEventListener("htmx:wsAfterMessage", () => renderAll(document));
})();

// The editor's graph as a second way to edit, over what graph.js draws in an
// <svg data-graph-edit data-needs-url="…/steps/-/needs"> (editors only):
//
// - Click a step: its form opens, by the list's own Edit link (the same
//   htmx GET into the same place), and its card scrolls into view.
// - Drag from a step's dot (its output handle, on the right) onto another
//   step: that step then needs the first. It posts add=<first> with the
//   editor's version to the second step's needs URL; the answer is the
//   editor drawn again from the database, list and graph alike, or with the
//   reason the change was refused (a loop, say) in the notice above the graph.
// - Click a link to select it; Delete (or Backspace), or "Remove link",
//   posts remove=<first> the same way. Escape lets go of it.
//
// The list stays the editor for the keyboard and without JavaScript: the
// graph takes no focus.
(function () {
  "use strict";

  const HANDLE_RADIUS = 7;
  let linking = null; // {svg, from, line, start, target}
  let selected = null; // {svg, from, to}
  let justLinked = false; // the click that ends a drag opens nothing

  function editable(element) {
    return element && element.closest ? element.closest("svg[data-graph-edit]") : null;
  }

  function layerOf(svg) {
    return svg.querySelector(".graph-nodes");
  }

  // A point of the page in the drawing's own coordinates (whatever the pan and zoom).
  function toDrawing(svg, clientX, clientY) {
    const matrix = layerOf(svg).getScreenCTM().inverse();
    return new DOMPoint(clientX, clientY).matrixTransform(matrix);
  }

  function svgElement(svg, name, attributes, classes) {
    const el = document.createElementNS(svg.namespaceURI, name);
    for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, value);
    el.setAttribute("class", classes);
    return el;
  }

  // --- Handles and wide links, added to each drawing --------------------------

  function decorate(svg) {
    if (!svg.querySelector(".graph-nodes") || svg.querySelector(".graph-node__handle")) return;
    selected = null;
    for (const node of svg.querySelectorAll(".graph-node")) {
      const box = node.querySelector(".graph-node__box");
      const handle = svgElement(
        svg,
        "circle",
        {
          cx: box.getAttribute("width"),
          cy: String(Number(box.getAttribute("height")) / 2),
          r: String(HANDLE_RADIUS),
        },
        "graph-node__handle",
      );
      const title = document.createElementNS(svg.namespaceURI, "title");
      title.textContent = "Drag onto another step: it will need this one";
      handle.appendChild(title);
      node.appendChild(handle);
    }
    // A line 1.5 pixels wide is hard to hit: each gets a wide invisible twin.
    const edges = svg.querySelector(".graph-edges");
    for (const edge of svg.querySelectorAll("path.graph-edge")) {
      const hit = svgElement(svg, "path", { d: edge.getAttribute("d") }, "graph-edge-hit");
      hit.setAttribute("data-from", edge.getAttribute("data-from"));
      hit.setAttribute("data-to", edge.getAttribute("data-to"));
      edges.appendChild(hit);
    }
    const figure = svg.closest("figure");
    if (figure) {
      figure.querySelectorAll("[data-graph-hint], [data-graph-remove-link]").forEach((el) => {
        el.hidden = false;
      });
    }
    showSelection(svg);
  }

  document.addEventListener("orchestrator:graph-drawn", function (event) {
    if (event.target.matches("svg[data-graph-edit]")) decorate(event.target);
  });
  // graph.js may have drawn before this file ran.
  document.querySelectorAll("svg[data-graph-edit]").forEach(decorate);

  // --- Drag from a handle to link two steps ---------------------------------

  document.addEventListener("pointerdown", function (event) {
    const handle = event.target.closest && event.target.closest(".graph-node__handle");
    const svg = editable(handle);
    if (!svg || event.button !== 0) return;
    event.preventDefault(); // no text selection, no pan
    const node = handle.closest(".graph-node");
    const box = handle.getBoundingClientRect();
    const start = toDrawing(svg, box.left + box.width / 2, box.top + box.height / 2);
    const line = svgElement(
      svg,
      "line",
      { x1: start.x, y1: start.y, x2: start.x, y2: start.y },
      "graph-link-draft",
    );
    layerOf(svg).parentNode.appendChild(line);
    svg.setPointerCapture(event.pointerId);
    svg.classList.add("is-linking");
    linking = {
      svg: svg,
      from: node.getAttribute("data-key"),
      line: line,
      pointer: event.pointerId,
      target: null,
    };
  });

  function nodeUnder(svg, clientX, clientY) {
    const hit = document.elementFromPoint(clientX, clientY);
    const node = hit && hit.closest ? hit.closest(".graph-node") : null;
    return node && svg.contains(node) ? node : null;
  }

  document.addEventListener("pointermove", function (event) {
    if (!linking || event.pointerId !== linking.pointer) return;
    const point = toDrawing(linking.svg, event.clientX, event.clientY);
    linking.line.setAttribute("x2", point.x);
    linking.line.setAttribute("y2", point.y);
    const node = nodeUnder(linking.svg, event.clientX, event.clientY);
    const target = node && node.getAttribute("data-key") !== linking.from ? node : null;
    if (target !== linking.target) {
      if (linking.target) linking.target.classList.remove("is-drop-target");
      if (target) target.classList.add("is-drop-target");
      linking.target = target;
    }
  });

  function endLinking(event, drop) {
    if (!linking || event.pointerId !== linking.pointer) return;
    const done = linking;
    linking = null;
    done.line.remove();
    done.svg.classList.remove("is-linking");
    justLinked = true;
    setTimeout(() => (justLinked = false), 0);
    if (done.target) done.target.classList.remove("is-drop-target");
    if (drop && done.target) {
      post(done.svg, done.target.getAttribute("data-key"), { add: done.from });
    }
  }

  document.addEventListener("pointerup", (event) => endLinking(event, true));
  document.addEventListener("pointercancel", (event) => endLinking(event, false));

  // --- Clicks: a step opens its form, a link is selected --------------------

  document.addEventListener("click", function (event) {
    if (justLinked) return;
    const svg = editable(event.target);
    if (!svg) {
      const remove = event.target.closest && event.target.closest("[data-graph-remove-link]");
      if (remove && selected) removeSelected();
      else if (selected && !selected.svg.parentNode.contains(event.target)) {
        // Clicked elsewhere on the page: a later Delete must not remove a link forgotten.
        const was = selected.svg;
        selected = null;
        showSelection(was);
      }
      return;
    }
    if (event.target.closest(".graph-node__handle")) return;
    const node = event.target.closest(".graph-node");
    if (node) {
      openStep(node.getAttribute("data-key"));
      return;
    }
    const hit = event.target.closest(".graph-edge-hit");
    selected = hit
      ? { svg: svg, from: hit.getAttribute("data-from"), to: hit.getAttribute("data-to") }
      : null;
    showSelection(svg);
  });

  // The list's own Edit link: the same request, the same place for the form.
  function openStep(key) {
    const card = document.getElementById("step-" + key);
    if (!card) return;
    card.scrollIntoView({ block: "center" });
    const open = card.querySelector(":scope > form.step-form");
    if (open) {
      const field = open.querySelector("input:not([type=hidden]), textarea, select");
      if (field) field.focus({ preventScroll: true });
      return;
    }
    const edit = card.querySelector('.step-actions a[href$="/edit"]');
    if (edit) edit.click();
  }

  function showSelection(svg) {
    for (const edge of svg.querySelectorAll("path.graph-edge.graph-edge--selected")) {
      edge.classList.remove("graph-edge--selected");
    }
    const figure = svg.closest("figure");
    const button = figure ? figure.querySelector("[data-graph-remove-link]") : null;
    const current = selected && selected.svg === svg ? selected : null;
    if (current) {
      const selector =
        'path.graph-edge[data-from="' + CSS.escape(current.from) + '"]' +
        '[data-to="' + CSS.escape(current.to) + '"]';
      const edge = svg.querySelector(selector);
      if (edge) edge.classList.add("graph-edge--selected");
    }
    if (button) {
      button.disabled = !current;
      button.title = current
        ? "“" + current.to + "” will no longer need “" + current.from + "”"
        : "Select a link first";
    }
  }

  function removeSelected() {
    const current = selected;
    selected = null;
    showSelection(current.svg);
    post(current.svg, current.to, { remove: current.from });
  }

  document.addEventListener("keydown", function (event) {
    if (!selected || !selected.svg.isConnected) return;
    const typing =
      event.target.closest && event.target.closest("input, textarea, select, [contenteditable]");
    if (typing) return;
    if (event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      removeSelected();
    } else if (event.key === "Escape") {
      const svg = selected.svg;
      selected = null;
      showSelection(svg);
    }
  });

  // --- Saving ------------------------------------------------------------------

  function post(svg, key, values) {
    const version = document.getElementById("editor-version");
    const url = svg
      .getAttribute("data-needs-url")
      .replace(/\/-\/needs$/, "/" + encodeURIComponent(key) + "/needs");
    const figure = svg.closest("figure") || svg;
    svg.classList.add("is-saving");
    htmx.ajax("POST", url, {
      source: figure,
      target: "#editor",
      swap: "outerHTML",
      values: Object.assign({ version: version ? version.value : "" }, values),
    });
  }

  // A refusal the editor cannot draw (a step gone meanwhile): said beside the graph.
  function refused(event) {
    const figure = event.detail.elt;
    const svg =
      figure && figure.querySelector ? figure.querySelector("svg[data-graph-edit]") : null;
    if (!svg) return;
    svg.classList.remove("is-saving");
    const message = figure.querySelector("[data-graph-message]");
    if (!message) return;
    const xhr = event.detail.xhr;
    const text = xhr && xhr.status ? xhr.responseText : "";
    // Plain text from the server, put in as text.
    message.textContent = (text || "The server could not be reached; try again.").slice(0, 500);
    message.hidden = false;
  }

  document.addEventListener("htmx:responseError", refused);
  document.addEventListener("htmx:sendError", refused);
})();

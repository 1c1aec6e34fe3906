// The workflow page's YAML tab (templates/workflows/yaml_tab.html).
//
// - The tabs (List and graph, YAML) are links to the page with either one
//   open; here they switch in place, and the address follows.
// - Line numbers beside the text, the lines of the problems marked; a
//   problem's "line N" puts the cursor on that line. Tab indents.
// - Every change saved elsewhere on the page (the list, the graph, the
//   settings, the schedules) comes with the file as saved (#yaml-latest).
//   Text nobody edited takes it at once; edited text is kept, with a
//   notice that the workflow changed since and a button to reload it.
// - Leaving with unsaved changes in the text asks first.
(function () {
  "use strict";

  const INDENT = "  ";

  // --- Tabs ---------------------------------------------------------------

  function showTab(tab) {
    document.querySelectorAll(".editor-tabs [role=tab]").forEach(function (other) {
      const selected = other === tab;
      other.setAttribute("aria-selected", selected ? "true" : "false");
      const panel = document.getElementById(other.getAttribute("aria-controls"));
      if (panel) panel.hidden = !selected;
    });
    history.replaceState(history.state, "", tab.href);
    if (tab.id === "tab-steps") redrawGraphs(); // drawn while hidden, text could not be measured
    else {
      const text = document.getElementById("yaml-text");
      if (text) drawGutter(text);
    }
  }

  function redrawGraphs() {
    const graph = window.orchestratorGraph;
    if (!graph || !graph.render) return;
    document.querySelectorAll("#steps-panel svg[data-workflow-graph]").forEach(function (svg) {
      graph.render(svg);
    });
  }

  document.addEventListener("click", function (event) {
    const tab = event.target.closest && event.target.closest(".editor-tabs [role=tab]");
    if (!tab || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    showTab(tab);
  });

  document.addEventListener("keydown", function (event) {
    const tab = event.target.closest && event.target.closest(".editor-tabs [role=tab]");
    if (!tab || (event.key !== "ArrowLeft" && event.key !== "ArrowRight")) return;
    const tabs = Array.from(tab.parentElement.querySelectorAll("[role=tab]"));
    const next = tabs[(tabs.indexOf(tab) + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    event.preventDefault();
    next.focus();
    showTab(next);
  });

  // --- Line numbers and problems -----------------------------------------

  function lineCount(text) {
    let count = 1;
    for (let at = text.indexOf("\n"); at !== -1; at = text.indexOf("\n", at + 1)) count++;
    return count;
  }

  function drawGutter(textarea) {
    const gutter = textarea.parentElement.querySelector(".yaml-gutter");
    if (!gutter) return;
    const count = lineCount(textarea.value);
    if (gutter.dataset.lines !== String(count)) {
      gutter.dataset.lines = String(count);
      const marked = new Set((gutter.dataset.errorLines || "").split(" ").filter(Boolean).map(Number));
      const parts = [];
      let plain = "";
      for (let line = 1; line <= count; line++) {
        if (marked.has(line)) {
          parts.push(document.createTextNode(plain));
          plain = "";
          const mark = document.createElement("mark");
          mark.textContent = String(line);
          mark.title = "A problem on this line";
          parts.push(mark, document.createTextNode("\n"));
        } else {
          plain += line + "\n";
        }
      }
      parts.push(document.createTextNode(plain));
      gutter.replaceChildren.apply(gutter, parts);
    }
    gutter.scrollTop = textarea.scrollTop;
  }

  function goToLine(textarea, line) {
    const lines = textarea.value.split("\n");
    let start = 0;
    for (let index = 0; index < line - 1 && index < lines.length; index++) {
      start += lines[index].length + 1;
    }
    const end = start + (lines[line - 1] || "").length;
    textarea.focus();
    textarea.setSelectionRange(start, end);
    const height = parseFloat(getComputedStyle(textarea).lineHeight) || 20;
    textarea.scrollTop = Math.max(0, (line - 3) * height);
    drawGutter(textarea);
  }

  document.addEventListener("click", function (event) {
    const link = event.target.closest && event.target.closest("#yaml-form a[data-line]");
    if (!link) return;
    event.preventDefault();
    goToLine(document.getElementById("yaml-text"), Number(link.dataset.line));
  });

  document.addEventListener("input", function (event) {
    if (event.target.id === "yaml-text") drawGutter(event.target);
  });

  document.addEventListener(
    "scroll",
    function (event) {
      if (event.target.id === "yaml-text") drawGutter(event.target);
    },
    true
  );

  // Tab indents; Escape first lets Tab leave the text, as the keyboard expects.
  let escaped = false;
  document.addEventListener("keydown", function (event) {
    const textarea = event.target;
    if (textarea.id !== "yaml-text" || textarea.readOnly) return;
    if (event.key === "Escape") {
      escaped = true;
      return;
    }
    const plainTab = event.key === "Tab" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey;
    if (plainTab && !escaped) {
      event.preventDefault();
      textarea.setRangeText(INDENT, textarea.selectionStart, textarea.selectionEnd, "end");
      textarea.dispatchEvent(new Event("input", { bubbles: true }));
    }
    escaped = false;
  });

  // --- The file as saved, after a change elsewhere ----------------------

  // The newest file the server sent, for the reload button.
  let latest = null;

  function edited(form) {
    const textarea = form.querySelector("#yaml-text");
    return form.hasAttribute("data-unsaved") || textarea.value !== textarea.defaultValue;
  }

  function takeLatest(carrier) {
    const form = document.getElementById("yaml-form");
    const version = carrier.dataset.version;
    if (!form || !version) return;
    const current = form.querySelector("input[name=version]");
    if (current.value === version) return; // the text is of this version already
    latest = { version: version, text: carrier.value };
    if (edited(form)) {
      form.querySelector(".yaml-changed").hidden = false;
      return;
    }
    load(form, latest);
  }

  function load(form, saved) {
    const textarea = form.querySelector("#yaml-text");
    textarea.defaultValue = saved.text;
    textarea.value = saved.text;
    textarea.removeAttribute("aria-invalid");
    textarea.removeAttribute("aria-describedby");
    form.querySelector("input[name=version]").value = saved.version;
    form.removeAttribute("data-unsaved");
    form.querySelector(".yaml-changed").hidden = true;
    form.querySelectorAll(".yaml-problems, .notice:not(.yaml-changed)").forEach(function (old) {
      old.remove();
    });
    const gutter = form.querySelector(".yaml-gutter");
    gutter.dataset.errorLines = "";
    delete gutter.dataset.lines;
    drawGutter(textarea);
    const version = form.querySelector("[data-yaml-version]");
    if (version) version.textContent = saved.version;
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("#yaml-form [data-yaml-reload]");
    if (!button || !latest) return;
    load(button.form, latest);
  });

  document.addEventListener("htmx:load", function (event) {
    const target = event.target;
    const carrier = target.id === "yaml-latest" ? target : target.querySelector && target.querySelector("#yaml-latest");
    if (carrier) takeLatest(carrier);
    const textarea = target.id === "yaml-form" ? target.querySelector("#yaml-text") : null;
    if (textarea) drawGutter(textarea);
  });

  // --- Leaving with unsaved text asks first -------------------------------

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt.id === "yaml-form") event.detail.elt.dataset.sending = "on";
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt.id === "yaml-form") delete event.detail.elt.dataset.sending;
  });
  document.addEventListener("submit", function (event) {
    if (event.target.id === "yaml-form") event.target.dataset.sending = "on";
  });

  window.addEventListener("beforeunload", function (event) {
    const form = document.getElementById("yaml-form");
    if (!form || form.dataset.sending || !form.querySelector("#yaml-text:not([readonly])")) return;
    if (!edited(form)) return;
    event.preventDefault();
    event.returnValue = "";
  });

  document.addEventListener("DOMContentLoaded", function () {
    const textarea = document.getElementById("yaml-text");
    if (textarea) drawGutter(textarea);
  });
})();

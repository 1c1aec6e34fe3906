/*
 * Draws the durations of a workflow's recent runs with uPlot: one point per
 * run, x = run number, y = duration.
 *
 * Markup (templates/runs/workflow_stats.html): a <div class="duration-chart">
 * holding a <script type="application/json"> with the points, as written by
 * runs/pages/stats.py through Django's `json_script` filter:
 *
 *   [{"id": 7, "number": 42, "status": "failed", "started": 1767225600.0,
 *     "started_text": "2026-01-01 00:00:00", "duration": 63.2,
 *     "url": "/runs/7/"}, ...]   (oldest first)
 *
 * Needs uPlot (static/vendor/uplot-<version>/uPlot.iife.min.js and its CSS)
 * loaded before this file.
 *
 * Succeeded runs are small points in --ok, failed ones (a run that timed out
 * is failed) large points in --bad, cancelled ones hollow points in --quiet:
 * colour and shape both tell them apart. Hovering near a run's x shows a
 * tooltip naming it ("#42 Failed, 1 min 03 s"); clicking opens the run.
 * Colours are read from the CSS variables when the chart is drawn, and the
 * chart is drawn again when the colour scheme changes. The chart follows
 * its container's width.
 *
 * The uPlot instance is the element's `uplot` property (the browser tests
 * use its valToPos). window.orchestratorDurationChart.renderAll(root) draws
 * every chart under root that is not drawn yet.
 */
(function () {
  "use strict";

  const HEIGHT = 220;
  const Y_AXIS_WIDTH = 84;
  const TIP_GAP = 12; // pixels between a point and its tooltip
  const TIP_ROOM = 56; // a point higher than this in the plot gets its tooltip below it
  // One uPlot series per final status: its colour variable, point size and fill.
  const STATUS_SERIES = [
    { status: "succeeded", colour: "--ok", size: 7, hollow: false },
    { status: "failed", colour: "--bad", size: 12, hollow: false },
    { status: "cancelled", colour: "--quiet", size: 8, hollow: true },
  ];
  // Tick steps: whole runs on x; seconds, minutes and hours on y.
  const RUN_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000];
  const DURATION_STEPS = [
    0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800,
    3600, 7200, 10800, 21600, 43200, 86400,
  ];

  const charts = new Set();
  const resizes = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const u = entry.target.uplot;
      if (u && u.width !== entry.target.clientWidth) {
        u.setSize({ width: entry.target.clientWidth, height: HEIGHT });
      }
    }
  });

  const formatDuration = window.orchestrator.formatDuration;

  // Axis ticks fall on round steps, so they read shorter: 30 s, 2 min, 1 h.
  function tickLabel(seconds) {
    if (seconds < 60) return +seconds.toFixed(1) + " s";
    if (seconds < 3600 && seconds % 60 === 0) return seconds / 60 + " min";
    if (seconds % 3600 === 0) return seconds / 3600 + " h";
    return formatDuration(seconds);
  }

  function cssColour(el, name) {
    return getComputedStyle(el).getPropertyValue(name).trim();
  }

  function parse(el) {
    const source = el.querySelector('script[type="application/json"]');
    const points = JSON.parse(source ? source.textContent : "[]");
    return Array.isArray(points) ? points : [];
  }

  // As the status badges: "timed_out" reads "Timed out".
  function statusLabel(status) {
    const words = String(status).replace(/_/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function tooltipFor(point) {
    const tip = document.createElement("div");
    tip.className = "duration-chart__tip";
    const name = document.createElement("strong");
    name.textContent = "#" + point.number + " " + statusLabel(point.status) + ", " + formatDuration(point.duration);
    const started = document.createElement("span");
    // Formatted by the server, as the dates of the run list beside the chart.
    started.textContent = "started " + point.started_text;
    tip.append(name, started);
    return tip;
  }

  function draw(el) {
    const points = parse(el);
    const fg = cssColour(el, "--fg-muted");
    const grid = cssColour(el, "--border");
    const background = cssColour(el, "--bg");
    const data = [points.map((point) => point.number)];
    const series = [{}];
    const colours = [null];
    for (const kind of STATUS_SERIES) {
      const colour = cssColour(el, kind.colour);
      colours.push(colour);
      data.push(points.map((point) => (point.status === kind.status ? point.duration : null)));
      series.push({
        paths: () => null,
        points: {
          show: true,
          space: 0,
          size: kind.size,
          width: kind.hollow ? 2 : 1,
          stroke: colour,
          fill: kind.hollow ? background : colour,
        },
      });
    }
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    let tip = null;
    let tipIndex = null;

    // Called on every cursor move: the tooltip is made again only when the run changes.
    function showTip(u) {
      const index = u.cursor.idx;
      if (index !== tipIndex) {
        tipIndex = index;
        if (tip) tip.remove();
        tip = index == null ? null : u.over.appendChild(tooltipFor(points[index]));
        u.over.classList.toggle("duration-chart__over--on-run", index != null);
      }
      if (tip) {
        const left = u.valToPos(points[index].number, "x");
        const top = u.valToPos(points[index].duration, "y");
        tip.style.left = left + "px";
        tip.style.top = top + "px";
        // Above the point, or below it near the top; kept inside the chart at its sides.
        const width = u.over.clientWidth;
        const shiftX = left < width * 0.2 ? "-10%" : left > width * 0.8 ? "-90%" : "-50%";
        const shiftY = top < TIP_ROOM ? TIP_GAP + "px" : "calc(-100% - " + TIP_GAP + "px)";
        tip.style.transform = "translate(" + shiftX + ", " + shiftY + ")";
      }
    }

    const u = new window.uPlot(
      {
        width: el.clientWidth || 600,
        height: HEIGHT,
        legend: { show: false },
        cursor: {
          y: false,
          drag: { x: false, y: false },
          // A ring around the hovered run's point, in its colour.
          points: {
            size: (u, i) => u.series[i].points.size + 8,
            width: 2,
            stroke: (u, i) => colours[i],
            fill: "transparent",
          },
        },
        scales: {
          // Half a run of room on each side, so the first and last points show whole.
          x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] },
          y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] },
        },
        axes: [
          { ...axis, incrs: RUN_STEPS, values: (u, ticks) => ticks.map((run) => "#" + run) },
          { ...axis, size: Y_AXIS_WIDTH, incrs: DURATION_STEPS, values: (u, ticks) => ticks.map(tickLabel) },
        ],
        series: series,
        hooks: { setCursor: [showTip] },
      },
      data,
      el
    );
    u.over.addEventListener("click", () => {
      const index = u.cursor.idx;
      if (index != null) window.location.href = points[index].url;
    });
    el.uplot = u;
    charts.add(el);
    resizes.observe(el);
  }

  function undraw(el) {
    resizes.unobserve(el);
    charts.delete(el);
    if (el.uplot) el.uplot.destroy();
    delete el.uplot;
  }

  function render(el) {
    undraw(el);
    try {
      draw(el);
      el.removeAttribute("data-chart-error");
    } catch (error) {
      el.setAttribute("data-chart-error", error.message);
      console.error("duration chart:", error, el);
    }
  }

  function renderAll(root) {
    // Charts an htmx swap took out of the page: let them go.
    for (const el of charts) if (!el.isConnected) undraw(el);
    for (const el of (root || document).querySelectorAll(".duration-chart")) {
      if (!el.uplot) render(el);
    }
  }

  window.orchestratorDurationChart = { renderAll: renderAll };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => renderAll(document));
  } else {
    renderAll(document);
  }
  // The back button restores an htmx page by swapping a new body in.
  document.addEventListener("htmx:historyRestore", () => renderAll(document));
  // Colours come from CSS variables that change with the scheme.
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    for (const el of [...charts]) render(el);
  });
})();

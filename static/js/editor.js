// The workflow editor: drag steps to reorder them (SortableJS), the htmx way.
// Dropping a step fires "end" on the list; htmx posts the new order (the
// hidden "order" inputs, now in their new places) and swaps in the editor
// as the server saved it, so a refused move snaps back to the saved order.
(function () {
  "use strict";

  function enable(root) {
    root.querySelectorAll("ol.sortable").forEach(function (list) {
      if (list.dataset.sortable) return;
      list.dataset.sortable = "on";
      new Sortable(list, {
        animation: 150,
        handle: ".drag-handle",
        // Mouse and touch events rather than native drag and drop: the same
        // feel in every browser (and what automated browsers drive).
        forceFallback: true,
        draggable: ".step-card",
        onEnd: function (event) {
          if (event.oldIndex === event.newIndex) return;
          list.classList.add("saving");
          list.dispatchEvent(new Event("end", { bubbles: true }));
        },
      });
    });
  }

  htmx.onLoad(enable);
})();

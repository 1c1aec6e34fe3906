// A failed run's page opens at the step that failed it: on load, unless the
// address names a place of its own, and once more when the run fails while
// the page is watching it. The highlight itself is CSS (.first-failure), so
// it is there without this script too.
(function () {
  "use strict";

  let revealed = null; // the id of the step head already scrolled to

  function firstFailure() {
    return document.querySelector(".step-head[data-first-failure]");
  }

  function reveal() {
    const head = firstFailure();
    if (!head || head.id === revealed) return;
    revealed = head.id;
    // The browser would otherwise put a reloaded page back where it was.
    if ("scrollRestoration" in history) history.scrollRestoration = "manual";
    (head.closest(".step") || head).scrollIntoView({ block: "start" });
  }

  if (location.hash) {
    const head = firstFailure();
    if (head) revealed = head.id; // the reader asked for another place
  } else {
    reveal();
  }
  document.addEventListener("htmx:wsAfterMessage", reveal);
})();

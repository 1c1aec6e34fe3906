// The workflow editor, the htmx way: the server draws the editor, this file
// keeps what a person is typing.
//
// - Drag steps to reorder them (SortableJS). Dropping a step fires "end" on
//   the list (SortableJS does) and htmx posts the new order. A saved order
//   answers with only what it changed (the list already shows it); a refused
//   one with the editor as the server saved it, so the move snaps back.
// - Every other change answers with the whole editor drawn from the
//   database. The step forms open in the old one are carried over into the
//   new one, so typing in one step survives saving another, a drag, adding
//   a step or saving the settings.
// - One "Add a step" form at a time; the key proposed from the name and its
//   rule said beside the field; leaving with unsaved changes asks first.
(function () {
  "use strict";

  // As SLUG_RE in workflows/definition.py: the validator has the last word.
  const KEY_PATTERN = /^[a-z0-9][a-z0-9_-]{0,99}$/;
  const EDITOR_FORMS = "form.step-form, form#settings";

  function enableDrag(root) {
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
        // SortableJS fires "end" on the list itself, which htmx posts on
        // (hx-trigger): firing another here would post every order twice.
        onEnd: function (event) {
          if (event.oldIndex !== event.newIndex) list.classList.add("saving");
        },
      });
    });
  }

  // --- Open forms survive a redraw -----------------------------------------

  // Each editor about to be replaced, what asked, and where the cursor was.
  // The forms are taken out of it only once a new editor is in (htmx:load),
  // so a swap that does not happen leaves everything where it was; a list,
  // because a second change may be answered before the first settles.
  const replaced = [];

  // The editor comes as the answer to a change, or out of band with saved
  // settings (then no step form asked for it).
  function beforeSwap(event) {
    const target = event.detail.target;
    if (!target || target.id !== "editor") return;
    const focused = document.activeElement;
    const record = {
      editor: target,
      requester: event.detail.requestConfig ? event.detail.requestConfig.elt : null,
      focused: focused && focused.closest && focused.closest("form.step-form") ? focused : null,
      selection: null,
    };
    if (record.focused && "selectionStart" in record.focused) {
      try {
        record.selection = [record.focused.selectionStart, record.focused.selectionEnd];
      } catch (error) {
        record.selection = null; // a field without a text selection
      }
    }
    replaced.push(record);
  }

  document.addEventListener("htmx:beforeSwap", beforeSwap);
  document.addEventListener("htmx:oobBeforeSwap", beforeSwap);

  function carryOpenForms(editor) {
    for (let index = 0; index < replaced.length; ) {
      const old = replaced[index];
      if (old.editor.isConnected) {
        index++; // not swapped (yet)
        continue;
      }
      replaced.splice(index, 1);
      carry(old, editor);
    }
  }

  function carry(old, editor) {
    // Set only when the change was saved: the version it was made on.
    const savedFrom = editor.dataset.savedFrom;
    old.editor.querySelectorAll("form.step-form").forEach(function (form) {
      if (form === old.requester && savedFrom !== undefined) return; // saved: its card shows it
      if (savedFrom !== undefined) {
        // Nothing but this page's own change came in between (a change made
        // on an older version is refused), so the form is still current.
        const version = form.querySelector("input[name=version]");
        if (version && version.value === savedFrom) version.value = editor.dataset.version;
      }
      placeForm(editor, form);
      htmx.process(form); // htmx let go of it with the old editor
    });
    if (old.focused && editor.contains(old.focused)) {
      old.focused.focus();
      if (old.selection && old.selection[0] !== null) {
        old.focused.setSelectionRange(old.selection[0], old.selection[1]);
      }
    }
  }

  function placeForm(editor, form) {
    const palette = editor.querySelector("#palette");
    const key = form.dataset.step;
    if (!key) {
      const slot = form.closest("#new-step") || wrapper("new-step");
      slot.appendChild(form);
      editor.insertBefore(slot, palette);
      return;
    }
    const card = editor.querySelector('#steps > li.step-card[data-key="' + CSS.escape(key) + '"]');
    if (card) {
      card.insertBefore(form, card.querySelector(".step-row"));
      return;
    }
    // The step went away meanwhile (deleted in another window): keep the
    // text on the page so it can still be copied.
    const slot = wrapper("");
    const note = document.createElement("p");
    note.className = "field-error";
    note.setAttribute("role", "alert");
    note.textContent =
      "The step “" + key + "” is no longer in the workflow: copy what you need, then reload.";
    slot.append(note, form);
    editor.insertBefore(slot, palette);
  }

  function wrapper(id) {
    const slot = document.createElement("div");
    if (id) slot.id = id;
    slot.className = "step-card";
    return slot;
  }

  // A saved drag answers with the editor's version input, saying which
  // version the drag was made on (data-saved-from), rather than a new editor.
  // Everything in the editor made on that version (the cards' small forms,
  // the open step forms) is still current, as in carry(): it moves to the
  // new one.
  function orderSaved(field) {
    const editor = field.closest("#editor");
    const savedFrom = field.dataset.savedFrom;
    editor.dataset.version = field.value;
    editor.querySelectorAll("input[name=version]").forEach(function (version) {
      if (version.value === savedFrom) version.value = field.value;
    });
    editor.querySelectorAll("ol.sortable.saving").forEach(function (list) {
      list.classList.remove("saving");
    });
  }

  document.addEventListener("htmx:load", function (event) {
    const target = event.target;
    if (target.id === "editor") carryOpenForms(target);
    else if (target.id === "editor-version" && target.dataset.savedFrom !== undefined) {
      orderSaved(target);
    }
  });

  // Cancel closes the form on the page: the card under it shows again.
  document.addEventListener("click", function (event) {
    const cancel = event.target.closest && event.target.closest("form.step-form [data-cancel]");
    if (!cancel) return;
    event.preventDefault();
    const form = cancel.closest("form.step-form");
    const slot = form.parentElement;
    if (slot.matches("div.step-card")) slot.remove();
    else form.remove();
  });

  // --- One "Add a step" form --------------------------------------------------

  document.addEventListener("htmx:beforeRequest", function (event) {
    const elt = event.detail.elt;
    if (elt.matches && elt.matches(EDITOR_FORMS)) elt.dataset.sending = "on";
    if (!elt.closest || !elt.closest("#palette")) return;
    const open = document.querySelector("#new-step form.step-form");
    if (!open) return;
    event.preventDefault(); // a second form would split the work in two
    open.scrollIntoView({ block: "nearest" });
    firstField(open).focus();
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    const elt = event.detail.elt;
    if (elt && elt.dataset) delete elt.dataset.sending;
  });

  // A form just opened takes the focus at once, in the swap: focusing it
  // later (htmx's autofocus waits for the settle) could pull the cursor out
  // of a field the person already clicked into, and the text with it.
  document.addEventListener("htmx:afterSwap", function (event) {
    const target = event.detail.target;
    const opened = target && target.previousElementSibling;
    if (!opened) return;
    const form = opened.matches("#new-step") ? opened.querySelector("form") : opened;
    if (form && form.matches("form.step-form")) firstField(form).focus();
  });

  function firstField(form) {
    return form.querySelector("input:not([type=hidden]), textarea, select");
  }

  // --- The key: proposed from the name, its rule beside it ----------------

  function slugify(text) {
    return text
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9_-]+/g, "-")
      .replace(/-{2,}/g, "-")
      .replace(/^[-_]+/, "")
      .slice(0, 90)
      .replace(/[-_]+$/, "");
  }

  // As env_suffix in workflows/params.py: keys that differ only by - and _
  // would give the same variable names, so the validator refuses the pair.
  function variableName(key) {
    return key.toUpperCase().replace(/-/g, "_");
  }

  function proposeKey(form, name) {
    if (!name.trim()) return "";
    const own = form.dataset.step;
    const taken = new Set();
    document.querySelectorAll("#steps > li.step-card[data-key]").forEach(function (card) {
      if (card.dataset.key !== own) taken.add(variableName(card.dataset.key));
    });
    const stem = slugify(name) || "step";
    let key = stem;
    for (let number = 2; taken.has(variableName(key)); number++) key = stem + "-" + number;
    return key;
  }

  function explainKey(field) {
    const id = field.getAttribute("aria-describedby");
    let message = document.getElementById(id);
    const wrong = field.value !== "" && !KEY_PATTERN.test(field.value);
    field.setAttribute("aria-invalid", wrong ? "true" : "false");
    if (!wrong) {
      if (message) message.remove(); // what the server said was of the old key
      return;
    }
    if (!message) {
      message = document.createElement("small");
      message.className = "field-error";
      message.id = id;
      field.after(message);
    }
    message.textContent = field.dataset.rule;
  }

  document.addEventListener("input", function (event) {
    const field = event.target;
    const form = field.closest && field.closest("form.step-form");
    if (!form) return;
    const key = form.elements.namedItem("key");
    if (!key) return;
    // The key follows the name until it is typed by hand (then it differs
    // from what was proposed); an empty key follows the name again.
    if (field.name === "name" && (key.value === "" || key.value === form.dataset.proposedKey)) {
      key.value = form.dataset.proposedKey = proposeKey(form, field.value);
      explainKey(key);
    } else if (field === key) {
      explainKey(key);
    }
  });

  // --- Leaving with unsaved changes asks first ------------------------------

  function changed(field) {
    if (field.type === "checkbox" || field.type === "radio") {
      return field.checked !== field.defaultChecked;
    }
    if (field.tagName === "SELECT") {
      const initial = Array.from(field.options).findIndex(function (option) {
        return option.defaultSelected;
      });
      return field.selectedIndex !== (initial === -1 ? 0 : initial);
    }
    if (field.tagName === "TEXTAREA" || field.tagName === "INPUT") {
      return field.type !== "hidden" && field.value !== field.defaultValue;
    }
    return false;
  }

  function unsaved(form) {
    if (form.dataset.sending) return false; // on its way to being saved
    // A form sent back with errors holds what was typed, still not saved.
    return form.hasAttribute("data-unsaved") || Array.from(form.elements).some(changed);
  }

  window.addEventListener("beforeunload", function (event) {
    if (!Array.from(document.querySelectorAll(EDITOR_FORMS)).some(unsaved)) return;
    event.preventDefault();
    event.returnValue = ""; // what older browsers look for
  });

  htmx.onLoad(enableDrag);
})();

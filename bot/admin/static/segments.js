// Segments: the builder's live count, and the list's counts a big club leaves to the page.
// Without this script the builder's buttons post the form and the server answers; with it,
// conditions are added and removed in place, the form is read into the filter JSON of
// store.segments, and POST /admin/api/segments/count answers {"count": n} (or 422 naming
// the path of what is wrong), shown in an aria-live region 300 ms after the last change.
"use strict";

(function () {
  const DEBOUNCE_MS = 300;

  function csrfToken(form) {
    const input = form.querySelector('input[name="csrf_token"]');
    return input ? input.value : "";
  }

  // --- the list ------------------------------------------------------------------------------

  async function countLater(spans, token) {
    for (const span of spans) {
      try {
        const response = await fetch(span.dataset.countUrl, {
          headers: { Accept: "application/json", "X-CSRF-Token": token },
          credentials: "same-origin",
        });
        if (response.ok) {
          const body = await response.json();
          span.textContent = body.text;
        }
      } catch (error) {
        // The placeholder stays; opening the segment counts it too.
      }
    }
  }

  // --- reading the form ----------------------------------------------------------------------

  class FormError extends Error {
    constructor(message, element) {
      super(message);
      this.element = element;
    }
  }

  function own(element, selector) {
    // The element's own inputs, not those of a nested group's conditions.
    return Array.from(element.querySelectorAll(selector)).filter(
      (found) => found.closest("li[data-kind]") === element,
    );
  }

  function enabledValues(inputs, name) {
    return Array.from(inputs.querySelectorAll(`[name="${name}"]`)).filter(
      (input) => !input.disabled && (input.type === "checkbox" || input.type === "radio" ? input.checked : true),
    );
  }

  function whole(text, row, messages) {
    const cleaned = text.replace(/[\s\u00a0]/g, "");
    if (!/^-?\d{1,15}$/.test(cleaned)) throw new FormError(messages.number, row);
    return Number(cleaned);
  }

  function scaled(text, scale, row, messages) {
    if (scale === 1) return whole(text, row, messages);
    const cleaned = text.replace(/[\s\u00a0]/g, "").replace(",", ".");
    if (!/^\d{1,13}(\.\d+)?$/.test(cleaned)) throw new FormError(messages.number, row);
    const [units, fraction = ""] = cleaned.split(".");
    const digits = String(scale).length - 1;
    if (fraction.replace(/0+$/, "").length > digits) throw new FormError(messages.number, row);
    return Number(units) * scale + Number((fraction + "0".repeat(digits)).slice(0, digits) || 0);
  }

  function readLeaf(row, messages) {
    const prefix = row.dataset.prefix;
    const inputs = own(row, "[data-inputs]")[0];
    const kind = inputs.dataset.kind;
    const op = inputs.querySelector(`[name="${prefix}.op"]`).value;
    const leaf = { field: inputs.dataset.field, op: op };
    if (inputs.dataset.question) leaf.question = inputs.dataset.question;
    const picked = enabledValues(inputs, `${prefix}.value`).map((input) => input.value);
    if (op === "answered" || kind === "yes_no") {
      if (picked.length !== 1) throw new FormError(messages.choose, row);
      leaf.value = picked[0] === "true";
    } else if (kind === "choices") {
      if (picked.length === 0) throw new FormError(messages.choose, row);
      const numeric = leaf.field === "birthday_month" || leaf.field === "tier";
      leaf.value = picked.map((value) => (numeric ? Number(value) : value));
    } else if (kind === "words" || kind === "ids") {
      const words = (picked[0] || "").split(",").map((word) => word.trim()).filter(Boolean);
      if (words.length === 0) throw new FormError(messages.words, row);
      leaf.value = kind === "ids" ? words.map((word) => whole(word, row, messages)) : words;
    } else {
      const scale = Number(inputs.dataset.scale || 1);
      const low = scaled(picked[0] || "", scale, row, messages);
      if (op === "between") {
        const high = enabledValues(inputs, `${prefix}.high`)[0];
        const upper = scaled(high ? high.value : "", scale, row, messages);
        if (low > upper) throw new FormError(messages.order, row);
        leaf.value = [low, upper];
      } else {
        leaf.value = low;
      }
    }
    const days = inputs.querySelector(`[name="${prefix}.days"]`);
    if (days && days.value.trim()) leaf.days = whole(days.value, row, messages);
    return leaf;
  }

  function negated(row) {
    const toggle = own(row, `input[name="${row.dataset.prefix}.not"]`)[0];
    return Boolean(toggle && toggle.checked);
  }

  // The filter of the form, as bot/admin/segments.py's to_filter reads it, with the element
  // each path of it came from (to put a 422's message next to the right condition).
  function readFilter(form, messages) {
    const places = new Map();
    const checked = form.querySelector('input[name="mode"]:checked');
    const mode = checked ? checked.value : "all";
    const children = [];
    const rows = form.querySelectorAll('ol[data-list="root"] > li[data-kind]');
    const problems = [];
    // Every condition is read, so each one that can't be gets its own message.
    function leafOf(row) {
      try {
        const leaf = readLeaf(row, messages);
        return negated(row) ? { not: leaf } : leaf;
      } catch (error) {
        if (!(error instanceof FormError)) throw error;
        problems.push(error);
        return null;
      }
    }
    rows.forEach((row) => {
      const path = `${mode}[${children.length}]`;
      const negate = negated(row);
      places.set(path, row);
      if (row.dataset.kind === "group") {
        const groupMode = row.querySelector(`[name="${row.dataset.prefix}.mode"]`).value;
        const base = negate ? `${path}.not` : path;
        const inner = [];
        row.querySelectorAll(":scope > ol > li[data-kind]").forEach((child) => {
          const at = `${base}.${groupMode}[${inner.length}]`;
          places.set(at, child);
          inner.push(leafOf(child));
        });
        const node = { [groupMode]: inner };
        children.push(negate ? { not: node } : node);
      } else {
        children.push(leafOf(row));
      }
    });
    if (problems.length) throw new FormErrors(problems);
    return { filter: { [mode]: children }, places: places };
  }

  class FormErrors extends Error {
    constructor(problems) {
      super(problems[0].message);
      this.problems = problems;
    }
  }

  function placeOf(places, path) {
    let best = null;
    let length = -1;
    for (const [at, element] of places) {
      const matches = path === at || path.startsWith(`${at}.`) || path.startsWith(`${at}[`);
      if (matches && at.length > length) {
        best = element;
        length = at.length;
      }
    }
    return best;
  }

  // --- the builder ---------------------------------------------------------------------------

  function setUpBuilder(form) {
    const output = document.getElementById("segment-count");
    const messages = {
      counting: output.dataset.counting,
      incomplete: output.dataset.incomplete,
      failed: output.dataset.failed,
      choose: form.dataset.msgChoose,
      number: form.dataset.msgNumber,
      words: form.dataset.msgWords,
      order: form.dataset.msgOrder,
      invalid: form.dataset.msgInvalid,
    };
    let timer = null;
    let asked = 0;
    let controller = null;
    let next = 0;
    form.querySelectorAll("li[data-prefix]").forEach((row) => {
      const number = Number(row.dataset.prefix.replace(/^c(\d+).*$/, "$1"));
      next = Math.max(next, number + 1);
    });

    function clearErrors() {
      form.querySelectorAll("li.has-error").forEach((row) => row.classList.remove("has-error"));
      form.querySelectorAll("[data-error]").forEach((note) => {
        note.hidden = true;
        note.textContent = "";
      });
    }

    function showError(row, message, detail) {
      if (!row) return;
      row.classList.add("has-error");
      const note = own(row, "[data-error]")[0];
      if (!note) return;
      note.textContent = detail ? `${message} (${detail})` : message;
      note.hidden = false;
    }

    // A condition is checked once the owner has touched it, or the count is asked for: one
    // just added is not red before anything was chosen in it.
    const touched = new WeakSet();
    form.querySelectorAll("li.has-error").forEach((row) => touched.add(row));

    function touch(element) {
      const row = element.closest("li[data-kind]");
      if (row) touched.add(row);
    }

    function everyRowTouched() {
      form.querySelectorAll("li[data-kind]").forEach((row) => touched.add(row));
    }

    async function count() {
      clearErrors();
      let read;
      try {
        read = readFilter(form, messages);
      } catch (error) {
        if (!(error instanceof FormErrors)) throw error;
        error.problems
          .filter((problem) => touched.has(problem.element))
          .forEach((problem) => showError(problem.element, problem.message));
        output.textContent = messages.incomplete;
        return;
      }
      asked += 1;
      const mine = asked;
      if (controller) controller.abort();
      controller = new AbortController();
      output.setAttribute("aria-busy", "true");
      output.classList.add("busy");
      try {
        const response = await fetch(form.dataset.countUrl, {
          method: "POST",
          headers: {
            "Content-Type": "application/json",
            Accept: "application/json",
            "X-CSRF-Token": csrfToken(form),
          },
          credentials: "same-origin",
          body: JSON.stringify(read.filter),
          signal: controller.signal,
        });
        if (mine !== asked) return;
        const body = await response.json();
        if (response.ok) {
          output.textContent = body.text;
          output.dataset.count = String(body.count);
        } else if (response.status === 422) {
          showError(placeOf(read.places, body.path || ""), messages.invalid, body.error);
          output.textContent = messages.incomplete;
        } else {
          output.textContent = messages.failed;
        }
      } catch (error) {
        if (error.name !== "AbortError" && mine === asked) output.textContent = messages.failed;
      } finally {
        if (mine === asked) {
          output.removeAttribute("aria-busy");
          output.classList.remove("busy");
        }
      }
    }

    function soon() {
      clearTimeout(timer);
      timer = setTimeout(count, DEBOUNCE_MS);
    }

    function clone(id, prefix) {
      const template = document.getElementById(id);
      const html = template.innerHTML.replaceAll("__P__", prefix);
      const holder = document.createElement("template");
      holder.innerHTML = html.trim();
      return holder.content;
    }

    function showOps(inputs) {
      const op = inputs.querySelector(".op-select, input[type=hidden][name$='.op']");
      inputs.querySelectorAll("[data-when]").forEach((part) => {
        const on = part.dataset.when === op.value || (part.dataset.when === "is" && op.value === "is");
        part.disabled = !on;
        part.hidden = !on;
      });
    }

    function updateEmpty() {
      const note = form.querySelector(".empty-note");
      const any = form.querySelector('ol[data-list="root"] > li');
      if (note) note.hidden = Boolean(any);
    }

    form.addEventListener("change", (event) => {
      const target = event.target;
      // A new field starts its condition afresh: untouched until something is chosen in it.
      if (!target.classList.contains("field-select")) touch(target);
      if (target.classList.contains("field-select")) {
        const row = target.closest("li[data-kind]");
        touched.delete(row);
        const old = own(row, "[data-inputs]")[0];
        old.replaceWith(clone(`seg-inputs-${target.value}`, row.dataset.prefix));
      } else if (target.classList.contains("op-select")) {
        showOps(target.closest("[data-inputs]"));
      }
      if (target.name !== "name") soon();
    });
    form.addEventListener("input", (event) => {
      if (event.target.matches("input.number, input.words")) {
        touch(event.target);
        soon();
      }
    });
    form.addEventListener("click", (event) => {
      const button = event.target.closest("button[name=action]");
      if (!button) return;
      const value = button.value;
      if (value === "count") {
        event.preventDefault();
        everyRowTouched();
        clearTimeout(timer);
        count();
      } else if (button.dataset.add) {
        event.preventDefault();
        const list = form.querySelector(`ol[data-list="${button.dataset.to}"]`);
        let prefix;
        if (button.dataset.to === "root") {
          prefix = `c${next}`;
          next += 1;
        } else {
          const used = Array.from(list.children).map((li) => Number(li.dataset.prefix.split("-")[1]));
          prefix = `${button.dataset.to}-${used.length ? Math.max(...used) + 1 : 0}`;
        }
        const part = clone(button.dataset.add === "group" ? "seg-group" : "seg-leaf", prefix);
        const added = part.firstElementChild;
        list.appendChild(part);
        updateEmpty();
        const focus = added.querySelector(".field-select, .mode-select");
        if (focus) focus.focus();
        soon();
      } else if (value.startsWith("remove:")) {
        event.preventDefault();
        const row = button.closest("li[data-kind]");
        const after = row.nextElementSibling || row.previousElementSibling;
        const list = row.parentElement;
        row.remove();
        updateEmpty();
        const focus = after
          ? after.querySelector(".field-select, .mode-select")
          : list.closest("li, section").querySelector("button.add");
        if (focus) focus.focus();
        soon();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("segment-form");
    if (form) setUpBuilder(form);
    const later = document.querySelectorAll("[data-count-url]:not(form)");
    if (later.length) {
      const token = document.querySelector('input[name="csrf_token"]');
      countLater(Array.from(later), token ? token.value : "");
    }
  });
})();

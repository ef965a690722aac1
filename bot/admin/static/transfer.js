// Import and export: the upload sent with its CSRF token in a header (the file is then read as
// a stream, up to the import's own limit, not the app's small form limit), and a running
// import's progress bar kept up to date. Without JavaScript the form posts and the page
// refreshes itself.
(function () {
  "use strict";

  var form = document.querySelector("form[data-upload]");
  if (form && window.fetch && window.FormData) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; }
      var token = form.querySelector("input[name=csrf_token]").value;
      fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { "X-CSRF-Token": token, "Accept": "text/html" },
        credentials: "same-origin"
      }).then(function (response) {
        return response.text();
      }).then(function (html) {
        // The preview (or the form with its error) is a whole page: show it as one.
        document.open();
        document.write(html);
        document.close();
      }).catch(function () {
        if (button) { button.disabled = false; }
        form.submit();
      });
    });
  }

  var run = document.querySelector("[data-import]");
  if (!run) { return; }
  var bar = run.querySelector("progress");
  var said = run.querySelector("[data-said]");
  var numbers = new Intl.NumberFormat(document.documentElement.lang || "en");

  function show(state) {
    var template = run.getAttribute("data-" + state.phase) || "";
    bar.max = Math.max(state.total, 1);
    bar.value = state.done;
    said.textContent = template
      .replace("{done}", numbers.format(state.done))
      .replace("{total}", numbers.format(state.total));
  }

  function poll() {
    fetch(run.getAttribute("data-import"), {
      headers: { "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.json();
    }).then(function (state) {
      if (state.state !== "running") {
        window.location.reload();
        return;
      }
      show(state);
      window.setTimeout(poll, 700);
    }).catch(function () {
      window.setTimeout(poll, 2000);
    });
  }

  window.setTimeout(poll, 300);
})();

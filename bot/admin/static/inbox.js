/* The reply form's live counter: the reply sized as an SMS the way the server sizes it (sms.js,
   as campaigns.js sizes a campaign), with the alphabet and the replacements from the page. */
(function () {
  "use strict";

  function show(rules, form, area, output) {
    if (!area.value.trim()) {
      output.textContent = "";
      output.className = "counter";
      return;
    }
    var size = rules.segments(rules.toGsm7(area.value.trim()));
    var limit = rules.limit(size);
    var text = form.dataset.format
      .replace("{units}", size.units)
      .replace("{limit}", limit)
      .replace("{segments}", size.segments)
      .replace("{encoding}", size.encoding);
    if (size.encoding === "UCS-2") text += " — " + form.dataset.ucs2;
    output.textContent = text;
    output.dataset.segments = String(size.segments);
    output.dataset.encoding = size.encoding;
    output.className = "counter" + (size.segments > 1 ? " multi" : "") +
      (size.encoding === "UCS-2" ? " ucs2" : "");
  }

  function start() {
    var form = document.querySelector("form.reply-form[data-counter]");
    if (!form) return;
    var rules = new window.KlubbSms.Alphabet(JSON.parse(form.dataset.counter));
    var area = form.querySelector("textarea");
    var output = document.getElementById("count");
    if (!area || !output) return;
    area.addEventListener("input", function () { show(rules, form, area, output); });
    show(rules, form, area, output);
    pickSaved(area);
  }

  /* A saved reply picked puts its text (filled in for this member by the server, on the
     option) in the box at once; without a script the picker's form asks the page again. */
  function pickSaved(area) {
    var picker = document.querySelector("form.saved-picker");
    if (!picker || area.disabled) return;
    var select = picker.querySelector("select");
    function use() {
      var option = select.options[select.selectedIndex];
      if (!option || !option.value) return;
      area.value = option.dataset.text || "";
      area.dispatchEvent(new Event("input"));  // the counter sizes it
      area.focus();
    }
    select.addEventListener("change", use);
    picker.addEventListener("submit", function (event) {
      event.preventDefault();
      use();
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

/* The reply form's live counter: the reply sized as an SMS the way the server sizes it
   (locales.sms: typographic characters replaced as to_gsm7 does, then GSM-7 septets, the
   extension table costing two, or UTF-16 units for UCS-2). The alphabet and the replacements
   come from the page, so there is one source of each; campaigns.js sizes a campaign the same way. */
(function () {
  "use strict";

  var GSM_SINGLE = 160, GSM_PART = 153, UCS2_SINGLE = 70, UCS2_PART = 67;

  function Rules(data) {
    this.basic = new Set(Array.from(data.basic));
    this.extension = new Set(Array.from(data.extension));
    this.replace = data.replace || {};
    this.expand = data.expand || {};
  }

  Rules.prototype.isGsm7 = function (text) {
    for (var ch of text) {
      if (!this.basic.has(ch) && !this.extension.has(ch)) return false;
    }
    return true;
  };

  Rules.prototype.segments = function (text) {
    if (this.isGsm7(text)) {
      var units = 0;
      for (var ch of text) units += this.extension.has(ch) ? 2 : 1;
      return { encoding: "GSM-7", units: units, segments: count(units, GSM_SINGLE, GSM_PART) };
    }
    return { encoding: "UCS-2", units: text.length, segments: count(text.length, UCS2_SINGLE, UCS2_PART) };
  };

  function count(units, single, part) {
    return units <= single ? 1 : Math.ceil(units / part);
  }

  function translate(text, table) {
    var out = "";
    for (var ch of text) out += Object.prototype.hasOwnProperty.call(table, ch) ? table[ch] : ch;
    return out;
  }

  Rules.prototype.toGsm7 = function (text) {
    if (this.isGsm7(text)) return text;
    var composed = text.normalize("NFC");
    if (this.segments(composed).segments > this.segments(text).segments) composed = text;
    var plain = translate(composed, this.replace);
    var expanded = translate(plain, this.expand);
    return this.segments(expanded).segments <= this.segments(plain).segments ? expanded : plain;
  };

  function show(rules, form, area, output) {
    if (!area.value.trim()) {
      output.textContent = "";
      output.className = "counter";
      return;
    }
    var size = rules.segments(rules.toGsm7(area.value.trim()));
    var single = size.encoding === "GSM-7" ? GSM_SINGLE : UCS2_SINGLE;
    var part = size.encoding === "GSM-7" ? GSM_PART : UCS2_PART;
    var limit = size.segments === 1 ? single : part * size.segments;
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
    var rules = new Rules(JSON.parse(form.dataset.counter));
    var area = form.querySelector("textarea");
    var output = document.getElementById("count");
    if (!area || !output) return;
    area.addEventListener("input", function () { show(rules, form, area, output); });
    show(rules, form, area, output);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

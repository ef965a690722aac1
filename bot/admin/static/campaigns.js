/* The compose form's live counter: each text sized as an SMS the way the server sizes it
   (store.campaigns.sample_text and locales.sms.segments): placeholders filled with the sample
   values, the club's name put first, the opt-out line added, typographic characters replaced as
   to_gsm7 does, then GSM-7 septets (the extension table costs two) or UTF-16 units for UCS-2.
   The alphabet, the replacements, the samples, the club's name and the footers come from the
   page, so there is one source of each.
   The preview step shows the server's own figure. */
(function () {
  "use strict";

  var GSM_SINGLE = 160, GSM_PART = 153, UCS2_SINGLE = 70, UCS2_PART = 67;

  function Rules(data) {
    this.basic = new Set(Array.from(data.basic));
    this.extension = new Set(Array.from(data.extension));
    this.replace = data.replace || {};
    this.expand = data.expand || {};
    this.samples = data.samples || {};
    this.footers = data.footers || {};
    this.club = (data.club || "").trim();
  }

  /* store.campaigns.signed: the club's name first, unless the text begins with it. */
  Rules.prototype.signed = function (text) {
    var name = this.club;
    if (!name) return text;
    var head = text.replace(/^\s+/, "");
    var after = head.charAt(name.length);
    var begins = head.slice(0, name.length).toLowerCase() === name.toLowerCase();
    if (begins && !/[\p{L}\p{N}]/u.test(after)) return text;
    return name + ": " + text;
  };

  Rules.prototype.isGsm7 = function (text) {
    for (var ch of text) {
      if (!this.basic.has(ch) && !this.extension.has(ch)) return false;
    }
    return true;
  };

  /* {encoding, units, segments}, as locales.sms.segments. */
  Rules.prototype.segments = function (text) {
    if (this.isGsm7(text)) {
      var units = 0;
      for (var ch of text) units += this.extension.has(ch) ? 2 : 1;
      return { encoding: "GSM-7", units: units, segments: count(units, GSM_SINGLE, GSM_PART) };
    }
    // A JavaScript string's length is in UTF-16 units, as UCS-2 SMS counts them.
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

  /* locales.sms.to_gsm7: replacements that never cost a segment more. */
  Rules.prototype.toGsm7 = function (text) {
    if (this.isGsm7(text)) return text;
    var composed = text.normalize("NFC");
    if (this.segments(composed).segments > this.segments(text).segments) composed = text;
    var plain = translate(composed, this.replace);
    var expanded = translate(plain, this.expand);
    return this.segments(expanded).segments <= this.segments(plain).segments ? expanded : plain;
  };

  /* The text as the sample member gets it: placeholders filled ({{ and }} are braces), the
     opt-out line added. An unknown placeholder stays as typed (the server refuses it). */
  Rules.prototype.render = function (template, language) {
    var values = this.samples[language] || {};
    var filled = template.trim().replace(/\{\{|\}\}|\{([A-Za-z_]+)\}/g, function (whole, name) {
      if (whole === "{{") return "{";
      if (whole === "}}") return "}";
      return Object.prototype.hasOwnProperty.call(values, name) ? values[name] : whole;
    });
    return this.toGsm7(this.signed(filled) + "\n" + (this.footers[language] || ""));
  };

  Rules.prototype.measure = function (template, language) {
    var size = this.segments(this.render(template, language));
    var single = size.encoding === "GSM-7" ? GSM_SINGLE : UCS2_SINGLE;
    var part = size.encoding === "GSM-7" ? GSM_PART : UCS2_PART;
    size.limit = size.segments === 1 ? single : part * size.segments;
    return size;
  };

  function show(rules, form, area) {
    var output = document.getElementById("count-" + area.dataset.language);
    if (!output) return;
    if (!area.value.trim()) {
      output.textContent = "";
      output.className = "counter";
      return;
    }
    var size = rules.measure(area.value, area.dataset.language);
    var text = form.dataset.format
      .replace("{units}", size.units)
      .replace("{limit}", size.limit)
      .replace("{segments}", size.segments)
      .replace("{encoding}", size.encoding);
    if (size.encoding === "UCS-2") text += " — " + form.dataset.ucs2;
    output.textContent = text;
    output.dataset.segments = String(size.segments);
    output.dataset.encoding = size.encoding;
    output.className = "counter" + (size.segments > 1 ? " multi" : "") +
      (size.encoding === "UCS-2" ? " ucs2" : "");
  }

  /* The audience's count beside its picker, asked again of the server (which counts through
     the store: consent, stops and the monthly cap) whenever another audience is chosen. */
  function watchAudience(form) {
    var picker = form.querySelector("#audience");
    var shown = document.getElementById("audience-reach");
    if (!picker || !shown || !shown.dataset.url) return;
    var asked = 0;
    picker.addEventListener("change", function () {
      var mine = ++asked;
      var chosen = form.querySelector('input[name="members"]');
      var token = form.querySelector('input[name="csrf_token"]');
      shown.classList.add("busy");
      fetch(shown.dataset.url, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRF-Token": token ? token.value : "",
        },
        body: JSON.stringify({ audience: picker.value, members: chosen ? chosen.value : "" }),
      })
        .then(function (response) { return response.ok ? response.json() : { texts: [] }; })
        .catch(function () { return { texts: [] }; })
        .then(function (body) {
          if (mine !== asked) return;
          shown.classList.remove("busy");
          shown.textContent = "";
          (body.texts || []).forEach(function (line) {
            var part = document.createElement("span");
            part.className = "reach-line";
            part.textContent = line;
            shown.appendChild(part);
          });
        });
    });
  }

  function start() {
    var form = document.querySelector("form[data-counter]");
    if (!form) return;
    var rules = new Rules(JSON.parse(form.dataset.counter));
    window.KlubbCampaigns = rules; // what a browser test compares with the server's sizes
    var areas = form.querySelectorAll("textarea[data-language]");
    areas.forEach(function (area) {
      area.addEventListener("input", function () { show(rules, form, area); });
      show(rules, form, area);
    });
    watchAudience(form);
    // A time to schedule at only matters when "later" is chosen: picking one chooses it.
    var later = form.querySelector('input[name="when"][value="later"]');
    var at = form.querySelector("#send_at");
    if (later && at) at.addEventListener("input", function () { if (at.value) later.checked = true; });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

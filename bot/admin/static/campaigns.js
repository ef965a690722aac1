/* The compose form's live counter: each text sized as an SMS the way the server sizes it
   (store.campaigns.sample_text and locales.sms.segments): placeholders filled with the sample
   values, the club's name put first, the opt-out line added, typographic characters replaced as
   to_gsm7 does, then GSM-7 septets or UTF-16 units for UCS-2 (sms.js).
   The alphabet, the replacements, the samples, the club's name and the footers come from the
   page, so there is one source of each.
   The preview step shows the server's own figure. */
(function () {
  "use strict";

  var Alphabet = window.KlubbSms.Alphabet;  // sms.js: the sizing the inbox's counter shares

  function Rules(data) {
    Alphabet.call(this, data);
    this.samples = data.samples || {};
    this.footers = data.footers || {};
    this.club = (data.club || "").trim();
  }
  Rules.prototype = Object.create(Alphabet.prototype);

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
    size.limit = this.limit(size);
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

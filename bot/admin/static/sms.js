/* An SMS sized the way the server sizes it (locales.sms): typographic characters replaced as
   to_gsm7 does, then GSM-7 septets (the extension table costs two) or UTF-16 units for UCS-2.
   The alphabet and the replacements come from the page, so there is one source of each; the
   campaign counter (campaigns.js) and the inbox's reply counter (inbox.js) both size with this. */
(function () {
  "use strict";

  var GSM_SINGLE = 160, GSM_PART = 153, UCS2_SINGLE = 70, UCS2_PART = 67;

  function Alphabet(data) {
    this.basic = new Set(Array.from(data.basic));
    this.extension = new Set(Array.from(data.extension));
    this.replace = data.replace || {};
    this.expand = data.expand || {};
  }

  Alphabet.prototype.isGsm7 = function (text) {
    for (var ch of text) {
      if (!this.basic.has(ch) && !this.extension.has(ch)) return false;
    }
    return true;
  };

  /* {encoding, units, segments}, as locales.sms.segments. */
  Alphabet.prototype.segments = function (text) {
    if (this.isGsm7(text)) {
      var units = 0;
      for (var ch of text) units += this.extension.has(ch) ? 2 : 1;
      return { encoding: "GSM-7", units: units, segments: count(units, GSM_SINGLE, GSM_PART) };
    }
    // A JavaScript string's length is in UTF-16 units, as UCS-2 SMS counts them.
    return { encoding: "UCS-2", units: text.length, segments: count(text.length, UCS2_SINGLE, UCS2_PART) };
  };

  /* How many units the SMS of this size may hold: one segment's, or all its parts'. */
  Alphabet.prototype.limit = function (size) {
    var single = size.encoding === "GSM-7" ? GSM_SINGLE : UCS2_SINGLE;
    var part = size.encoding === "GSM-7" ? GSM_PART : UCS2_PART;
    return size.segments === 1 ? single : part * size.segments;
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
  Alphabet.prototype.toGsm7 = function (text) {
    if (this.isGsm7(text)) return text;
    var composed = text.normalize("NFC");
    if (this.segments(composed).segments > this.segments(text).segments) composed = text;
    var plain = translate(composed, this.replace);
    var expanded = translate(plain, this.expand);
    return this.segments(expanded).segments <= this.segments(plain).segments ? expanded : plain;
  };

  window.KlubbSms = { Alphabet: Alphabet };
})();

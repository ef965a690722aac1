/* The compose form's "Use a saved text": picking one puts its texts (on the option, as the
   server wrote them) in the text fields at once, and each field's counter sizes it again.
   Without a script the "Use" button posts the form to /admin/campaigns/edit, which shows it
   again with the texts filled (bot/admin/campaigns.py). */
(function () {
  "use strict";

  function fill(form, option) {
    form.querySelectorAll("textarea[data-language]").forEach(function (area) {
      var text = option.getAttribute("data-text-" + area.dataset.language);
      area.value = text || "";
      area.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }

  function start() {
    var picker = document.querySelector(".saved-texts-picker select");
    if (!picker) return;
    var form = picker.form;
    var use = form.querySelector('.saved-texts-picker button[name="pick"]');
    picker.addEventListener("change", function () {
      var option = picker.options[picker.selectedIndex];
      if (option && option.value) fill(form, option);
    });
    if (use) {
      use.addEventListener("click", function (event) {
        var option = picker.options[picker.selectedIndex];
        if (!option || !option.value) return;
        event.preventDefault();
        fill(form, option);
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

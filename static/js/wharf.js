// Wharf dashboard behaviour, loaded as a file (the Content-Security-Policy allows no inline script).
// - Copy buttons: <button type="button" data-copy="#id-of-element-or-text">Copy</button>
//   copy the target element's text (or the attribute's literal value when it does not start with #).
// - data-confirm="message" on a form asks before submitting.
(function () {
  "use strict";

  function copyText(button) {
    var spec = button.getAttribute("data-copy") || "";
    var text = spec;
    if (spec.charAt(0) === "#") {
      var target = document.querySelector(spec);
      text = target ? (target.value !== undefined && target.tagName === "INPUT" ? target.value : target.textContent.trim()) : "";
    }
    var done = function () {
      // The visible text and the accessible name change together (WCAG 2.5.3: the name contains the label).
      var label = button.textContent;
      var name = button.getAttribute("aria-label");
      button.textContent = "Copied";
      if (name !== null) { button.setAttribute("aria-label", "Copied"); }
      button.setAttribute("aria-live", "polite");
      window.setTimeout(function () {
        button.textContent = label;
        if (name !== null) { button.setAttribute("aria-label", name); }
      }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done(); } catch (e) { /* nothing to do */ }
      document.body.removeChild(area);
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) { event.preventDefault(); copyText(button); }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
})();

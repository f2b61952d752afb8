// Wharf dashboard behaviour, loaded as a file (the Content-Security-Policy allows no inline script).
// - Copy buttons: <button type="button" data-copy="#id-of-element-or-text">Copy</button>
//   copy the target element's text (or the attribute's literal value when it does not start with #).
// - data-confirm="message" on a form asks before submitting.
// - A wide table's .table-wrap (or a <pre>) that scrolls sideways joins the Tab order while it does, so the
//   keyboard can scroll it (WCAG 2.1.1; axe: scrollable-region-focusable); a table's box is a region named by its caption.
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

  function markScrollers() {
    document.querySelectorAll(".table-wrap, pre").forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1;
      if (scrolls && !box.hasAttribute("tabindex")) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("data-scroller", "");
        if (box.classList.contains("table-wrap") && !box.hasAttribute("role")) {
          var caption = box.querySelector("caption");
          box.setAttribute("role", "region");
          box.setAttribute("aria-label", caption ? caption.textContent.trim() : "Table");
          box.setAttribute("data-scroller", "region");
        }
      } else if (!scrolls && box.hasAttribute("data-scroller")) {
        var added = box.getAttribute("data-scroller") === "region" ? ["role", "aria-label"] : [];
        added.concat(["tabindex", "data-scroller"]).forEach(function (name) { box.removeAttribute(name); });
      }
    });
  }
  markScrollers();
  window.addEventListener("resize", markScrollers);
  document.addEventListener("htmx:afterSettle", markScrollers);

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
})();

// The on-screen PIN pad: digits go into the masked field of this page only; the form posts it
// straight to the server, which answers with a redirect to a page without it.
(function () {
  "use strict";
  document.querySelectorAll("[data-pad-for]").forEach(function (pad) {
    var input = document.getElementById(pad.getAttribute("data-pad-for"));
    if (!input) return;
    pad.hidden = false;
    pad.addEventListener("click", function (ev) {
      var key = ev.target.closest("button");
      if (!key) return;
      if (key.hasAttribute("data-clear")) input.value = "";
      else if (key.hasAttribute("data-digit") && input.value.length < 6) {
        input.value += key.getAttribute("data-digit");
      }
    });
  });
  // Leaving the page (back/forward cache included) must not keep what was typed.
  window.addEventListener("pagehide", function () {
    document.querySelectorAll("input[type=password]").forEach(function (i) { i.value = ""; });
  });
})();

// "Back to the form" on an error page: going back in history lets the browser restore what was
// typed (a plain link would load the form empty). Without history (a new tab) the link is used.
(function () {
  "use strict";
  document.querySelectorAll("[data-back]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      if (window.history.length > 1) {
        event.preventDefault();
        window.history.back();
      }
    });
  });
})();

// Polls a JSON status URL every second and shows the matching status block
// (<p data-status-for="paid" hidden>...). Stops when the status is final.
(function () {
  "use strict";
  var box = document.querySelector("[data-poll-url]");
  if (!box) return;
  var url = box.getAttribute("data-poll-url");
  var final = ["paid", "expired", "failed"];
  function show(status) {
    box.querySelectorAll("[data-status-for]").forEach(function (el) {
      el.hidden = el.getAttribute("data-status-for") !== status;
    });
    box.setAttribute("data-status", status);
  }
  function tick() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && body.charge) {
          show(body.charge.status);
          if (final.indexOf(body.charge.status) >= 0) return;
        }
        setTimeout(tick, 1000);
      })
      .catch(function () { setTimeout(tick, 2000); });
  }
  show(box.getAttribute("data-status"));
  if (final.indexOf(box.getAttribute("data-status")) < 0) setTimeout(tick, 1000);
})();

// The shop's desk: while a redemption is still burning, ask its state every 3 seconds and
// reload the page once none is burning any more, so "processing" turns into "waiting for the
// bank transfer" or "failed" (with the notice) without the shop having to reload.
(function () {
  "use strict";
  var list = document.querySelector("[data-redeeming-poll]");
  if (!list) return;
  var url = list.getAttribute("data-redeeming-poll");
  function tick() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && body.settlements && !body.settlements.some(function (s) {
          return s.status === "redeeming";
        })) {
          window.location.reload();
          return;
        }
        setTimeout(tick, 3000);
      })
      .catch(function () { setTimeout(tick, 5000); });
  }
  setTimeout(tick, 3000);
})();

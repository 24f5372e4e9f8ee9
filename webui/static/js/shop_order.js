// Polls the order's JSON status until it is final, then reloads the page once to show it
// (pace and backoff: poll.js). Never from the browser's cache ("no-store"), and again when the
// page comes back from the back/forward cache: a page kept from before shows a state that has
// moved on (issue 15 §7).
(function () {
  var box = document.getElementById("order-status");
  if (!box || !window.furusatoPoll) return;
  var pending = ["processing", "pending_payment"];
  var poller = window.furusatoPoll(function () {
    return fetch(box.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        if (body.order && body.order.status !== box.dataset.status) {
          window.location.reload();
          return true;
        }
        return pending.indexOf(box.dataset.status) < 0;
      });
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) poller.restart();
  });
  if (pending.indexOf(box.dataset.status) >= 0) poller.start();
})();

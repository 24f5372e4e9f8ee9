// Polls the order's JSON status until it is final, then reloads the page once to show it.
(function () {
  var box = document.getElementById("order-status");
  if (!box) return;
  var pending = ["processing", "pending_payment"];
  if (pending.indexOf(box.dataset.status) < 0) return;
  function poll() {
    fetch(box.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        if (body.order && pending.indexOf(body.order.status) < 0) { window.location.reload(); }
        else { setTimeout(poll, 1500); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1500);
})();

// Live poll results: poll the results JSON every few seconds; reload when the poll moves on.
(function () {
  "use strict";
  // The server's percentages: set here, since the CSP refuses inline style attributes.
  document.querySelectorAll("[data-percent]").forEach(function (bar) {
    bar.style.width = bar.getAttribute("data-percent") + "%";
  });
  var box = document.getElementById("poll-results");
  if (!box) { return; }
  var url = box.getAttribute("data-url");
  var state = box.getAttribute("data-state");
  function tick() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        if (data.state !== state) { window.location.reload(); return; }
        var total = data.tallies.reduce(function (a, b) { return a + b; }, 0);
        data.tallies.forEach(function (weight, i) {
          var el = box.querySelector('[data-option-count="' + i + '"]');
          if (el && String(weight) !== el.textContent) { el.textContent = String(weight); }
          var bar = box.querySelector('[data-option-bar="' + i + '"]');
          if (bar) { bar.style.width = (total ? Math.round(100 * weight / total) : 0) + "%"; }
        });
        var sum = box.querySelector("[data-total]");
        if (sum) { sum.textContent = String(data.total_weight); }
        var busy = document.getElementById("dao-processing");
        if (busy) { busy.hidden = !data.votes_processing; }
      })
      .catch(function () { /* try again at the next tick */ });
  }
  window.setInterval(tick, 3000);
})();

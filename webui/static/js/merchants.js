// Polls a JSON status URL (pace and backoff: poll.js) and shows the matching status block
// (<p data-status-for="paid" hidden>...). Stops when the status is final.
// A pending charge's screen also counts down to its expiry (data-expires-at, ISO time) and
// shows "expired" at 0; the cancel form goes once the charge is no longer pending.
(function () {
  "use strict";
  var box = document.querySelector("[data-poll-url]");
  if (!box) return;
  var url = box.getAttribute("data-poll-url");
  var final = ["paid", "expired", "failed", "cancelled"];
  var countdown = document.querySelector("[data-expires-at]");
  var cancelForm = document.querySelector("[data-cancel-form]");
  function show(status) {
    box.querySelectorAll("[data-status-for]").forEach(function (el) {
      el.hidden = el.getAttribute("data-status-for") !== status;
    });
    box.setAttribute("data-status", status);
    if (status !== "pending") {
      if (cancelForm) cancelForm.hidden = true;
      if (countdown && status !== "expired") countdown.hidden = true;
    }
  }
  var poller = window.furusatoPoll && window.furusatoPoll(function () {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (body) {
        if (!body || !body.charge) return false;
        show(body.charge.status);
        return final.indexOf(body.charge.status) >= 0;
      });
  });
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function count() {
    if (!countdown || countdown.hidden) return;
    var left = Math.floor((Date.parse(countdown.getAttribute("data-expires-at")) - Date.now()) / 1000);
    var leftEl = countdown.querySelector("[data-countdown-left]");
    var doneEl = countdown.querySelector("[data-countdown-expired]");
    if (left <= 0) {
      leftEl.textContent = "";
      doneEl.hidden = false;
      countdown.setAttribute("data-left", "0");
      if (cancelForm) cancelForm.hidden = true;
      return;
    }
    leftEl.textContent = Math.floor(left / 60) + ":" + pad(left % 60);
    countdown.setAttribute("data-left", String(left));
    setTimeout(count, 1000);
  }
  show(box.getAttribute("data-status"));
  count();
  if (poller && final.indexOf(box.getAttribute("data-status")) < 0) poller.start();
})();

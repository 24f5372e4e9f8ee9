// The status pages' polling (issue 16 §2): every 500 ms while a confirmation is due (the
// worker sees a new block within a quarter of a second, so "paid" is a few blocks away), then
// slower (x1.5 a round, up to 5 s) once the first 15 s have passed, so a page left open on a
// stuck payment does not ask twice a second for ever. A failed request waits 2 s, doubling up
// to 10 s. A hidden tab does not ask at all; it asks at once when it is shown again.
//   var poller = furusatoPoll(function () { return fetch(...).then(... true when final ...); });
//   poller.start(); poller.restart();  // restart: the fast pace again, from now
(function () {
  "use strict";
  var FAST = 500, FAST_FOR = 15000, SLOW = 5000, ERROR_FIRST = 2000, ERROR_MAX = 10000;
  window.furusatoPoll = function (check) {
    var timer = null, delay = FAST, since = Date.now(), done = false, waiting = false;
    function schedule(ms) {
      clearTimeout(timer);
      timer = setTimeout(round, ms);
    }
    function round() {
      timer = null;
      if (done) return;
      if (document.hidden) { waiting = true; return; }
      Promise.resolve()
        .then(check)
        .then(function (final) {
          if (final) { done = true; return; }
          delay = Date.now() - since < FAST_FOR ? FAST : Math.min(SLOW, Math.max(delay, FAST) * 1.5);
          schedule(delay);
        })
        .catch(function () {
          delay = Math.min(ERROR_MAX, Math.max(ERROR_FIRST, delay * 2));
          schedule(delay);
        });
    }
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && waiting && !done) { waiting = false; schedule(0); }
    });
    return {
      start: function () { schedule(FAST); },
      restart: function () { done = false; since = Date.now(); delay = FAST; schedule(0); },
      stop: function () { done = true; clearTimeout(timer); }
    };
  };
})();

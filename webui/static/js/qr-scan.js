// Camera scanning for any code input (issue 15 §2). The page marks the input with
// data-qr-scan ("fill": put the code in and let the person confirm; "submit": also send the
// form) and renders the controls with the qr_scan macro (webui/templates/components/qr_scan.html),
// whose translated messages this script only shows or hides. The decoder (@zxing/browser, from
// npm, copied into static/vendor by `make setup`) is loaded on the first press only: the typed
// path never downloads it. Typed entry keeps working whatever happens to the camera.
(function () {
  "use strict";

  var libPromise = null;
  var SCAN_EVERY_MS = 150;
  var MAX_SIDE = 1024; // pixels of the longer side given to the decoder
  // The decoder misses some codes at one size and reads them at another: on clean 640x480
  // frames of 200 ticket codes it missed 19 % at 7 px per module and 2 % at half that size
  // (tests/camera.py). So successive frames are decoded at the full size, 3/4 and 1/2, never
  // below MIN_SIDE, where small codes would lose their modules.
  var SIZES = [1, 0.75, 0.5];
  var MIN_SIDE = 320;

  function loadLibrary(url) {
    if (window.ZXingBrowser) return Promise.resolve(window.ZXingBrowser);
    if (libPromise) return libPromise;
    libPromise = new Promise(function (resolve, reject) {
      // A script added by this nonced script runs under the CSP's 'strict-dynamic'.
      var s = document.createElement("script");
      s.src = url;
      s.async = true;
      s.onload = function () {
        if (window.ZXingBrowser) resolve(window.ZXingBrowser);
        else reject(new Error("library"));
      };
      s.onerror = function () {
        libPromise = null; // let a later press try again
        reject(new Error("library"));
      };
      document.head.appendChild(s);
    });
    return libPromise;
  }

  // The reason a camera could not be opened, as one of the macro's message names.
  function reason(err) {
    var name = (err && err.name) || "";
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
      return "denied";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
      return "no-camera";
    }
    if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") {
      return "busy";
    }
    if (err && err.message === "library") return "library";
    return "failed";
  }

  function attach(box) {
    if (box.getAttribute("data-qr-ready") === "1") return;
    var input = document.getElementById(box.getAttribute("data-qr-scan-for"));
    if (!input) return;
    box.setAttribute("data-qr-ready", "1");
    var mode = input.getAttribute("data-qr-scan") || "fill";
    var start = box.querySelector("[data-qr-start]");
    var stop = box.querySelector("[data-qr-stop]");
    var view = box.querySelector("[data-qr-view]");
    var video = box.querySelector("video");
    var running = false;
    var stream = null;
    var timer = null;
    function say(name, text) {
      box.querySelectorAll("[data-qr-msg]").forEach(function (el) {
        el.hidden = el.getAttribute("data-qr-msg") !== name;
        if (!el.hidden && text !== undefined) {
          var slot = el.querySelector("[data-qr-value]");
          if (slot) slot.textContent = text;
        }
      });
      box.setAttribute("data-qr-state", name || "idle");
    }

    function halt() {
      running = false;
      clearTimeout(timer);
      if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
      stream = null;
      video.srcObject = null;
      view.hidden = true;
      start.hidden = false;
    }

    // Our own loop over the video's frames rather than the library's: it sizes the canvas to
    // the frame it draws (the camera's size can change after it starts), caps it so a phone's
    // large frames stay quick to decode, and can never stop silently.
    function tick(reader, canvas, ctx) {
      if (!running) return;
      var w = video.videoWidth, h = video.videoHeight;
      if (video.readyState >= 2 && w > 0 && h > 0) {
        var tries = Number(box.getAttribute("data-qr-tries") || 0);
        var scale = Math.min(1, MAX_SIDE / Math.max(w, h));
        var smaller = scale * SIZES[tries % SIZES.length];
        if (Math.max(w, h) * smaller >= MIN_SIDE) scale = smaller;
        w = Math.round(w * scale);
        h = Math.round(h * scale);
        if (canvas.width !== w || canvas.height !== h) {
          canvas.width = w;
          canvas.height = h;
        }
        ctx.drawImage(video, 0, 0, w, h);
        // Frames tried so far: support (and the tests) can tell "no frames" from "no code".
        box.setAttribute("data-qr-tries", String(tries + 1));
        try {
          // Whatever the code says goes to the server, which tells a wrong code apart.
          found(String(reader.decodeFromCanvas(canvas).getText()).trim());
          return;
        } catch (err) {
          // The decoder's own exceptions (no code in this frame, a blurred one, and now and
          // then an internal one on a noisy frame) mean: try the next frame. Anything else is
          // the page's fault and would repeat on every frame.
          if (!(err && typeof err.getKind === "function")) {
            box.setAttribute("data-qr-error", String((err && err.name) || err));
            halt();
            say("failed");
            input.focus();
            return;
          }
        }
      }
      timer = setTimeout(function () { tick(reader, canvas, ctx); }, SCAN_EVERY_MS);
    }

    function found(text) {
      halt();
      input.value = text;
      // Frameworks and other scripts listening for typing see the scanned value too.
      input.dispatchEvent(new Event("input", { bubbles: true }));
      input.dispatchEvent(new Event("change", { bubbles: true }));
      say("read", text);
      var form = input.form;
      if (mode === "submit" && form) {
        // requestSubmit runs the form's own validation (a missing amount is shown, not sent).
        if (form.requestSubmit) form.requestSubmit();
        else form.submit();
      } else {
        // On to what the person still has to do: a field left empty, else the button.
        var next = form && (form.querySelector(":invalid:not(fieldset)") || form.querySelector("[type=submit]"));
        (next || input).focus();
      }
    }

    start.addEventListener("click", function () {
      if (running) return;
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        // No camera API: an old browser, or a page not served over https.
        say("unsupported");
        input.focus();
        return;
      }
      running = true;
      start.hidden = true;
      say("starting");
      // The camera is asked for at once (the press is what lets the browser ask the person),
      // while the decoder downloads.
      var camera = navigator.mediaDevices.getUserMedia({
        audio: false,
        video: { facingMode: "environment" },
      });
      Promise.all([camera, loadLibrary(box.getAttribute("data-qr-lib"))])
        .then(function (got) {
          stream = got[0];
          if (!running) return halt(); // stopped while the camera was opening
          video.srcObject = stream;
          view.hidden = false;
          return video.play().then(function () {
            if (!running) return;
            say("scanning");
            var canvas = document.createElement("canvas");
            var ctx = canvas.getContext("2d", { willReadFrequently: true });
            tick(new got[1].BrowserQRCodeReader(), canvas, ctx);
          });
        })
        .catch(function (err) {
          // The camera may have opened before the decoder failed to load: free it.
          camera.then(function (s) { s.getTracks().forEach(function (t) { t.stop(); }); }, function () {});
          if (!running) return; // the person pressed stop meanwhile: nothing to tell
          halt();
          say(reason(err));
          input.focus();
        });
    });

    stop.addEventListener("click", function () {
      halt();
      say("");
      input.focus();
    });

    // A code typed over a scanned one: the "code read" line no longer tells the truth.
    input.addEventListener("input", function (e) {
      if (e.isTrusted && box.getAttribute("data-qr-state") === "read") say("");
    });

    // Leaving the page (or putting it in the background) frees the camera.
    window.addEventListener("pagehide", halt);

    box.hidden = false; // the controls show only where this script runs
  }

  function init() {
    document.querySelectorAll("[data-qr-scan-for]").forEach(attach);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

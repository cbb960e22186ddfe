// The reader's HTML mail frame, sized to the mail (issue 10: not a fixed box).
// The frame is sandboxed with allow-same-origin but without allow-scripts, and its CSP allows no
// script: the mail itself runs nothing. This file, served by GK (CSP script-src 'self'), runs in
// the reader page and measures the frame's document, which same-origin makes readable.
(function () {
  "use strict";
  function fit(frame) {
    var doc;
    try { doc = frame.contentDocument; } catch (e) { return; }
    if (!doc || !doc.documentElement) { return; }
    // the html element's own box is the mail's height (scrollHeight would be at least the frame's)
    var h = Math.ceil(doc.documentElement.getBoundingClientRect().height);
    var body = doc.body ? doc.body.getBoundingClientRect() : null;
    if (body) { h = Math.max(h, Math.ceil(body.bottom)); }
    frame.style.height = (h + 24) + "px";
    frame.classList.add("fitted");
  }
  function watch(frame) {
    fit(frame);
    var doc = frame.contentDocument;
    if (!doc) { return; }
    Array.prototype.forEach.call(doc.images, function (img) {
      if (!img.complete) { img.addEventListener("load", function () { fit(frame); }); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var frame = document.querySelector("iframe#body");
    if (!frame) { return; }
    frame.addEventListener("load", function () { watch(frame); });
    if (frame.contentDocument && frame.contentDocument.readyState === "complete") { watch(frame); }
    window.addEventListener("resize", function () { fit(frame); });
  });
})();

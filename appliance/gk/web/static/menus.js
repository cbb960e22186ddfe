/* Menus made of a native <details data-menu> (the mail list's "More", the phone's folder switcher,
   the Administration menu): they open and close from their summary without this script, which
   adds what a menu button does (WAI-ARIA APG): Escape closes the open menu and gives the focus
   back to its summary; a click, a tap or the focus going outside it closes it. */
(function () {
  "use strict";
  function openMenus() {
    return Array.prototype.slice.call(document.querySelectorAll("details[data-menu][open]"));
  }
  function summaryOf(menu) {
    for (var c = menu.firstElementChild; c; c = c.nextElementSibling) {
      if (c.tagName === "SUMMARY") return c;
    }
    return null;
  }
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape" || e.defaultPrevented || e.isComposing) return;
    var menus = openMenus();
    if (!menus.length) return;
    var active = document.activeElement;
    var holding = menus.filter(function (m) { return m.contains(active); });
    // the innermost menu holding the focus; with the focus nowhere (a tap), every open one
    var closing = holding.length ? [holding[holding.length - 1]] : menus;
    closing.forEach(function (m) { m.open = false; });
    if (holding.length || !active || active === document.body) {
      var summary = summaryOf(closing[closing.length - 1]);
      if (summary) summary.focus();
    }
    e.preventDefault();
  });
  function closeOutside(e) {
    openMenus().forEach(function (m) { if (!m.contains(e.target)) m.open = false; });
  }
  document.addEventListener("click", closeOutside);
  document.addEventListener("focusin", closeOutside);
})();

// automix-lite book: once the widget manager (vendor/html-manager/embed.js) has drawn the widgets of a page,
// hide the static copies of their initial state that the build placed next to them for readers without JavaScript.
(function () {
  function live() {
    if (document.querySelector(".jupyter-widgets, .widget-box, .widget-interact")) {
      document.documentElement.classList.add("automix-widgets-live");
      return true;
    }
    return false;
  }
  function watch() {
    if (live() || !document.querySelector('script[type="application/vnd.jupyter.widget-view+json"]')) return;
    var observer = new MutationObserver(function () { if (live()) observer.disconnect(); });
    observer.observe(document.body, { childList: true, subtree: true });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
})();

// Search on a site opened from disk (file://). The theme runs its search in a Web Worker, and browsers refuse to start
// a worker from a file:// page. Here, on file:// only, `Worker` becomes a stand-in that runs the worker's script in a
// hidden same-origin iframe and passes messages both ways; the `offline` plugin inlines the search index as a script.
// MkDocs Material's `offline` plugin would add a shim from a CDN instead (it skips that when a polyfill's name contains
// "iframe-worker", as this file's does): the site must work without a network.
(function () {
  if (location.protocol !== "file:") return;

  function FileWorker(url) {
    var target = new EventTarget(), self = this, frame = document.createElement("iframe");
    var queue = [], ready = false;
    this.onmessage = null;
    this.onerror = null;
    this.addEventListener = target.addEventListener.bind(target);
    this.removeEventListener = target.removeEventListener.bind(target);
    this.dispatchEvent = target.dispatchEvent.bind(target);

    frame.hidden = true;
    frame.setAttribute("aria-hidden", "true");
    frame.setAttribute("tabindex", "-1");
    (document.body || document.documentElement).appendChild(frame);
    var win = frame.contentWindow;

    function toPage(data) {            // the worker's postMessage(data): a "message" event on this object
      setTimeout(function () {
        var event = new MessageEvent("message", { data: data });
        if (typeof self.onmessage === "function") self.onmessage(event);
        target.dispatchEvent(event);
      });
    }
    function toWorker(data) {          // our postMessage(data): a "message" event in the worker's global scope
      win.dispatchEvent(new win.MessageEvent("message", { data: data }));
    }
    win.postMessage = toPage;
    win.importScripts = function () {  // only non-English search needs it; say so rather than fail silently
      throw new Error("importScripts is not available to the file:// search worker");
    };

    var script = win.document.createElement("script");
    script.src = new URL(String(url), document.baseURI).href;
    script.onload = function () {
      ready = true;
      queue.splice(0).forEach(toWorker);
    };
    script.onerror = function () {
      var event = new ErrorEvent("error", { message: "cannot load " + script.src });
      if (typeof self.onerror === "function") self.onerror(event);
      target.dispatchEvent(event);
    };
    win.document.head.appendChild(script);

    this.postMessage = function (data) {
      if (ready) setTimeout(function () { toWorker(data); });
      else queue.push(data);
    };
    this.terminate = function () { frame.remove(); };
  }

  window.Worker = FileWorker;
})();

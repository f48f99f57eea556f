/* Tresor web widget (served by `tresor serve` at /widget.js; no build step,
 * no dependencies, no CDN). Embed with one classic script tag:
 *
 *   <script src="https://tresor.example:8080/widget.js" data-kb="handbook"
 *           data-token="tresor-wd-…" data-lang="de" defer></script>
 *
 * It renders a chat bubble in an OPEN shadow root on <div id="tresor-widget">
 * (open so automated checks can query it: host.shadowRoot.querySelector(...)),
 * streams answers from /v1/chat/completions (SSE) inside a conversation it
 * opens with POST /api/widget/threads, shows citation chips that open the
 * cited passage, says "not in your documents" on a refusal, offers a person
 * (POST /api/handoff) and asks for a 1-5 rating (POST /api/feedback) once:
 * when it is closed, or when the conversation has been idle for the engine's
 * idle timeout (given when the conversation opens; the widget then ends it
 * with POST /api/widget/end {reason: "idle"} and shows the rating without a
 * click). Strict-CSP safe: no inline scripts or style
 * attributes, no HTML parsed from strings, no data: URLs, no frames; its styles are a
 * constructed stylesheet (or a <link> to /widget/widget.css).
 *
 * Contract for automated checks (window.TresorWidget):
 *   open(), close(), ask(text) -> Promise<{answer, sources, refused}> (resolves
 *   when streaming has finished; sources as `tresor ask --json`; also `tresor`
 *   and `usage`, the answer's metadata from the API's last chunk), handoff(reason),
 *   rate(n, comment). Elements: [data-tresor-role="answer"], "citation",
 *   "passage", "refusal", "handoff", "csat", "csat-option", "error".
 */
(function () {
  "use strict";
  var CSS = "__TRESOR_WIDGET_CSS__";
  var script = document.currentScript;
  if (!script || window.TresorWidget) return;
  var base = new URL(script.src, location.href).origin;
  var data = script.dataset;
  var lang = (data.lang || navigator.language || "en").slice(0, 2).toLowerCase() === "de" ? "de" : "en";
  var cfg = { kb: data.kb || null, token: data.token || "", lang: lang };

  var STRINGS = {
    en: {
      open: "Open the document assistant", title: "Ask our documents", close: "Close",
      input: "Your question", placeholder: "Ask a question…", send: "Send",
      person: "Talk to a person", thinking: "Searching the documents…",
      notInDocs: "Not in your documents", sources: "Sources", page: "page",
      file: "File", heading: "Section", pageLabel: "Page", excerpt: "Excerpt", closePassage: "Close passage",
      handoffDone: "A colleague has received this conversation and will get back to you.",
      offer: "I could not find that twice. Would you like to talk to a person?",
      csatQ: "How helpful was this conversation?", csatOf: " of 5", comment: "Comment (optional)",
      submit: "Send rating", skip: "Skip", thanks: "Thank you for your rating.",
      failed: "Sorry, that did not work", limited: "Too many questions right now, please wait a moment.",
      forbidden: "This page may not use the assistant.", passage: "Cited passage"
    },
    de: {
      open: "Dokumenten-Assistent öffnen", title: "Fragen an unsere Dokumente", close: "Schließen",
      input: "Ihre Frage", placeholder: "Stellen Sie eine Frage…", send: "Senden",
      person: "Mitarbeiter sprechen", thinking: "Durchsuche die Dokumente…",
      notInDocs: "Nicht in Ihren Dokumenten", sources: "Quellen", page: "S.",
      file: "Datei", heading: "Abschnitt", pageLabel: "Seite", excerpt: "Auszug", closePassage: "Passage schließen",
      handoffDone: "Ein Kollege hat dieses Gespräch erhalten und meldet sich bei Ihnen.",
      offer: "Das habe ich zweimal nicht gefunden. Möchten Sie mit einem Mitarbeiter sprechen?",
      csatQ: "Wie hilfreich war dieses Gespräch?", csatOf: " von 5", comment: "Kommentar (optional)",
      submit: "Bewertung senden", skip: "Überspringen", thanks: "Danke für Ihre Bewertung.",
      failed: "Das hat leider nicht geklappt", limited: "Gerade zu viele Fragen, bitte warten Sie einen Moment.",
      forbidden: "Diese Seite darf den Assistenten nicht verwenden.", passage: "Zitierte Passage"
    }
  };
  var T = STRINGS[lang];

  // ------------------------------------------------------------ DOM helpers
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    (kids || []).forEach(function (c) { e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function icon() {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var p = document.createElementNS(ns, "path");
    p.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z");
    svg.appendChild(p);
    return svg;
  }

  var host = el("div", { id: "tresor-widget", "data-tresor-widget": "", lang: lang });
  var root = host.attachShadow({ mode: "open" });
  if (root.adoptedStyleSheets !== undefined && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.appendChild(el("link", { rel: "stylesheet", href: base + "/widget/widget.css" }));
  }

  var bubble = el("button", { type: "button", class: "bubble", "aria-label": T.open, "aria-expanded": "false", "aria-controls": "tw-panel" }, [icon()]);
  var title = el("h2", { id: "tw-title" }, [T.title]);
  var personBtn = el("button", { type: "button", class: "person", "data-tresor-role": "handoff-button" }, [T.person]);
  var closeBtn = el("button", { type: "button", class: "close", "aria-label": T.close }, ["\u00d7"]);
  var log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions text", tabindex: "0", "aria-labelledby": "tw-title" });
  var input = el("textarea", { id: "tw-input", rows: "1", placeholder: T.placeholder, autocomplete: "off" });
  var sendBtn = el("button", { type: "submit", class: "send" }, [T.send]);
  var form = el("form", { class: "form" }, [el("label", { for: "tw-input", class: "sr-only" }, [T.input]), input, sendBtn]);
  var csatBox = el("div", { class: "csat", "data-tresor-role": "csat", hidden: "" });
  var panel = el("div", { id: "tw-panel", class: "panel", role: "dialog", "aria-modal": "true", "aria-labelledby": "tw-title", hidden: "" }, [
    el("div", { class: "head" }, [title, personBtn, closeBtn]), log, csatBox, form
  ]);
  root.appendChild(bubble);
  root.appendChild(panel);

  // ------------------------------------------------------------ state
  var conversation = null;   // Promise of the conversation id
  var answered = false;      // at least one answer shown (a rating makes sense)
  var rated = false;         // the rating was asked for (once per conversation)
  var refusals = 0, offered = false;
  var queue = Promise.resolve();
  var idleSecs = 0;          // the engine's idle timeout (from opening the conversation); 0: off
  var idleTimer = null;

  function isOpen() { return !panel.hidden; }

  function open() {
    if (!host.isConnected) document.body.appendChild(host);
    panel.hidden = false;
    bubble.hidden = true;
    bubble.setAttribute("aria-expanded", "true");
    if (csatBox.hidden) input.focus(); else focusFirst(csatBox);
  }

  function hide() {
    csatBox.hidden = true;
    form.hidden = false;
    panel.hidden = true;
    bubble.hidden = false;
    bubble.setAttribute("aria-expanded", "false");
    bubble.focus();
  }

  /** Closing asks for the rating once (when something was answered); closing again really closes. */
  function close() {
    if (!isOpen()) return;
    if (answered && !rated && csatBox.hidden) { endConversation("closed"); showCsat(); return; }
    hide();
  }

  // ------------------------------------------------------------ idle timeout
  function disarmIdle() { if (idleTimer !== null) { clearTimeout(idleTimer); idleTimer = null; } }
  /** (Re)starts the idle timer: after the engine's timeout without activity the conversation ends. */
  function armIdle() {
    disarmIdle();
    if (!conversation || !idleSecs || !answered || rated) return;
    // a second more than the engine's rule, which counts whole seconds since the last message
    idleTimer = setTimeout(onIdle, idleSecs * 1000 + 1000);
  }
  function onIdle() {
    idleTimer = null;
    endConversation("idle").then(function (v) {
      if (v && v.ask_csat && !rated) { open(); showCsat(); }
      else if (v && !v.ended && !rated) armIdle();   // not idle yet by the engine's clock
    });
  }
  /** POST /api/widget/end; resolves with the engine's {ended, ask_csat} (null on failure). */
  function endConversation(reason) {
    if (!conversation) return Promise.resolve(null);
    return conversation.then(function (id) { return post("/api/widget/end", { conversation_id: id, reason: reason }); })
      .catch(function () { return null; });
  }

  function focusables() {
    return Array.prototype.filter.call(panel.querySelectorAll("button, textarea, [tabindex]"), function (e) {
      return !e.disabled && e.getClientRects().length > 0 && e.getAttribute("tabindex") !== "-1";
    });
  }
  function focusFirst(container) {
    var f = container.querySelector("button, textarea");
    if (f) f.focus();
  }

  // focus stays in the open panel; Esc closes
  panel.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { ev.preventDefault(); close(); return; }
    if (ev.key !== "Tab") return;
    var f = focusables();
    if (!f.length) return;
    var first = f[0], last = f[f.length - 1], active = root.activeElement;
    if (ev.shiftKey && (active === first || f.indexOf(active) < 0)) { ev.preventDefault(); last.focus(); }
    else if (!ev.shiftKey && (active === last || f.indexOf(active) < 0)) { ev.preventDefault(); first.focus(); }
  });
  bubble.addEventListener("click", open);
  closeBtn.addEventListener("click", close);
  personBtn.addEventListener("click", function () { handoff().catch(function () {}); });
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = input.value.trim();
    if (!q) return;
    input.value = "";
    ask(q).catch(function () {});
  });
  input.addEventListener("input", function () { if (idleTimer !== null) armIdle(); });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit")); }
  });

  // ------------------------------------------------------------ HTTP
  function failure(status, body) {
    var e = new Error((body && body.error && body.error.message) || ("HTTP " + status));
    e.status = status;
    e.code = body && body.error && body.error.code;
    return e;
  }
  function headers() {
    return { "Authorization": "Bearer " + cfg.token, "Content-Type": "application/json" };
  }
  function post(path, body) {
    return fetch(base + path, { method: "POST", mode: "cors", credentials: "omit", headers: headers(), body: JSON.stringify(body) })
      .then(function (r) {
        return r.text().then(function (t) {
          var v = null;
          try { v = t ? JSON.parse(t) : null; } catch (_) { v = null; }
          if (!r.ok) throw failure(r.status, v);
          return v;
        });
      });
  }
  function ensureConversation() {
    if (!conversation) {
      conversation = post("/api/widget/threads", {}).then(function (v) { idleSecs = Number(v.idle_timeout_secs) || 0; return v.id; });
      conversation.catch(function () { conversation = null; });
    }
    return conversation;
  }
  function newConversation() {
    disarmIdle();
    conversation = null; answered = false; rated = false; refusals = 0; offered = false;
  }

  // ------------------------------------------------------------ rendering
  function scroll() { log.scrollTop = log.scrollHeight; }
  function say(kind, text, role) {
    var m = el("div", { class: "msg " + kind, "data-tresor-role": role || null, role: kind === "error" ? "alert" : null }, [text]);
    log.appendChild(m);
    scroll();
    return m;
  }
  function showError(e) {
    var text = e.status === 429 ? T.limited : e.status === 403 ? T.forbidden : T.failed + (e.status ? " (" + e.status + ")." : ".");
    say("error", text, "error");
  }

  function chipLabel(s) {
    var name = s.title || (s.source || "").split(/[\\/]/).pop();
    return "[" + s.n + "] " + name + (s.page ? " \u00b7 " + T.page + " " + s.page : "");
  }

  function openPassage(s, chip, msg) {
    var old = msg.querySelector("[data-tresor-role=passage]");
    if (old) {
      old.remove();
      Array.prototype.forEach.call(msg.querySelectorAll(".chip"), function (c) { c.setAttribute("aria-expanded", "false"); });
      if (old.getAttribute("data-n") === String(s.n)) return;
    }
    var rows = [el("dt", null, [T.file]), el("dd", null, [s.source || ""])];
    if (s.heading) rows.push(el("dt", null, [T.heading]), el("dd", null, [s.heading]));
    if (s.page) rows.push(el("dt", null, [T.pageLabel]), el("dd", null, [String(s.page)]));
    var closeP = el("button", { type: "button", class: "close-passage" }, [T.closePassage]);
    var p = el("div", { class: "passage", role: "region", "aria-label": T.passage + " [" + s.n + "]", tabindex: "-1", "data-tresor-role": "passage", "data-n": String(s.n) }, [
      el("dl", null, rows),
      el("blockquote", { "aria-label": T.excerpt }, [s.snippet || ""]),
      closeP
    ]);
    closeP.addEventListener("click", function () { p.remove(); chip.setAttribute("aria-expanded", "false"); chip.focus(); });
    chip.setAttribute("aria-expanded", "true");
    msg.appendChild(p);
    p.focus();
    scroll();
  }

  function renderSources(msg, sources) {
    if (!sources.length) return;
    var box = el("div", { class: "citations" }, [el("span", { class: "label" }, [T.sources])]);
    sources.forEach(function (s) {
      var chip = el("button", { type: "button", class: "chip", "data-tresor-role": "citation", "aria-expanded": "false", title: s.source || "" }, [chipLabel(s)]);
      chip.addEventListener("click", function () { openPassage(s, chip, msg); });
      box.appendChild(chip);
    });
    msg.appendChild(box);
  }

  function offerPerson() {
    offered = true;
    var b = el("button", { type: "button" }, [T.person]);
    var m = el("div", { class: "msg system offer" }, [T.offer, el("br"), b]);
    b.addEventListener("click", function () { b.disabled = true; handoff("refused twice").catch(function () {}); });
    log.appendChild(m);
    scroll();
  }

  // ------------------------------------------------------------ asking (SSE)
  function stream(text, id) {
    var msg = el("div", { class: "msg bot", "data-tresor-role": "answer", "aria-busy": "true" });
    var body = el("span", { class: "text" });
    var typing = el("span", { class: "typing" }, [T.thinking]);
    msg.appendChild(typing);
    msg.appendChild(body);
    log.appendChild(msg);
    scroll();
    var answer = "", sources = [], refused = false, meta = null, usage = null;
    return fetch(base + "/v1/chat/completions", {
      method: "POST", mode: "cors", credentials: "omit", headers: headers(),
      body: JSON.stringify({ model: "tresor", stream: true, kb: cfg.kb, thread: id, messages: [{ role: "user", content: text }] })
    }).then(function (r) {
      if (!r.ok) return r.text().then(function (t) { var v = null; try { v = JSON.parse(t); } catch (_) {} throw failure(r.status, v); });
      var reader = r.body.getReader(), dec = new TextDecoder(), buf = "", done = false;
      function handle(evt) {
        var lines = evt.split("\n"), payload = "";
        for (var i = 0; i < lines.length; i++) if (lines[i].indexOf("data:") === 0) payload += lines[i].slice(5).replace(/^ /, "");
        if (!payload) return;
        if (payload === "[DONE]") { done = true; return; }
        var v = JSON.parse(payload);
        if (v.error) throw failure(500, v);
        var d = v.choices && v.choices[0] && v.choices[0].delta;
        if (d && d.content) {
          if (typing.parentNode) typing.remove();
          answer += d.content;
          body.textContent = answer;
          scroll();
        }
        if (v.sources) sources = v.sources;
        if (v.tresor) { refused = !!v.tresor.refused; meta = v.tresor; }
        if (v.usage) usage = v.usage;
      }
      function pump() {
        return reader.read().then(function (c) {
          if (c.done) return;
          buf += dec.decode(c.value, { stream: true });
          var i;
          while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
            var evt = buf.slice(0, i);
            buf = buf.slice(buf.slice(i).match(/^\r?\n\r?\n/)[0].length + i);
            handle(evt);
            if (done) return;
          }
          return pump();
        });
      }
      return pump();
    }).then(function () {
      if (typing.parentNode) typing.remove();
      msg.setAttribute("aria-busy", "false");
      if (refused) {
        msg.classList.add("refused");
        msg.appendChild(el("div", { class: "refusal", "data-tresor-role": "refusal" }, [T.notInDocs]));
        refusals++;
        if (refusals >= 2 && !offered) offerPerson();
      }
      renderSources(msg, sources);
      answered = true;
      armIdle();
      scroll();
      return { answer: answer, sources: sources, refused: refused, tresor: meta, usage: usage };
    }, function (e) {
      msg.remove();
      throw e;
    });
  }

  /** Asks `text` in the widget's conversation; resolves when the answer has finished streaming. */
  function ask(text) {
    open();
    disarmIdle();
    var run = function () {
      say("user", text);
      sendBtn.disabled = true;
      var attempt = function (retry) {
        return ensureConversation().then(function (id) { return stream(text, id); }).catch(function (e) {
          // the server restarted and forgot this conversation: start a new one, once
          if (retry && e.status === 403 && e.code === "widget_token_forbidden" && /conversation/.test(e.message)) {
            newConversation();
            return attempt(false);
          }
          throw e;
        });
      };
      return attempt(true).then(function (r) { sendBtn.disabled = false; return r; }, function (e) {
        sendBtn.disabled = false;
        showError(e);
        throw e;
      });
    };
    var p = queue.then(run, run);
    queue = p.catch(function () {});
    return p;
  }

  /** Hands the conversation to a person (POST /api/handoff) and says what happens next. */
  function handoff(reason) {
    open();
    return ensureConversation()
      .then(function (id) { return post("/api/handoff", { conversation_id: id, reason: reason || "the user asked for a person" }); })
      .then(function (v) {
        say("system", (v && typeof v.message === "string" && v.message) || T.handoffDone, "handoff");
        return v;
      }, function (e) { showError(e); throw e; });
  }

  /** Rates the conversation 1-5 (POST /api/feedback), once. */
  function rate(n, comment) {
    n = Number(n);
    if (!(n >= 1 && n <= 5 && Math.floor(n) === n)) return Promise.reject(new Error("a rating is 1 to 5"));
    rated = true;
    return ensureConversation()
      .then(function (id) { return post("/api/feedback", { thread_id: id, csat: n, comment: comment || null }); })
      .then(function (v) { return v; });
  }

  function showCsat() {
    rated = true;
    disarmIdle();
    while (csatBox.firstChild) csatBox.firstChild.remove();
    var chosen = 0;
    var scale = el("div", { class: "scale" });
    var submit = el("button", { type: "button", class: "submit", disabled: "" }, [T.submit]);
    for (var n = 1; n <= 5; n++) {
      (function (n) {
        var b = el("button", { type: "button", "aria-pressed": "false", "aria-label": n + T.csatOf, "data-tresor-role": "csat-option", "data-value": String(n) }, [String(n)]);
        b.addEventListener("click", function () {
          chosen = n;
          Array.prototype.forEach.call(scale.children, function (c) { c.setAttribute("aria-pressed", c === b ? "true" : "false"); });
          submit.disabled = false;
        });
        scale.appendChild(b);
      })(n);
    }
    var comment = el("textarea", { id: "tw-comment", rows: "2" });
    var skip = el("button", { type: "button", class: "skip" }, [T.skip]);
    csatBox.appendChild(el("fieldset", null, [el("legend", null, [T.csatQ]), scale]));
    csatBox.appendChild(el("label", { for: "tw-comment", class: "sr-only" }, [T.comment]));
    comment.setAttribute("placeholder", T.comment);
    csatBox.appendChild(comment);
    csatBox.appendChild(el("div", null, [submit, skip]));
    var done = function () { csatBox.hidden = true; form.hidden = false; hide(); };
    submit.addEventListener("click", function () {
      submit.disabled = true;
      rate(chosen, comment.value.trim()).then(function () {
        while (csatBox.firstChild) csatBox.firstChild.remove();
        csatBox.appendChild(el("p", { role: "status", "data-tresor-role": "csat-thanks" }, [T.thanks]));
        setTimeout(done, 1200);
      }, function (e) { showError(e); done(); });
    });
    skip.addEventListener("click", done);
    form.hidden = true;
    csatBox.hidden = false;
    focusFirst(scale);
  }

  function mount() { if (!host.isConnected) document.body.appendChild(host); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);

  var api = { open: open, close: close, ask: ask, handoff: handoff, rate: rate, lang: lang, version: 1 };
  Object.freeze(api);
  Object.defineProperty(window, "TresorWidget", { value: api, configurable: false, writable: false });
})();

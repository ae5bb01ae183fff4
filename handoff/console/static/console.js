// The operator console's page script: live updates over a WebSocket, actions through the JSON API.
// Subscriber content is only ever inserted as text (textContent / createTextNode), never as HTML.
"use strict";

(() => {
  const body = document.body;
  const base = body.dataset.base || "/console";
  const page = body.dataset.page;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  const $ = (sel) => document.querySelector(sel);

  // -- DOM helpers ------------------------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "hidden") node.hidden = true;
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function duration(total) {
    if (total === null || total === undefined) return "—";
    const s = Math.max(0, Math.floor(total));
    if (s < 60) return `${s} с`;
    if (s < 3600) return `${Math.floor(s / 60)} мин ${String(s % 60).padStart(2, "0")} с`;
    return `${Math.floor(s / 3600)} ч ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} мин`;
  }

  const pct = (v) => (v === null || v === undefined ? "—" : `${v} %`);

  function flash(text, ok) {
    const box = $("#flash");
    if (!box) return;
    box.textContent = text;
    box.className = ok ? "flash ok" : "flash";
    box.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { box.hidden = true; }, ok ? 2500 : 8000);
  }

  // -- the API ----------------------------------------------------------------------------------
  async function api(method, path, payload) {
    const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    if (payload instanceof FormData) opts.body = payload;
    else if (payload !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(payload);
    }
    const resp = await fetch(base + path, opts);
    if (resp.status === 401) {
      window.location.assign(base + "/login");
      throw new Error("сессия закончилась");
    }
    let data = {};
    try { data = await resp.json(); } catch (e) { data = {}; }
    if (!resp.ok) {
      const err = new Error(data.error || `${resp.status} ${resp.statusText}`);
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  // Page scripts (incidents.js, training.js) run after this one and share these helpers.
  window.SupportbotConsole = Object.freeze({ el, api, flash, base });

  // -- incidents: a live alert on every supervisor page (BEGIN incidents) ------------------------
  // Page scripts follow the socket too: "console:event" (detail: the event) and "console:live".
  function incidentAlert(event) {
    const i = event.incident || {};
    if (i.action !== "opened" || i.source !== "detected") return;
    if (!document.querySelector('link[href$="/static/incidents.css"]')) {
      document.head.append(el("link", { rel: "stylesheet", href: `${base}/static/incidents.css` }));
    }
    const box = el("div", { class: "incident-alert", role: "alert", dataset: { id: i.id } },
      `🚧 Похоже на аварию: ${i.area_title} — обращений: ${i.reports}. `,
      el("a", { href: `${base}/incidents` }, "Открыть «Аварии»"),
      el("button", { type: "button" }, "✕"));
    box.querySelector("button").addEventListener("click", () => box.remove());
    for (const old of document.querySelectorAll(`.incident-alert[data-id="${i.id}"]`)) old.remove();
    body.append(box);
  }
  let liveStarted = false;
  // -- (END incidents) ----------------------------------------------------------------------------

  // -- alerts: a chat assigned to me (BEGIN alerts) -----------------------------------------------
  // Unread counts per chat live in localStorage (shared by this operator's tabs and pages); the
  // title shows their sum, «(2) Очередь». A chat assigned to me plays a short sound (unless
  // muted: remembered in localStorage) and shows a desktop notification when the browser allows.
  // window.__consoleAlerts counts what was done: headless browsers play and show nothing.
  const myId = Number(body.dataset.me || 0);
  const UNREAD_KEY = "supportbot.unread";
  const SOUND_KEY = "supportbot.sound";
  const baseTitle = document.title;
  const alertCounts = { sounds: 0, muted: 0, notifications: 0, notificationsSkipped: 0 };
  window.__consoleAlerts = alertCounts;
  let sound = null;

  function store(key, fallback) {
    try { return JSON.parse(window.localStorage.getItem(key)) ?? fallback; } catch (e) { return fallback; }
  }
  function keep(key, value) {
    try { window.localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode */ }
  }
  const unread = () => store(UNREAD_KEY, {});
  const muted = () => store(SOUND_KEY, "on") === "off";
  const viewing = (id) => page === "chat" && String(body.dataset.chatId) === String(id);

  function renderUnread() {
    const counts = unread();
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    document.title = total ? `(${total}) ${baseTitle}` : baseTitle;
    body.dataset.unread = String(total);
    for (const li of document.querySelectorAll("#mine li[data-id]")) {
      const n = counts[li.dataset.id] || 0;
      let mark = li.querySelector(".unread");
      if (!n) { if (mark) mark.remove(); continue; }
      if (!mark) {
        mark = el("span", { class: "unread", title: "Непрочитанные" });
        li.querySelector("a.open-chat").after(mark);
      }
      mark.textContent = String(n);
    }
  }

  function setUnread(id, change) {
    const counts = unread();
    const n = change === null ? 0 : (counts[id] || 0) + change;
    if (n > 0) counts[id] = n; else delete counts[id];
    keep(UNREAD_KEY, counts);
    renderUnread();
  }

  function ring() {
    if (muted()) { alertCounts.muted += 1; return; }
    alertCounts.sounds += 1;
    body.dataset.lastAlert = "sound";
    try {
      sound = sound || new Audio(`${base}/static/alert.wav`);
      sound.currentTime = 0;
      const played = sound.play();
      if (played) played.catch(() => {});  // no gesture yet, or no audio device: stay quiet
    } catch (e) { /* no audio at all */ }
  }

  function notify(id) {
    if (!("Notification" in window) || Notification.permission !== "granted") {
      alertCounts.notificationsSkipped += 1;
      return;
    }
    try {
      const shown = new Notification("Вам назначен чат", {
        body: `Чат №${id} ждёт ответа.`, tag: `supportbot-chat-${id}`, lang: "ru",
      });
      shown.onclick = () => { window.focus(); window.location.assign(`${base}/chats/${id}`); };
      alertCounts.notifications += 1;
    } catch (e) { alertCounts.notificationsSkipped += 1; }
  }

  function alertOn(event) {
    const id = event.conversation_id;
    if (id === undefined || id === null || !myId) return;
    const mineNow = event.operator_id === myId;
    if (event.type === "assigned" && mineNow) {
      if (viewing(id) && document.visibilityState === "visible") return;  // I'm looking at it
      setUnread(id, 1);
      ring();
      notify(id);
    } else if (event.type === "message" && !event.operator_id && !viewing(id)) {
      if (unread()[id] !== undefined || document.querySelector(`#mine li[data-id="${id}"]`)) {
        setUnread(id, 1);  // the subscriber wrote again in a chat of mine
      }
    } else if (["closed", "returned"].includes(event.type)
      || (["assigned", "missed"].includes(event.type) && !mineNow)) {
      if (unread()[id] !== undefined) setUnread(id, null);  // no longer mine to answer
    }
  }

  function alertSwitches() {
    const dot = $("#live");
    if (!dot || !myId) return;
    const toggle = el("button", { type: "button", id: "sound-toggle", class: "alert-switch" });
    const showSound = () => {
      const off = muted();
      toggle.textContent = off ? "🔕 Без звука" : "🔔 Звук";
      toggle.title = off ? "Звук новых чатов выключен — включить" : "Звук новых чатов включён — выключить";
      toggle.setAttribute("aria-pressed", String(!off));
    };
    const ask = el("button", { type: "button", id: "notify-toggle", class: "alert-switch" },
      "Включить уведомления");
    ask.title = "Показывать уведомление на рабочем столе, когда вам назначен чат";
    const showAsk = () => {
      ask.hidden = !("Notification" in window) || Notification.permission !== "default";
    };
    const askPermission = () => {  // only ever on a click: browsers ignore it otherwise
      if (!("Notification" in window) || Notification.permission !== "default") return;
      Notification.requestPermission().then(showAsk, showAsk);
    };
    toggle.addEventListener("click", () => {
      keep(SOUND_KEY, muted() ? "on" : "off");
      showSound();
      askPermission();
    });
    ask.addEventListener("click", askPermission);
    showSound();
    showAsk();
    dot.after(toggle, ask);
    window.addEventListener("storage", (ev) => {
      if (ev.key === UNREAD_KEY) renderUnread();
      if (ev.key === SOUND_KEY) showSound();
    });
  }
  // -- (END alerts) -------------------------------------------------------------------------------

  // -- live updates -------------------------------------------------------------------------------
  function live(onEvent, onOpen) {
    liveStarted = true;  // (incidents)
    const dot = $("#live");
    let delay = 1000;
    const connect = () => {
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${scheme}//${window.location.host}${base}/ws`);
      let opened = false;
      ws.onopen = () => {
        opened = true;
        delay = 1000;
        if (dot) { dot.className = "live on"; dot.title = "Живые обновления: подключено"; }
        document.dispatchEvent(new CustomEvent("console:live"));  // (incidents)
        onOpen();
      };
      ws.onmessage = (msg) => {
        let event;
        try { event = JSON.parse(msg.data); } catch (e) { return; }
        if (event.type === "hello") return;
        if (event.type === "incident") incidentAlert(event);  // (incidents)
        alertOn(event);  // (alerts)
        document.dispatchEvent(new CustomEvent("console:event", { detail: event }));  // (incidents)
        onEvent(event);
      };
      ws.onclose = (ev) => {
        // 4401: the session ended (logout, the account disabled): to the login form.
        // 4000: the role or groups changed: reconnect at once and re-read.
        if (ev.code === 4401) { window.location.assign(base + "/login"); return; }
        if (ev.code === 4000) { delay = 0; }
        // never opened: maybe the session is gone (a 401 answer sends the page to the login)
        if (!opened) api("GET", "/api/queue").catch(() => {});
        if (dot) { dot.className = "live off"; dot.title = "Переподключаемся…"; }
        setTimeout(connect, delay + Math.random() * 300);
        delay = Math.min(Math.max(delay * 2, 1000), 30000);
      };
    };
    connect();
  }

  function debounced(fn, ms) {
    let timer = null;
    return () => {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  const badge = (channel, label) => el("span", { class: `badge ch-${channel}` }, label);

  // -- queue page ---------------------------------------------------------------------------------
  function tickWaiting() {
    for (const span of document.querySelectorAll(".waiting[data-waiting]")) {
      if (!span.dataset.since) {
        span.dataset.since = String(Date.now() - Number(span.dataset.waiting) * 1000);
      }
      span.textContent = duration((Date.now() - Number(span.dataset.since)) / 1000);
    }
  }

  function queueRow(c) {
    return el("tr", { dataset: { id: c.id } },
      el("td", {}, badge(c.channel, c.channel_label)),
      el("td", {}, el("a", { class: "open-chat", href: `${base}/chats/${c.id}` }, c.name)),
      el("td", {}, c.group || "—"),
      el("td", {}, el("span", { class: "waiting", dataset: { waiting: c.waiting_s || 0 } },
        duration(c.waiting_s))),
      el("td", { class: "reason" }, c.reason || ""),
      el("td", { class: "preview" }, c.preview));
  }

  function mineItem(c) {
    return el("li", { dataset: { id: c.id }, class: c.needs_answer ? "needs-answer" : null },
      badge(c.channel, c.channel_label), " ",
      el("a", { class: "open-chat", href: `${base}/chats/${c.id}` }, c.name), " ",
      el("span", { class: "group" }, c.group || ""),
      c.needs_answer ? el("span", { class: "flag" }, "ждёт ответа") : null,
      el("div", { class: "preview" }, c.preview));
  }

  function renderQueue(data) {
    $("#queue tbody").replaceChildren(...data.queue.map(queueRow));
    $("#queue-count").textContent = String(data.queue.length);
    $("#queue-empty").hidden = data.queue.length > 0;
    $("#mine").replaceChildren(...data.mine.map(mineItem));
    $("#mine-count").textContent = String(data.mine.length);
    $("#mine-empty").hidden = data.mine.length > 0;
    renderUnread();  // (alerts)
    for (const b of document.querySelectorAll("#status-switch button")) {
      b.classList.toggle("active", b.dataset.status === data.me.status);
    }
    tickWaiting();
  }

  function queuePage() {
    const refresh = debounced(async () => {
      try { renderQueue(await api("GET", "/api/queue")); } catch (e) { flash(e.message); }
    }, 120);
    for (const b of document.querySelectorAll("#status-switch button")) {
      b.addEventListener("click", async () => {
        try {
          await api("POST", "/api/status", { status: b.dataset.status });
          refresh();
        } catch (e) { flash(e.message); }
      });
    }
    setInterval(tickWaiting, 1000);
    tickWaiting();
    live(refresh, refresh);
  }

  // -- chat page ----------------------------------------------------------------------------------
  function messageItem(m) {
    const cls = `msg msg-${m.author}${m.earlier ? " msg-earlier" : ""}`;
    const li = el("li", { class: cls, dataset: { id: m.id } },
      el("div", { class: "meta" },
        m.channel ? el("span", { class: `badge ch-${m.channel}` }, m.channel_label) : null,
        el("span", { class: "author" }, m.author_label), " ",
        el("time", { datetime: m.at }, m.time),
        m.edited ? el("span", { class: "edited" }, "изменено") : null));
    if (m.text) li.append(el("div", { class: "text" }, m.text));
    else if (m.payload) li.append(el("div", { class: "text payload" }, `кнопка: ${m.payload}`));
    for (const a of m.attachments) {
      li.append(a.url ? el("img", { class: "attachment", src: a.url, alt: "изображение" })
        : el("div", { class: "attachment" }, `📎 ${a.label}`));
    }
    if (m.buttons.length) {
      li.append(el("div", { class: "buttons" },
        ...m.buttons.map((b) => el("span", { class: "button" }, b))));
    }
    if (m.nlu) {
      const alt = m.nlu.alternatives.length ? `Другие варианты: ${m.nlu.alternatives.join(", ")}` : null;
      li.append(el("div", { class: "nlu", title: alt },
        el("span", { class: "intent" }, m.nlu.intent),
        m.nlu.title ? el("span", { class: "intent-title" }, m.nlu.title) : null,
        el("span", { class: "confidence" }, m.nlu.percent),
        ...m.nlu.entities.map((e) => el("span", { class: "entity" }, `${e.entity}: ${e.value}`))));
    }
    return li;
  }

  function rows(items) {
    return items.flatMap((r) => [el("dt", {}, r.label), el("dd", {}, r.value)]);
  }

  // The profile, the verification and the form data, as the API gives them (already masked for
  // this operator's role: handoff/console/privacy.py).
  function renderProfile(data) {
    const v = data.verification;
    const box = $("#verification");
    if (box) {
      box.className = `verification ${v.verified ? "verified" : "unverified"}`;
      box.replaceChildren(...(v.verified
        ? ["✅ Подтверждён: ", el("b", { id: "verification-method" }, v.method_label), ", ",
          el("time", { datetime: v.at }, v.time), ", действует до ",
          el("time", { datetime: v.until }, v.until_time)]
        : ["⚠️ ", el("b", { id: "verification-method" }, v.label),
          " — не сообщайте данные по счёту"]));
    }
    const s = data.subscriber;
    const profile = [el("dt", {}, "Имя"), el("dd", {}, s.name)];
    if (s.phone) profile.push(el("dt", {}, "Телефон"), el("dd", { class: "phone" }, s.phone));
    if (s.account_number) {
      profile.push(el("dt", {}, "Лицевой счёт"), el("dd", { class: "account" }, s.account_number));
    }
    $("#profile-rows").replaceChildren(...profile);
    $("#customer").replaceChildren(...rows(s.customer));
    $("#customer-title").hidden = s.customer.length === 0;
    $("#slot-rows").replaceChildren(...rows(data.slots));
    $("#slots-empty").hidden = data.slots.length > 0;
  }

  function noteItem(n) {
    return el("li", { class: n.transfer ? "note note-transfer" : "note", dataset: { id: n.id } },
      el("div", { class: "meta" },
        el("span", { class: "author" }, n.author), " ",
        el("time", { datetime: n.at }, n.time),
        n.label ? el("span", { class: "note-label" }, n.label) : null),
      el("div", { class: "text" }, n.text));
  }

  function renderNotes(notes) {
    $("#note-list").replaceChildren(...notes.map(noteItem));
    $("#notes-empty").hidden = notes.length > 0;
  }

  function renderChat(data) {
    renderProfile(data);
    renderNotes(data.notes);
    const c = data.conversation;
    const state = $("#chat-state");
    state.textContent = c.state_label;
    state.className = `state state-${c.state}`;
    $("#chat-group").textContent = c.group ? `группа ${c.group}` : "";
    $("#chat-operator").textContent = c.operator ? `оператор: ${c.operator.name || ""}` : "";
    $("#chat-reason").textContent = c.reason ? `Причина передачи: ${c.reason}` : "";
    const list = $("#transcript");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.replaceChildren(...data.messages.map(messageItem));
    if (atBottom) list.scrollTop = list.scrollHeight;
    const can = data.actions;
    $("#take").hidden = !can.take;
    $("#reply-form").hidden = !can.reply;
    $("#canned-box").hidden = !can.reply;
    offer("kb", can.reply && data.article, { title: "title", short: "short", body: "body" }, "short");
    offer("bot", can.reply && data.bot_answer, { for: "for", title: "title", text: "text" }, "text");
    $("#transfer-form").hidden = !can.transfer;
    $("#return").hidden = !can.return;
    $("#verify-request").hidden = !can.verify;
    $("#close-form").hidden = !can.close;
    $("#more-actions").hidden = !(can.transfer || can.close);
  }

  // A draft offered beside the chat (#<prefix>-box): its fields shown, `insert` one-click.
  function offer(prefix, draft, fields, insert) {
    $(`#${prefix}-box`).hidden = !draft;
    if (!draft) return;
    for (const [id, key] of Object.entries(fields)) $(`#${prefix}-${id}`).textContent = draft[key];
    $(`#${prefix}-insert`).dataset.text = draft[insert];
  }

  function insertAtCursor(area, text, from, to) {
    const start = from === undefined ? area.selectionStart : from;
    const end = to === undefined ? area.selectionEnd : to;
    area.setRangeText(text, start, end, "end");
    area.focus();
  }

  function cannedItem(r) {
    return el("li", {}, el("button", {
      type: "button", class: "canned", dataset: { shortcut: r.shortcut, text: r.text },
    }, el("b", {}, `/${r.shortcut}`), ` ${r.title}`));
  }

  function chatPage() {
    const id = body.dataset.chatId;
    const area = $("#reply-text");
    let canned = [];
    let gone = false;

    const refresh = debounced(async () => {
      if (gone) return;
      try {
        renderChat(await api("GET", `/api/chats/${id}`));
      } catch (e) {
        if (e.status === 403 || e.status === 404) {
          gone = true;  // returned to the bot or moved to someone else: back to the queue
          flash("Чат больше не у вас — возвращаемся к очереди.", true);
          setTimeout(() => window.location.assign(`${base}/`), 1200);
        } else flash(e.message);
      }
    }, 80);

    async function act(path, payload, done) {
      try {
        await api("POST", `/api/chats/${id}/${path}`, payload);
        if (done) flash(done, true);
        refresh();
        return true;
      } catch (e) {
        flash(e.message);
        return false;
      }
    }

    $("#take").addEventListener("click", () => act("take", {}, "Чат ваш"));
    $("#return").addEventListener("click", () => act("return", {}, "Чат вернулся к боту"));
    $("#verify-request").addEventListener("click", () =>
      act("verify", {}, "Бот попросил абонента подтвердить номер"));
    $("#close-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      act("close", { resolution: $("#close-resolution").value }, "Чат закрыт, абоненту отправлен опрос");
    });
    $("#transfer-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      act("transfer", {
        group: $("#transfer-group").value || null,
        operator_id: $("#transfer-operator").value || null,
        note: $("#transfer-note").value,
      }, "Чат передан");
    });
    $("#reply-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const file = $("#reply-image").files[0];
      let payload = { text: area.value };
      if (file) {
        payload = new FormData();
        payload.append("text", area.value);
        payload.append("image", file);
      }
      const button = $("#reply-send");
      button.disabled = true;
      if (await act("reply", payload)) {
        area.value = "";
        $("#reply-image").value = "";
      }
      button.disabled = false;
      area.focus();
    });
    area.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        $("#reply-form").requestSubmit();
        return;
      }
      if (ev.key !== "Tab") return;
      const before = area.value.slice(0, area.selectionStart);
      const match = before.match(/(^|\s)\/([\w-]+)$/u);
      if (!match) return;
      const word = match[2].toLowerCase();
      const exact = canned.find((r) => r.shortcut === word);
      const starts = canned.filter((r) => r.shortcut.startsWith(word));
      const found = exact || (starts.length === 1 ? starts[0] : null);
      if (!found) return;
      ev.preventDefault();
      insertAtCursor(area, found.text, area.selectionStart - word.length - 1, area.selectionStart);
    });
    $("#note-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = $("#note-text").value.trim();
      if (!text) { flash("Напишите текст заметки"); return; }
      if (await act("notes", { text }, "Заметка добавлена — её видят только операторы")) {
        $("#note-text").value = "";
      }
    });
    $("#kb-insert").addEventListener("click", (ev) => insertAtCursor(area, ev.target.dataset.text));
    $("#bot-insert").addEventListener("click", (ev) => insertAtCursor(area, ev.target.dataset.text));
    $("#canned-list").addEventListener("click", (ev) => {
      const button = ev.target.closest("button.canned");
      if (button) insertAtCursor(area, button.dataset.text);
    });
    const search = debounced(async () => {
      try {
        const q = encodeURIComponent($("#canned-q").value);
        const data = await api("GET", `/api/canned?q=${q}`);
        $("#canned-list").replaceChildren(...data.canned.map(cannedItem));
      } catch (e) { flash(e.message); }
    }, 150);
    $("#canned-q").addEventListener("input", search);
    api("GET", "/api/canned").then((data) => { canned = data.canned; }).catch(() => {});

    const list = $("#transcript");
    list.scrollTop = list.scrollHeight;
    live((event) => {
      if (String(event.conversation_id) === String(id)) refresh();
    }, refresh);
  }

  // -- supervisor page ----------------------------------------------------------------------------
  function renderSupervisor(data) {
    $("#sv-waiting").textContent = String(data.waiting_total);
    $("#sv-online").textContent = String(data.online);
    $("#sv-queues tbody").replaceChildren(...data.queues.map((q) => el("tr", { dataset: { group: q.group } },
      el("td", {}, q.group), el("td", { class: "n" }, q.waiting), el("td", {}, duration(q.longest_wait_s)))));
    $("#sv-operators tbody").replaceChildren(...data.operators.map((op) => el("tr", { dataset: { id: op.id } },
      el("td", {}, op.name, op.supervisor ? el("small", {}, ` (${op.role})`) : null),
      el("td", {}, el("span", { class: `st st-${op.status}` }, op.status_label)),
      el("td", { class: "n" }, `${op.load}/${op.max_chats}`),
      el("td", {}, op.groups.join(", ")))));
    const t = data.today;
    $("#sv-timely").textContent = pct(t.timely_first_response_pct);
    $("#sv-avg-first").textContent = duration(t.avg_first_response_s);
    $("#sv-avg-inside").textContent = duration(t.avg_response_in_session_s);
    $("#sv-missed").textContent = pct(t.missed_pct);
    $("#sv-entries").textContent = `${t.answered} / ${t.waiting} / ${t.abandoned}`;
    $("#sv-avg-wait-all").textContent = duration(t.avg_wait_all_s);
    $("#sv-csat").textContent = pct(t.csat_pct);
    $("#sv-csat-avg").textContent = t.csat_avg === null ? "—" : String(t.csat_avg);
    $("#sv-counts").textContent = `Первых ответов: ${t.first_responses}, назначений: ${t.assigned}, `
      + `пропусков: ${t.missed}, оценок: ${t.rated}.`;
  }

  function supervisorPage() {
    const refresh = debounced(async () => {
      try { renderSupervisor(await api("GET", "/api/supervisor")); } catch (e) { flash(e.message); }
    }, 400);
    setInterval(refresh, 15000);  // waiting times grow without events
    $("#canned-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const form = ev.target;
      const fields = Object.fromEntries(new FormData(form).entries());
      try {
        const added = await api("POST", "/api/canned", fields);
        flash(`Заготовка /${added.shortcut} добавлена`, true);
        form.reset();
      } catch (e) { flash(e.message); }
    });
    live(refresh, refresh);
  }

  alertSwitches();  // (alerts)
  if (page === "chat") setUnread(body.dataset.chatId, null);  // opened: read
  else renderUnread();
  if (page === "queue") queuePage();
  else if (page === "chat") chatPage();
  else if (page === "supervisor") supervisorPage();
  // (incidents) pages without live updates of their own still get the outage alert
  if (!liveStarted && $("#live") && page !== "error") live(() => {}, () => {});
})();

// The sandbox page: two subscriber chats (Telegram, VK) with the live demo bots, and the demo's SMS.
// Polls api/state every 500 ms; every piece of text goes into the page with textContent.
"use strict";

(() => {
  const POLL_MS = 500;
  const panes = {}; // channel -> pane state and elements
  let active = "telegram"; // the pane the hints type into
  let polling = false;
  let pollAgain = false;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  async function post(channel, action, body) {
    const resp = await fetch(`api/${channel}/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try {
      data = await resp.json();
    } catch (_) {
      data = {};
    }
    if (!resp.ok) throw new Error(data.error || `HTTP ${resp.status}`);
    return data;
  }

  function showError(channel, message) {
    const box = panes[channel].error;
    box.textContent = message || "";
    box.hidden = !message;
  }

  async function act(channel, action, body, control) {
    if (control) control.disabled = true;
    try {
      const result = await post(channel, action, body);
      showError(channel, null);
      return result;
    } catch (err) {
      showError(channel, err.message);
      return null;
    } finally {
      if (control) control.disabled = false;
      poll();
    }
  }

  // ------------------------------------------------------------------ rendering

  function keyboard(channel, rows) {
    const box = el("div", "keyboard");
    for (const row of rows) {
      const line = el("div", "kb-row");
      for (const button of row) {
        if (button.url) {
          if (!/^https?:\/\//.test(button.url)) continue;
          const link = el("a", "kb url", `${button.label} ↗`);
          link.href = button.url;
          link.target = "_blank";
          link.rel = "noopener noreferrer";
          line.append(link);
        } else if (button.press) {
          const press = el("button", "kb", button.label);
          press.type = "button";
          press.addEventListener("click", () => act(channel, "press", { press: button.press }, press));
          line.append(press);
        }
      }
      box.append(line);
    }
    return box;
  }

  // Telegram's reply keyboard: under the chat, above the input field (not under a message).
  function replyKeyboard(channel, found) {
    const p = panes[channel];
    const box = p.replyKeyboard;
    if (!box) return;
    const json = JSON.stringify(found || null);
    if (json === p.replyKeyboardJson) return;
    p.replyKeyboardJson = json;
    p.input.placeholder = (found && found.placeholder) || p.placeholder;
    const rows = (found && found.rows) || [];
    box.replaceChildren(
      ...rows.map((row) => {
        const line = el("div", "rk-row");
        for (const button of row) {
          const press = el("button", `rk ${button.kind}`, button.label);
          press.type = "button";
          if (button.kind === "contact") {
            press.title = "Поделиться номером из поля ниже";
            press.addEventListener("click", () => shareContact(channel, true, press));
          } else {
            press.addEventListener("click", () => act(channel, "reply", { text: button.label }, press));
          }
          line.append(press);
        }
        return line;
      }),
    );
    box.hidden = rows.length === 0;
  }

  function shareContact(channel, own, control) {
    const phone = panes[channel].phone ? panes[channel].phone.value : "";
    return act(channel, "contact", { phone, own }, control);
  }

  function cause(found) {
    const box = el("div", "cause");
    if (!found) {
      box.classList.add("none");
      return box;
    }
    box.title = "что бот понял из сообщения, на которое отвечает";
    if (found.kind === "intent") {
      box.append(el("span", "intent", found.intent), el("span", "confidence", found.percent));
    } else if (found.kind === "form") {
      box.append(el("span", "form", `ответ в форме: ${found.slot}`));
    } else if (found.kind === "button") {
      box.append(el("span", "button", `button: ${found.payload}`));
    } else if (found.kind === "attachment") {
      box.append(el("span", "attachment", `attachment: ${found.attachment}`));
    }
    return box;
  }

  function bubble(channel, m) {
    const row = el("div", `msg ${m.author}`);
    row.dataset.key = m.key;
    if (m.pressed !== null) {
      row.classList.add("pressed");
      row.append(el("div", "press-note", `🔘 ${m.pressed}`));
      return row;
    }
    const body = el("div", "body");
    const box = el("div", "bubble");
    if (m.author === "operator" || m.author === "system") {
      box.append(el("div", "author", m.author_label));
    }
    if (m.image) {
      const img = el("img", "photo");
      img.src = m.image;
      img.alt = "картинка от бота";
      box.append(img);
    }
    if (m.sticker) box.append(el("div", "sticker", m.sticker));
    if (m.attachment) box.append(el("div", "attachment", m.attachment));
    if (m.text) box.append(el("div", "text", m.text));
    body.append(box);
    if (m.buttons && m.buttons.length) body.append(keyboard(channel, m.buttons));
    row.append(body);
    if (m.side === "bot") row.append(cause(m.cause));
    return row;
  }

  function render(channel, pane) {
    const p = panes[channel];
    if (pane.user_id < p.minUser) return; // an answer from before "new subscriber"
    const newUser = pane.user_id !== p.userId;
    p.userId = pane.user_id;
    p.name.textContent = pane.name;
    p.user.textContent = String(pane.user_id);
    const chat = p.chat;
    const atBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 60;
    const seen = new Map();
    let changed = newUser;
    const nodes = pane.messages.map((m) => {
      const json = JSON.stringify(m);
      const old = newUser ? null : p.nodes.get(m.key);
      if (old && old.json === json) {
        seen.set(m.key, old);
        return old.node;
      }
      changed = true;
      const fresh = { json, node: bubble(channel, m) };
      seen.set(m.key, fresh);
      return fresh.node;
    });
    if (!changed && nodes.length === p.nodes.size) return;
    p.nodes = seen;
    p.list.replaceChildren(...nodes);
    p.empty.hidden = nodes.length > 0;
    if (atBottom || newUser) chat.scrollTop = chat.scrollHeight;
  }

  function showSms(list) {
    const box = document.getElementById("sms-list");
    if (!box || !Array.isArray(list)) return;
    const json = JSON.stringify(list);
    if (json === box.dataset.json) return;
    box.dataset.json = json;
    box.replaceChildren(
      ...list.map((sms) => {
        const item = el("li", "sms");
        const when = new Date(sms.at);
        const time = el("time", "sms-at", Number.isNaN(when.getTime()) ? sms.at : when.toLocaleString("ru-RU"));
        time.dateTime = sms.at;
        item.append(el("div", "sms-phone", sms.phone), time, el("div", "sms-text", sms.text));
        return item;
      }),
    );
    document.getElementById("sms-empty").hidden = list.length > 0;
  }

  function showInfo(info) {
    if (!info) return;
    for (const link of document.querySelectorAll("a.console-link")) {
      if (info.console) link.href = info.console;
    }
    document.getElementById("console-login").textContent = info.login || "—";
    document.getElementById("console-password").textContent = info.password || "—";
  }

  function live(on) {
    const badge = document.getElementById("live");
    badge.className = on ? "live on" : "live off";
    badge.textContent = on ? "● на связи" : "● нет связи с демо";
  }

  async function poll() {
    if (polling) {
      pollAgain = true;
      return;
    }
    polling = true;
    try {
      const resp = await fetch("api/state", { cache: "no-store" });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const state = await resp.json();
      live(true);
      showInfo(state.info);
      for (const [channel, pane] of Object.entries(state.panes)) {
        if (panes[channel]) {
          render(channel, pane);
          if (pane.user_id >= panes[channel].minUser) replyKeyboard(channel, pane.reply_keyboard);
        }
      }
      showSms(state.sms);
    } catch (_) {
      live(false);
    } finally {
      polling = false;
      if (pollAgain) {
        pollAgain = false;
        poll();
      }
    }
  }

  // ------------------------------------------------------------------ wiring

  function setUp(root) {
    const channel = root.dataset.channel;
    const p = {
      root,
      chat: root.querySelector(".chat"),
      list: root.querySelector(".messages"),
      empty: root.querySelector(".empty"),
      error: root.querySelector(".error"),
      name: root.querySelector(".name"),
      user: root.querySelector(".user-id"),
      input: root.querySelector(".composer .text"),
      replyKeyboard: root.querySelector(".reply-keyboard"),
      replyKeyboardJson: null,
      phone: root.querySelector(".contact-bar .phone"),
      nodes: new Map(),
      userId: null,
      minUser: 0,
    };
    p.placeholder = p.input.placeholder;
    panes[channel] = p;
    root.addEventListener("focusin", () => {
      active = channel;
    });
    root.querySelector(".composer").addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = p.input.value;
      if (!text.trim()) return;
      p.input.value = "";
      const sent = await act(channel, "send", { text }, root.querySelector(".send"));
      if (sent === null && !p.input.value) p.input.value = text; // not sent: keep it
      p.input.focus();
    });
    root.querySelector(".photo").addEventListener("click", (e) => act(channel, "photo", {}, e.currentTarget));
    root.querySelector(".sticker").addEventListener("click", (e) => act(channel, "sticker", {}, e.currentTarget));
    root.querySelector(".start").addEventListener("click", (e) => act(channel, "start", {}, e.currentTarget));
    const share = root.querySelector(".share-contact");
    if (share) share.addEventListener("click", (e) => shareContact(channel, true, e.currentTarget));
    const forward = root.querySelector(".forward-contact");
    if (forward) forward.addEventListener("click", (e) => shareContact(channel, false, e.currentTarget));
    root.querySelector(".new-subscriber").addEventListener("click", async (e) => {
      const result = await act(channel, "new", {}, e.currentTarget);
      if (result && result.user_id) {
        p.minUser = result.user_id;
        p.userId = result.user_id;
        p.user.textContent = String(result.user_id);
        p.nodes = new Map();
        p.list.replaceChildren();
        p.empty.hidden = false;
        replyKeyboard(channel, null);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const root of document.querySelectorAll(".pane[data-channel]")) setUp(root);
    for (const hint of document.querySelectorAll("button.hint")) {
      hint.addEventListener("click", () => {
        const input = panes[active].input;
        input.value = hint.dataset.text || "";
        input.focus();
      });
    }
    poll();
    setInterval(poll, POLL_MS);
  });
})();

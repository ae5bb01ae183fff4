// The NLU training page: add a reviewed message to the training data or skip it, then follow the
// retraining until the new model answers. Subscriber text is only ever inserted as text.
"use strict";

(() => {
  const body = document.body;
  if (body.dataset.page !== "training") return;
  const { api, flash } = window.SupportbotConsole;  // console.js
  const status = document.getElementById("model-status");
  const table = document.getElementById("training-list");
  const POLL_MS = 500;
  const GIVE_UP_MS = 180000;  // Rasa-sized retraining plus slack; the embedded engine takes ~2 s

  const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString("ru-RU") : "—");

  function showStatus(text, kind) {
    if (!status) return;
    status.textContent = text;
    status.className = `model-status ${kind || ""}`.trim();
  }

  // -- retraining: poll the model until the one with the newest example is live ------------------
  let waitingFor = null;  // the data fingerprint of the newest add
  let addedAt = 0;
  let poller = null;

  function follow(expected) {
    waitingFor = expected;
    addedAt = Date.now();
    showStatus("Бот переобучается с новым примером…", "training-now");
    if (poller === null) poller = setInterval(poll, POLL_MS);
  }

  async function poll() {
    let model;
    try { model = await api("GET", "/api/training/model"); } catch (e) { return; }
    if (model.fingerprint === waitingFor) {
      clearInterval(poller);
      poller = null;
      const took = ((Date.now() - addedAt) / 1000).toFixed(1);
      if (status) status.dataset.fingerprint = model.fingerprint;
      const rasa = model.engine === "rasa"
        ? " Это встроенная модель (запасная); сервер Rasa выучит пример, когда его переобучат (supportbot rasa serve)."
        : "";
      showStatus(`Новая модель работает с ${clock(model.live_since)} (через ${took} с после добавления).${rasa}`, "live");
    } else if (Date.now() - addedAt > GIVE_UP_MS) {
      clearInterval(poller);
      poller = null;
      showStatus("Модель пока не обновилась. Возможно, в обучающих файлах ошибка — загляните в журнал бота.", "stuck");
    }
  }

  if (status && status.dataset.liveSince) {
    showStatus(`Модель работает с ${clock(status.dataset.liveSince)}.`);
  }

  // -- the rows -----------------------------------------------------------------------------------
  function removeRow(row) {
    row.remove();
    if (table && !table.querySelector("tbody tr")) {
      table.hidden = true;
      const empty = document.getElementById("training-empty");
      if (empty) empty.hidden = false;
    }
  }

  async function review(row, payload) {
    const buttons = row.querySelectorAll("button, select");
    row.classList.add("busy");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const done = await api("POST", `/api/training/${row.dataset.id}`, payload);
      removeRow(row);
      if (payload.ignore) {
        flash("Сообщение пропущено.", true);
      } else {
        flash(`Пример «${done.example}» добавлен в ${done.intent} (${done.file}). Бот переобучается.`, true);
        follow(done.model.expected);
      }
    } catch (e) {
      row.classList.remove("busy");
      buttons.forEach((b) => { b.disabled = false; });
      flash(e.message);
    }
  }

  if (table) {
    table.addEventListener("click", (ev) => {
      const button = ev.target.closest("button");
      const row = ev.target.closest("tr[data-id]");
      if (!button || !row) return;
      if (button.classList.contains("t-skip")) {
        review(row, { ignore: true });
      } else if (button.classList.contains("t-add")) {
        const intent = row.querySelector("select.t-intent").value;
        if (!intent) { flash("Выберите тему, к которой относится сообщение."); return; }
        review(row, { intent });
      }
    });
  }
})();

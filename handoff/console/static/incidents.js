// The incidents page: declare, move the ETA, close (subscribers are told); live over console.js's
// socket ("console:event" DOM events). Every text goes in as textContent, never as HTML.
"use strict";

(() => {
  const body = document.body;
  if (body.dataset.page !== "incidents") return;
  const { el, api, flash } = window.SupportbotConsole;  // console.js
  const $ = (sel) => document.querySelector(sel);

  function openRow(i) {
    const muted = i.muted ? el("small", {}, ` (+${i.muted} не сообщать)`) : null;
    return el("tr", { dataset: { id: i.id } },
      el("td", { class: "n" }, `№${i.id}`),
      el("td", {}, el("b", { class: "area" }, i.area_title), el("br"), el("small", {}, `ключ: ${i.area}`)),
      el("td", {}, el("span", { class: `src src-${i.source}` }, i.source_label),
        i.opened_by_name ? el("br") : null, i.opened_by_name ? el("small", {}, i.opened_by_name) : null),
      el("td", { class: "description" }, i.description),
      el("td", { class: "n reports" }, i.reports),
      el("td", { class: "n subscribers" }, i.subscribers, muted),
      el("td", { class: "eta" }, i.eta_local || "—"),
      el("td", {}, i.opened_local),
      el("td", { class: "incident-actions" },
        el("form", { class: "eta-form" },
          el("input", { type: "datetime-local", name: "eta", value: i.eta_input || "", "aria-label": "Новое время устранения" }),
          el("button", { type: "submit" }, "Сдвинуть срок")),
        el("form", { class: "close-form" },
          el("input", { name: "resolution", maxlength: 1000, placeholder: "Что сказать абонентам (необязательно)", "aria-label": "Текст для абонентов" }),
          el("button", { type: "submit", class: "primary" }, "Закрыть и оповестить"))));
  }

  function closedRow(i) {
    const who = i.closed_by_name ? [el("br"), el("small", {}, `закрыл(а) ${i.closed_by_name}`)] : [];
    return el("tr", { dataset: { id: i.id } },
      el("td", { class: "n" }, `№${i.id}`),
      el("td", {}, el("b", { class: "area" }, i.area_title)),
      el("td", {}, i.source_label),
      el("td", { class: "description" }, i.description),
      el("td", { class: "n" }, i.reports),
      el("td", {}, `${i.opened_local} — ${i.closed_local}`, ...who),
      el("td", { class: "resolution" }, i.resolution || ""),
      el("td", { class: "n notified" }, i.notified));
  }

  function render(data) {
    // a supervisor typing in a row's form keeps it: rows are replaced only when nothing is typed
    const typing = document.activeElement && document.activeElement.closest("#incidents-open form");
    if (!typing) $("#incidents-open tbody").replaceChildren(...data.open.map(openRow));
    $("#incidents-open-count").textContent = String(data.open.length);
    $("#incidents-open-empty").hidden = data.open.length > 0;
    $("#incidents-closed tbody").replaceChildren(...data.closed.map(closedRow));
    $("#incidents-closed-empty").hidden = data.closed.length > 0;
  }

  let timer = null;
  function refresh() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      try { render(await api("GET", "/api/incidents")); } catch (e) { flash(e.message); }
    }, 150);
  }

  $("#declare-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const fields = Object.fromEntries(new FormData(form).entries());
    try {
      const made = await api("POST", "/api/incidents", fields);
      flash(`Авария №${made.id} объявлена: ${made.area_title}`, true);
      form.reset();
      refresh();
    } catch (e) { flash(e.message); }
  });

  $("#incidents-open").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const id = form.closest("tr").dataset.id;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      if (form.classList.contains("close-form")) {
        const done = await api("POST", `/api/incidents/${id}/close`,
          { resolution: form.elements.resolution.value });
        flash(`Авария №${id} закрыта, сообщений абонентам: ${done.queued}`, true);
      } else {
        await api("POST", `/api/incidents/${id}`, { eta: form.elements.eta.value });
        flash(`Срок аварии №${id} обновлён`, true);
      }
      if (document.activeElement) document.activeElement.blur();
      refresh();
    } catch (e) {
      flash(e.message);
    } finally {
      button.disabled = false;
    }
  });

  document.addEventListener("console:event", (ev) => {
    if (ev.detail && ev.detail.type === "incident") refresh();
  });
  document.addEventListener("console:live", refresh);  // (re)connected: catch up
  setInterval(refresh, 60000);
})();

// The content studio (handoff/console/studio_page.py): browse the draft, edit a response in a form
// or any file as YAML with problems checked as you type, diff, tests, publish, versions.
// Content is only ever inserted as text (textContent / createTextNode), never as HTML.
"use strict";

(() => {
  const body = document.body;
  if (body.dataset.page !== "studio") return;
  const base = body.dataset.base || "/console";
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  const $ = (sel) => document.querySelector(sel);
  const KINDS = { intent: "интент", flow: "сценарий", goto: "шаг", article: "статья", url: "ссылка", request: "запрос" };

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "value") node.value = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function flash(text, ok) {
    const box = $("#flash");
    if (!box) return;
    box.textContent = text;
    box.className = ok ? "flash ok" : "flash";
    box.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { box.hidden = true; }, ok ? 3000 : 9000);
  }

  async function api(method, path, payload) {
    const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    if (payload !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(payload);
    }
    const resp = await fetch(base + path, opts);
    if (resp.status === 401) { window.location = base + "/login"; throw new Error("401"); }
    const data = await resp.json().catch(() => ({}));
    return { ok: resp.ok, status: resp.status, data };
  }

  const state = {
    draft: null,
    tab: "responses",
    open: null, // {kind: "response"|"file", name, file, revision, fields}
    mode: "form",
    timer: null,
    seq: 0,
    view: 0, // grows with each thing opened: a late answer for an older one is dropped
  };

  // -- the draft and the list on the left -----------------------------------------------------
  async function loadDraft() {
    const { ok, data } = await api("GET", "/api/studio/draft");
    if (!ok) { flash(data.error || "Не удалось загрузить черновик"); return; }
    state.draft = data;
    const changed = data.files.filter((f) => f.changed).length + data.removed.length;
    $("#live-version").textContent = `Опубликована версия ${data.live_id ?? "—"}; ` +
      (changed ? `в черновике изменено файлов: ${changed}` : "черновик совпадает с ней");
    renderBrowse();
    renderDraftState();
  }

  function changedFiles() {
    return new Set((state.draft ? state.draft.files : []).filter((f) => f.changed).map((f) => f.path));
  }

  function renderBrowse() {
    const list = $("#browse");
    list.textContent = "";
    if (!state.draft) return;
    const q = $("#filter").value.trim().toLowerCase();
    const cat = state.draft.catalogue;
    const changed = changedFiles();
    let items = [];
    if (state.tab === "responses") {
      items = cat.responses.map((r) => ({ key: `r:${r.name}`, title: r.name, sub: r.file, file: r.file,
        open: () => openResponse(r.name) }));
    } else if (state.tab === "flows") {
      items = cat.flows.map((f) => ({ key: `f:${f.name}`, title: f.title, sub: `${f.name} · ${f.file}`,
        file: f.file, open: () => openFlow(f.name, f.title) }));
    } else if (state.tab === "intents") {
      items = cat.intents.map((i) => ({ key: `i:${i.name}`, title: i.name,
        sub: `${i.examples} примеров · ${i.file}`, file: i.file,
        open: () => openIntent(i.name) }));
    } else {
      items = state.draft.files.filter((f) => f.text).map((f) => ({ key: `p:${f.path}`, title: f.path,
        sub: null, file: f.path, open: () => openFile(f.path) }));
    }
    for (const item of items) {
      if (q && !`${item.title} ${item.sub || ""}`.toLowerCase().includes(q)) continue;
      const li = el("li", { dataset: { key: item.key }, class: changed.has(item.file) ? "changed" : null },
        item.title, item.sub ? el("small", {}, item.sub) : null);
      if (state.open && state.open.key === item.key) li.classList.add("on");
      li.addEventListener("click", () => { item.open(); });
      list.append(li);
    }
  }

  function renderDraftState() {
    const d = state.draft;
    const errors = d.problems.filter((p) => !p.warning);
    const box = $("#draft-problems");
    box.textContent = "";
    for (const p of errors.slice(0, 30)) box.append(problemItem(p, true));
    let text = errors.length ? `В черновике ошибок: ${errors.length}. Публикация невозможна, пока они есть.`
      : "Ошибок нет.";
    $("#draft-state").textContent = text;
    renderTests(d.tests, d.tests_running);
  }

  function problemItem(p, jump) {
    const li = el("li", { class: p.warning ? "warning" : null }, el("code", {}, p.where), p.message);
    if (jump) li.addEventListener("click", () => openFile(p.file, null, null, p.line));
    else li.addEventListener("click", () => selectLine(p.line));
    return li;
  }

  // -- opening a response (form) or a file (YAML) ------------------------------------------------
  function show(kind) {
    const isIntent = state.open && state.open.kind === "intent";
    const isFlow = state.open && state.open.kind === "flow";
    $("#flow-form").hidden = kind !== "form" || !isFlow;
    $("#response-form").hidden = kind !== "form" || isIntent || isFlow;
    $("#intent-form").hidden = kind !== "form" || !isIntent;
    $("#yaml-box").hidden = kind !== "yaml";
    $("#mode-form").classList.toggle("on", kind === "form");
    $("#mode-yaml").classList.toggle("on", kind === "yaml");
    $("#save").disabled = false;
  }

  async function openResponse(name) {
    const view = ++state.view;
    const { ok, data } = await api("GET", `/api/studio/response?name=${encodeURIComponent(name)}`);
    if (view !== state.view) return; // the editor opened something else meanwhile
    if (!ok) { flash(data.error || "Не удалось открыть ответ"); return; }
    state.open = { kind: "response", key: `r:${name}`, name, file: data.file, revision: data.revision,
      fields: data.fields };
    $("#editing").textContent = `Ответ «${name}»`;
    $("#editing-where").textContent = `файл ${data.file}`;
    $("#mode-switch").hidden = false;
    $("#problems").textContent = "";
    $("#save-state").textContent = "";
    const noForm = $("#no-form");
    noForm.hidden = !data.no_form;
    noForm.textContent = data.no_form || "";
    renderBrowse();
    if (data.fields) {
      state.mode = "form";
      renderForm(data.fields);
      show("form");
    } else {
      await loadYaml(data.file);
    }
  }

  async function openIntent(name) {
    const view = ++state.view;
    const { ok, data } = await api("GET", `/api/studio/intent?name=${encodeURIComponent(name)}`);
    if (view !== state.view) return;
    if (!ok) { flash(data.error || "Не удалось открыть интент"); return; }
    state.open = { kind: "intent", key: `i:${name}`, name, file: data.file, revision: data.revision };
    $("#editing").textContent = `Интент ${name}: примеры фраз`;
    $("#editing-where").textContent = `файл ${data.file}`;
    $("#mode-switch").hidden = false;
    $("#problems").textContent = "";
    $("#save-state").textContent = "";
    $("#no-form").hidden = !data.no_form;
    $("#no-form").textContent = data.no_form || "";
    renderBrowse();
    if (data.examples) {
      state.mode = "form";
      $("#intent-examples").value = data.examples.join("\n");
      show("form");
    } else {
      await loadYaml(data.file);
      const m = new RegExp(`^- intent: ${name}\\s*$`, "m").exec($("#yaml").value);
      if (m) selectLine($("#yaml").value.slice(0, m.index).split("\n").length);
    }
  }

  const examples = () => $("#intent-examples").value.split("\n");

  // -- a flow as structured steps ----------------------------------------------------------------
  const STEP_LABELS = {
    say: "Сказать", ask: "Спросить (слот)", call: "Действие (call)", if: "Условие (if)",
    goto: "Перейти к шагу", flow: "Запустить сценарий", use: "Вставить сценарий",
    handoff: "Передать оператору", ticket: "Заявка", set: "Задать слоты",
    verify: "Проверить личность", route: "Развилка по словам", end: "Конец сценария",
  };
  const STEP_EXTRAS = { ask: ["prompt"], call: ["as", "on_error"], if: ["then", "else"],
    handoff: ["reason"], ticket: ["details"] };

  async function openFlow(name, title) {
    const view = ++state.view;
    const { ok, data } = await api("GET", `/api/studio/flow?name=${encodeURIComponent(name)}`);
    if (view !== state.view) return;
    if (!ok) { flash(data.error || "Не удалось открыть сценарий"); return; }
    state.open = { kind: "flow", key: `f:${name}`, name, title, file: data.file, revision: data.revision };
    $("#editing").textContent = `Сценарий «${title || name}»`;
    $("#editing-where").textContent = `файл ${data.file}`;
    $("#mode-switch").hidden = false;
    $("#problems").textContent = "";
    $("#save-state").textContent = "";
    $("#no-form").hidden = !data.no_form;
    $("#no-form").textContent = data.no_form || "";
    const select = $("#new-step-kind");
    select.textContent = "";
    for (const kind of data.kinds) select.append(el("option", { value: kind }, STEP_LABELS[kind] || kind));
    renderBrowse();
    if (data.fields) {
      state.mode = "form";
      $("#flow-title").value = data.fields.title;
      renderSteps(data.fields.steps);
      show("form");
    } else {
      await loadYaml(data.file);
      const m = new RegExp(`^  ${name}:`, "m").exec($("#yaml").value);
      if (m) selectLine($("#yaml").value.slice(0, m.index).split("\n").length);
    }
  }

  function renderSteps(steps) {
    const list = $("#steps");
    list.textContent = "";
    steps.forEach((step, i) => list.append(stepBox(step, i, steps.length)));
  }

  function stepBox(step, i, count) {
    const move = (delta) => {
      const steps = readSteps();
      const [moved] = steps.splice(i, 1);
      steps.splice(i + delta, 0, moved);
      renderSteps(steps);
      checkSoon();
    };
    const up = el("button", { type: "button", class: "secondary", title: "выше", disabled: i === 0 }, "↑");
    const down = el("button", { type: "button", class: "secondary", title: "ниже", disabled: i === count - 1 }, "↓");
    const drop = el("button", { type: "button", class: "secondary", title: "убрать шаг" }, "×");
    up.addEventListener("click", () => move(-1));
    down.addEventListener("click", () => move(1));
    drop.addEventListener("click", () => {
      const steps = readSteps();
      steps.splice(i, 1);
      renderSteps(steps);
      checkSoon();
    });
    const id = el("input", { type: "text", class: "s-id", placeholder: "метка шага (для goto), необязательно", value: step.id });
    const fields = el("div", { class: "s-fields" });
    for (const f of step.fields) fields.append(kvRow(f.key, f.value));
    const addField = el("button", { type: "button", class: "secondary" }, "+ поле");
    addField.addEventListener("click", () => { fields.append(kvRow("", "")); });
    return el("li", { dataset: { step: i, kind: step.kind }, id: `step${i}` },
      el("div", { class: "step-head" }, el("b", {}, STEP_LABELS[step.kind] || step.kind || "шаг"),
        el("span", {}, up, down, drop)),
      id, fields, addField,
      el("p", { class: "field-error", id: `err-step${i}`, hidden: true }));
  }

  function kvRow(key, value) {
    const k = el("input", { type: "text", class: "s-key", value: key, placeholder: "ключ" });
    const v = el("textarea", { class: "s-value", rows: Math.min(8, Math.max(1, value.split("\n").length)) });
    v.value = value;
    const drop = el("button", { type: "button", class: "secondary", title: "убрать поле" }, "×");
    const row = el("div", { class: "kv" }, k, v, drop);
    drop.addEventListener("click", () => { row.remove(); checkSoon(); });
    return row;
  }

  function readSteps() {
    const steps = [];
    document.querySelectorAll("#steps > li").forEach((li) => {
      const fields = [];
      li.querySelectorAll(".kv").forEach((row) => fields.push({
        key: row.querySelector(".s-key").value, value: row.querySelector(".s-value").value }));
      steps.push({ kind: li.dataset.kind, id: li.querySelector(".s-id").value, fields });
    });
    return steps;
  }

  const flowFields = () => ({ title: $("#flow-title").value, steps: readSteps() });

  async function openFile(path, pattern, label, line) {
    ++state.view;
    state.open = { kind: "file", key: `p:${path}`, file: path };
    $("#editing").textContent = label ? `${label[0].toUpperCase()}${label.slice(1)}` : path;
    $("#editing-where").textContent = `файл ${path}`;
    $("#mode-switch").hidden = true;
    $("#no-form").hidden = true;
    $("#problems").textContent = "";
    $("#save-state").textContent = "";
    renderBrowse();
    await loadYaml(path);
    const text = $("#yaml").value;
    if (pattern) {
      const m = pattern.exec(text);
      if (m) selectLine(text.slice(0, m.index).split("\n").length);
    } else if (line) selectLine(line);
  }

  async function loadYaml(path) {
    const view = state.view;
    const { ok, data } = await api("GET", `/api/studio/file?path=${encodeURIComponent(path)}`);
    if (view !== state.view) return;
    if (!ok) { flash(data.error || "Не удалось открыть файл"); return; }
    state.open.file = path;
    state.open.revision = data.revision;
    state.mode = "yaml";
    $("#yaml").value = data.text;
    show("yaml");
    checkSoon();
  }

  function selectLine(line) {
    const area = $("#yaml");
    if ($("#yaml-box").hidden) return;
    const lines = area.value.split("\n");
    let start = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i += 1) start += lines[i].length + 1;
    const end = start + (lines[line - 1] || "").length;
    area.focus();
    area.setSelectionRange(start, end);
    const lineHeight = area.scrollHeight / Math.max(lines.length, 1);
    area.scrollTop = Math.max(0, (line - 5) * lineHeight);
  }

  // -- the response form -------------------------------------------------------------------------
  function fieldBox(id, label, input) {
    return el("label", { class: "field", dataset: { field: id } }, el("span", {}, label), input,
      el("p", { class: "field-error", id: `err-${id.replace(".", "-")}`, hidden: true }));
  }

  function renderForm(fields) {
    const box = $("#variants");
    box.textContent = "";
    fields.variants.forEach((v, i) => box.append(variantBox(v, i, fields.variants.length)));
  }

  function variantBox(v, i, count) {
    const id = (part) => `v${i}.${part}`;
    const text = el("textarea", { rows: 5, id: `f-v${i}-text`, name: id("text") });
    text.value = v.text;
    const image = el("input", { type: "text", id: `f-v${i}-image`, name: id("image"),
      placeholder: "media/картинка.png или https://…" });
    image.value = v.image;
    const preview = el("img", { class: "preview", alt: "", hidden: !v.image || /^https?:/.test(v.image) });
    if (v.image && !/^https?:/.test(v.image)) preview.src = `${base}/api/studio/media?path=${encodeURIComponent(v.image)}`;
    const file = el("input", { type: "file", accept: "image/png,image/jpeg,image/gif", id: `f-v${i}-upload` });
    file.addEventListener("change", async () => {
      if (!file.files.length) return;
      const form = new FormData();
      form.append("image", file.files[0]);
      const resp = await fetch(`${base}/api/studio/media`, { method: "POST", body: form,
        headers: { "X-CSRF-Token": csrf, Accept: "application/json" }, credentials: "same-origin" });
      const data = await resp.json().catch(() => ({}));
      if (!resp.ok) { flash(data.error || "Картинка не загружена"); return; }
      image.value = data.path;
      preview.src = `${base}/api/studio/media?path=${encodeURIComponent(data.path)}`;
      preview.hidden = false;
      flash(`Картинка ${data.path} добавлена в черновик`, true);
      await loadDraft();
      checkSoon();
    });
    const tg = el("textarea", { rows: 2, id: `f-v${i}-telegram`, name: id("telegram"),
      placeholder: "пусто — как основной текст" });
    tg.value = v.telegram;
    const vk = el("textarea", { rows: 2, id: `f-v${i}-vk`, name: id("vk"),
      placeholder: "пусто — как основной текст" });
    vk.value = v.vk;
    const remove = count > 1 ? el("button", { type: "button", class: "secondary" }, "убрать вариант") : null;
    if (remove) remove.addEventListener("click", () => {
      const fields = readForm();
      fields.variants.splice(i, 1);
      renderForm(fields);
      checkSoon();
    });
    const buttons = el("div", { class: "buttons-box", id: `f-v${i}-buttons` });
    v.buttons.forEach((row, r) => buttons.append(rowBox(row, i, r)));
    const addRow = el("button", { type: "button", class: "secondary" }, "+ ряд кнопок");
    addRow.addEventListener("click", () => {
      const fields = readForm();
      fields.variants[i].buttons.push([{ title: "", kind: "intent", target: "" }]);
      renderForm(fields);
    });
    return el("div", { class: "variant", dataset: { variant: i } },
      el("h3", {}, count > 1 ? `Вариант ${i + 1} (бот выбирает случайно)` : "Ответ", remove),
      fieldBox(id("text"), "Текст (можно {имя_слота} и {слот|фильтр})", text),
      fieldBox(id("image"), "Картинка (путь в контенте или ссылка; или загрузите файл)", image),
      el("div", { class: "row" }, file, preview),
      fieldBox(id("buttons"), "Кнопки", buttons), addRow,
      el("details", {}, el("summary", {}, "Особенности каналов"),
        fieldBox(id("telegram"), "Текст в Telegram", tg),
        fieldBox(id("vk"), "Текст во ВКонтакте", vk)));
  }

  function rowBox(row, i, r) {
    const box = el("div", { class: "btn-row", dataset: { row: r } });
    row.forEach((b, k) => {
      const title = el("input", { type: "text", class: "b-title", placeholder: "надпись", value: b.title });
      const kind = el("select", { class: "b-kind" },
        ...Object.entries(KINDS).map(([value, label]) => el("option", { value }, label)));
      kind.value = b.kind;
      const target = el("input", { type: "text", class: "b-target", placeholder: "куда ведёт", value: b.target });
      const drop = el("button", { type: "button", class: "secondary", title: "убрать кнопку" }, "×");
      drop.addEventListener("click", () => {
        const fields = readForm();
        fields.variants[i].buttons[r].splice(k, 1);
        if (!fields.variants[i].buttons[r].length) fields.variants[i].buttons.splice(r, 1);
        renderForm(fields);
        checkSoon();
      });
      box.append(el("div", { class: "row" }, title, kind, target, drop));
    });
    const add = el("button", { type: "button", class: "secondary" }, "+ кнопка в ряд");
    add.addEventListener("click", () => {
      const fields = readForm();
      fields.variants[i].buttons[r].push({ title: "", kind: "intent", target: "" });
      renderForm(fields);
    });
    box.append(add);
    return box;
  }

  function readForm() {
    const variants = [];
    document.querySelectorAll("#variants .variant").forEach((box) => {
      const i = box.dataset.variant;
      const buttons = [];
      box.querySelectorAll(".btn-row").forEach((row) => {
        const items = [];
        row.querySelectorAll(".row").forEach((b) => items.push({
          title: b.querySelector(".b-title").value,
          kind: b.querySelector(".b-kind").value,
          target: b.querySelector(".b-target").value,
        }));
        buttons.push(items);
      });
      variants.push({
        text: $(`#f-v${i}-text`).value,
        image: $(`#f-v${i}-image`).value,
        buttons,
        telegram: $(`#f-v${i}-telegram`).value,
        vk: $(`#f-v${i}-vk`).value,
      });
    });
    return { variants };
  }

  // -- checking as you type ----------------------------------------------------------------------
  function checkSoon() {
    clearTimeout(state.timer);
    state.timer = setTimeout(check, 400);
  }

  async function check() {
    const open = state.open;
    if (!open) return;
    const seq = ++state.seq;
    let resp;
    if (open.kind === "response" && state.mode === "form") {
      resp = await api("POST", "/api/studio/response/check", { name: open.name, fields: readForm() });
    } else if (open.kind === "intent" && state.mode === "form") {
      resp = await api("POST", "/api/studio/intent/check", { name: open.name, examples: examples() });
    } else if (open.kind === "flow" && state.mode === "form") {
      resp = await api("POST", "/api/studio/flow/check", { name: open.name, fields: flowFields() });
    } else {
      resp = await api("POST", "/api/studio/check", { path: open.file, text: $("#yaml").value });
    }
    if (seq !== state.seq) return; // a newer check is on its way
    if (!resp.ok) { $("#save-state").textContent = resp.data.error || ""; return; }
    showProblems(resp.data.problems);
  }

  function showProblems(problems) {
    document.querySelectorAll(".studio .field, #steps > li").forEach((f) => f.classList.remove("bad"));
    document.querySelectorAll(".studio .field-error").forEach((e) => { e.hidden = true; e.textContent = ""; });
    const list = $("#problems");
    list.textContent = "";
    const file = state.open.file;
    const mine = problems.filter((p) => p.file === file);
    const elsewhere = problems.filter((p) => p.file !== file && !p.warning);
    for (const p of mine) {
      if (p.field && state.mode === "form") {
        const err = $(`#err-${p.field.replace(".", "-")}`);
        if (err) {
          err.hidden = false;
          err.textContent = err.textContent ? `${err.textContent}; ${p.message}` : p.message;
          (err.closest(".field") || err.closest("li")).classList.add("bad");
          continue;
        }
      }
      if (!p.warning || state.mode === "yaml") list.append(problemItem(p, false));
    }
    for (const p of elsewhere.slice(0, 10)) list.append(problemItem(p, true));
    const errors = problems.filter((p) => !p.warning).length;
    $("#save-state").textContent = errors ? `Ошибок: ${errors}` : "Ошибок нет";
  }

  // -- saving ------------------------------------------------------------------------------------
  async function save() {
    const open = state.open;
    if (!open) return;
    // The save checks what it saves: a check still pending (the field's `change` on leaving it
    // for the button) or on its way would overwrite «Сохранено в черновик» with its own result.
    clearTimeout(state.timer);
    ++state.seq;
    let resp;
    if (open.kind === "response" && state.mode === "form") {
      resp = await api("POST", "/api/studio/response",
        { name: open.name, fields: readForm(), revision: open.revision });
    } else if (open.kind === "intent" && state.mode === "form") {
      resp = await api("POST", "/api/studio/intent",
        { name: open.name, examples: examples(), revision: open.revision });
    } else if (open.kind === "flow" && state.mode === "form") {
      resp = await api("POST", "/api/studio/flow",
        { name: open.name, fields: flowFields(), revision: open.revision });
    } else {
      resp = await api("POST", "/api/studio/file",
        { path: open.file, text: $("#yaml").value, revision: open.revision });
    }
    if (!resp.ok) {
      $("#save-state").textContent = resp.data.error || "Не сохранено";
      flash(resp.data.error || "Не сохранено");
      return;
    }
    open.revision = resp.data.revision;
    $("#save-state").textContent = "Сохранено в черновик";
    flash("Сохранено в черновик", true);
    await loadDraft();
    $("#diff").hidden = true;
  }

  // -- diff, tests, publish, versions ------------------------------------------------------------
  function renderDiff(box, text) {
    box.textContent = "";
    if (!text) { box.append("Изменений нет."); box.hidden = false; return; }
    for (const line of text.split("\n")) {
      const cls = line.startsWith("+") && !line.startsWith("+++") ? "add"
        : line.startsWith("-") && !line.startsWith("---") ? "del" : null;
      box.append(el("span", { class: cls }, line), "\n");
    }
    box.hidden = false;
  }

  async function showDiff() {
    const { ok, data } = await api("GET", "/api/studio/diff");
    if (!ok) { flash(data.error || "Не удалось"); return; }
    renderDiff($("#diff"), data.diff);
  }

  function renderTests(run, running) {
    const table = $("#test-results");
    const tbody = table.querySelector("tbody");
    tbody.textContent = "";
    if (running) { $("#tests-state").textContent = "Тесты идут…"; }
    if (!run) {
      if (!running) $("#tests-state").textContent = "Тесты этого черновика ещё не запускались.";
      table.hidden = true;
      return;
    }
    const total = run.passed + run.failed;
    $("#tests-state").textContent = run.failed
      ? `Не прошли ${run.failed} из ${total} тестов: публикация невозможна`
      : `Прошли все ${total} тестов`;
    const rows = run.results.slice().sort((a, b) => Number(a.ok) - Number(b.ok));
    for (const r of rows) {
      tbody.append(el("tr", { class: r.ok ? "t-ok" : "t-fail" },
        el("td", {}, r.name, el("br"), el("small", {}, r.file)),
        el("td", {}, r.channel),
        el("td", { class: r.ok ? "ok" : "fail" }, r.ok ? "прошёл" : `не прошёл: ${r.failure}`)));
    }
    table.hidden = false;
  }

  async function runTests() {
    const button = $("#run-tests");
    button.disabled = true;
    $("#tests-state").textContent = "Тесты идут… (около минуты)";
    try {
      const { ok, data } = await api("POST", "/api/studio/tests");
      if (!ok) { $("#tests-state").textContent = data.error || "Тесты не запустились"; return; }
      renderTests(data, false);
    } finally {
      button.disabled = false;
    }
  }

  async function publish() {
    const comment = $("#comment").value.trim();
    const out = $("#publish-state");
    const { ok, data } = await api("POST", "/api/studio/publish", { comment });
    if (!ok) {
      out.textContent = data.error || "Не опубликовано";
      out.className = "hint warn";
      const box = $("#draft-problems");
      box.textContent = "";
      for (const p of (data.problems || []).slice(0, 30)) box.append(problemItem(p, true));
      return;
    }
    out.textContent = `Опубликована версия ${data.version}`;
    out.className = "hint";
    $("#comment").value = "";
    flash(`Опубликована версия ${data.version}`, true);
    await Promise.all([loadDraft(), loadVersions()]);
  }

  const KIND_LABEL = { seed: "из папки", import: "импорт", publish: "публикация", restore: "возврат" };

  async function loadVersions() {
    const { ok, data } = await api("GET", "/api/studio/versions");
    if (!ok) return;
    const tbody = $("#versions");
    tbody.textContent = "";
    for (const v of data.versions) {
      const live = v.id === data.live_id;
      const files = [...v.added, ...v.changed, ...v.removed];
      const diffBtn = el("button", { type: "button", class: "secondary" }, "Изменения");
      diffBtn.addEventListener("click", async () => {
        const r = await api("GET", `/api/studio/versions/${v.id}/diff`);
        if (r.ok) renderDiff($("#version-diff"), r.data.diff);
      });
      const restoreBtn = live ? null
        : el("button", { type: "button", class: "restore", dataset: { version: v.id } }, "Вернуть");
      if (restoreBtn) restoreBtn.addEventListener("click", () => restore(v.id));
      tbody.append(el("tr", { class: live ? "live" : null, dataset: { version: v.id } },
        el("td", {}, v.id),
        el("td", {}, new Date(v.created_at).toLocaleString("ru-RU")),
        el("td", {}, v.author),
        el("td", {}, KIND_LABEL[v.kind] || v.kind, v.restored_from ? ` версии ${v.restored_from}` : "",
          el("br"), el("small", {}, files.slice(0, 4).join(", ") + (files.length > 4 ? "…" : ""))),
        el("td", {}, v.comment),
        el("td", {}, diffBtn, " ", restoreBtn)));
    }
  }

  async function restore(id) {
    const view = state.view;
    const { ok, data } = await api("POST", `/api/studio/versions/${id}/restore`);
    if (!ok) { flash(data.error || "Не удалось вернуть версию"); return; }
    flash(`Версия ${id} снова опубликована (версия ${data.version})`, true);
    $("#publish-state").textContent = `Опубликована версия ${data.version} (возврат к версии ${id})`;
    await Promise.all([loadDraft(), loadVersions()]);
    // Reopen what was open, at the restored text, unless the editor opened something else meanwhile.
    if (view !== state.view) return;
    if (state.open && state.open.kind === "response") await openResponse(state.open.name);
    else if (state.open && state.open.kind === "intent") await openIntent(state.open.name);
    else if (state.open && state.open.kind === "flow") await openFlow(state.open.name, state.open.title);
    else if (state.open) await openFile(state.open.file);
  }

  // -- trying the draft --------------------------------------------------------------------------
  function tryLine(cls, ...children) {
    const log = $("#try-log");
    const line = el("div", { class: `msg ${cls}` }, ...children);
    log.append(line);
    log.scrollTop = log.scrollHeight;
    return line;
  }

  async function tryAct(payload, shown) {
    tryLine("me", shown);
    const wait = tryLine("bot", el("small", {}, "черновик отвечает…"));
    const { ok, data } = await api("POST", "/api/studio/try", payload);
    wait.remove();
    if (!ok) { tryLine("bot err", data.error || "Черновик не ответил"); return; }
    if (!data.replies.length) tryLine("bot", el("small", {}, "(бот промолчал)"));
    for (const r of data.replies) {
      const kb = r.buttons.length ? el("div", { class: "kb" }) : null;
      for (const title of r.buttons) {
        const b = el("button", { type: "button", class: "secondary" }, title);
        b.addEventListener("click", () => tryAct({ press: title }, `[${title}]`));
        kb.append(b);
      }
      tryLine("bot", r.image ? el("small", {}, "🖼 картинка") : null, r.sticker ? "(стикер)" : r.text, kb,
        data.intent ? el("small", {}, `интент: ${data.intent}`) : null);
    }
  }

  // -- wiring ------------------------------------------------------------------------------------
  $("#try-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("#try-text").value.trim();
    if (!text) return;
    $("#try-text").value = "";
    tryAct({ text }, text);
  });
  $("#try-reset").addEventListener("click", async () => {
    await api("POST", "/api/studio/try", { reset: true });
    $("#try-log").textContent = "";
  });
  document.querySelectorAll(".studio .tab").forEach((tab) => tab.addEventListener("click", () => {
    document.querySelectorAll(".studio .tab").forEach((t) => t.classList.toggle("on", t === tab));
    state.tab = tab.dataset.tab;
    renderBrowse();
  }));
  $("#filter").addEventListener("input", renderBrowse);
  $("#response-form").addEventListener("input", checkSoon);
  $("#response-form").addEventListener("change", checkSoon);
  $("#response-form").addEventListener("submit", (e) => e.preventDefault());
  $("#add-variant").addEventListener("click", () => {
    const fields = readForm();
    fields.variants.push({ text: "", image: "", buttons: [], telegram: "", vk: "" });
    renderForm(fields);
    checkSoon();
  });
  $("#yaml").addEventListener("input", checkSoon);
  $("#mode-form").addEventListener("click", () => {
    if (state.open && state.open.kind === "response") openResponse(state.open.name);
    if (state.open && state.open.kind === "intent") openIntent(state.open.name);
    if (state.open && state.open.kind === "flow") openFlow(state.open.name, state.open.title);
  });
  $("#flow-form").addEventListener("input", checkSoon);
  $("#flow-form").addEventListener("submit", (e) => e.preventDefault());
  $("#add-step").addEventListener("click", () => {
    const kind = $("#new-step-kind").value;
    const steps = readSteps();
    const fields = kind === "end" ? [] : [kind, ...(STEP_EXTRAS[kind] || [])].map((key) => ({ key, value: "" }));
    steps.push({ kind, id: "", fields });
    renderSteps(steps);
  });
  $("#intent-form").addEventListener("input", checkSoon);
  $("#intent-form").addEventListener("submit", (e) => e.preventDefault());
  $("#mode-yaml").addEventListener("click", () => {
    if (state.open) loadYaml(state.open.file);
  });
  $("#save").addEventListener("click", save);
  $("#show-diff").addEventListener("click", showDiff);
  $("#run-tests").addEventListener("click", runTests);
  $("#publish").addEventListener("click", publish);
  loadDraft();
  loadVersions();
})();

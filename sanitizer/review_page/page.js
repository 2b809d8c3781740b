"use strict";
// Builds the page from the JSON block. User text goes through textContent only, never innerHTML.
const D = JSON.parse(document.getElementById("data").textContent);
const PAGE = 120; // cards per class before "show more"
const STORE = "sanitizer-review:" + D.key; // choices survive a reload of this page
// Storage can be blocked (file:// in some browsers, privacy settings) or hold junk: the page
// then keeps choices in memory only, and says so.
function stored(key, fallback) {
  try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch (e) { return fallback; }
}
function store(key, value) {
  try { localStorage.setItem(key, JSON.stringify(value)); return true; } catch (e) { return false; }
}
const choices = new Map(stored(STORE, []));
const shownPerClass = new Map();
let current = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function option(select, value, text) {
  const o = el("option", text);
  o.value = value;
  select.append(o);
}
function fmt(x) { return x === null || x === undefined ? "" : Number(x).toFixed(2); }

function header() {
  document.getElementById("method").textContent = D.method + ". " + D.samples.length + " of " + D.total + " samples shown: every flagged or reviewed one, and per class the " + D.band + " kept ones nearest the threshold.";
  const cls = document.getElementById("f-class");
  option(cls, "", "all classes");
  D.classes.forEach((c, i) => option(cls, String(i), c));
  const sig = document.getElementById("f-signal");
  D.signals.forEach((s, i) => option(sig, String(i), s));
  const lab = document.getElementById("d-label");
  D.classes.forEach((c, i) => option(lab, String(i), c));
  if (D.has_truth) document.getElementById("poison-filter").hidden = false;
  const columns = ["class", "samples", "keep", "relabel", "drop", "reviewed"].concat(D.has_truth ? ["poisons", "poisons_flagged"] : []);
  const head = document.querySelector("#summary thead tr");
  columns.concat(["suspected target"]).forEach(k => head.append(el("th", k === "poisons_flagged" ? "poisons flagged" : k)));
  const body = document.querySelector("#summary tbody");
  for (const row of D.per_class) {
    const tr = el("tr");
    for (const k of columns) tr.append(el("td", row[k]));
    tr.append(el("td", D.targets.includes(row.class) ? "yes" : "", "target"));
    body.append(tr);
  }
  const who = document.getElementById("who");
  who.value = stored("sanitizer-reviewer", "");
  who.addEventListener("change", () => store("sanitizer-reviewer", who.value));
}

function visible(s) {
  const f = document.getElementById("f-decision").value;
  if (document.getElementById("f-poison").checked && !s.poison) return false;
  if (f === "flagged") return s.decision !== "keep" && !s.band;
  if (f === "band") return s.band;
  if (f === "review") return s.source === "review" || choices.has(s.id);
  if (f === "all") return true;
  return s.decision === f;
}

function card(s) {
  const c = el("div", null, "card " + (s.band ? "band" : s.decision) + (choices.has(s.id) ? " chosen" : ""));
  c.dataset.id = s.id;
  const img = el("img");
  img.src = s.thumb;
  img.alt = s.id;
  c.append(img);
  if (s.poison) c.append(el("span", "poison", "poison"));
  const mine = choices.get(s.id);
  const what = mine ? "you: " + mine.decision + (mine.decision === "relabel" ? " → " + D.classes[mine.label] : "")
    : s.decision + (s.new_label === s.label ? "" : s.decision === "relabel" ? " → " + D.classes[s.new_label] : " (clean model: " + D.classes[s.new_label] + ")");
  c.append(el("div", what, "line"));
  c.append(el("div", "confidence " + fmt(s.confidence), "line"));
  c.append(el("div", D.signals[rank()] + " " + fmt(s.signals[rank()]), "line"));
  c.append(el("div", s.id, "line id"));
  c.addEventListener("click", () => openDetail(s));
  return c;
}

function rank() { return Number(document.getElementById("f-signal").value || 0); }

function render() {
  const root = document.getElementById("classes");
  root.replaceChildren();
  const only = document.getElementById("f-class").value;
  const r = rank();
  D.classes.forEach((name, k) => {
    if (only !== "" && Number(only) !== k) return;
    const rows = D.samples.filter(s => s.label === k && visible(s))
      .sort((a, b) => b.signals[r] - a.signals[r] || (a.id < b.id ? -1 : 1));
    const sec = el("section", null, "class");
    sec.dataset.class = name;
    sec.append(el("h2", name + " (" + rows.length + ")" + (D.targets.includes(name) ? " — suspected target" : "")));
    const grid = el("div", null, "grid");
    const n = shownPerClass.get(k) || PAGE;
    rows.slice(0, n).forEach(s => grid.append(card(s)));
    sec.append(grid);
    if (rows.length > n) {
      const more = el("button", "show " + Math.min(PAGE, rows.length - n) + " more of " + (rows.length - n), "more");
      more.addEventListener("click", () => { shownPerClass.set(k, n + PAGE); render(); });
      sec.append(more);
    }
    root.append(sec);
  });
  document.getElementById("pending").textContent = choices.size + (choices.size === 1 ? " choice" : " choices");
  document.getElementById("export").disabled = choices.size === 0;
}

function openDetail(s) {
  current = s;
  document.getElementById("d-image").src = s.thumb;
  const t = document.getElementById("d-fields");
  t.replaceChildren();
  const rows = [["sample id", s.id], ["given label", D.classes[s.label]], ["decision", s.decision],
    [s.decision === "relabel" ? "new label" : "clean model's label", s.new_label !== s.label ? D.classes[s.new_label] : ""], ["confidence", fmt(s.confidence)],
    ["reason", s.reason], ["source", s.source]];
  D.signals.forEach((name, i) => rows.push([name, fmt(s.signals[i])]));
  if (D.has_truth) rows.push(["poison (benchmark truth)", s.poison ? "yes" : "no"]);
  const mine = choices.get(s.id);
  if (mine) rows.push(["your choice", mine.decision + (mine.decision === "relabel" ? " → " + D.classes[mine.label] : "")]);
  for (const [k, v] of rows) {
    const tr = el("tr");
    tr.append(el("th", k), el("td", v));
    t.append(tr);
  }
  // Relabelling needs another class than the given one: start on the clean model's pick
  // when it differs, else on the next class.
  const start = mine && mine.decision === "relabel" ? mine.label : s.new_label !== s.label ? s.new_label : (s.label + 1) % D.classes.length;
  document.getElementById("d-label").value = String(start);
  relabelButton();
  document.getElementById("d-note").value = mine ? mine.note : "";
  document.getElementById("detail").hidden = false;
}

function relabelButton() {
  const same = current && Number(document.getElementById("d-label").value) === current.label;
  const button = document.querySelector("button[data-decision=relabel]");
  button.disabled = same;
  button.title = same ? "that is its given label: choose another class, or Keep" : "";
}

function closeDetail() { document.getElementById("detail").hidden = true; current = null; }

function choose(decision) {
  const label = decision === "relabel" ? Number(document.getElementById("d-label").value) : null;
  const who = document.getElementById("who").value;
  choices.set(current.id, { decision, label, who, note: document.getElementById("d-note").value, when: new Date().toISOString() });
  save();
}
function save() {
  if (!store(STORE, [...choices])) document.getElementById("pending").title = "this browser keeps no storage for the page: download before closing it";
  closeDetail();
  render();
}

function csvField(v) {
  const s = v === null || v === undefined ? "" : String(v);
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

function download() {
  const lines = [D.columns.join(",")];
  for (const [id, c] of [...choices].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const row = { sample_id: id, decision: c.decision, label: c.decision === "relabel" ? D.classes[c.label] : "", who: c.who, when: c.when, note: c.note };
    lines.push(D.columns.map(k => csvField(row[k])).join(","));
  }
  const a = el("a");
  a.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
  a.download = "reviews-" + new Date().toISOString().slice(0, 10) + ".csv";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

header();
for (const id of ["f-class", "f-decision", "f-signal", "f-poison"]) document.getElementById(id).addEventListener("change", render);
document.querySelectorAll("[data-decision]").forEach(b => b.addEventListener("click", () => choose(b.dataset.decision)));
document.getElementById("d-undo").addEventListener("click", () => { choices.delete(current.id); save(); });
document.getElementById("d-label").addEventListener("change", relabelButton);
document.getElementById("close").addEventListener("click", closeDetail);
document.getElementById("detail").addEventListener("click", e => { if (e.target.id === "detail") closeDetail(); });
document.addEventListener("keydown", e => { if (e.key === "Escape") closeDetail(); });
document.getElementById("export").addEventListener("click", download);
render();

// The alignment editor: shows a review turn by turn and sends each operation to the server,
// which saves it at once (version-checked) and answers the splice of the bead list to apply.
"use strict";

(function editor() {
  const root = document.getElementById("editor");
  if (!root) return;
  const reviewId = root.dataset.review;
  const canWrite = root.dataset.canWrite === "yes";
  const list = document.getElementById("beads");
  const message = document.getElementById("message");
  const summaryLine = document.getElementById("summary");
  let review = null; // {sections, beads, version, min_score, summary}
  let selected = 0;
  let pairing = null; // id of the first unpaired bead chosen for "pair"
  let busy = false;

  const join = (sentences, side) => sentences.join(side === "zh" ? "" : " ");
  const paired = (b) => b.zh.length > 0 && b.en.length > 0;
  const doubtful = (b) => b.status === "pending" &&
    (!paired(b) || (b.score !== null && b.score < review.min_score));

  function say(text, isError = true) {
    message.hidden = !text;
    message.textContent = text || "";
    message.className = isError ? "alert" : "hint";
  }

  function showSummary() {
    const s = review.summary;
    summaryLine.textContent = `${s.beads} pairs · ${s.confirmed} confirmed · ${s.rejected} rejected · ` +
      `${s.doubtful} below ${review.min_score} · ${s.unpaired} unpaired · version ${review.version}` +
      (review.finished_by ? ` · finished by ${review.finished_by}` : "");
  }

  function heading(section) {
    const h = document.createElement("h2");
    const none = section.turn === null ? "" : "(procedural)";
    for (const [text, lang] of [[section.zh_speaker, "zh"], [section.en_speaker, "en"]]) {
      const span = document.createElement("span");
      span.lang = lang;
      span.className = lang;
      if (text) span.textContent = text;
      else { span.textContent = none; span.classList.add("procedural"); }
      h.appendChild(span);
    }
    const turn = document.createElement("span");
    turn.className = "turnno";
    turn.textContent = section.turn === null ? "" : "turn " + section.turn;
    h.appendChild(turn);
    return h;
  }

  function beadRow(bead, index) {
    const row = document.createElement("div");
    row.className = "bead " + bead.status;
    if (!paired(bead)) row.classList.add("unpaired");
    else if (doubtful(bead)) row.classList.add("doubtful");
    if (index === selected) row.classList.add("selected");
    if (pairing === bead.id) row.classList.add("pairing");
    row.dataset.index = index;
    row.dataset.id = bead.id;
    for (const side of ["zh", "en"]) {
      const cell = document.createElement("div");
      cell.className = "side " + side;
      cell.lang = side;
      for (const sentence of bead[side]) {
        const span = document.createElement("span");
        span.className = "sent";
        span.textContent = sentence;
        cell.appendChild(span);
        if (side === "en") cell.appendChild(document.createTextNode(" "));
      }
      row.appendChild(cell);
    }
    const meta = document.createElement("div");
    meta.className = "meta";
    // No score: a sentence the aligner left alone, or a pair the reviewer made or changed.
    const label = bead.score !== null ? bead.score.toFixed(2) : paired(bead) ? "edited" : "";
    meta.textContent = label;
    meta.title = bead.status + (bead.score !== null ? " (aligner's score)"
      : paired(bead) ? " (changed by the reviewer)" : " (no counterpart)");
    row.appendChild(meta);
    return row;
  }

  function render() {
    const fragment = document.createDocumentFragment();
    let current = null;
    let block = null;
    review.beads.forEach((bead, index) => {
      if (bead.section !== current) {
        current = bead.section;
        block = document.createElement("section");
        block.className = "section";
        block.dataset.section = current;
        block.appendChild(heading(review.sections[current]));
        fragment.appendChild(block);
      }
      block.appendChild(beadRow(bead, index));
    });
    list.replaceChildren(fragment);
    showSummary();
  }

  function select(index, scroll = true) {
    if (!review.beads.length) return;
    selected = Math.max(0, Math.min(index, review.beads.length - 1));
    list.querySelectorAll(".bead.selected").forEach((el) => el.classList.remove("selected"));
    const row = list.querySelector(`.bead[data-index="${selected}"]`);
    if (row) {
      row.classList.add("selected");
      if (scroll) row.scrollIntoView({ block: "nearest" });
    }
  }

  async function load() {
    review = await Concordia.call("GET", `/reviews/${reviewId}`);
    render();
    select(selected, false);
  }

  async function send(op) {
    if (!canWrite) { say("Log in with a write key to change this review."); return null; }
    if (busy) return null;
    busy = true;
    try {
      const answer = await Concordia.call("POST", `/reviews/${reviewId}/changes`,
        { version: review.version, ...op });
      review.beads.splice(answer.start, answer.removed, ...answer.beads);
      review.version = answer.version;
      review.summary = answer.summary;
      selected = Math.min(answer.start, review.beads.length - 1);
      render();
      select(selected);
      say("");
      return answer;
    } catch (err) {
      if (err.code === "review_changed") {
        say(err.message + " Reloaded the current state.");
        await load();
      } else {
        say(err.message);
      }
      return null;
    } finally {
      busy = false;
    }
  }

  const bead = () => review.beads[selected];

  function nextDoubt(step) {
    const n = review.beads.length;
    for (let k = 1; k <= n; k++) {
      const i = (selected + step * k + n) % n;
      if (doubtful(review.beads[i])) { select(i); return; }
    }
    say("No doubtful pair left.", false);
  }

  function splitDialog() {
    const b = bead();
    const dialog = document.getElementById("split-dialog");
    for (const side of ["zh", "en"]) {
      const area = document.getElementById("split-" + side);
      area.value = join(b[side], side);
      const ends = document.getElementById(`split-${side}-ends`);
      ends.replaceChildren();
      let pos = 0;
      // The end of the last sentence is no split: a button after each sentence but the last.
      b[side].slice(0, -1).forEach((sentence, k) => {
        pos += sentence.length + (k > 0 && side === "en" ? 1 : 0);
        const at = pos;
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = "after sentence " + (k + 1);
        button.addEventListener("click", () => { area.focus(); area.setSelectionRange(at, at); });
        ends.appendChild(button);
      });
      const first = b[side].length ? b[side][0].length : 0;
      area.setSelectionRange(first, first);
    }
    dialog.onclose = () => {
      if (dialog.returnValue !== "ok") return;
      const op = { op: "split", bead: b.id };
      for (const side of ["zh", "en"]) {
        if (b[side].length) op[side] = document.getElementById("split-" + side).selectionStart;
      }
      send(op);
    };
    dialog.showModal();
  }

  function editDialog() {
    const b = bead();
    const dialog = document.getElementById("edit-dialog");
    const before = { zh: join(b.zh, "zh"), en: join(b.en, "en") };
    for (const side of ["zh", "en"]) document.getElementById("edit-" + side).value = before[side];
    dialog.onclose = async () => {
      if (dialog.returnValue !== "ok") return;
      let id = b.id;
      for (const side of ["zh", "en"]) {
        const text = document.getElementById("edit-" + side).value;
        if (text.trim() === before[side]) continue;
        const answer = await send({ op: "edit", bead: id, side, text });
        if (!answer) {
          // refused (too long, stale, no key): the dialog comes back with the text as typed
          if (id === b.id && review.beads.some((x) => x.id === id)) dialog.showModal();
          return;
        }
        id = answer.beads[0].id;
      }
    };
    dialog.showModal();
  }

  function finishDialog() {
    const dialog = document.getElementById("finish-dialog");
    document.getElementById("finish-count").textContent =
      `${review.summary.confirmed} confirmed pairs will be written (${review.summary.pending} still pending).`;
    document.getElementById("finish-result").textContent = "";
    dialog.onclose = async () => {
      if (dialog.returnValue !== "ok") return;
      try {
        const answer = await Concordia.call("POST", `/reviews/${reviewId}/finish`, {
          version: review.version,
          add_to_memory: document.getElementById("finish-memory").checked,
        });
        const added = answer.imported ? `; ${answer.imported.imported} new in the memory` : "";
        say(`Finished: ${answer.confirmed} confirmed pairs${added}. `, false);
        const link = document.createElement("a");
        link.href = answer.tmx;
        link.textContent = "Download the TMX";
        link.id = "finished-tmx";
        message.appendChild(link);
        review.finished_by = answer.reviewer;
        showSummary();
      } catch (err) {
        say(err.message);
        if (err.code === "review_changed") await load();
      }
    };
    dialog.showModal();
  }

  function pairWith() {
    const b = bead();
    if (paired(b)) { say("Choose an unpaired sentence to pair."); return; }
    if (pairing === null || pairing === b.id) {
      pairing = pairing === b.id ? null : b.id;
      render();
      select(selected, false);
      if (pairing !== null) say("Now choose the unpaired sentence of the other language and press P.", false);
      return;
    }
    const first = pairing;
    pairing = null;
    send({ op: "pair", bead: first, with: b.id });
  }

  const actions = {
    "prev-doubt": () => nextDoubt(-1),
    "next-doubt": () => nextDoubt(1),
    confirm: () => send({ op: "status", bead: bead().id, status: "confirmed" }),
    reject: () => send({ op: "status", bead: bead().id, status: "rejected" }),
    confirm_turn: async () => {
      const section = bead().section;
      const answer = await send({ op: "confirm_turn", section });
      if (!answer) return;
      const left = review.beads.filter((b) => b.section === section && b.status === "pending");
      say(left.length
        ? `Confirmed the sure pairs of this turn; ${left.length} doubtful or unpaired ` +
          `${left.length === 1 ? "stays" : "stay"} for you to decide (N goes to the next).`
        : "Confirmed every pair of this turn.", false);
    },
    merge: () => send({ op: "merge", bead: bead().id }),
    split: splitDialog,
    unpair: () => send({ op: "unpair", bead: bead().id }),
    pair: pairWith,
    edit: editDialog,
    "move-zh-prev": () => send({ op: "move", bead: bead().id, side: "zh", to: "prev" }),
    "move-zh-next": () => send({ op: "move", bead: bead().id, side: "zh", to: "next" }),
    "move-en-prev": () => send({ op: "move", bead: bead().id, side: "en", to: "prev" }),
    "move-en-next": () => send({ op: "move", bead: bead().id, side: "en", to: "next" }),
    undo: () => send({ op: "undo" }),
    redo: () => send({ op: "redo" }),
    finish: finishDialog,
  };

  const keys = {
    ArrowDown: () => select(selected + 1), j: () => select(selected + 1),
    ArrowUp: () => select(selected - 1), k: () => select(selected - 1),
    n: actions["next-doubt"], N: actions["prev-doubt"],
    c: actions.confirm, x: actions.reject, t: actions.confirm_turn, m: actions.merge,
    s: actions.split, u: actions.unpair, p: actions.pair, e: actions.edit,
    "[": actions["move-zh-prev"], "]": actions["move-zh-next"],
    "{": actions["move-en-prev"], "}": actions["move-en-next"],
  };

  document.querySelector(".toolbar").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-op]");
    if (button && review) actions[button.dataset.op]();
  });
  list.addEventListener("click", (event) => {
    const row = event.target.closest(".bead");
    if (row) select(Number(row.dataset.index), false);
  });
  list.addEventListener("dblclick", (event) => {
    if (event.target.closest(".bead")) editDialog();
  });
  document.addEventListener("keydown", (event) => {
    if (!review || document.querySelector("dialog[open]")) return;
    if (event.target.closest("input, textarea, select")) return;
    if (event.ctrlKey || event.metaKey) {
      const key = event.key.toLowerCase();
      if (key === "z" && !event.shiftKey) { event.preventDefault(); actions.undo(); }
      else if (key === "y" || (key === "z" && event.shiftKey)) { event.preventDefault(); actions.redo(); }
      return;
    }
    if (event.altKey) return;
    const action = keys[event.key];
    if (action) { event.preventDefault(); action(); }
  });
  document.getElementById("sheet-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file);
    try {
      const answer = await Concordia.call("POST", `/reviews/${reviewId}/sheet`, form);
      await load();
      say(`Sheet imported: ${answer.changed} pairs changed (undo brings them back).`, false);
    } catch (err) { say(err.message); }
    event.target.value = "";
  });

  load().catch((err) => say(err.message));
})();

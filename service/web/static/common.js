// Helpers every page uses: fetch with the page's CSRF token, error messages, memory actions.
"use strict";

const Concordia = {
  csrf() {
    return document.querySelector('meta[name="csrf-token"]').content;
  },
  // fetch that sends the login cookie and the CSRF token; answers parsed JSON or throws
  // an Error whose message is the API's (with .status and .code).
  async call(method, url, body) {
    const headers = { "X-CSRF-Token": Concordia.csrf() };
    let payload = body;
    if (body !== undefined && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
    } catch (err) {
      throw Object.assign(new Error("the server cannot be reached; nothing was saved"), { status: 0 });
    }
    let data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    if (!response.ok) {
      const error = (data && data.error) || { code: "http_" + response.status, message: response.statusText };
      throw Object.assign(new Error(Concordia.explain(error, response.status)), {
        status: response.status, code: error.code,
      });
    }
    return data;
  },
  explain(error, status) {
    if (error.code === "invalid_api_key" || error.code === "missing_api_key") {
      return "Your key is not accepted (it may have been changed or revoked). Log in again: " +
             "nothing saved is lost. (" + error.message + ")";
    }
    return error.message;
  },
};

// Search page: a segment over the lookup limit is not sent (a URL that long would be refused
// before the service could explain); the text stays in the box.
// GET forms leave out the fields left empty, so that the address names only the filters given.
document.querySelectorAll('form[method="get"]').forEach((form) => {
  form.addEventListener("submit", () => {
    form.querySelectorAll("input[name], select[name]").forEach((field) => {
      field.disabled = field.value.trim() === "";
    });
    // Enabled again once the browser has read the form (going back shows them as they were).
    setTimeout(() => form.querySelectorAll("[name]").forEach((f) => { f.disabled = false; }), 0);
  });
});

(function searchPage() {
  const form = document.getElementById("search-form");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    const box = form.querySelector("textarea[name=q]");
    const limit = Number(box.dataset.max);
    const note = document.getElementById("search-too-long");
    if (box.value.trim().length > limit) {
      event.preventDefault();
      note.hidden = false;
      note.textContent = `The segment has ${box.value.trim().length.toLocaleString()} characters; ` +
        `a lookup takes at most ${limit.toLocaleString()}. Shorten it and search again.`;
    } else {
      note.hidden = true;
    }
  });
})();

// Memory page: import with upload progress, delete a unit.
(function memoryPage() {
  const form = document.getElementById("import-form");
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const bar = document.getElementById("import-progress");
      const status = document.getElementById("import-status");
      const request = new XMLHttpRequest();
      request.open("POST", "/tm/import");
      request.setRequestHeader("X-CSRF-Token", Concordia.csrf());
      bar.hidden = false;
      bar.value = 0;
      request.upload.onprogress = (e) => {
        if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
        status.textContent = bar.value < 100 ? "uploading… " + bar.value + " %" : "importing…";
      };
      request.onload = () => {
        let data = {};
        try { data = JSON.parse(request.responseText); } catch (err) { data = {}; }
        if (request.status === 202) {
          // The import runs as a job: follow it until it is done.
          const follow = async () => {
            const job = await Concordia.call("GET", "/jobs/" + data.id);
            const p = job.progress;
            if (job.state === "queued" || job.state === "running") {
              status.textContent = `importing… ${p.done}` + (p.total ? ` of ${p.total}` : "") + " units read";
              setTimeout(follow, 500);
            } else if (job.state === "done") {
              const m = job.memory;
              status.textContent = `imported ${m.imported}, merged ${m.merged}, replaced ${m.replaced}, skipped ${m.skipped} in ${m.total_seconds} s`;
            } else {
              status.textContent = "not imported: " + (job.error || job.state);
            }
          };
          follow().catch((e) => { status.textContent = "not imported: " + e.message; });
        } else {
          const e = data.error || { message: request.statusText };
          status.textContent = "not imported: " + Concordia.explain(e, request.status);
        }
      };
      request.onerror = () => { status.textContent = "the server cannot be reached"; };
      request.send(new FormData(form));
    });
  }
  const del = document.getElementById("delete-form");
  if (del) {
    del.addEventListener("submit", async (event) => {
      event.preventDefault();
      const id = new FormData(del).get("unit");
      const status = document.getElementById("delete-status");
      try {
        await Concordia.call("DELETE", "/tm/units/" + encodeURIComponent(id));
        status.textContent = "unit " + id + " deleted";
      } catch (err) { status.textContent = err.message; }
    });
  }
  // Edit a unit (search page): read it with its version, PATCH it back with that version.
  const dialog = document.getElementById("unit-dialog");
  document.querySelectorAll("[data-edit-unit]").forEach((button) => {
    button.addEventListener("click", async () => {
      const id = button.dataset.editUnit;
      const status = document.getElementById("unit-status");
      let unit;
      try { unit = await Concordia.call("GET", "/tm/units/" + id); }
      catch (err) { window.alert(err.message); return; }
      document.getElementById("unit-id").textContent = id;
      document.getElementById("unit-zh").value = unit.zh;
      document.getElementById("unit-en").value = unit.en;
      status.hidden = true;
      dialog.onclose = null;
      document.getElementById("unit-save").onclick = async (event) => {
        event.preventDefault();
        const edit = { version: unit.version };
        for (const side of ["zh", "en"]) {
          const text = document.getElementById("unit-" + side).value;
          if (text !== unit[side]) edit[side] = text;
        }
        try {
          const answer = await Concordia.call("PATCH", "/tm/units/" + id, edit);
          dialog.close();
          const item = button.closest("li");
          item.dataset.unit = answer.unit.id;
          const order = item.dataset.source === "en" ? ["en", "zh"] : ["zh", "en"];
          item.querySelector(".pair").replaceChildren(
            ...order.map((side) => {
              const p = document.createElement("p");
              p.className = "seg " + side;
              p.lang = side;
              p.textContent = answer.unit[side + "_plain"] || answer.unit[side];
              return p;
            }));
        } catch (err) {
          status.hidden = false; // the dialog stays open with the text as typed
          status.textContent = err.message;
        }
      };
      dialog.showModal();
    });
  });
  document.querySelectorAll("[data-delete-unit]").forEach((button) => {
    button.addEventListener("click", async () => {
      const id = button.dataset.deleteUnit;
      if (!window.confirm("Delete unit " + id + " from the memory?")) return;
      try {
        await Concordia.call("DELETE", "/tm/units/" + id);
        button.closest("li, tr").remove();
      } catch (err) { window.alert(err.message); }
    });
  });
  const upload = document.getElementById("review-upload");
  if (upload) {
    upload.addEventListener("submit", async (event) => {
      event.preventDefault();
      const status = document.getElementById("upload-status");
      status.textContent = "aligning…";
      try {
        const data = await Concordia.call("POST", "/reviews", new FormData(upload));
        window.location.href = data.page;
      } catch (err) { status.textContent = err.message; }
    });
  }
  document.querySelectorAll("[data-review-job]").forEach((button) => {
    button.addEventListener("click", async () => {
      button.disabled = true;
      button.textContent = "aligning…";
      try {
        const data = await Concordia.call("POST", `/reviews/from-job/${button.dataset.reviewJob}/${encodeURIComponent(button.dataset.reviewPair)}`);
        window.location.href = data.page;
      } catch (err) { button.textContent = err.message; }
    });
  });
})();

// Chunked uploads for <div data-upload-store="..." data-upload-progress="..." data-accept="..." [data-multiple="1"]>.
// Each file goes to /api/uploads in 8 MB pieces (PUT ?offset=N), so a multi-gigabyte video never sits
// in memory or in a base64 string; when it is complete the upload token lands in the dcc.Store.
(function () {
  "use strict";
  const CHUNK = 8 * 1024 * 1024;
  const RETRIES = 3;

  function setProps(id, props) {
    window.dash_clientside.set_props(id, props);
  }

  function sendChunk(token, offset, blob, onProgress) {
    return new Promise(function (resolve, reject) {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", "/api/uploads/" + token + "?offset=" + offset);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.onprogress = function (event) { onProgress(event.loaded); };
      xhr.onload = function () {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300) { resolve(body); }
        else { reject(Object.assign(new Error(body.error || xhr.statusText), { fatal: xhr.status < 500 })); }
      };
      xhr.onerror = function () { reject(new Error("network error")); };
      xhr.send(blob);
    });
  }

  // One file to /api/uploads in pieces; onSent(bytes of this file sent so far). Resolves to what the store holds.
  async function send(file, onSent) {
    const started = await fetch("/api/uploads", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ filename: file.name }),
    });
    const { token } = await started.json();
    let offset = 0;
    while (offset < file.size) {
      const blob = file.slice(offset, offset + CHUNK);
      for (let attempt = 1; ; attempt++) {
        try {
          const answer = await sendChunk(token, offset, blob, function (loaded) { onSent(offset + loaded); });
          offset = answer.size;
          break;
        } catch (error) {
          if (error.fatal || attempt >= RETRIES) { throw error; }
          await new Promise(function (r) { setTimeout(r, 1000 * attempt); });
        }
      }
    }
    return { token: token, filename: file.name, size: file.size };
  }

  // The files one after the other, with one progress bar; the store gets one upload, or a list of them for a
  // picker marked data-multiple.
  async function upload(files, storeId, progressId, many) {
    const total = files.reduce(function (sum, file) { return sum + file.size; }, 0);
    let before = 0;
    const show = function (sent) {
      const pct = total ? Math.min(100, (100 * (before + sent)) / total) : 100;
      setProps(progressId, { value: pct, label: pct.toFixed(0) + " %", color: "primary", animated: pct < 100, striped: pct < 100 });
    };
    setProps(storeId, { data: null });
    show(0);
    const sent = [];
    for (const file of files) {
      sent.push(await send(file, show));
      before += file.size;
    }
    show(0);
    setProps(progressId, { color: "success", label: many && files.length > 1 ? files.length + " files uploaded" : "uploaded" });
    setProps(storeId, { data: many ? sent : sent[0] });
  }

  // Dash has no plain <input type=file>: put one into each placeholder div as it appears on a page.
  function mountInputs() {
    document.querySelectorAll("div[data-upload-store]:not([data-mounted])").forEach(function (holder) {
      const input = document.createElement("input");
      input.type = "file";
      input.accept = holder.dataset.accept || "";
      input.multiple = holder.dataset.multiple === "1";
      input.className = "form-control";
      input.id = holder.id + "-input";
      holder.appendChild(input);
      holder.dataset.mounted = "1";
    });
  }
  new MutationObserver(mountInputs).observe(document.documentElement, { childList: true, subtree: true });

  document.addEventListener("change", function (event) {
    const input = event.target;
    const holder = input.parentElement;
    if (input.type !== "file" || !holder || !holder.dataset.uploadStore) { return; }
    const progressId = holder.dataset.uploadProgress;
    if (!input.files.length) {  // the picker was emptied: nothing picked any more
      setProps(holder.dataset.uploadStore, { data: null });
      setProps(progressId, { value: 0, label: "" });
      return;
    }
    const many = input.multiple;
    upload(Array.from(many ? input.files : [input.files[0]]), holder.dataset.uploadStore, progressId, many).catch(function (error) {
      setProps(progressId, { value: 100, color: "danger", animated: false, label: "failed: " + error.message });
    });
  });
})();

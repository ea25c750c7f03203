// The web page: send picked or dropped photos to /v1/classify, draw each face's box and label.
"use strict";
const CHUNK = 16;  // files per request, well under the server's limits
const REASONS = {
  not_an_image: "This file is not an image this server can read.",
  empty_file: "This file is empty.",
  too_large: "This image has too many pixels.",
  truncated: "This image file is cut short (truncated).",
  corrupt: "This image file is damaged.",
  bad_base64: "The image data was not valid base64.",
  unexpected: "Something unexpected went wrong with this file.",
};
const $ = (id) => document.getElementById(id);

function say(text) { $("status").textContent = text; }

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function drawBox(photo, img, face, whole) {
  const [x1, y1, x2, y2] = whole ? [0, 0, img.naturalWidth, img.naturalHeight] : face.box;
  const w = img.naturalWidth, h = img.naturalHeight;
  const box = el("div", "box " + face.gender);
  box.style.left = (100 * Math.max(0, x1) / w) + "%";
  box.style.top = (100 * Math.max(0, y1) / h) + "%";
  box.style.width = (100 * (Math.min(w, x2) - Math.max(0, x1)) / w) + "%";
  box.style.height = (100 * (Math.min(h, y2) - Math.max(0, y1)) / h) + "%";
  box.appendChild(el("span", "label", `${face.gender} ${face.probability.toFixed(2)}`));
  photo.appendChild(box);
}

function describe(result) {
  if (result.error) return REASONS[result.error] || `This file could not be classified (${result.error}).`;
  if (result.faces) {
    const n = result.faces.length;
    if (!n) return "No face found in this photo.";
    const counts = result.faces.reduce((c, f) => (c[f.gender] = (c[f.gender] || 0) + 1, c), {});
    return `${n} face${n > 1 ? "s" : ""}: ` + Object.entries(counts).map(([g, k]) => `${k} ${g}`).join(", ");
  }
  return `${result.gender}, probability ${result.probability.toFixed(2)}`;
}

function showResult(card, file, result) {
  const text = el("p", "summary" + (result.error ? " error" : ""), describe(result));
  if (result.error && result.message) text.appendChild(el("small", "message", " " + result.message));
  card.appendChild(text);
  const json = el("details", "json");
  json.appendChild(el("summary", null, "JSON"));
  json.appendChild(el("pre", null, JSON.stringify(result, null, 2)));
  card.appendChild(json);
  if (result.error) return;
  const photo = el("div", "photo");
  const img = new Image();
  img.alt = file.name;
  img.onload = () => {
    const faces = result.faces || [result];
    faces.forEach((f) => drawBox(photo, img, f, !result.faces));
    card.dataset.drawn = String(faces.length);
  };
  img.onerror = () => { card.dataset.drawn = "0"; photo.appendChild(el("p", null, "(the browser cannot show this format)")); };
  img.src = URL.createObjectURL(file);
  photo.appendChild(img);
  card.insertBefore(photo, text);
}

async function send(files) {
  const crops = $("crops").checked;
  const headers = {};
  if ($("key").value) headers["X-API-Key"] = $("key").value;
  const all = [];
  const anchor = $("results").firstChild;  // this drop's cards go on top, in the order picked
  for (let i = 0; i < files.length; i += CHUNK) {
    const part = files.slice(i, i + CHUNK);
    const cards = part.map((f) => {
      const card = el("article", "card");
      card.appendChild(el("h2", null, f.name));
      $("results").insertBefore(card, anchor);
      return card;
    });
    say(`Classifying ${i + 1}-${i + part.length} of ${files.length}...`);
    const form = new FormData();
    part.forEach((f) => form.append("files", f, f.name));
    let response, body;
    try {
      response = await fetch(`/v1/classify${crops ? "" : "?detect=true"}`, { method: "POST", body: form, headers });
      body = await response.json();
    } catch (e) {
      say(`The server could not be reached: ${e}`);
      return;
    }
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      say(response.status === 401 ? "This server needs an API key: enter it above and try again." : `Refused (${response.status}): ${detail}`);
      cards.forEach((c) => c.remove());
      return;
    }
    body.results.forEach((r, k) => showResult(cards[k], part[k], r));
    all.push(...body.results);
  }
  $("raw-json").textContent = JSON.stringify({ results: all }, null, 2);
  say(`Done: ${files.length} file${files.length > 1 ? "s" : ""}.`);
}

$("pick").addEventListener("change", (e) => { send([...e.target.files]); e.target.value = ""; });
const drop = $("drop");
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (e) => send([...e.dataTransfer.files]));

// Cloister console: small enhancements only; every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // The account switcher moves on choice.
  for (const sel of document.querySelectorAll("select[data-autosubmit]")) {
    sel.addEventListener("change", () => { if (sel.value) sel.form.submit(); });
  }
  // Destructive buttons ask first.
  for (const b of document.querySelectorAll("[data-confirm]")) {
    b.addEventListener("click", (e) => { if (!window.confirm(b.dataset.confirm)) e.preventDefault(); });
  }
  // Copy buttons copy the text of the element they name.
  for (const b of document.querySelectorAll("button[data-copy]")) {
    b.hidden = false;
    b.addEventListener("click", async () => {
      const el = document.getElementById(b.dataset.copy);
      try {
        await navigator.clipboard.writeText(el.textContent.trim());
        b.textContent = "Copied";
      } catch {
        const r = document.createRange(); r.selectNodeContents(el);
        const s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
        b.textContent = "Selected: press Ctrl+C";
      }
      setTimeout(() => { b.textContent = "Copy"; }, 2000);
    });
  }
  // Pages showing work in progress (a conversion) poll their JSON and
  // reload once it is finished.
  const live = document.querySelector("[data-poll]");
  if (live) {
    const tick = async () => {
      try {
        const res = await fetch(live.dataset.poll, { headers: { "Accept": "application/json" }, credentials: "same-origin" });
        if (res.ok) {
          const img = await res.json();
          const bar = live.querySelector("progress");
          const text = live.querySelector("[data-progress-text]");
          const p = img.progress || {};
          if (bar && p.total_bytes > 0) { bar.max = p.total_bytes; bar.value = p.bytes; }
          if (text) text.textContent = `${img.status}: ${p.phase || "waiting"} ${p.layers || 0}/${p.total_layers || 0} layers`;
          if (img.status === "converted" || img.status === "failed") { window.location.reload(); return; }
        }
      } catch { /* the next tick tries again */ }
      setTimeout(tick, 1000);
    };
    setTimeout(tick, 1000);
  }
});

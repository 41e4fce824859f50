/* yardlab hub service: shared helpers. Every user-authored string reaches the page through
   textContent (el()), never through innerHTML. */
'use strict';
(function () {
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || '';
  const base = meta('yardlab-base');

  async function api(path, options) {
    const opts = Object.assign({ method: 'GET', credentials: 'same-origin', headers: {} }, options || {});
    // JupyterHub checks XSRF on every cookie-authenticated fetch(), GETs included
    opts.headers['X-XSRFToken'] = meta('yardlab-xsrf');
    const resp = await fetch(base + 'api/v1/' + path, opts);
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const err = new Error((body && body.message) || `HTTP ${resp.status}`);
      err.status = resp.status;
      throw err;
    }
    return body;
  }

  /** el('td', {className: 'x'}, 'text', otherNode): text children become text nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'dataset') { Object.assign(node.dataset, v); } else if (k in node) { node[k] = v; } else { node.setAttribute(k, v); }
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function fmtMB(mb) {
    if (!mb) return '0';
    return mb >= 1024 ? (mb / 1024).toFixed(1) + ' GB' : mb + ' MB';
  }
  function fmtDuration(ms) {
    const s = Math.floor((ms || 0) / 1000);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
    return Math.floor(s / 3600) + 'h' + String(Math.floor((s % 3600) / 60)).padStart(2, '0') + 'm';
  }
  function fmtTime(ms) {
    return ms ? new Date(ms).toLocaleString() : '–';
  }
  function showError(message) {
    const box = document.getElementById('yl-error');
    if (!box) return;
    box.textContent = message || '';
    box.classList.toggle('d-none', !message);
  }
  /** Run fn now and every `ms` while the tab is visible. */
  function poll(fn, ms) {
    let timer = null;
    const tick = async () => {
      timer = null;
      if (!document.hidden) {
        try { await fn(); showError(''); } catch (e) { showError(e.message); }
      }
      timer = setTimeout(tick, ms);
    };
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && timer !== null) { clearTimeout(timer); tick(); }
    });
    tick();
  }
  function setBar(bar, fraction) {
    const pct = Math.max(0, Math.min(100, fraction * 100));
    bar.style.width = pct.toFixed(1) + '%';
    bar.setAttribute('aria-valuenow', pct.toFixed(0));
    bar.classList.toggle('bg-danger', pct >= 90);
    bar.classList.toggle('bg-warning', pct >= 70 && pct < 90);
  }

  window.yl = { api, el, fmtMB, fmtDuration, fmtTime, showError, poll, setBar, meta,
                isAdmin: meta('yardlab-admin') === 'true', user: meta('yardlab-user') };
})();

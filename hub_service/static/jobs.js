'use strict';
(function () {
  const { api, el, fmtMB, fmtDuration, fmtTime, isAdmin, showError } = window.yl;
  const $ = (id) => document.getElementById(id);
  const form = $('yl-filters');
  const tbody = $('yl-jobs').tBodies[0];
  const ACTIVE = new Set(['NEW', 'NEW_SAVING', 'SUBMITTED', 'ACCEPTED', 'RUNNING']);
  let apps = [];
  let cursor = null;
  let sort = { key: 'startedTime', desc: true };

  function query(extra) {
    const p = new URLSearchParams();
    const data = new FormData(form);
    const user = isAdmin ? (data.get('user') || '*') : null;
    if (user) p.set('user', user);
    for (const k of ['state', 'queue', 'search']) { if (data.get(k)) p.set(k, data.get(k)); }
    p.set('limit', '500');
    if (extra) p.set('cursor', extra);
    return 'apps?' + p.toString();
  }

  function toast(kind, text) {
    const t = $('yl-toast');
    t.className = `alert alert-${kind} mt-2`;
    t.textContent = text;
  }

  function killButton(app) {
    if (!ACTIVE.has(app.state) || (!isAdmin && app.user !== window.yl.user)) return null;
    const b = el('button', { className: 'btn btn-sm btn-outline-danger', type: 'button' }, 'Kill');
    b.dataset.app = app.id;
    b.addEventListener('click', () => confirmKill(app, b));
    return b;
  }

  function confirmKill(app, button) {
    const dialog = $('yl-kill-dialog');
    $('yl-kill-id').textContent = app.id;
    $('yl-kill-user').textContent = app.user;
    $('yl-kill-name').textContent = app.name;
    dialog.returnValue = '';
    dialog.onclose = async () => {
      if (dialog.returnValue !== 'kill') return;
      button.disabled = true;
      button.textContent = 'Killing…';
      try {
        const r = await api('apps/' + encodeURIComponent(app.id), { method: 'DELETE' });
        toast('success', `${r.id} of ${r.user}: ${r.state}`);
        app.state = r.state;
        render();
      } catch (e) {
        toast('danger', `Could not kill ${app.id}: ${e.message}`);
        button.disabled = false;
        button.textContent = 'Kill';
      }
    };
    dialog.showModal();
  }

  function compare(a, b) {
    const x = a[sort.key], y = b[sort.key];
    const r = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return sort.desc ? -r : r;
  }

  function render() {
    const rows = apps.slice().sort(compare).map((a) => {
      const tr = el('tr', { dataset: { app: a.id } },
        el('td', {}, el('code', {}, a.id), sparkUiCell(a)), el('td', {}, a.user),
        el('td', { className: 'yl-name' }, a.name), el('td', { className: 'yl-notebook' }, notebookCell(a)),
        el('td', {}, a.queue),
        el('td', {}, el('span', { className: 'badge ' + stateClass(a.state) }, a.state),
          a.warm && ACTIVE.has(a.state) ? el('span', {
            className: 'badge bg-info ms-1',
            title: 'a warm kernel: started ahead, as its user, for their next notebook' }, 'warm') : null),
        el('td', {}, fmtMB(a.allocatedMB)), el('td', {}, a.allocatedVCores),
        el('td', {}, fmtTime(a.startedTime)), el('td', {}, fmtDuration(a.elapsedTime)),
        el('td', {}, killButton(a)));
      return tr;
    });
    tbody.replaceChildren(...rows);
    $('yl-count').textContent = `${apps.length} application${apps.length === 1 ? '' : 's'}${cursor ? ' (more available)' : ''}`;
    $('yl-more').classList.toggle('d-none', !cursor);
  }

  // the hub's root (this page is <hub>/services/<name>/jobs): a user's own notebook opens in their Lab
  const hubRoot = location.pathname.slice(0, location.pathname.indexOf('/services/') + 1);

  // the Spark UI through the edge (a path on this address), never YARN's own tracking URL
  function sparkUiCell(a) {
    const url = a.sparkUi || '';
    if ((url.startsWith('/') && !url.startsWith('//')) || url.startsWith('https://') || url.startsWith('http://')) {
      return el('a', { href: url, target: '_blank', rel: 'noopener noreferrer', className: 'yl-sparkui d-block small' },
                'Spark UI');
    }
    return a.sparkUiNote ? el('span', { className: 'yl-sparkui-note d-block small text-muted' }, a.sparkUiNote) : '';
  }

  function notebookCell(a) {
    if (a.session === 'console') return el('span', { className: 'text-muted' }, 'console (no notebook)');
    if (!a.notebook) return a.kernel ? el('span', { className: 'text-muted' }, 'unknown') : '';
    if (a.session !== 'notebook') return el('span', { className: 'text-muted', title: 'the folder it started in' }, a.notebook);
    if (a.user !== window.yl.user) return a.notebook;
    const path = a.notebook.split('/').map(encodeURIComponent).join('/');
    return el('a', { href: `${hubRoot}user/${encodeURIComponent(a.user)}/lab/tree/${path}`,
                     target: '_blank', rel: 'noopener' }, a.notebook);
  }

  function stateClass(s) {
    if (s === 'RUNNING') return 'bg-success';
    if (s === 'KILLED' || s === 'FAILED') return 'bg-danger';
    if (ACTIVE.has(s)) return 'bg-warning text-dark';
    return 'bg-secondary';
  }

  async function load(more) {
    try {
      const page = await api(query(more ? cursor : null));
      apps = more ? apps.concat(page.apps) : page.apps;
      cursor = page.next_cursor;
      showError('');
      render();
    } catch (e) {
      showError(e.message);
    }
  }

  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(false); });
  $('yl-more').addEventListener('click', () => load(true));
  for (const th of document.querySelectorAll('#yl-jobs th[data-sort]')) {
    th.addEventListener('click', () => {
      const key = th.dataset.sort;
      sort = { key, desc: sort.key === key ? !sort.desc : false };
      render();
    });
  }
  load(false);
  setInterval(() => { if (!document.hidden && !$('yl-kill-dialog').open && !cursor) load(false); }, 10000);
})();

'use strict';
(function () {
  const { api, el, isAdmin, showError } = window.yl;
  const tbody = document.querySelector('#yl-envs tbody');

  function deleteButton(env) {
    const may = env.can_edit || (isAdmin && env.visibility === 'shared');
    if (!may) return null;
    const b = el('button', { className: 'btn btn-sm btn-outline-danger', type: 'button' }, 'Delete');
    b.addEventListener('click', () => {
      const dialog = document.getElementById('yl-env-dialog');
      document.getElementById('yl-env-target').textContent = `${env.owner}/${env.name}`;
      dialog.returnValue = '';
      dialog.onclose = async () => {
        if (dialog.returnValue !== 'delete') return;
        try {
          await api(`environments/${encodeURIComponent(env.owner)}/${encodeURIComponent(env.name)}`, { method: 'DELETE' });
          load();
        } catch (e) { showError(`Could not delete ${env.owner}/${env.name}: ${e.message}`); }
      };
      dialog.showModal();
    });
    return b;
  }

  async function load() {
    try {
      const data = await api('environments' + (isAdmin ? '?owner=all' : ''));
      const envs = data.environments || [];
      tbody.replaceChildren(...envs.map((e) => el('tr', { dataset: { env: `${e.owner}/${e.name}` } },
        el('td', {}, e.owner), el('td', {}, el('code', {}, e.name)), el('td', {}, e.display_name || ''),
        el('td', {}, e.kind), el('td', {}, e.visibility),
        el('td', {}, e.status + (e.status === 'building' ? ` (${e.phase}, ${e.progress}%)` : ''),
          e.error ? el('div', { className: 'small text-danger' }, e.error) : null),
        el('td', { className: 'small' }, [...((e.packages || {}).pip || []), ...((e.packages || {}).conda || []), ...((e.packages || {}).maven || [])].join(', ')),
        el('td', {}, e.updated || ''), el('td', {}, deleteButton(e)))));
      document.getElementById('yl-envs-empty').classList.toggle('d-none', envs.length > 0);
      showError('');
    } catch (e) {
      document.getElementById('yl-envs-empty').classList.remove('d-none');
      showError(`The edge could not list environments: ${e.message}`);
    }
  }
  load();
})();

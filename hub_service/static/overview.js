'use strict';
(function () {
  const { api, el, fmtMB, poll, setBar } = window.yl;
  const $ = (id) => document.getElementById(id);

  function render(c) {
    setBar($('yl-mem-bar'), c.memory.totalMB ? c.memory.usedMB / c.memory.totalMB : 0);
    $('yl-mem-text').textContent = `${fmtMB(c.memory.usedMB)} used of ${fmtMB(c.memory.totalMB)}`;
    setBar($('yl-vc-bar'), c.vcores.total ? c.vcores.used / c.vcores.total : 0);
    $('yl-vc-text').textContent = `${c.vcores.used} used of ${c.vcores.total}`;
    const states = Object.entries(c.appsByState || {}).sort();
    $('yl-states').replaceChildren(...(states.length ? states.map(([s, n]) =>
      el('li', {}, el('span', { className: 'fw-bold me-2' }, n), s.toLowerCase())) : [el('li', {}, 'none')]));
    $('yl-nodes-healthy').textContent = c.nodes.active;
    $('yl-nodes-unhealthy').textContent = c.nodes.unhealthy;
    $('yl-nodes-other').textContent = `${c.nodes.lost} lost, ${c.nodes.decommissioned} decommissioned`;
    $('yl-queues').tBodies[0].replaceChildren(...c.queues.map((q) => {
      const used = el('div', { className: 'progress-bar', role: 'progressbar' });
      setBar(used, q.maxCapacity ? q.usedCapacity / q.maxCapacity : 0);
      const cap = el('div', { className: 'yl-cap-mark', title: `capacity ${q.capacity.toFixed(0)}%` });
      cap.style.left = (q.maxCapacity ? (100 * q.capacity) / q.maxCapacity : 0).toFixed(1) + '%';
      return el('tr', {},
        el('td', {}, q.path), el('td', {}, q.state),
        el('td', {}, el('div', { className: 'progress yl-queue-bar' }, used, cap),
          el('small', { className: 'text-muted' },
            `${q.usedCapacity.toFixed(0)}% of cluster used · capacity ${q.capacity.toFixed(0)}% · max ${q.maxCapacity.toFixed(0)}%`)),
        el('td', {}, `${fmtMB(q.usedMB)} / ${fmtMB(q.capacityMB)}`),
        el('td', {}, q.activeApplications), el('td', {}, q.pendingApplications));
    }));
    $('yl-nodes').tBodies[0].replaceChildren(...c.nodes.list.map((n) => el('tr', {},
      el('td', {}, n.host || n.id), el('td', {}, el('span', { className: 'badge ' + (n.healthy ? 'bg-success' : 'bg-danger') }, n.state)),
      el('td', {}, `${fmtMB(n.usedMB)} / ${fmtMB(n.totalMB)}`), el('td', {}, `${n.usedVCores} / ${n.totalVCores}`),
      el('td', {}, n.containers), el('td', { className: 'small' }, n.healthReport || 'ok'))));
    $('yl-updated').textContent = `updated ${new Date().toLocaleTimeString()} (YARN snapshot ${c.snapshotAge.toFixed(1)} s old)`;
  }

  poll(async () => render(await api('cluster')), 5000);
})();

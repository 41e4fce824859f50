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
    // Kafka, on a site with brokers: the edge's last metadata request to them
    const k = c.kafka;
    $('yl-kafka').hidden = !k || k.up === null;
    if (k && k.up !== null) {
      $('yl-kafka').replaceChildren(el('span', { className: 'badge me-2 ' + (k.up ? 'bg-success' : 'bg-danger') },
        k.up ? 'Kafka: up' : 'Kafka: unreachable'),
        k.up ? `${k.bootstrap_servers} · ${k.brokers} broker${k.brokers === 1 ? '' : 's'}` : `${k.bootstrap_servers}: ${k.reason}`);
    }
    $('yl-updated').textContent = `updated ${new Date().toLocaleTimeString()} (YARN snapshot ${c.snapshotAge.toFixed(1)} s old)`;
  }

  function fmtSeconds(s) {
    if (s === null || s === undefined) return '–';
    return s >= 120 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`;
  }

  function renderWarm(w) {
    const rules = Object.entries(w.rules.kernelspecs || {}).map(([k, r]) =>
      `${k}: ${r.count} per user, given back after ${fmtSeconds(r.idle_seconds)} idle`);
    const groups = Object.entries(w.rules.groups || {}).map(([g, specs]) =>
      `group ${g}: ` + Object.entries(specs).map(([k, r]) =>
        r.count ? `${k} ${r.count}, ${fmtSeconds(r.idle_seconds)}` : `${k} off`).join(', '));
    const c = w.counts || {};
    const parts = [
      w.enabled ? 'on' : 'off',
      ...(rules.length ? rules : ['no site-wide rule']),
      ...groups,
      `${w.activeUsers === null ? '?' : w.activeUsers} users with a Lab server`,
      `${fmtMB(w.warmMB || 0)} held`,
      `since the edge started: ${c.handed_out || 0} handed out, ${c.started || 0} started, ` +
        `${c.expired || 0} expired, ${c.given_back || 0} given back to waiting users, ${c.released || 0} released, ` +
        `${c.failed || 0} failed starts`,
    ];
    if (w.hubError) parts.push(w.hubError);
    $('yl-warm-summary').textContent = parts.join(' · ');
    $('yl-warm').tBodies[0].replaceChildren(...(w.kernels.length ? w.kernels.map((k) => el('tr', {},
      el('td', {}, k.user), el('td', {}, k.kernelspec),
      el('td', {}, el('span', { className: 'badge ' + (k.state === 'warm' ? 'bg-info' : 'bg-secondary') },
        k.state === 'warm' ? 'warm (ready)' : 'starting')),
      el('td', {}, k.app || '–'), el('td', {}, fmtMB(k.needMB)), el('td', {}, fmtSeconds(k.age)),
      el('td', {}, fmtSeconds(k.expiresIn)))) : [el('tr', {}, el('td', { colSpan: 7, className: 'text-muted' },
      'no warm kernels now'))]));
  }

  poll(async () => render(await api('cluster')), 5000);
  poll(async () => renderWarm(await api('warm')), 5000);
})();

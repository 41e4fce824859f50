'use strict';
(function () {
  const { api, el, fmtMB, poll } = window.yl;
  const tbody = document.querySelector('#yl-users tbody');
  const hours = (s) => (s / 3600).toFixed(2);
  const gbHours = (mbs) => (mbs / 1024 / 3600).toFixed(2);

  poll(async () => {
    const data = await api('usage');
    tbody.replaceChildren(...data.users.map((u) => el('tr', { dataset: { user: u.user } },
      el('td', {}, u.user), el('td', {}, u.current.running), el('td', {}, u.current.pending),
      el('td', {}, fmtMB(u.current.allocatedMB)), el('td', {}, u.current.allocatedVCores),
      ...['24h', '7d', '30d'].map((w) => el('td', {}, gbHours(u.windows[w].memorySeconds))),
      ...['24h', '7d', '30d'].map((w) => el('td', {}, hours(u.windows[w].vcoreSeconds))))));
    const last = data.lastSample ? new Date(data.lastSample * 1000).toLocaleTimeString() : 'not yet';
    document.getElementById('yl-sampled').textContent =
      `Sampled every ${data.sampleInterval} s; last sample ${last}. Memory and vcore time are YARN's own per-application counters, summed per user.`;
  }, 15000);
})();

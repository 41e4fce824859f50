'use strict';
(function () {
  const { api, poll } = window.yl;
  const Chart = window.Chart;
  const charts = {};

  function timeTick(value) {
    const d = new Date(value);
    return d.toLocaleDateString() === new Date().toLocaleDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function lineChart(id, datasets) {
    const canvas = document.getElementById(id);
    if (charts[id]) {
      charts[id].data.datasets.forEach((ds, i) => { ds.data = datasets[i].data; });
      charts[id].update('none');
      return;
    }
    charts[id] = new Chart(canvas, {
      type: 'line',
      data: { datasets },
      options: {
        animation: false, maintainAspectRatio: false, parsing: false, normalized: true,
        interaction: { mode: 'nearest', intersect: false },
        scales: { x: { type: 'linear', ticks: { callback: timeTick, maxTicksLimit: 6 } }, y: { beginAtZero: true } },
        plugins: { tooltip: { callbacks: { title: (items) => items.length ? timeTick(items[0].parsed.x) : '' } } },
      },
    });
  }

  const series = (samples, f) => samples.map((s) => ({ x: s.ts * 1000, y: f(s) }));

  async function load() {
    const range = document.getElementById('yl-range').value;
    const data = await api('history?since=' + encodeURIComponent(range));
    const s = data.samples;
    lineChart('yl-chart-memory', [
      { label: 'used', data: series(s, (x) => x.memoryUsedMB / 1024), borderColor: '#f37524', pointRadius: 2 },
      { label: 'total', data: series(s, (x) => x.memoryTotalMB / 1024), borderColor: '#888', pointRadius: 0 }]);
    lineChart('yl-chart-vcores', [
      { label: 'used', data: series(s, (x) => x.vcoresUsed), borderColor: '#0d6efd', pointRadius: 2 },
      { label: 'total', data: series(s, (x) => x.vcoresTotal), borderColor: '#888', pointRadius: 0 }]);
    lineChart('yl-chart-apps', [
      { label: 'running', data: series(s, (x) => x.appsRunning), borderColor: '#198754', pointRadius: 2 },
      { label: 'pending', data: series(s, (x) => x.appsPending), borderColor: '#ffc107', pointRadius: 2 }]);
    document.getElementById('yl-hist-info').textContent =
      `${s.length} samples, one every ${data.sampleInterval} s` + (data.samplerError ? ` · sampler: ${data.samplerError}` : '');
  }

  document.getElementById('yl-range').addEventListener('change', () => load().catch((e) => window.yl.showError(e.message)));
  poll(load, 15000);
})();

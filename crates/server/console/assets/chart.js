// The usage chart: tokens issued, failed authentications and quota refusals per
// minute over the last 24 hours, drawn as plain SVG (no library, nothing loaded).
//
// Each minute with any use is one stacked bar. The SVG is drawn at the box's real
// pixel width (and redrawn when it changes), so text stays legible from a phone to a
// wide screen. For screen readers the SVG is an image labelled by a one-sentence
// summary, and the same numbers are in a table under a disclosure.

import {h, svg, fmtClock, plural, uid} from './dom.js';

const MINUTE = 60 * 1000;

/** The three series, bottom to top: name in the API, words, CSS class. */
const SERIES = [
  {key: 'issued', label: 'tokens issued', short: 'issued', cls: 'issued'},
  {key: 'failed', label: 'failed authentications', short: 'failed', cls: 'failed'},
  {key: 'limited', label: 'refused by the quota', short: 'quota', cls: 'limited'},
];

/**
 * Sums usage answers (`{from, to, minutes: [{t, issued, failed, limited}]}`) per
 * minute, for the whole-broker chart. Minutes are keyed by their start.
 */
export function sumUsage(usages) {
  const byMinute = new Map();
  let from = null;
  let to = null;
  for (const u of usages) {
    if (!u) continue;
    from = from === null || u.from < from ? u.from : from;
    to = to === null || u.to > to ? u.to : to;
    for (const m of u.minutes) {
      const acc = byMinute.get(m.t) ?? {t: m.t, issued: 0, failed: 0, limited: 0};
      for (const s of SERIES) acc[s.key] += m[s.key];
      byMinute.set(m.t, acc);
    }
  }
  const minutes = [...byMinute.values()].sort((a, b) => (a.t < b.t ? -1 : 1));
  return {from: from ?? new Date(Date.now() - 24 * 60 * MINUTE).toISOString(), to: to ?? new Date().toISOString(), minutes};
}

/** Totals over a usage answer, and its busiest minute and last minute with a token. */
export function totals(usage) {
  const sum = {issued: 0, failed: 0, limited: 0, busiest: null, lastIssued: null};
  for (const m of usage.minutes) {
    for (const s of SERIES) sum[s.key] += m[s.key];
    const all = m.issued + m.failed + m.limited;
    if (!sum.busiest || all > sum.busiest.all) sum.busiest = {t: m.t, all};
    if (m.issued > 0 && (!sum.lastIssued || m.t > sum.lastIssued)) sum.lastIssued = m.t;
  }
  return sum;
}

/** The chart's sentence, also its accessible name. */
function summarize(usage) {
  const t = totals(usage);
  if (t.issued + t.failed + t.limited === 0) return 'No token requests in the last 24 hours.';
  return (
    `Last 24 hours: ${plural(t.issued, 'token')} issued, ${plural(t.failed, 'failed authentication')}, ` +
    `${plural(t.limited, 'request')} refused by the quota. ` +
    `Busiest minute: ${fmtClock(Date.parse(t.busiest.t))} with ${plural(t.busiest.all, 'request')}.`
  );
}

/**
 * A chart element for `usage`. Returns `{el, update(usage), destroy()}`: `update`
 * redraws with new data, `destroy` stops watching the box's size.
 */
export function usageChart(usage, {caption}) {
  const summaryId = uid('chart');
  const box = h('div', {class: 'chart-box'});
  const summary = h('p', {class: 'chart-summary', id: summaryId});
  const table = h('table', {class: 'compact'});
  const legend = h('ul', {class: 'legend', 'aria-hidden': 'true'},
    SERIES.map((s) => h('li', {}, h('span', {class: `swatch ${s.cls}`}), s.label)));
  const el = h('figure', {class: 'chart'},
    h('figcaption', {}, caption),
    legend,
    box,
    summary,
    h('details', {}, h('summary', {}, 'Minutes with activity, as a table'), table));

  let data = usage;
  const draw = () => {
    const width = Math.max(260, Math.floor(box.clientWidth || 600));
    box.replaceChildren(drawSvg(data, width, summaryId));
  };
  const fill = () => {
    summary.textContent = summarize(data);
    fillTable(table, data);
    draw();
  };
  // Redraw at the new width when the layout changes (rotation, window resize).
  let lastWidth = 0;
  const observer = new ResizeObserver(() => {
    const w = Math.floor(box.clientWidth);
    if (w && w !== lastWidth) {
      lastWidth = w;
      draw();
    }
  });
  observer.observe(box);
  fill();
  return {
    el,
    update(next) {
      data = next;
      fill();
    },
    destroy() {
      observer.disconnect();
    },
  };
}

function fillTable(table, usage) {
  const rows = usage.minutes
    .filter((m) => m.issued + m.failed + m.limited > 0)
    .slice()
    .reverse()
    .map((m) => h('tr', {},
      h('th', {scope: 'row'}, fmtClock(Date.parse(m.t))),
      SERIES.map((s) => h('td', {class: 'num'}, m[s.key])),
    ));
  table.replaceChildren(
    h('caption', {}, 'Per minute, newest first (minutes without use are left out)'),
    h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Minute'), SERIES.map((s) => h('th', {scope: 'col'}, s.label)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', {colspan: '4'}, 'No activity.'))),
  );
}

/** Rounds a maximum up to 1, 2, 4, 6 or 10 times a power of ten: the half-way line then falls on a whole number too. */
function niceMax(v) {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 4, 6, 10].map((m) => m * p).find((n) => n >= v);
}

function drawSvg(usage, width, summaryId) {
  const height = width < 500 ? 150 : 190;
  const m = {left: 36, right: 8, top: 10, bottom: 24};
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const end = Math.floor(Date.parse(usage.to) / MINUTE) * MINUTE;
  const start = end - 24 * 60 * MINUTE;
  const span = end - start;
  const x = (ms) => m.left + ((ms - start) / span) * pw;

  const points = usage.minutes
    .map((p) => ({...p, ms: Date.parse(p.t)}))
    .filter((p) => p.ms >= start && p.ms <= end);
  const max = niceMax(Math.max(0, ...points.map((p) => p.issued + p.failed + p.limited)));
  const y = (v) => m.top + ph - (v / max) * ph;

  const root = svg('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': summaryId,
    class: 'chart-svg',
  });
  // Horizontal grid with counts.
  // Counts are whole numbers: no half-way line when the maximum is 1.
  for (const v of max > 1 ? [0, max / 2, max] : [0, max]) {
    root.append(
      svg('line', {x1: m.left, x2: width - m.right, y1: y(v), y2: y(v), class: 'grid'}),
      svg('text', {x: m.left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis'}, v),
    );
  }
  // Time labels on the local hours divisible by 6 (by 12 on narrow screens), and
  // "now" at the right edge; none so close to an edge that labels would overlap.
  const every = pw < 400 ? 12 : 6;
  root.append(svg('text', {x: x(end), y: height - 6, 'text-anchor': 'end', class: 'axis'}, 'now'));
  const hour = new Date(start);
  hour.setMinutes(0, 0, 0);
  for (let t = hour.getTime(); t <= end; t += 60 * MINUTE) {
    // A label is about 34 px wide, centred; "now" takes the right edge.
    if (t < start || new Date(t).getHours() % every !== 0 || x(end) - x(t) < 50 || x(t) - m.left < 18) continue;
    root.append(
      svg('line', {x1: x(t), x2: x(t), y1: m.top + ph, y2: m.top + ph + 4, class: 'grid'}),
      svg('text', {x: x(t), y: height - 6, 'text-anchor': 'middle', class: 'axis'}, fmtClock(t)));
  }
  // One stacked bar per minute with use; at least 3 px wide so a single minute shows.
  const bw = Math.max(3, pw / (24 * 60));
  for (const p of points) {
    const g = svg('g', {class: 'bar'});
    let base = 0;
    for (const s of SERIES) {
      const v = p[s.key];
      if (!v) continue;
      g.append(svg('rect', {
        x: Math.min(x(p.ms), width - m.right - bw), y: y(base + v), width: bw, height: Math.max(1, y(base) - y(base + v)),
        class: `bar-${s.cls}`,
      }));
      base += v;
    }
    g.append(svg('title', {}, `${fmtClock(p.ms)}: ${SERIES.map((s) => `${p[s.key]} ${s.short}`).join(', ')}`));
    root.append(g);
  }
  return root;
}

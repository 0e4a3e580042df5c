// The workflow dashboard. Plain JavaScript, no dependencies. Every value
// that comes from the server is put on the page with textContent or DOM
// attributes, never parsed as HTML.
'use strict';

(() => {
  const POLL_MS = 2000;
  const STATUSES = ['running', 'sleeping', 'waiting', 'completed', 'failed', 'panicked', 'restarting', 'cancelled', 'paused'];
  const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
  const PAGE = 25;
  const TOKEN_KEY = 'workflow-dashboard-token';

  const state = {
    info: null,
    live: true,
    timer: null,
    seq: 0,
    workflows: new Set(),
    openSteps: new Set(),
    pendingConfirm: null,
  };

  const $ = (id) => document.getElementById(id);

  /** Builds an element: `el('td', {class: 'x', title: 't'}, 'text', child)`. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'style') Object.assign(node.style, value);
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // ---- formatting -------------------------------------------------------

  function ms(text) {
    return text ? Date.parse(text) : NaN;
  }

  function fmtDuration(d) {
    if (!isFinite(d)) return '–';
    if (d < 0) d = 0;
    if (d < 1000) return `${Math.round(d)} ms`;
    const s = d / 1000;
    if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} m ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${String(m % 60).padStart(2, '0')} m`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }

  function fmtDate(t) {
    if (!isFinite(t)) return '–';
    return new Date(t).toLocaleString(undefined, {
      month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
  }

  function fmtAgo(t, now) {
    if (!isFinite(t)) return '–';
    const d = Math.max(0, now - t);
    if (d < 5000) return 'just now';
    if (d < 60000) return `${Math.floor(d / 1000)} s ago`;
    if (d < 3600000) return `${Math.floor(d / 60000)} min ago`;
    if (d < 86400000) return `${Math.floor(d / 3600000)} h ago`;
    return fmtDate(t);
  }

  // ---- exact numbers ----------------------------------------------------

  // Payloads carry integers up to u64 and i64; a JavaScript number holds
  // integers exactly only up to 2^53. Where the browser lets a reviver see
  // a number's source text (JSON.parse's `context.source`) and write text
  // back verbatim (JSON.rawJSON), such an integer is kept as its digits: it
  // prints exactly through JSON.stringify and still acts as a number in
  // arithmetic. Elsewhere it is parsed as before, to the nearest number.
  const EXACT = (() => {
    try {
      return typeof JSON.rawJSON === 'function'
        && JSON.parse('9007199254740993', (k, v, c) => (c && c.source) || v) === '9007199254740993';
    } catch (_) {
      return false;
    }
  })();

  class ExactInteger {
    constructor(source) { this.source = source; }
    toJSON() { return JSON.rawJSON(this.source); }
    toString() { return this.source; }
    valueOf() { return Number(this.source); }
  }

  function keepDigits(key, value, context) {
    if (typeof value === 'number' && !Number.isSafeInteger(value) && context
      && typeof context.source === 'string' && /^-?\d+$/.test(context.source)) {
      return new ExactInteger(context.source);
    }
    return value;
  }

  /** `JSON.parse`, keeping integers beyond 2^53 exact where the browser can. */
  function parseJson(text) {
    return EXACT ? JSON.parse(text, keepDigits) : JSON.parse(text);
  }

  function json(value) {
    return JSON.stringify(value, null, 2);
  }

  function compact(value) {
    const text = JSON.stringify(value);
    return text === undefined ? '' : text;
  }

  function badge(status, live) {
    return el('span', { class: `badge s-${status}${live ? ' live-status' : ''}` }, status);
  }

  // ---- API ----------------------------------------------------------------

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { return ''; }
  }

  function setToken(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage disabled: the token lives until reload */ }
    memoryToken = value;
  }

  let memoryToken = '';

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, options = {}) {
    const headers = { Accept: 'application/json' };
    const secret = token() || memoryToken;
    if (secret) headers.Authorization = `Bearer ${secret}`;
    const init = { method: options.method || 'GET', headers, cache: 'no-store' };
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(`api/${path}`, init);
    } catch (_) {
      throw new ApiError(0, 'the server cannot be reached');
    }
    let data = null;
    try { data = parseJson(await response.text()); } catch (_) { data = null; }
    if (!response.ok) {
      throw new ApiError(response.status, (data && data.error) || response.statusText || 'request failed');
    }
    return data;
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== '' && v !== undefined && v !== null) q.set(k, v);
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  // ---- routing ------------------------------------------------------------

  function route() {
    const hash = location.hash.replace(/^#/, '');
    const match = /^\/executions\/(.+)$/.exec(hash);
    if (match) {
      let id;
      try { id = decodeURIComponent(match[1]); } catch (_) { id = match[1]; }
      return { view: 'detail', id };
    }
    const q = new URLSearchParams(hash.includes('?') ? hash.slice(hash.indexOf('?') + 1) : '');
    return {
      view: 'list',
      status: q.get('status') || '',
      workflow: q.get('workflow') || '',
      since: q.get('since') || '',
      offset: Math.max(0, parseInt(q.get('offset') || '0', 10) || 0),
    };
  }

  function listHash(filters) {
    return `#/${query({
      status: filters.status, workflow: filters.workflow, since: filters.since,
      offset: filters.offset ? filters.offset : '',
    })}`;
  }

  function executionHash(id) {
    return `#/executions/${encodeURIComponent(id)}`;
  }

  function show(view) {
    for (const id of ['list-view', 'detail-view', 'token-view', 'missing-view']) $(id).hidden = id !== view;
  }

  // ---- live updates -------------------------------------------------------

  function setLive(mode, text) {
    const live = $('live');
    live.classList.toggle('paused', mode === 'paused');
    live.classList.toggle('error', mode === 'error');
    $('live-text').textContent = text;
    live.title = mode === 'paused' ? 'Resume live updates' : 'Pause live updates';
    if (mode === 'ok') {
      live.classList.remove('pulse');
      void live.offsetWidth;
      live.classList.add('pulse');
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    if (state.live && !document.hidden) state.timer = setTimeout(() => refresh(false), POLL_MS);
  }

  async function refresh(navigated) {
    const seq = ++state.seq;
    const r = route();
    try {
      if (!state.info) await loadInfo();
      if (r.view === 'detail') await refreshDetail(r, seq, navigated);
      else await refreshList(r, seq);
      if (seq !== state.seq) return;
      if (state.live) setLive('ok', `Live · ${new Date().toLocaleTimeString()}`);
    } catch (err) {
      if (seq !== state.seq) return;
      if (err.status === 401) {
        askToken(token() ? 'That token was not accepted.' : '');
        return;
      }
      if (err.status === 404 && r.view === 'detail') {
        $('missing-text').textContent = err.message;
        show('missing-view');
      } else {
        setLive('error', navigator.onLine === false ? 'Offline' : 'Disconnected · retrying');
        if (navigated) toast(err.message, true);
      }
    }
    if (seq === state.seq) schedule();
  }

  async function loadInfo() {
    const info = await api('info');
    state.info = info;
    for (const name of info.workflows || []) state.workflows.add(name);
    $('db-name').textContent = info.database || '';
    const chip = $('mode-chip');
    chip.hidden = false;
    chip.textContent = info.mode === 'admin' ? 'admin · actions go to the worker' : 'worker';
    $('readonly-chip').hidden = !info.read_only;
    $('start-open').hidden = !info.can_start || !(info.workflows || []).length;
    const select = $('f-status');
    if (select.options.length === 1) {
      for (const s of STATUSES) select.append(el('option', { value: s }, s[0].toUpperCase() + s.slice(1)));
    }
  }

  // ---- list ---------------------------------------------------------------

  async function refreshList(r, seq) {
    const filters = { workflow: r.workflow, since: r.since };
    const [page, counts, workers] = await Promise.all([
      api(`executions${query({ ...filters, status: r.status, limit: PAGE, offset: r.offset })}`),
      api(`counts${query(filters)}`),
      api('workers'),
    ]);
    if (seq !== state.seq) return;
    show('list-view');
    document.title = 'Executions · Workflows';
    renderFilters(r);
    renderCounts(counts, r);
    renderWorkers(workers.workers || []);
    renderRows(page, counts, r);
  }

  // The worker processes of a PostgreSQL database (none on SQLite: the card stays hidden).
  function renderWorkers(workers) {
    $('workers-card').hidden = workers.length === 0;
    const body = $('worker-rows');
    clear(body);
    const alive = workers.filter((w) => w.state === 'alive').length;
    $('workers-summary').textContent = `${alive} alive, ${workers.length - alive} dead`;
    for (const w of workers) {
      const id = el('td', { class: 'mono' }, w.id);
      if (w.this_process) id.append(' ', el('span', { class: 'muted' }, '(this process)'));
      body.append(el('tr', { dataset: { worker: w.id, state: w.state } },
        id,
        el('td', { class: 'mono', title: (w.workflows || []).join(', ') }, `${w.host}:${w.pid}`),
        el('td', {}, w.app_version || '—'),
        el('td', {}, el('span', { class: `badge s-${w.state === 'alive' ? 'running' : 'cancelled'}` }, w.state)),
        el('td', { title: w.dead_at ? `dead since ${w.dead_at}` : w.lease_until }, w.dead_at ? fmtDate(ms(w.dead_at)) : fmtDate(ms(w.lease_until))),
        el('td', { class: 'num' }, String(w.owned))));
    }
  }

  function renderFilters(r) {
    const active = document.activeElement;
    if (active !== $('f-status')) $('f-status').value = r.status;
    if (active !== $('f-workflow')) $('f-workflow').value = r.workflow;
    if (active !== $('f-since')) $('f-since').value = r.since;
    const list = $('workflow-names');
    const names = [...state.workflows].sort();
    if (list.childElementCount !== names.length) {
      clear(list);
      for (const name of names) list.append(el('option', { value: name }));
    }
  }

  function renderCounts(counts, r) {
    const grid = $('counts');
    clear(grid);
    const card = (status, label, n) => el('button', {
      type: 'button',
      class: `stat s-${status}${(r.status || 'all') === status ? ' active' : ''}${n === 0 ? ' zero' : ''}`,
      dataset: { status },
      title: status === 'all' ? 'Show every status' : `Show ${label} executions`,
      onclick: () => { location.hash = listHash({ ...r, status: status === 'all' ? '' : status, offset: 0 }); },
    }, el('span', { class: 'n' }, n.toLocaleString()), el('span', { class: 'l' }, label));
    grid.append(card('all', 'All', counts.total));
    for (const s of STATUSES) grid.append(card(s, s, counts.counts[s] || 0));
  }

  function renderRows(page, counts, r) {
    const body = $('exec-rows');
    clear(body);
    const now = Date.now();
    for (const e of page.executions) {
      state.workflows.add(e.workflow);
      const href = executionHash(e.id);
      body.append(el('tr', {
        dataset: { id: e.id, status: e.status },
        onclick: (ev) => { if (!ev.target.closest('a')) location.hash = href; },
      },
      el('td', { class: 'id' }, el('a', { href }, e.id)),
      el('td', {}, e.workflow),
      el('td', { class: 'version' }, e.app_version || ''),
      el('td', {}, badge(e.status, !TERMINAL.has(e.status))),
      el('td', { class: 'num' }, e.restart_attempt),
      el('td', { class: 'when', title: fmtDate(ms(e.created_at)) }, fmtAgo(ms(e.created_at), now)),
      el('td', { class: 'when', title: fmtDate(ms(e.updated_at)) }, fmtAgo(ms(e.updated_at), now)),
      el('td', { class: 'reason', title: e.error_message || '' }, e.error_message || '')));
    }
    $('exec-empty').hidden = page.executions.length > 0;
    const matching = r.status ? (counts.counts[r.status] || 0) : counts.total;
    const first = page.executions.length ? r.offset + 1 : 0;
    const last = r.offset + page.executions.length;
    $('page-info').textContent = page.executions.length
      ? `${first.toLocaleString()}–${last.toLocaleString()} of ${matching.toLocaleString()}`
      : '';
    $('page-prev').disabled = r.offset === 0;
    $('page-next').disabled = !page.has_more;
    const parts = [`${counts.total.toLocaleString()} execution${counts.total === 1 ? '' : 's'}`];
    const active = STATUSES.filter((s) => counts.counts[s] && !TERMINAL.has(s)).reduce((n, s) => n + counts.counts[s], 0);
    parts.push(`${active.toLocaleString()} unfinished`);
    if (r.workflow) parts.push(`workflow ${r.workflow}`);
    $('list-summary').textContent = parts.join(' · ');
  }

  function applyFilters() {
    location.hash = listHash({
      status: $('f-status').value,
      workflow: $('f-workflow').value.trim(),
      since: $('f-since').value,
      offset: 0,
    });
  }

  // ---- one execution ------------------------------------------------------

  async function refreshDetail(r, seq, navigated) {
    const e = await api(`executions/${encodeURIComponent(r.id)}`);
    if (seq !== state.seq) return;
    show('detail-view');
    document.title = `${e.id} · Workflows`;
    renderHeader(e);
    renderTimeline(e);
    renderSteps(e);
    renderSuperseded(e);
    renderPayloads(e);
    const events = await api(`executions/${encodeURIComponent(r.id)}/events`);
    if (seq !== state.seq) return;
    renderEvents(events.events, ms(e.now));
    renderStreams(e);
    if (navigated) window.scrollTo(0, 0);
  }

  /** Each stream's values, from the journal's `stream` entries (live with the page). */
  function renderStreams(e) {
    const streams = new Map();
    for (const s of e.steps) {
      if (s.kind !== 'stream') continue;
      if (!streams.has(s.name)) streams.set(s.name, { values: [], closed: false });
      const st = streams.get(s.name);
      if (Object.prototype.hasOwnProperty.call(s, 'output') && s.output !== null) st.values.push(JSON.stringify(s.output));
      else st.closed = true;
    }
    $('streams-card').hidden = !streams.size;
    const box = $('streams');
    clear(box);
    for (const [key, st] of streams) {
      const open = !st.closed && !TERMINAL.has(e.status);
      box.append(el('div', { class: 'stream' },
        el('div', {}, el('strong', { class: 'mono' }, key), el('span', { class: 'muted' }, ` · ${st.values.length} value${st.values.length === 1 ? '' : 's'}${open ? ' · open' : ' · ended'}`)),
        el('pre', { class: 'json' }, st.values.join('\n'))));
    }
  }

  function renderEvents(events, now) {
    $('events-card').hidden = !events.length;
    const body = $('events');
    clear(body);
    for (const ev of events) {
      body.append(el('tr', {},
        el('td', { class: 'mono' }, ev.key),
        el('td', { class: 'mono' }, ev.value === null ? '(not JSON)' : JSON.stringify(ev.value)),
        el('td', { title: ev.updated_at }, fmtAgo(ms(ev.updated_at), now))));
    }
  }

  function renderHeader(e) {
    $('d-id').textContent = e.id;
    const status = $('d-status');
    status.className = `badge s-${e.status}${TERMINAL.has(e.status) ? '' : ' live-status'}`;
    status.textContent = e.status;
    status.dataset.status = e.status;
    $('d-workflow').textContent = e.workflow;

    const start = ms(e.created_at);
    const now = ms(e.now);
    const meta = $('d-meta');
    clear(meta);
    const item = (label, value, title) => meta.append(el('div', {}, el('dt', {}, label), el('dd', { title }, value)));
    item('Started', fmtDate(start), e.created_at);
    if (e.completed_at) item('Ended', fmtDate(ms(e.completed_at)), e.completed_at);
    else item('Last change', fmtAgo(ms(e.updated_at), now), e.updated_at);
    item(e.completed_at ? 'Took' : 'Elapsed', fmtDuration(e.duration_ms));
    if (e.status === 'sleeping' && e.wake_at) item('Wakes', `in ${fmtDuration(ms(e.wake_at) - now)}`, e.wake_at);
    if (e.status === 'waiting' && e.wake_at) item('Gives up', `in ${fmtDuration(ms(e.wake_at) - now)}`, e.wake_at);
    if (e.deadline) item('Deadline', fmtDate(ms(e.deadline)), e.deadline);
    if (e.owner) item('Worker', e.owner, 'the PostgreSQL worker that owns it');
    if (e.parent) meta.append(el('div', {}, el('dt', {}, 'Parent'), el('dd', {}, el('a', { href: `#/executions/${encodeURIComponent(e.parent)}`, class: 'mono' }, e.parent))));
    if (e.children && e.children.length) {
      const list = el('dd', {});
      e.children.forEach((c, i) => {
        if (i) list.append(', ');
        list.append(el('a', { href: `#/executions/${encodeURIComponent(c.id)}`, class: 'mono', title: `${c.workflow} · ${c.status}` }, c.id), ` (${c.status})`);
      });
      meta.append(el('div', {}, el('dt', {}, `Children (${e.children.length})`), list));
    }
    const steps = e.steps.filter((s) => s.kind === 'step');
    const attempts = steps.reduce((n, s) => n + s.attempts, 0);
    item('Steps', `${steps.length} · ${attempts} attempt${attempts === 1 ? '' : 's'}`);
    item('Restarts', String(e.restart_attempt));
    if (e.app_version) item('Version', e.app_version, 'the version of the code that started it');
    if (e.patches && e.patches.length) item('Patches', e.patches.join(', '), 'code changes (ctx.patched) it ran with');

    const box = $('d-error');
    if (e.error_message) {
      const titles = {
        failed: 'Failed',
        panicked: 'Panicked · restarts by replay after its restart delay',
        paused: 'Paused · waits for a resume',
        waiting: 'Waiting · a message sent to it wakes it',
        cancelled: 'Cancelled',
      };
      box.hidden = false;
      box.className = `callout s-${e.status}`;
      box.style.setProperty('--c', `var(--${e.status === 'paused' ? 'paused' : e.status === 'panicked' ? 'panicked' : e.status === 'waiting' ? 'sleeping' : 'failed'})`);
      $('d-error-title').textContent = titles[e.status] || 'Last error';
      $('d-error-text').textContent = e.error_message;
    } else {
      box.hidden = true;
    }

    const ro = state.info && state.info.read_only;
    // The server says which actions apply (the same rule the API enforces).
    const allowed = new Set(e.actions || []);
    for (const action of ['cancel', 'resume', 'restart']) {
      const button = $(`act-${action}`);
      button.disabled = ro || !allowed.has(action);
      button.title = ro ? 'The server is read-only' : allowed.has(action) ? '' : `Not possible while ${e.status}`;
      button.dataset.id = e.id;
    }
  }

  /** Picks a tick step so that about six ticks span `span` ms. */
  function tickStep(span) {
    const steps = [100, 200, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 216e5, 432e5, 864e5];
    return steps.find((s) => span / s <= 7) || 864e5 * Math.ceil(span / 864e5 / 7);
  }

  function tickLabel(t) {
    if (t === 0) return '0';
    if (t < 1000) return `${t} ms`;
    if (t < 60000) return `${t / 1000} s`;
    if (t < 3600000) return t % 60000 ? `${Math.floor(t / 60000)} m ${(t % 60000) / 1000} s` : `${t / 60000} m`;
    return t % 3600000 ? `${Math.floor(t / 3600000)} h ${(t % 3600000) / 60000} m` : `${t / 3600000} h`;
  }

  function renderTimeline(e) {
    const box = $('timeline');
    clear(box);
    if (!e.steps.length) {
      box.append(el('div', { class: 'tl-empty' }, 'No steps yet.'));
      return;
    }
    const t0 = ms(e.created_at);
    const now = ms(e.now);
    const finished = TERMINAL.has(e.status);
    const active = e.status === 'running' || e.status === 'restarting';
    const wake = e.status === 'sleeping' ? ms(e.wake_at) : NaN;
    let end = e.completed_at ? ms(e.completed_at) : now;
    for (const s of e.steps) {
      end = Math.max(end, ms(s.completed_at) || 0);
      for (const a of s.attempt_log) end = Math.max(end, ms(a.ended_at) || 0);
    }
    // A sleep that wakes far ahead would squash the rest: show at most as
    // much future as past, and mark the remainder as continuing.
    const past = Math.max(end - t0, 1);
    const horizon = isFinite(wake) ? Math.min(wake, end + past) : end;
    const span = Math.max(horizon - t0, 1);
    const x = (t) => Math.min(100, Math.max(0, ((t - t0) / span) * 100));
    const pct = (v) => `${v.toFixed(3)}%`;

    const chart = el('div', { class: 'tl' });
    const axis = el('div', { class: 'tl-axis' });
    const step = tickStep(span);
    const ticks = [];
    for (let t = 0; t <= span + 1; t += step) ticks.push(t);
    for (const t of ticks) {
      axis.append(el('div', { class: 'tl-tick', style: { left: pct((t / span) * 100) } }, el('span', {}, tickLabel(t))));
    }
    chart.append(axis);

    const rows = el('div', { class: 'tl-rows', style: { position: 'relative' } });
    for (const s of e.steps) rows.append(timelineRow(s, e, { x, pct, now, finished, active, wake, horizon }));
    chart.append(rows);

    // Grid lines and the "now" line span every row, after the label column.
    const overlay = el('div', { style: { position: 'absolute', left: '220px', right: '0', top: '0', bottom: '0', pointerEvents: 'none' } });
    for (const t of ticks.slice(1)) overlay.append(el('div', { class: 'tl-grid', style: { left: pct((t / span) * 100) } }));
    if (!finished && now <= horizon) {
      overlay.append(el('div', { class: `now-line${x(now) > 96 ? ' edge' : ''}`, style: { left: pct(x(now)) } }, el('span', {}, 'now')));
    }
    chart.append(overlay);
    box.append(chart);
  }

  function timelineRow(s, e, g) {
    const { x, pct, now, finished, active, wake, horizon } = g;
    const track = el('div', { class: 'tl-track' });
    // A bar clipped by the horizon fades out: it goes on past the chart.
    const addBar = (cls, from, to, title) => {
      const left = x(from);
      const width = Math.max(x(to) - left, 0);
      const cont = to >= horizon && horizon > now;
      track.append(el('div', { class: `bar ${cls}${cont ? ' cont' : ''}`, title, style: { left: pct(left), width: pct(width) } }));
    };
    const addWait = (from, to, title) => {
      const left = x(from);
      track.append(el('div', { class: 'wait', title, style: { left: pct(left), width: pct(Math.max(x(to) - left, 0)) } }));
    };
    const start = ms(s.started_at);
    let last = start;
    let label = fmtDuration(s.duration_ms);

    const ended = finished ? ms(e.completed_at || e.updated_at) : NaN;
    if (s.kind === 'sleep') {
      // A sleep ended by a cancel is `failed`, ended at the cancel; one
      // journaled before that was recorded stays `sleeping` in an ended execution.
      const cut = s.status === 'failed' || (!s.completed_at && finished);
      let until;
      if (s.completed_at) until = ms(s.completed_at);
      else if (finished) until = ended;
      else if (isFinite(wake)) until = wake;
      else until = now;
      addBar('sleep', start, until,
        cut ? `durable sleep · cut short after ${fmtDuration(until - start)}: the execution ${e.status}`
          : s.completed_at ? `durable sleep · ${fmtDuration(until - start)}`
            : `durable sleep · wakes ${fmtDate(until)}`);
      last = Math.min(until, horizon);
      if (cut) label = `cut short · ${e.status}`;
      else if (s.completed_at) label = `slept ${fmtDuration(until - start)}`;
      else label = isFinite(wake) ? `wakes in ${fmtDuration(until - now)}` : 'sleeping';
    } else if (s.kind === 'step') {
      const log = s.attempt_log.length ? s.attempt_log : [{
        attempt: s.attempts, status: s.status === 'completed' ? 'completed' : s.status === 'failed' ? 'failed' : 'running',
        started_at: s.started_at, ended_at: s.completed_at, error: s.error,
      }];
      let prevEnd = NaN;
      log.forEach((a, i) => {
        const from = ms(a.started_at);
        const next = log[i + 1] ? ms(log[i + 1].started_at) : NaN;
        let to = ms(a.ended_at);
        let cls = a.status === 'completed' ? 'ok' : a.status === 'failed' ? 'fail' : 'run';
        if (!isFinite(to)) {
          // In flight while the execution runs; otherwise it was interrupted.
          to = active ? now : (isFinite(next) ? next : ms(e.updated_at));
        }
        if (isFinite(prevEnd) && from > prevEnd) addWait(prevEnd, from, `backoff before attempt ${a.attempt} · ${fmtDuration(from - prevEnd)}`);
        const title = `attempt ${a.attempt} · ${a.status} · ${fmtDuration(to - from)}${a.error ? `\n${a.error}` : ''}`;
        addBar(cls, from, to, title);
        prevEnd = to;
        last = to;
      });
      if (s.status === 'retrying' && isFinite(prevEnd)) {
        const until = finished ? ended : isFinite(wake) ? Math.min(wake, horizon) : now;
        if (until > prevEnd) {
          addWait(prevEnd, until, e.status === 'panicked'
            ? 'panicked: waits for its restart'
            : `waiting to retry (attempt ${s.attempts + 1})`);
          last = until;
        }
        if (finished) label = `cut short · ${e.status}`;
        else if (e.status === 'panicked') label = 'panicked · waits for restart';
        else label = `retrying · ${s.attempts} failed`;
      } else if (s.status === 'failed' && isFinite(prevEnd) && ms(s.completed_at) > prevEnd) {
        // Ended after its last attempt did: a cancel cut its backoff short.
        const until = ms(s.completed_at);
        addWait(prevEnd, until, `backoff cut short: the execution ${e.status}`);
        last = until;
        label = `cut short · ${e.status}`;
      } else if (s.attempts > 1) {
        label = `${fmtDuration(s.duration_ms)} · ${s.attempts} attempts`;
      }
    } else {
      track.append(el('div', { class: 'mark', title: `${s.kind} value recorded`, style: { left: pct(x(start)) } }));
      label = s.kind;
    }

    // The label goes after the bar, else before it, else inside it.
    const at = x(last);
    const from = x(start);
    if (at <= 80) {
      track.append(el('div', { class: 'bar-label', style: { left: pct(at) } }, label));
    } else if (from >= 22) {
      track.append(el('div', { class: 'bar-label before', style: { right: pct(100 - from) } }, label));
    } else {
      track.append(el('div', { class: 'bar-label inside' }, label));
    }

    return el('div', { class: 'tl-row', dataset: { position: s.position, status: s.status } },
      el('div', { class: 'tl-label' },
        el('span', { class: `st s-${s.status}`, title: s.status }),
        el('span', { class: 'key', title: s.key }, s.key),
        s.kind !== 'step' ? el('span', { class: 'kind' }, s.kind) : null),
      track);
  }

  function renderSteps(e) {
    const box = $('steps');
    clear(box);
    $('d-steps-count').textContent = `${e.steps.length} journal entr${e.steps.length === 1 ? 'y' : 'ies'}`;
    if (!e.steps.length) {
      box.append(el('div', { class: 'empty' }, 'The journal is empty.'));
      return;
    }
    const t0 = ms(e.created_at);
    for (const s of e.steps) box.append(stepDetails(s, t0, `${e.id}\u0000${s.position}`, true));
  }

  /** One journal entry, its attempts unfolding; `key` keeps it open across refreshes. */
  function stepDetails(s, t0, key, live) {
    const hasOutput = Object.prototype.hasOwnProperty.call(s, 'output');
    const failed = s.status === 'failed' || s.status === 'retrying';
    const result = failed && s.error ? s.error : hasOutput ? compact(s.output) : (s.error || '');
    const details = el('details', { class: 'step', dataset: { position: s.position } },
      el('summary', {},
        el('span', { class: 'pos' }, `#${s.position}`),
        el('span', { class: 'key', title: s.key }, s.key),
        el('span', {}, badge(s.status, live && s.status === 'running')),
        el('span', { class: 'sub' }, s.kind === 'step' ? `${s.attempts} attempt${s.attempts === 1 ? '' : 's'}` : s.kind),
        el('span', { class: 'sub', title: `started ${fmtDate(ms(s.started_at))}` }, `+${fmtDuration(ms(s.started_at) - t0)} · ${fmtDuration(s.duration_ms)}`),
        el('span', { class: `res${failed ? ' err' : ''}`, title: result }, result)),
      stepBody(s, t0, hasOutput));
    if (state.openSteps.has(key)) details.open = true;
    details.addEventListener('toggle', () => {
      if (details.open) state.openSteps.add(key);
      else state.openSteps.delete(key);
    });
    return details;
  }

  /**
   * The entries that restarts of the failed execution set aside, one group
   * per earlier run: why it failed, kept below the live journal.
   */
  function renderSuperseded(e) {
    const card = $('superseded-card');
    const box = $('superseded');
    clear(box);
    const entries = e.superseded || [];
    card.hidden = entries.length === 0;
    if (!entries.length) return;
    const runs = new Map();
    for (const entry of entries) {
      const group = `${entry.run}\u0000${entry.superseded_at}`;
      if (!runs.has(group)) runs.set(group, { run: entry.run, at: entry.superseded_at, steps: [] });
      runs.get(group).steps.push(entry.step);
    }
    $('d-superseded-count').textContent = `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} from ${runs.size} earlier run${runs.size === 1 ? '' : 's'}`;
    const t0 = ms(e.created_at);
    for (const { run, at, steps } of runs.values()) {
      const section = el('section', { class: 'run', dataset: { run } },
        el('h3', { class: 'run-head' },
          `Run ${run}`,
          el('span', { class: 'when', title: at }, ` · set aside at ${fmtDate(ms(at))}`)));
      for (const s of steps) section.append(stepDetails(s, t0, `${e.id}\u0000${run}\u0000${at}\u0000${s.position}`, false));
      box.append(section);
    }
  }

  function stepBody(s, t0, hasOutput) {
    const body = el('div', { class: 'step-body' });
    if (s.attempt_log.length) {
      const table = el('table', { class: 'attempts' },
        el('thead', {}, el('tr', {}, ['Attempt', 'Status', 'Started', 'Duration', 'Error'].map((h) => el('th', {}, h)))));
      const tbody = el('tbody');
      for (const a of s.attempt_log) {
        tbody.append(el('tr', {},
          el('td', {}, `#${a.attempt}`),
          el('td', {}, badge(a.status === 'running' ? 'running' : a.status, false)),
          el('td', { title: fmtDate(ms(a.started_at)) }, `+${fmtDuration(ms(a.started_at) - t0)}`),
          el('td', {}, a.ended_at ? fmtDuration(a.duration_ms) : 'in flight'),
          el('td', { class: 'err' }, a.error || '')));
      }
      table.append(tbody);
      body.append(table);
    }
    if (hasOutput) body.append(el('pre', { class: 'json' }, json(s.output)));
    else if (s.error) body.append(el('pre', { class: 'json' }, s.error));
    return body;
  }

  function renderPayloads(e) {
    $('d-input').textContent = e.input === null ? `(${e.codec} payload)` : json(e.input);
    const out = $('d-output');
    out.classList.remove('muted');
    if (Object.prototype.hasOwnProperty.call(e, 'output')) {
      $('d-result-title').textContent = 'Output';
      out.textContent = json(e.output);
    } else if (Object.prototype.hasOwnProperty.call(e, 'error')) {
      $('d-result-title').textContent = 'Error value';
      out.textContent = json(e.error);
    } else {
      $('d-result-title').textContent = 'Output';
      out.textContent = TERMINAL.has(e.status) ? 'No output.' : 'Not finished yet.';
      out.classList.add('muted');
    }
  }

  // ---- actions ------------------------------------------------------------

  const ACTION_TEXT = {
    cancel: ['Cancel this execution?', 'A running step finishes its current attempt; the workflow then stops for good.', 'Cancel execution'],
    resume: ['Resume this execution now?', 'A sleeping execution wakes early; a paused one is replayed.', 'Resume now'],
    restart: ['Restart this execution now?', 'It is replayed from its journal: a panicked one without waiting for its restart delay, a failed one from its failed step on.', 'Restart now'],
  };

  function confirmAction(action, id) {
    const [title, text, yes] = ACTION_TEXT[action];
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = `${id}: ${text}`;
    $('confirm-yes').textContent = yes;
    $('confirm-yes').className = `btn ${action === 'cancel' ? 'danger' : 'primary'}`;
    $('confirm').hidden = false;
    $('confirm-yes').focus();
    state.pendingConfirm = { action, id };
  }

  async function runAction() {
    const pending = state.pendingConfirm;
    state.pendingConfirm = null;
    $('confirm').hidden = true;
    if (!pending) return;
    try {
      const answer = await api(`executions/${encodeURIComponent(pending.id)}/${pending.action}`, { method: 'POST', body: {} });
      toast(answer.outcome === 'requested'
        ? `${pending.action[0].toUpperCase()}${pending.action.slice(1)} requested · the worker applies it within a second`
        : `${pending.action[0].toUpperCase()}${pending.action.slice(1)} applied`);
    } catch (err) {
      toast(err.message, true);
    }
    refresh(false);
  }

  let toastTimer = null;
  function toast(text, bad) {
    const box = $('toast');
    box.textContent = text;
    box.classList.toggle('bad', !!bad);
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 5000);
  }

  // ---- token and start ----------------------------------------------------

  function askToken(message) {
    clearTimeout(state.timer);
    show('token-view');
    $('token-error').hidden = !message;
    $('token-error').textContent = message || '';
    setLive('paused', 'Locked');
    $('token-input').focus();
  }

  function openStart() {
    const select = $('start-workflow');
    clear(select);
    for (const name of (state.info && state.info.workflows) || []) select.append(el('option', { value: name }, name));
    $('start-error').hidden = true;
    $('start').hidden = false;
    $('start-id').focus();
  }

  async function submitStart(ev) {
    ev.preventDefault();
    let input;
    try {
      input = parseJson($('start-input').value || '{}');
    } catch (err) {
      $('start-error').textContent = `The input is not valid JSON: ${err.message}`;
      $('start-error').hidden = false;
      return;
    }
    const body = { input };
    const id = $('start-id').value.trim();
    if (id) body.id = id;
    try {
      const answer = await api(`workflows/${encodeURIComponent($('start-workflow').value)}/executions`, { method: 'POST', body });
      $('start').hidden = true;
      location.hash = executionHash(answer.id);
    } catch (err) {
      $('start-error').textContent = err.message;
      $('start-error').hidden = false;
    }
  }

  // ---- wiring -------------------------------------------------------------

  function init() {
    // A token handed over in the fragment (`#token=...`) never reaches a server log.
    const fragment = new URLSearchParams(location.hash.replace(/^#\/?/, ''));
    if (fragment.has('token')) {
      setToken(fragment.get('token'));
      history.replaceState(null, '', `${location.pathname}${location.search}#/`);
    }

    $('filters').addEventListener('change', applyFilters);
    $('filters').addEventListener('submit', (ev) => { ev.preventDefault(); applyFilters(); });
    $('f-clear').addEventListener('click', () => { location.hash = '#/'; });
    $('page-prev').addEventListener('click', () => {
      const r = route();
      location.hash = listHash({ ...r, offset: Math.max(0, r.offset - PAGE) });
    });
    $('page-next').addEventListener('click', () => {
      const r = route();
      location.hash = listHash({ ...r, offset: r.offset + PAGE });
    });
    for (const action of ['cancel', 'resume', 'restart']) {
      $(`act-${action}`).addEventListener('click', (ev) => confirmAction(action, ev.currentTarget.dataset.id));
    }
    $('confirm-yes').addEventListener('click', runAction);
    $('confirm-no').addEventListener('click', () => { state.pendingConfirm = null; $('confirm').hidden = true; });
    $('start-open').addEventListener('click', openStart);
    $('start-cancel').addEventListener('click', () => { $('start').hidden = true; });
    $('start-form').addEventListener('submit', submitStart);
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        $('confirm').hidden = true;
        $('start').hidden = true;
        state.pendingConfirm = null;
      }
    });
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      setToken($('token-input').value.trim());
      $('token-input').value = '';
      state.info = null;
      refresh(true);
    });
    $('live').addEventListener('click', () => {
      state.live = !state.live;
      if (state.live) refresh(false);
      else {
        clearTimeout(state.timer);
        setLive('paused', 'Paused');
      }
    });
    window.addEventListener('hashchange', () => refresh(true));
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && state.live) refresh(false);
    });
    refresh(true);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();

// The meshgate dev dashboard: plain JavaScript, no build step. State arrives once a second over
// Server-Sent Events (/api/events); controls POST edits to /api/edit, which rewrites the running config
// file and reloads the mesh through the same validated path as a file change.

const $ = (sel) => document.querySelector(sel)
const SVG = 'http://www.w3.org/2000/svg'

let state = null
let routesKey = ''
let dragging = false

function esc(s) {
  return String(s ?? '').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
  )
}

function toast(text, bad = false) {
  const el = $('#toast')
  el.textContent = text
  el.className = bad ? 'toast bad' : 'toast'
  el.hidden = false
  clearTimeout(toast.timer)
  toast.timer = setTimeout(() => (el.hidden = true), bad ? 8000 : 2500)
}

async function post(path, body) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const out = await res.json().catch(() => ({ ok: false, error: `HTTP ${res.status}` }))
  if (!out.ok) toast(`Refused: ${out.error}`, true)
  return out
}

async function edit(body, message) {
  const out = await post('/api/edit', body)
  if (out.ok) toast(message)
  return out
}

// ---------------------------------------------------------------------------------------------
// Service graph

function runtimeOf(svc) {
  return svc.runtime
}

function layout(s) {
  const names = ['gateway', ...s.services.map((x) => x.name)]
  const links = new Map()
  for (const r of s.gateway.routes) links.set(`gateway\u0000${r.service}`, { from: 'gateway', to: r.service })
  for (const e of s.edges) {
    if (names.includes(e.from) && names.includes(e.to) && e.from !== e.to)
      links.set(`${e.from}\u0000${e.to}`, { from: e.from, to: e.to })
  }
  const depth = Object.fromEntries(names.map((n) => [n, n === 'gateway' ? 0 : 1]))
  // Longest path from the gateway: callers left of the services they call (a cycle stops growing).
  for (let i = 0; i < names.length; i++) {
    for (const l of links.values()) {
      if (l.to !== 'gateway' && depth[l.to] < depth[l.from] + 1 && depth[l.from] + 1 < names.length)
        depth[l.to] = depth[l.from] + 1
    }
  }
  const columns = []
  for (const n of names) {
    columns[depth[n]] ??= []
    columns[depth[n]].push(n)
  }
  return { columns: columns.filter(Boolean), links: [...links.values()] }
}

function el(name, attrs = {}, parent) {
  const node = document.createElementNS(SVG, name)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v)
  if (parent) parent.appendChild(node)
  return node
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–'
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)}s` : `${ms < 10 ? ms.toFixed(1) : Math.round(ms)}ms`
}

/** The y of the edge's cubic (x1,y1)→(x2,y2), control points at mx, where it crosses x. */
function curveYAt(x1, y1, mx, x2, y2, x) {
  let best = { d: Number.POSITIVE_INFINITY, y: (y1 + y2) / 2 }
  for (let i = 0; i <= 60; i++) {
    const t = i / 60
    const u = 1 - t
    const bx = u * u * u * x1 + 3 * u * u * t * mx + 3 * u * t * t * mx + t * t * t * x2
    const by = u * u * u * y1 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t * t * t * y2
    if (Math.abs(bx - x) < best.d) best = { d: Math.abs(bx - x), y: by }
  }
  return best.y
}

function renderGraph(s) {
  const { columns, links } = layout(s)
  const colW = 430
  const nodeW = 200
  const services = Object.fromEntries(s.services.map((x) => [x.name, x]))
  const heightOf = (n) => (n === 'gateway' ? 58 : 46 + 20 * services[n].targets.length)
  const gap = 34
  const colHeights = columns.map((c) => c.reduce((h, n) => h + heightOf(n) + gap, -gap))
  const H = Math.max(...colHeights) + 40
  const W = columns.length * colW + 10
  const pos = {}
  columns.forEach((col, ci) => {
    let y = (H - colHeights[ci]) / 2
    for (const n of col) {
      pos[n] = { x: 20 + ci * colW, y, w: nodeW, h: heightOf(n) }
      y += heightOf(n) + gap
    }
  })

  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'service graph' })
  const defs = el('defs', {}, svg)
  const grad = el('linearGradient', { id: 'mixed-stroke', x1: '0', x2: '1', y1: '0', y2: '0' }, defs)
  el('stop', { offset: '50%', 'stop-color': '#e8890c' }, grad)
  el('stop', { offset: '50%', 'stop-color': '#2f6fb5' }, grad)
  const marker = el(
    'marker',
    {
      id: 'arrow',
      viewBox: '0 0 10 10',
      refX: '9',
      refY: '5',
      markerWidth: '7',
      markerHeight: '7',
      orient: 'auto',
    },
    defs,
  )
  el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8f99ab' }, marker)

  const stats = new Map(s.edges.map((e) => [`${e.from}\u0000${e.to}`, e]))
  const edgeLayer = el('g', {}, svg)
  const labelLayer = el('g', {}, svg)
  const incoming = {}
  for (const l of links) {
    incoming[l.to] ??= []
    incoming[l.to].push(l)
  }
  for (const l of links) {
    const a = pos[l.from]
    const b = pos[l.to]
    if (!a || !b) continue
    const list = incoming[l.to]
    const k = list.indexOf(l)
    const x1 = a.x + a.w
    const y1 = a.y + a.h / 2
    const x2 = b.x - 2
    const y2 = b.y + (b.h * (k + 1)) / (list.length + 1)
    const st = stats.get(`${l.from}\u0000${l.to}`)
    const active = st && st.requests > 0
    const bad = active && st.errorRate > 0.01
    const g = el(
      'g',
      { class: `edge${active ? '' : ' idle'}${bad ? ' bad' : ''}`, 'data-edge': `${l.from}->${l.to}` },
      edgeLayer,
    )
    const mx = (x1 + x2) / 2
    const width = active ? Math.min(7, 1.5 + Math.log2(1 + st.rps)) : 1.5
    el(
      'path',
      {
        d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
        'stroke-width': width,
        'marker-end': 'url(#arrow)',
      },
      g,
    )
    const text = active
      ? `${st.rps} rps · ${(st.errorRate * 100).toFixed(1)}% err · p99 ${fmtMs(st.p99)}`
      : 'no traffic'
    // The label sits in the gap just before the callee, where no node is: on the curve at that x.
    const lx = Math.max(x1 + 100, x2 - (colW - nodeW) / 2)
    const ly = curveYAt(x1, y1, mx, x2, y2, lx)
    const lg = el('g', { class: `edge-label${bad ? ' bad' : ''}` }, labelLayer)
    const tw = text.length * 5.9 + 12
    el('rect', { x: lx - tw / 2, y: ly - 10, width: tw, height: 19, rx: 9 }, lg)
    const t = el('text', { x: lx, y: ly + 4, 'text-anchor': 'middle' }, lg)
    t.textContent = text
  }

  for (const [name, p] of Object.entries(pos)) {
    const svc = services[name]
    const kind = name === 'gateway' ? 'gateway' : runtimeOf(svc)
    const g = el(
      'g',
      { class: `node ${kind}`, 'data-service': name, transform: `translate(${p.x},${p.y})` },
      svg,
    )
    el('rect', { class: 'box', width: p.w, height: p.h, rx: 10 }, g)
    const title = el('text', { class: 'title', x: 12, y: 22 }, g)
    title.textContent = name
    if (name === 'gateway') {
      const sub = el('text', { class: 'sub', x: 12, y: 42 }, g)
      sub.textContent = s.gateway.url.replace('http://', '')
      continue
    }
    const rps = s.edges.filter((e) => e.to === name).reduce((n, e) => n + e.rps, 0)
    const sub = el('text', { class: 'sub', x: p.w - 10, y: 22, 'text-anchor': 'end' }, g)
    sub.textContent = `${rps.toFixed(1)} rps in`
    svc.targets.forEach((t, i) => {
      const y = 34 + i * 20
      const lambda = t.runtime === 'lambda'
      el(
        'rect',
        { class: lambda ? 'chip-lambda' : 'chip-container', x: 12, y, width: 26, height: 15, rx: 4 },
        g,
      )
      const ct = el('text', { class: 'chip-text', x: 25, y: y + 11.5, 'text-anchor': 'middle' }, g)
      ct.textContent = lambda ? 'λ' : '▣'
      const tt = el('text', { class: 'sub', x: 44, y: y + 11.5 }, g)
      const where = lambda ? t.functionName : `${t.instances.length} × container`
      tt.textContent = `${t.name} · ${where}`
    })
  }
  $('#graph').replaceChildren(svg)
}

// ---------------------------------------------------------------------------------------------
// Routes: controls are rebuilt only when the config changes, the observed bars every second.

function targetRuntime(svc, name) {
  return svc.targets.find((t) => t.name === name)?.runtime ?? 'container'
}

function barHtml(svc, parts) {
  return parts
    .map(([t, pct]) => {
      const label = pct >= 6 ? `${t} ${pct.toFixed(pct < 10 ? 1 : 0)}%` : ''
      return `<span class="t-${targetRuntime(svc, t)}" style="width:${pct}%" title="${esc(t)} ${pct.toFixed(1)}%">${esc(label)}</span>`
    })
    .join('')
}

function observedParts(route) {
  const total = route.observedTotal
  return Object.keys(route.to).map((t) => [t, total > 0 ? ((route.observed[t] ?? 0) / total) * 100 : 0])
}

function observedText(route) {
  if (route.observedTotal === 0) return 'no requests yet'
  return Object.keys(route.to)
    .map((t) => {
      const pct = ((route.observed[t] ?? 0) / route.observedTotal) * 100
      return `${esc(t)} <b class="observed-pct" data-target="${esc(t)}">${pct.toFixed(1)}</b>%`
    })
    .join(' · ')
}

function weightControls(svc, route) {
  const targets = Object.keys(route.to)
  const id = `${svc.name}/${route.name}`
  if (targets.length === 2) {
    const [a, b] = targets
    const total = route.to[a] + route.to[b]
    const pct = total > 0 ? Math.round((route.to[b] / total) * 100) : 0
    return `<div class="row"><span>${esc(a)}</span>
      <input type="range" min="0" max="100" step="1" value="${pct}" data-route="${esc(id)}" data-a="${esc(a)}" data-b="${esc(b)}" class="split" aria-label="weight of ${esc(b)} in ${esc(id)}">
      <span>${esc(b)}</span><span class="weight">${100 - pct} / ${pct}</span></div>`
  }
  return targets
    .map(
      (t) => `<div class="row"><span>${esc(t)}</span>
      <input type="range" min="0" max="100" step="1" value="${route.to[t]}" data-route="${esc(id)}" data-target="${esc(t)}" class="weight-one" aria-label="weight of ${esc(t)} in ${esc(id)}">
      <span class="weight">${route.to[t]}</span></div>`,
    )
    .join('')
}

function renderRoutes(s) {
  const html = s.services
    .map((svc) => {
      const kinds = [...new Set(svc.targets.map((t) => t.runtime))]
      const tags = kinds
        .map((k) => `<span class="tag ${k}">${k === 'lambda' ? 'λ Lambda' : '▣ container'}</span>`)
        .join('')
      const routes = svc.routes
        .map((r) => {
          const id = `${svc.name}/${r.name}`
          const targets = Object.keys(r.to)
          const configured = targets.map((t) => [t, r.configured[t] ?? 0])
          const userRoute = r.match !== '*' && r.match !== 'path /*'
          const controls = []
          if (targets.length > 1) controls.push(weightControls(svc, r))
          else if (svc.targets.length > 1) {
            const opts = svc.targets
              .map(
                (t) =>
                  `<option value="${esc(t.name)}"${t.name === targets[0] ? ' selected' : ''}>${esc(t.name)}</option>`,
              )
              .join('')
            controls.push(
              `<div class="row">send all to <select class="target" data-route="${esc(id)}">${opts}</select></div>`,
            )
          }
          if (userRoute)
            controls.push(
              `<div class="row"><label><input type="checkbox" class="route-on" data-route="${esc(id)}" checked> route on</label></div>`,
            )
          const faultLabel = r.fault
            ? `<span class="fault-on">fault: ${esc(r.fault)}</span>`
            : `fault: ${esc(r.faultPreset)}`
          controls.push(
            `<div class="row"><label><input type="checkbox" class="fault" data-route="${esc(id)}"${r.fault ? ' checked' : ''}> ${faultLabel}</label></div>`,
          )
          return `<div class="route" data-route="${esc(id)}">
            <div><div class="name">${esc(r.name)}</div><div class="match">${esc(r.match)}${r.sticky ? ` · sticky by ${esc(r.sticky)}` : ''}</div></div>
            <div class="bars">
              <div class="bar-row"><span>configured</span><div class="bar">${barHtml(svc, configured)}</div></div>
              <div class="bar-row"><span>observed</span><div class="bar observed-bar">${barHtml(svc, observedParts(r))}</div></div>
              <div class="bar-row"><span></span><span class="observed-text">${observedText(r)} <span class="muted">(${r.observedTotal} req)</span></span></div>
            </div>
            <div class="controls">${controls.join('')}</div>
          </div>`
        })
        .join('')
      const off = svc.disabledRoutes
        .map(
          (d) =>
            `<div class="disabled-route">route <b>${esc(d.name)}</b> is switched off <button class="route-restore" data-route="${esc(`${svc.name}/${d.name}`)}">switch on</button></div>`,
        )
        .join('')
      return `<div class="service-routes" data-service="${esc(svc.name)}"><h3>${esc(svc.name)} ${tags}</h3>${routes}${off}</div>`
    })
    .join('')
  $('#routes').innerHTML = html
}

function updateObserved(s) {
  for (const svc of s.services) {
    for (const r of svc.routes) {
      const row = document.querySelector(`.route[data-route="${CSS.escape(`${svc.name}/${r.name}`)}"]`)
      if (!row) continue
      row.querySelector('.observed-bar').innerHTML = barHtml(svc, observedParts(r))
      row.querySelector('.observed-text').innerHTML =
        `${observedText(r)} <span class="muted">(${r.observedTotal} req)</span>`
    }
  }
}

function split(id) {
  const i = id.indexOf('/')
  return { service: id.slice(0, i), route: id.slice(i + 1) }
}

document.addEventListener('input', (ev) => {
  const t = ev.target
  if (t.classList.contains('split')) {
    dragging = true
    t.parentElement.querySelector('.weight').textContent = `${100 - Number(t.value)} / ${t.value}`
  } else if (t.classList.contains('weight-one')) {
    dragging = true
    t.parentElement.querySelector('.weight').textContent = t.value
  }
})

document.addEventListener('change', async (ev) => {
  const t = ev.target
  const id = t.dataset.route
  if (!id) return
  const { service, route } = split(id)
  if (t.classList.contains('split')) {
    dragging = false
    const b = Number(t.value)
    await edit(
      { op: 'weights', service, route, to: { [t.dataset.a]: 100 - b, [t.dataset.b]: b } },
      `${id}: ${t.dataset.a} ${100 - b} / ${t.dataset.b} ${b}`,
    )
  } else if (t.classList.contains('weight-one')) {
    dragging = false
    const to = {}
    for (const s of document.querySelectorAll(`.weight-one[data-route="${CSS.escape(id)}"]`))
      to[s.dataset.target] = Number(s.value)
    await edit({ op: 'weights', service, route, to }, `${id}: weights ${JSON.stringify(to)}`)
  } else if (t.classList.contains('target')) {
    await edit({ op: 'target', service, route, target: t.value }, `${id}: all to ${t.value}`)
  } else if (t.classList.contains('fault')) {
    await edit(
      { op: 'fault', service, route, enabled: t.checked },
      `${id}: fault ${t.checked ? 'on' : 'off'}`,
    )
  } else if (t.classList.contains('route-on')) {
    await edit(
      { op: 'route', service, route, enabled: t.checked },
      `${id}: route ${t.checked ? 'on' : 'off'}`,
    )
  } else return
  routesKey = ''
})

document.addEventListener('click', async (ev) => {
  const t = ev.target
  if (!t.classList?.contains('route-restore')) return
  const { service, route } = split(t.dataset.route)
  await edit({ op: 'route', service, route, enabled: true }, `${t.dataset.route}: route on`)
  routesKey = ''
})

// ---------------------------------------------------------------------------------------------
// Traces

function renderTraces(s) {
  if (s.traces.length === 0) {
    $('#traces').innerHTML = '<p class="empty">No traces yet: send a request through the gateway.</p>'
    return
  }
  $('#traces').innerHTML = s.traces
    .map((tr) => {
      const total = Math.max(tr.durationMs, 0.001)
      const rows = tr.spans
        .map((sp) => {
          const left = ((sp.start - tr.start) / total) * 100
          const width = Math.max(((sp.end - sp.start) / total) * 100, 0.3)
          const bad = sp.error || (sp.status ?? 0) >= 500
          const status = sp.error ? `${sp.status ?? ''} ${sp.error}` : (sp.status ?? '')
          return `<div class="span k-${sp.kind}${bad ? ' err' : ''}">
            <span class="label" style="padding-left:${sp.depth * 14}px" title="${esc(sp.label)} ${esc(status)}">${esc(sp.label)} <span class="muted">${esc(status)}</span></span>
            <span class="track"><i style="left:${left}%;width:${width}%"></i></span>
            <span class="ms">${fmtMs(sp.end - sp.start)}</span></div>`
        })
        .join('')
      const bad = (tr.status ?? 0) >= 500
      return `<div class="trace"><div class="trace-head">${esc(tr.traceId)} · ${fmtMs(tr.durationMs)} · <span class="${bad ? 'status-bad' : ''}">${esc(tr.status ?? '')}</span> · ${new Date(tr.start).toLocaleTimeString()}</div>${rows}</div>`
    })
    .join('')
}

// ---------------------------------------------------------------------------------------------
// Rollouts (docs/rollout.md)

function windowText(w) {
  if (!w) return '<span class="muted">no look yet</span>'
  const rate = w.errorRate === undefined ? '–' : `${Math.round(w.errorRate * 100) / 100}%`
  const p99 = w.p99Ms === undefined ? '–' : fmtMs(w.p99Ms)
  return `<span class="n-req">${w.requests} req</span> · <span class="n-err">${rate} errors</span> · <span class="n-p99">p99 ${p99}</span>`
}

function renderRollouts(s) {
  const list = s.rollouts ?? []
  if (list.length === 0) {
    $('#rollouts').innerHTML =
      '<p class="empty">No rollouts: add a <code>rollout</code> block to a route of your mesh file (docs/rollout.md).</p>'
    return
  }
  $('#rollouts').innerHTML = list
    .map((r) => {
      const steps = r.steps
        .map((w, i) => {
          const cls =
            r.phase === 'promoted' || i + 1 < r.step
              ? 'done'
              : i + 1 === r.step && r.phase === 'progressing'
                ? 'current'
                : ''
          return `<span class="step ${cls}">${w}%</span>`
        })
        .join('')
      const log = [...r.log]
        .reverse()
        .map(
          (e) =>
            `<li class="d-${esc(e.decision)}"><span class="muted">${new Date(e.at).toLocaleTimeString()}</span> <b>${esc(e.decision)}</b> ${esc(e.weight)}% · ${esc(e.detail)}</li>`,
        )
        .join('')
      return `<div class="rollout" data-service="${esc(r.service)}" data-route="${esc(r.route)}" data-phase="${esc(r.phase)}" data-step="${esc(r.step)}">
        <div class="rollout-head"><b>${esc(r.service)}/${esc(r.route)}</b> ${esc(r.stable)} → ${esc(r.canary)}
          <span class="phase p-${esc(r.phase)}">${esc(r.phase)}</span>
          <span class="weight">canary ${Math.round(r.weight * 100) / 100}%</span></div>
        <div class="steps">step ${esc(r.step)} of ${r.steps.length}: ${steps}</div>
        <table class="windows">
          <tr class="w-canary"><th>canary ${esc(r.canary)}</th><td>${windowText(r.canaryWindow)}</td></tr>
          <tr class="w-stable"><th>stable ${esc(r.stable)}</th><td>${windowText(r.stableWindow)}</td></tr>
        </table>
        ${r.reason ? `<div class="reason muted">${esc(r.reason)}</div>` : ''}
        <ol class="decisions">${log}</ol>
      </div>`
    })
    .join('')
}

// ---------------------------------------------------------------------------------------------

function renderHeader(s) {
  $('#mesh-name').textContent = s.mesh
  const r = s.lastReload
  const reload = $('#reload')
  if (r) {
    reload.textContent = r.ok
      ? `AppConfig version ${s.config.version} · published ${new Date(r.at).toLocaleTimeString()} (${r.why})`
      : `config refused (${r.why}): ${r.error}`
    reload.className = r.ok ? 'reload' : 'reload bad'
  } else reload.textContent = `config ${s.file}`
  const on = $('#traffic-on')
  on.checked = s.traffic.running
  const rate = $('#traffic-rate')
  if (document.activeElement !== rate) rate.value = s.traffic.rate
  $('#traffic-stats').textContent = `${s.traffic.sent} sent · ${s.traffic.errors} failed`
}

function render(s) {
  state = s
  renderHeader(s)
  renderGraph(s)
  const key = JSON.stringify([
    s.generation,
    s.services.map((x) => [x.routes.map((r) => [r.name, r.to, r.fault]), x.disabledRoutes]),
  ])
  if (key !== routesKey && !dragging) {
    routesKey = key
    renderRoutes(s)
  } else updateObserved(s)
  renderRollouts(s)
  renderTraces(s)
}

$('#traffic-on').addEventListener('change', (ev) => post('/api/traffic', { running: ev.target.checked }))
$('#traffic-rate').addEventListener('change', (ev) => post('/api/traffic', { rate: Number(ev.target.value) }))

function connect() {
  const source = new EventSource('/api/events')
  source.onopen = () => {
    $('#conn').textContent = 'live'
    $('#conn').className = 'conn live'
  }
  source.onmessage = (ev) => render(JSON.parse(ev.data))
  source.onerror = () => {
    $('#conn').textContent = 'disconnected, retrying…'
    $('#conn').className = 'conn'
  }
}

connect()
window.meshgateState = () => state

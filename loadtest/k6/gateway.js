// k6 load for the sluice gateway: three kinds of users, every body checked.
//
//   browser   — loads a small site through path URLs, like a browser: the
//               directory (served as its index.html), CSS, JS, a batch of
//               images, sometimes the HTML listing of gallery/ and a few of
//               its photos, sometimes the 301 that adds a trailing slash.
//               No provider hints: the gateway finds blocks at its
//               connected peers ([p2p] peers).
//   curl      — whole files by CID with `X-Ipfs-Provider: <multiaddr>`
//               hints, a third of them with a `Range` header.
//   trustless — CAR (`Accept: application/vnd.ipld.car` or `?format=car`,
//               also `dag-scope=block`) and raw blocks (`?format=raw` or
//               `Accept: application/vnd.ipld.raw`), half with hints.
//
// Checks: status, Content-Type, Etag, and the body: SHA-256 of the expected
// bytes (files, ranges), CID digest (raw blocks), and for CARs every block is
// hashed here and compared with its CID, the first block must be the root
// and the block count must match the manifest. A body that fails is counted
// in `wrong_bodies` (tagged by kind); a status other than the expected one
// in `unexpected_status` (tagged by status and kind). Requests are tagged
// `kind` (page, css, js, img, listing, redirect, gallery_img, file, range,
// car, car_block, raw).
//
// Environment: MANIFEST (from k6_prep.py, plus "hints"), BASE_URL,
// SCENARIOS (comma list of browser,curl,trustless), DURATION (e.g. 45s),
// VUS_BROWSER (8), VUS_CURL (6), VUS_TRUSTLESS (6). Several scenarios run
// at the same time (the soak's mixed load).

import http from 'k6/http'
import crypto from 'k6/crypto'
import { check, sleep } from 'k6'
import { Counter, Trend } from 'k6/metrics'

const M = JSON.parse(open(__ENV.MANIFEST))
const BASE = __ENV.BASE_URL
const DURATION = __ENV.DURATION || '45s'
const SCEN = (__ENV.SCENARIOS || 'browser,curl,trustless').split(',').filter(s => s)
const VUS = {
  browser: Number(__ENV.VUS_BROWSER || 8),
  curl: Number(__ENV.VUS_CURL || 6),
  trustless: Number(__ENV.VUS_TRUSTLESS || 6)
}
// Hint sets for curl/trustless requests; each entry is a list of multiaddrs,
// joined with ", " into one X-Ipfs-Provider header.
const HINTS = M.hints || [[]]

const wrongBodies = new Counter('wrong_bodies')
const unexpectedStatus = new Counter('unexpected_status')
const badHeaders = new Counter('bad_headers')
const bodyBytes = new Counter('body_bytes')
const verifyMs = new Trend('verify_ms', true)

const KINDS = ['page', 'css', 'js', 'img', 'listing', 'redirect', 'gallery_img', 'file', 'range', 'car', 'car_block', 'raw']
const thresholds = { wrong_bodies: ['count==0'] }
// Always-true thresholds make k6 keep these sub-metrics in --summary-export.
for (const k of KINDS) thresholds[`http_req_duration{kind:${k}}`] = ['max>=0']
for (const s of ['200', '206', '301', '400', '404', '429', '500', '502', '504']) {
  thresholds[`http_reqs{status:${s}}`] = ['count>=0']
}

const scenarios = {}
for (const s of SCEN) {
  scenarios[s] = { executor: 'constant-vus', exec: s, vus: VUS[s], duration: DURATION, gracefulStop: '60s' }
}

export const options = {
  scenarios,
  thresholds,
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
  userAgent: 'sluice-k6/1'
}
// Any other status counts in k6's http_req_failed.
http.setResponseCallback(http.expectedStatuses(200, 206, 301))

const pick = a => a[Math.floor(Math.random() * a.length)]
const hintHeader = () => {
  const h = pick(HINTS)
  return h.length ? { 'X-Ipfs-Provider': h.join(', ') } : {}
}

function hex (bytes) {
  let s = ''
  for (let i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16)
  return s
}

// res: a k6 response; want: {status, sha256?, ctype?, etag?, etagPrefix?}
function verify (res, kind, want) {
  const t0 = Date.now()
  const okStatus = res.status === want.status
  if (!okStatus) unexpectedStatus.add(1, { kind, status: String(res.status) })
  let okBody = true
  let okHead = true
  if (okStatus) {
    const ct = res.headers['Content-Type'] || ''
    const etag = res.headers.Etag || ''
    if (want.ctype != null && !ct.startsWith(want.ctype)) okHead = false
    if (want.etag != null && etag !== want.etag) okHead = false
    if (want.etagPrefix != null && !etag.startsWith(want.etagPrefix)) okHead = false
    if (want.contentRange != null && res.headers['Content-Range'] !== want.contentRange) okHead = false
    if (want.sha256 != null) okBody = res.body != null && crypto.sha256(res.body, 'hex') === want.sha256
    if (want.bodyCheck != null) okBody = okBody && want.bodyCheck(res)
    if (!okHead) badHeaders.add(1, { kind })
    if (!okBody) wrongBodies.add(1, { kind })
    if (res.body != null) bodyBytes.add(res.body.byteLength || res.body.length || 0, { kind })
  }
  verifyMs.add(Date.now() - t0, { kind })
  const c = {}
  c[`${kind}: status ${want.status}`] = () => okStatus
  c[`${kind}: headers`] = () => okHead
  c[`${kind}: body`] = () => okBody
  check(res, c, { kind })
}

function get (url, kind, headers, extra) {
  return http.get(url, Object.assign({ headers: headers || {}, tags: { kind }, responseType: 'binary', timeout: '120s' }, extra || {}))
}

// ------------------------------------------------------------------ browser
const HTML_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
const siteReq = (rel, kind) => ['GET', `${BASE}/ipfs/${M.site}/${rel}`, null,
  { headers: { Accept: rel.endsWith('.css') ? 'text/css,*/*;q=0.1' : rel.endsWith('.html') || rel === '' ? HTML_ACCEPT : 'image/avif,image/webp,*/*;q=0.8' },
    tags: { kind }, responseType: 'binary', timeout: '120s' }]
const fileWant = rel => {
  const f = M.site_files[rel]
  return { status: 200, sha256: f.sha256, ctype: f.content_type, etag: f.etag }
}

export function browser () {
  // the page: the directory URL serves its index.html
  let res = http.get(`${BASE}/ipfs/${M.site}/`, { headers: { Accept: HTML_ACCEPT }, tags: { kind: 'page' }, responseType: 'binary', timeout: '120s' })
  verify(res, 'page', { status: 200, sha256: M.site_files['index.html'].sha256, ctype: 'text/html' })
  // its sub-resources, fetched in parallel like a browser does
  const subs = [['style.css', 'css'], ['app.js', 'js']].concat(M.images.map(p => [p, 'img']))
  const batch = http.batch(subs.map(([rel, kind]) => siteReq(rel, kind)))
  batch.forEach((r, i) => verify(r, subs[i][1], fileWant(subs[i][0])))
  sleep(0.2 + Math.random() * 0.5)
  const roll = Math.random()
  if (roll < 0.3) {
    const l = M.listings['gallery/']
    res = http.get(`${BASE}/ipfs/${M.site}/gallery/`, { headers: { Accept: HTML_ACCEPT }, tags: { kind: 'listing' }, timeout: '120s' })
    verify(res, 'listing', {
      status: 200,
      ctype: 'text/html',
      etag: l.etag,
      bodyCheck: r => l.names.every(n => r.body.includes(n))
    })
    const photos = []
    for (let i = 0; i < 6; i++) photos.push(`gallery/${pick(M.gallery)}`)
    http.batch(photos.map(p => siteReq(p, 'gallery_img'))).forEach((r, i) => verify(r, 'gallery_img', fileWant(photos[i])))
  } else if (roll < 0.4) {
    res = http.get(`${BASE}/ipfs/${M.site}/about`, { headers: { Accept: HTML_ACCEPT }, tags: { kind: 'redirect' }, redirects: 0, timeout: '120s' })
    verify(res, 'redirect', { status: 301, bodyCheck: r => (r.headers.Location || '').endsWith(`/ipfs/${M.site}/about/`) })
    const page = M.site_files['about/index.html']
    res = get(`${BASE}/ipfs/${M.site}/about/`, 'page', { Accept: HTML_ACCEPT })
    verify(res, 'page', { status: 200, sha256: page.sha256, ctype: 'text/html' })
  } else if (roll < 0.5) {
    const l = M.listings['img/']
    res = http.get(`${BASE}/ipfs/${M.site}/img/`, { headers: { Accept: HTML_ACCEPT }, tags: { kind: 'listing' }, timeout: '120s' })
    verify(res, 'listing', { status: 200, ctype: 'text/html', etag: l.etag, bodyCheck: r => l.names.every(n => r.body.includes(n)) })
  }
  sleep(0.5 + Math.random())
}

// ------------------------------------------------------------------ curl
// f16m is fetched less often than the small files (it is 16 MiB).
const CURL_FILES = ['f256k', 'f256k', 'f256k', 'f4m', 'f4m', 'f16m']

export function curl () {
  const f = M.curl[pick(CURL_FILES)]
  const headers = Object.assign({ Accept: '*/*' }, hintHeader())
  if (Math.random() < 0.33) {
    const r = pick(f.ranges)
    headers.Range = r.header
    const res = get(`${BASE}/ipfs/${f.cid}`, 'range', headers)
    verify(res, 'range', { status: 206, sha256: r.sha256, contentRange: r.content_range, etag: `"${f.cid}"` })
  } else {
    const res = get(`${BASE}/ipfs/${f.cid}`, 'file', headers)
    verify(res, 'file', { status: 200, sha256: f.sha256, ctype: f.content_type, etag: `"${f.cid}"` })
  }
  sleep(0.2 + Math.random() * 0.6)
}

// ------------------------------------------------------------------ trustless
function varint (b, p) {
  let n = 0
  let mul = 1
  for (;;) {
    const x = b[p++]
    n += (x & 0x7f) * mul
    if (x < 0x80) return [n, p]
    mul *= 128
  }
}

// Hashes every block of a CAR v1 and compares it with its CID; returns the
// number of blocks, or -1 if a block is wrong or the first is not the root.
function carBlocks (buf, rootDigest) {
  const b = new Uint8Array(buf)
  let [hlen, p] = varint(b, 0)
  p += hlen
  let n = 0
  while (p < b.length) {
    let slen
    [slen, p] = varint(b, p)
    const end = p + slen
    let code, dlen
    if (b[p] === 0x12 && b[p + 1] === 0x20) { // CIDv0
      code = 0x12; dlen = 32; p += 2
    } else {
      let v;
      [v, p] = varint(b, p); [v, p] = varint(b, p) // version, codec
      ;[code, p] = varint(b, p); [dlen, p] = varint(b, p)
    }
    const digest = hex(b.subarray(p, p + dlen))
    p += dlen
    if (code === 0x12) {
      if (crypto.sha256(buf.slice(p, end), 'hex') !== digest) return -1
    } else if (code !== 0x00) return -1
    if (n === 0 && digest !== rootDigest) return -1
    n++
    p = end
  }
  return n
}

const CAR_NAMES = ['site', 'f256k', 'f4m', 'f4m', 'site']

export function trustless () {
  const roll = Math.random()
  const headers = Math.random() < 0.5 ? hintHeader() : {}
  if (roll < 0.35) {
    const car = M.cars[pick(CAR_NAMES)]
    let res
    if (Math.random() < 0.5) {
      res = get(`${BASE}/ipfs/${car.cid}`, 'car', Object.assign({ Accept: 'application/vnd.ipld.car' }, headers))
    } else {
      res = get(`${BASE}/ipfs/${car.cid}?format=car`, 'car', headers)
    }
    verify(res, 'car', {
      status: 200,
      ctype: 'application/vnd.ipld.car',
      etagPrefix: `W/"${car.cid}.car.`,
      bodyCheck: r => r.body.byteLength > 0 && carBlocks(r.body, car.digest) === car.blocks
    })
  } else if (roll < 0.45) {
    const car = M.cars[pick(CAR_NAMES)]
    const res = get(`${BASE}/ipfs/${car.cid}?format=car&dag-scope=block`, 'car_block', headers)
    verify(res, 'car_block', { status: 200, ctype: 'application/vnd.ipld.car', bodyCheck: r => carBlocks(r.body, car.digest) === 1 })
  } else {
    const blk = pick(M.raw)
    const res = Math.random() < 0.5
      ? get(`${BASE}/ipfs/${blk.cid}?format=raw`, 'raw', headers)
      : get(`${BASE}/ipfs/${blk.cid}`, 'raw', Object.assign({ Accept: 'application/vnd.ipld.raw' }, headers))
    verify(res, 'raw', { status: 200, sha256: blk.digest, ctype: 'application/vnd.ipld.raw', etag: `"${blk.cid}.raw"` })
  }
  sleep(0.1 + Math.random() * 0.4)
}

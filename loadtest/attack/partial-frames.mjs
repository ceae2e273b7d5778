#!/usr/bin/env node
// Partial-frame Bitswap flooder: libp2p peers that open many
// /ipfs/bitswap/1.2.0 streams to a gateway and on each send the varint
// length of a --size (4,000,000) byte message and then all but the last
// --short (100) bytes of it, and hold the stream. A stream the gateway
// resets or closes is counted and replaced after --reopen-delay, again and
// again, up to --max-opens streams in all; everything stops by itself after
// --secs (or on SIGTERM/SIGINT).
//
// Run with the Node 22 of tests/peers (tests/peers/install.sh); the libp2p
// packages are loaded from tests/peers/node_modules (--peers-dir):
//   tests/peers/node_modules/.bin/node loadtest/attack/partial-frames.mjs \
//     --target /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW... --peers 2 --streams 64 --secs 600
//
// Each of --peers peers has its own identity (so per-peer and total budgets
// can both be reached) and keeps --streams streams open at once. Counters go
// to --status (JSON, rewritten every 2 s) and, at the end, to stdout.

import { setMaxListeners } from 'node:events'
import fs from 'node:fs'
import path from 'node:path'
import process from 'node:process'
import { fileURLToPath, pathToFileURL } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const USAGE = `usage: partial-frames.mjs --target MULTIADDR [--peers 2] [--streams 64] [--secs 600]
  [--size 4000000] [--short 100] [--reopen-delay 1] [--max-opens N] [--status FILE] [--peers-dir DIR]`

function parseArgs (argv) {
  const o = {
    target: null,
    peers: 2,
    streams: 64,
    secs: 600,
    size: 4_000_000,
    short: 100,
    reopenDelay: 1,
    maxOpens: 0,
    status: null,
    peersDir: path.resolve(HERE, '../../tests/peers')
  }
  const num = (k, v) => {
    const n = Number(v)
    if (!Number.isFinite(n) || n < 0) fail(`--${k}: not a number: ${v}`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const v = () => (i + 1 < argv.length ? argv[++i] : fail(`${a} needs a value`))
    switch (a) {
      case '--target': o.target = v(); break
      case '--peers': o.peers = num('peers', v()); break
      case '--streams': o.streams = num('streams', v()); break
      case '--secs': o.secs = num('secs', v()); break
      case '--size': o.size = num('size', v()); break
      case '--short': o.short = num('short', v()); break
      case '--reopen-delay': o.reopenDelay = num('reopen-delay', v()); break
      case '--max-opens': o.maxOpens = num('max-opens', v()); break
      case '--status': o.status = v(); break
      case '--peers-dir': o.peersDir = path.resolve(v()); break
      case '-h': case '--help': process.stdout.write(USAGE + '\n'); process.exit(0); break
      default: fail(`unknown argument ${a}\n${USAGE}`)
    }
  }
  if (o.target == null) fail(`--target is required\n${USAGE}`)
  if (o.short >= o.size) fail('--short must be below --size')
  if (o.maxOpens === 0) o.maxOpens = 1000 * o.peers * o.streams
  return o
}

function log (...args) { process.stderr.write(`[partial-frames] ${args.join(' ')}\n`) }
function fail (msg) { log(`error: ${msg}`); process.exit(2) }

// The packages live in tests/peers/node_modules, which Node's resolution
// does not search from here: import them by their ESM entry point.
async function peerImport (dir, name) {
  const pkgDir = path.join(dir, 'node_modules', name)
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'))
  const dot = pkg.exports?.['.']
  const entry = typeof dot === 'string' ? dot : dot?.import ?? dot?.default ?? pkg.module ?? pkg.main
  if (entry == null) fail(`no ESM entry point in ${name}`)
  return import(pathToFileURL(path.join(pkgDir, entry)).href)
}

function varint (n) {
  const out = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) }
  out.push(n)
  return Uint8Array.from(out)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function main () {
  const o = parseArgs(process.argv.slice(2))
  const { createLibp2p } = await peerImport(o.peersDir, 'libp2p')
  const { tcp } = await peerImport(o.peersDir, '@libp2p/tcp')
  const { noise } = await peerImport(o.peersDir, '@chainsafe/libp2p-noise')
  const { yamux } = await peerImport(o.peersDir, '@chainsafe/libp2p-yamux')
  const { multiaddr } = await peerImport(o.peersDir, '@multiformats/multiaddr')

  const t0 = Date.now()
  const stop = new AbortController()
  setMaxListeners(Infinity, stop.signal) // every open stream listens to it
  const stopped = new Promise(resolve => stop.signal.addEventListener('abort', resolve, { once: true }))
  const deadline = setTimeout(() => stop.abort(), o.secs * 1000)
  process.on('SIGTERM', () => stop.abort())
  process.on('SIGINT', () => stop.abort())

  const c = {
    kind: 'partial_frames',
    peers: o.peers,
    slots: o.peers * o.streams,
    streams_opened: 0,
    streams_open_now: 0,
    streams_held: 0, // all but the last --short bytes sent, waiting
    streams_closed_by_server: 0, // reset or closed by the gateway
    stream_open_errors: 0,
    connections_closed: 0,
    close_reasons: {},
    mib_sent: 0,
    closed_by_server: 0 // the figure the soak watches: = streams_closed_by_server
  }
  let bytesSent = 0
  let closeLogs = 0
  const lifetimes = []
  const writeStatus = () => {
    c.t = Math.round((Date.now() - t0) / 100) / 10
    c.mib_sent = Math.round(bytesSent / 1048576)
    c.closed_by_server = c.streams_closed_by_server
    const sorted = [...lifetimes].sort((a, b) => a - b)
    c.secs_until_server_closed = sorted.length === 0
      ? null
      : { n: sorted.length, min: sorted[0], median: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1] }
    if (o.status != null) {
      fs.writeFileSync(o.status + '.tmp', JSON.stringify(c))
      fs.renameSync(o.status + '.tmp', o.status)
    }
  }
  const statusTimer = setInterval(writeStatus, 2000)
  stop.signal.addEventListener('abort', () => { c.streams_open_at_stop = c.streams_open_now }, { once: true })

  const target = multiaddr(o.target)
  const prefix = varint(o.size)
  const CHUNK = 64 * 1024
  const zeros = new Uint8Array(CHUNK) // never changed, so it can be queued many times

  // One stream: prefix, then size - short bytes, then wait for its end.
  async function oneStream (node) {
    let stream
    // libp2p keeps the dial's signal for the stream's life: a plain
    // AbortSignal.timeout would reset the held stream when it fires.
    const opening = new AbortController()
    const openTimer = setTimeout(() => opening.abort(new Error('stream open timed out')), 15_000)
    try {
      stream = await node.dialProtocol(target, '/ipfs/bitswap/1.2.0', {
        maxOutboundStreams: o.streams + 16,
        signal: AbortSignal.any([stop.signal, opening.signal])
      })
    } catch (e) {
      if (!stop.signal.aborted) {
        c.stream_open_errors++
        if (c.stream_open_errors <= 5) log(`stream not opened: ${e.message}`)
      }
      return 'error'
    } finally {
      clearTimeout(openTimer)
    }
    c.streams_opened++
    c.streams_open_now++
    const opened = Date.now()
    let closeReason = 'send failed'
    const ended = new Promise(resolve => {
      if (stream.status !== 'open') resolve()
      else {
        stream.addEventListener('close', ev => {
          closeReason = ev.error == null ? 'closed' : `${ev.local ? 'local ' : ''}${ev.error.name}`
          if (ev.error != null && closeLogs++ < 5) log(`stream closed: ${ev.error.name}: ${ev.error.message}`)
          resolve()
        }, { once: true })
      }
    })
    let closedByServer = false
    try {
      stream.send(prefix)
      let left = o.size - o.short
      while (left > 0 && !stop.signal.aborted && stream.status === 'open') {
        const n = Math.min(CHUNK, left)
        const more = stream.send(n === CHUNK ? zeros : zeros.subarray(0, n))
        bytesSent += n
        left -= n
        if (!more) await Promise.race([stream.onDrain({ signal: stop.signal }), ended])
      }
      if (left === 0) c.streams_held++
      await Promise.race([ended, stopped])
      if (left === 0) c.streams_held--
      closedByServer = !stop.signal.aborted
    } catch (e) {
      // send throws on a stream the gateway has already reset or refused
      if (closeReason === 'send failed') closeReason = `send failed: ${e.name}`
      closedByServer = !stop.signal.aborted
    }
    c.streams_open_now--
    if (closedByServer) {
      // whatever ended the stream before our stop; by what, so that a cause
      // on this side (a local timeout) would show
      c.streams_closed_by_server++
      c.close_reasons[closeReason] = (c.close_reasons[closeReason] ?? 0) + 1
      lifetimes.push(Math.round((Date.now() - opened) / 100) / 10)
    } else {
      stream.abort(new Error('flooder stopping'))
    }
    return closedByServer
  }

  async function slot (node) {
    while (!stop.signal.aborted && c.streams_opened < o.maxOpens) {
      // a peer that cannot open streams (refused, banned) backs off
      const r = await oneStream(node)
      await Promise.race([sleep(r === 'error' ? 5000 : o.reopenDelay * 1000), stopped])
    }
  }

  const nodes = []
  for (let p = 0; p < o.peers; p++) {
    const node = await createLibp2p({
      addresses: { listen: [] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux({ maxOutboundStreams: o.streams + 16 })],
      // its pings time out while the streams are held, and it then drops
      // the connection itself: only the gateway should end it
      connectionMonitor: { enabled: false }
    })
    node.addEventListener('connection:close', () => { c.connections_closed++ })
    nodes.push(node)
  }
  log(`${o.peers} peers x ${o.streams} streams -> ${o.target}: ${o.size}-byte messages, ${o.short} bytes short`)
  await Promise.all(nodes.flatMap(node => Array.from({ length: o.streams }, () => slot(node))))
  clearTimeout(deadline)
  clearInterval(statusTimer)
  writeStatus()
  process.stdout.write(JSON.stringify(c) + '\n')
  await Promise.all(nodes.map(n => Promise.race([n.stop(), sleep(3000)])))
  process.exit(0)
}

main().catch(e => {
  log(`fatal: ${e.stack ?? e}`)
  process.exit(1)
})

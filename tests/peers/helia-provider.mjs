#!/usr/bin/env node
// Helia (JavaScript IPFS) Bitswap provider for sluice integration tests.
//
// Run with the Node 22 that tests/peers/install.sh installs:
//   tests/peers/node_modules/.bin/node tests/peers/helia-provider.mjs \
//     --port 0 --seed alice --layout modern big=/tmp/big.bin site=/tmp/site
//
// Only TCP on 127.0.0.1, Noise, Yamux, Identify and Bitswap: no routers, no
// bootstrap, no mDNS, no DHT. Blocks live in memory.
//
// When ready, prints ONE line of JSON to stdout:
//   {"impl":"helia","peerId":"12D3KooW...","keyType":"ed25519",
//    "multiaddrs":["/ip4/127.0.0.1/tcp/PORT/p2p/12D3KooW..."],
//    "layout":"modern","roots":{"big":"bafy...","site":"bafy..."}}
// then runs until stdin reaches EOF or SIGTERM/SIGINT, and exits 0.
// Diagnostics go to stderr only. See README.md for all options.

import { createHash } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import process from 'node:process'

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { unixfs, globSource } from '@helia/unixfs'
import { generateKeyPair, generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { createHeliaLight } from 'helia'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'

const USAGE = `usage: helia-provider.mjs [options] [NAME=]PATH ...
  --port N            TCP port on 127.0.0.1 (0 = any; env PEER_PORT; default 0)
  --seed S            stable Ed25519 identity: 64 hex chars are used as the raw
                      32-byte seed, any other string is hashed with SHA-256
                      (env PEER_SEED; default: random identity)
  --layout L          modern (CIDv1, raw leaves, 1 MiB chunks, 1024 links; Helia
                      default) or classic (CIDv0, dag-pb leaves, 256 KiB chunks,
                      174 links; Kubo default). env PEER_LAYOUT; default modern
  --chunk-size N      override the chunk size in bytes
  --max-links N       override the max links per node
  --cid-version 0|1   override the CID version
  --raw-leaves B      override raw leaves (true|false)
  --hidden            include dot files when adding directories
  --connect MA        after start, dial this multiaddr (repeatable)
  --fetch CID=DEST    after --connect, fetch the UnixFS file CID over Bitswap
                      into DEST and report it under "fetched" (repeatable)
  --ignore-stdin      do not stop when stdin reaches EOF (only on SIGTERM/SIGINT)
  --corrupt-blocks    after adding, flip every byte of every stored block, so the
                      peer serves blocks that do not match their CIDs (load
                      tests of a misbehaving provider; off by default)
  --spec-stdin        read one line of JSON from stdin first:
                      {"port":0,"seed":"s","layout":"classic",
                       "files":[{"name":"a","path":"/x"}] or {"a":"/x"}}
  PATH may be a file or a directory; NAME defaults to the basename.`

function log (...args) {
  process.stderr.write(`[helia-provider] ${args.join(' ')}\n`)
}

function fail (msg) {
  log(`error: ${msg}`)
  process.exit(2)
}

function parseBool (v) {
  if (v === true || v === 'true' || v === '1' || v === 'yes') return true
  if (v === false || v === 'false' || v === '0' || v === 'no') return false
  fail(`not a boolean: ${v}`)
}

function parseArgs (argv) {
  const opts = {
    port: process.env.PEER_PORT ?? '0',
    seed: process.env.PEER_SEED,
    layout: process.env.PEER_LAYOUT ?? 'modern',
    hidden: false,
    specStdin: false,
    entries: [],
    connect: [],
    fetch: []
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const val = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`)
      return argv[++i]
    }
    switch (a) {
      case '-h': case '--help': process.stdout.write(USAGE + '\n'); process.exit(0); break
      case '--port': opts.port = val(); break
      case '--seed': opts.seed = val(); break
      case '--layout': opts.layout = val(); break
      case '--chunk-size': opts.chunkSize = val(); break
      case '--max-links': opts.maxLinks = val(); break
      case '--cid-version': opts.cidVersion = val(); break
      case '--raw-leaves': opts.rawLeaves = val(); break
      case '--hidden': opts.hidden = true; break
      case '--spec-stdin': opts.specStdin = true; break
      case '--ignore-stdin': opts.ignoreStdin = true; break
      case '--corrupt-blocks': opts.corruptBlocks = true; break
      case '--connect': opts.connect.push(val()); break
      case '--fetch': opts.fetch.push(val()); break
      default:
        if (a.startsWith('--')) fail(`unknown option ${a}\n${USAGE}`)
        opts.entries.push(parseEntry(a))
    }
  }
  return opts
}

function parseEntry (arg) {
  const eq = arg.indexOf('=')
  if (eq > 0) return { name: arg.slice(0, eq), path: arg.slice(eq + 1) }
  return { name: path.basename(path.resolve(arg)), path: arg }
}

// Reads stdin line by line. The first line may be a JSON spec; EOF means stop.
function stdinReader () {
  let buf = ''
  let ended = false
  const waiters = []
  const endWaiters = []
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', chunk => {
    buf += chunk
    let nl
    while ((nl = buf.indexOf('\n')) >= 0 && waiters.length > 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      waiters.shift()(line)
    }
  })
  const onEnd = () => {
    if (ended) return
    ended = true
    while (waiters.length > 0) {
      const line = buf
      buf = ''
      waiters.shift()(line === '' ? null : line)
    }
    endWaiters.forEach(f => f())
  }
  process.stdin.on('end', onEnd)
  process.stdin.on('close', onEnd)
  process.stdin.on('error', onEnd)
  return {
    readLine () {
      const nl = buf.indexOf('\n')
      if (nl >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        return Promise.resolve(line)
      }
      if (ended) return Promise.resolve(buf === '' ? null : buf)
      return new Promise(resolve => waiters.push(resolve))
    },
    onEnd (f) {
      if (ended) f()
      else endWaiters.push(f)
    }
  }
}

function applySpec (opts, spec) {
  if (spec.port != null) opts.port = String(spec.port)
  if (spec.seed != null) opts.seed = String(spec.seed)
  if (spec.layout != null) opts.layout = spec.layout
  if (spec.chunkSize != null) opts.chunkSize = spec.chunkSize
  if (spec.maxLinks != null) opts.maxLinks = spec.maxLinks
  if (spec.cidVersion != null) opts.cidVersion = spec.cidVersion
  if (spec.rawLeaves != null) opts.rawLeaves = spec.rawLeaves
  if (spec.hidden != null) opts.hidden = Boolean(spec.hidden)
  for (const c of spec.connect ?? []) opts.connect.push(c)
  for (const [c, d] of Object.entries(spec.fetch ?? {})) opts.fetch.push(`${c}=${d}`)
  const files = spec.files ?? []
  if (Array.isArray(files)) {
    for (const f of files) {
      if (typeof f === 'string') opts.entries.push(parseEntry(f))
      else opts.entries.push({ name: f.name ?? path.basename(path.resolve(f.path)), path: f.path })
    }
  } else {
    for (const [name, p] of Object.entries(files)) opts.entries.push({ name, path: p })
  }
}

export function seedBytes (seed) {
  if (/^[0-9a-fA-F]{64}$/.test(seed)) return Uint8Array.from(Buffer.from(seed, 'hex'))
  return Uint8Array.from(createHash('sha256').update(seed, 'utf8').digest())
}

function importerOptions (opts) {
  let o
  if (opts.layout === 'modern') {
    o = { cidVersion: 1, rawLeaves: true, chunkSize: 1_048_576, maxLinks: 1024 }
  } else if (opts.layout === 'classic') {
    o = { cidVersion: 0, rawLeaves: false, chunkSize: 262_144, maxLinks: 174, profile: 'unixfs-v0-2015' }
  } else {
    fail(`unknown layout ${opts.layout} (modern|classic)`)
  }
  if (opts.chunkSize != null) o.chunkSize = Number(opts.chunkSize)
  if (opts.maxLinks != null) o.maxLinks = Number(opts.maxLinks)
  if (opts.cidVersion != null) o.cidVersion = Number(opts.cidVersion)
  if (opts.rawLeaves != null) o.rawLeaves = parseBool(opts.rawLeaves)
  const result = {
    cidVersion: o.cidVersion,
    rawLeaves: o.rawLeaves,
    chunker: fixedSize({ chunkSize: o.chunkSize }),
    layout: balanced({ maxChildrenPerNode: o.maxLinks })
  }
  if (o.profile != null) result.profile = o.profile
  return { importer: result, summary: { cidVersion: o.cidVersion, rawLeaves: o.rawLeaves, chunkSize: o.chunkSize, maxLinks: o.maxLinks } }
}

async function addEntry (fsys, entry, importer, hidden) {
  const st = await fsp.stat(entry.path)
  if (st.isDirectory()) {
    // Import every entry below the directory under a common top-level name
    // and keep the CID of that top-level directory (like `ipfs add -r DIR`).
    const root = path.resolve(entry.path)
    const top = 'root'
    async function * source () {
      yield { path: top }
      for await (const e of globSource(root, '**/*', { hidden })) {
        yield { ...e, path: top + e.path }
      }
    }
    let rootCid = null
    for await (const r of fsys.addAll(source(), importer)) {
      if (r.path === top) rootCid = r.cid
    }
    if (rootCid == null) throw new Error(`no root CID for directory ${entry.path}`)
    return rootCid
  }
  if (!st.isFile()) throw new Error(`not a file or directory: ${entry.path}`)
  return fsys.addByteStream(fs.createReadStream(entry.path), importer)
}

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const stdin = stdinReader()
  if (opts.specStdin) {
    const line = await stdin.readLine()
    if (line == null) fail('--spec-stdin: stdin closed before a spec line')
    let spec
    try { spec = JSON.parse(line) } catch (e) { fail(`--spec-stdin: bad JSON: ${e.message}`) }
    applySpec(opts, spec)
  }
  const port = Number(opts.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad port ${opts.port}`)
  const { importer, summary } = importerOptions(opts)

  const t0 = Date.now()
  const privateKey = opts.seed != null && opts.seed !== ''
    ? await generateKeyPairFromSeed('Ed25519', seedBytes(opts.seed))
    : await generateKeyPair('Ed25519')

  const blockstore = new MemoryBlockstore()
  const helia = withBitswap(withLibp2pLight(createHeliaLight({
    blockstore,
    datastore: new MemoryDatastore()
  }), {
    privateKey,
    addresses: { listen: [`/ip4/127.0.0.1/tcp/${port}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  }))
  await helia.start()

  let stopping = false
  const stop = async (why) => {
    if (stopping) return
    stopping = true
    log(`stopping (${why})`)
    const timer = setTimeout(() => { log('stop timed out'); process.exit(0) }, 5000)
    timer.unref()
    try { await helia.stop() } catch (e) { log(`stop error: ${e.message}`) }
    process.exit(0)
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })

  const fsys = unixfs(helia)
  const roots = {}
  for (const entry of opts.entries) {
    const cid = await addEntry(fsys, entry, importer, opts.hidden)
    roots[entry.name] = cid.toString()
    log(`added ${entry.name} (${entry.path}) -> ${cid}`)
  }

  if (opts.corruptBlocks) {
    // MemoryBlockstore keeps each block as a list of chunks keyed by its
    // multihash and does not check them on read: replace the bytes in place.
    let n = 0
    for (const [key, chunks] of blockstore.data.entries()) {
      blockstore.data.set(key, chunks.map(c => c.map(b => b ^ 0xff)))
      n++
    }
    log(`corrupted ${n} blocks (every byte flipped)`)
  }

  for (const ma of opts.connect) {
    await helia.libp2p.dial(multiaddr(ma), { signal: AbortSignal.timeout(30_000) })
    log(`connected to ${ma}`)
  }
  const fetched = {}
  for (const spec of opts.fetch) {
    const eq = spec.indexOf('=')
    if (eq <= 0) fail(`--fetch wants CID=DEST, got ${spec}`)
    const cid = spec.slice(0, eq)
    const dest = path.resolve(spec.slice(eq + 1))
    const t1 = Date.now()
    let bytes = 0
    const fh = await fsp.open(dest, 'w')
    try {
      for await (const buf of fsys.cat(CID.parse(cid), { signal: AbortSignal.timeout(120_000) })) {
        await fh.write(buf)
        bytes += buf.byteLength
      }
    } finally {
      await fh.close()
    }
    fetched[cid] = { dest, bytes, ms: Date.now() - t1 }
    log(`fetched ${cid} -> ${dest}: ${bytes} bytes in ${Date.now() - t1} ms`)
  }

  const peerId = helia.libp2p.peerId.toString()
  const multiaddrs = helia.libp2p.getMultiaddrs()
    .map(ma => ma.toString())
    .filter(s => s.startsWith('/ip4/127.0.0.1/tcp/'))
    .map(s => s.includes('/p2p/') ? s : `${s}/p2p/${peerId}`)
  const ready = {
    impl: 'helia',
    peerId,
    keyType: 'ed25519',
    multiaddrs,
    layout: opts.layout,
    importer: summary,
    roots
  }
  if (opts.fetch.length > 0) ready.fetched = fetched
  process.stdout.write(JSON.stringify(ready) + '\n')
  log(`ready in ${Date.now() - t0} ms`)

  if (opts.ignoreStdin) {
    setInterval(() => {}, 1 << 30) // keep the event loop alive until a signal
  } else {
    stdin.onEnd(() => { stop('stdin closed') })
  }
}

main().catch(e => {
  log(`fatal: ${e.stack ?? e}`)
  process.exit(1)
})

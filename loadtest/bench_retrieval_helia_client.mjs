// bench_retrieval_helia_client.mjs — Helia 7 as a Bitswap *client*, for loadtest/bench_retrieval.sh.
//
// Runs from a temporary directory that holds a `node_modules` symlink to
// tests/peers/node_modules (bench_retrieval.sh sets that up), so the bare imports resolve.
//
//   node bench_retrieval_helia_client.mjs --connect MA [--connect MA...] \
//        --concurrency N --cids FILE
//
// FILE: one CID per line. After dialling every MA it fetches each CID as a UnixFS
// file (unixfs.cat, bytes discarded), with N in flight, and prints one JSON line:
// {"files":n,"bytes":b,"errors":e,"ms":wall_ms_of_fetching,"connect_ms":..}
import fsp from 'node:fs/promises'
import process from 'node:process'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { unixfs } from '@helia/unixfs'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { createHeliaLight } from 'helia'
import { CID } from 'multiformats/cid'

const args = process.argv.slice(2)
const connect = []
let concurrency = 1
let cidsFile = null
for (let i = 0; i < args.length; i++) {
  const a = args[i]
  if (a === '--connect') connect.push(args[++i])
  else if (a === '--concurrency') concurrency = Number(args[++i])
  else if (a === '--cids') cidsFile = args[++i]
  else { process.stderr.write(`unknown argument ${a}\n`); process.exit(2) }
}
const cids = (await fsp.readFile(cidsFile, 'utf8')).split('\n').map(s => s.trim()).filter(Boolean)

const helia = withBitswap(withLibp2pLight(createHeliaLight({
  blockstore: new MemoryBlockstore(),
  datastore: new MemoryDatastore()
}), {
  privateKey: await generateKeyPair('Ed25519'),
  addresses: { listen: [] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify() }
}))
await helia.start()
const tc = Date.now()
for (const ma of connect) await helia.libp2p.dial(multiaddr(ma), { signal: AbortSignal.timeout(30_000) })
const connectMs = Date.now() - tc
const fsys = unixfs(helia)
let next = 0; let bytes = 0; let errors = 0; let files = 0
const t0 = Date.now()
async function worker () {
  while (next < cids.length) {
    const cid = CID.parse(cids[next++])
    try {
      for await (const buf of fsys.cat(cid, { signal: AbortSignal.timeout(120_000) })) bytes += buf.byteLength
      files++
    } catch (e) {
      errors++
      process.stderr.write(`[helia-client] ${cid}: ${e.message}\n`)
    }
  }
}
await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker))
const ms = Date.now() - t0
process.stdout.write(JSON.stringify({ files, bytes, errors, ms, connect_ms: connectMs }) + '\n')
const timer = setTimeout(() => process.exit(0), 3000); timer.unref()
try { await helia.stop() } catch {}
process.exit(0)

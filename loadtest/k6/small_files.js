// k6 driver of bench_retrieval.sh scenario 3: N distinct small files, each
// fetched once through the gateway with a provider hint, CONCURRENCY
// requests in flight (shared iterations: each VU takes the next file).
//
// Environment: FILES (JSON: {"base": URL, "hint": multiaddr,
// "files": [{"cid": ..., "sha256": ...}, ...]}), CONCURRENCY (32),
// OUT (where handleSummary writes the figures as JSON).
// Every body is checked against its SHA-256; a wrong or failed one counts
// in `failed_files`.

import http from 'k6/http'
import crypto from 'k6/crypto'
import exec from 'k6/execution'
import { Counter } from 'k6/metrics'

const SPEC = JSON.parse(open(__ENV.FILES))
const CONCURRENCY = Number(__ENV.CONCURRENCY || 32)
const failedFiles = new Counter('failed_files')

export const options = {
  discardResponseBodies: false,
  scenarios: {
    small: {
      executor: 'shared-iterations',
      vus: CONCURRENCY,
      iterations: SPEC.files.length,
      maxDuration: '300s'
    }
  }
}

export default function () {
  const file = SPEC.files[exec.scenario.iterationInTest]
  const res = http.get(`${SPEC.base}/ipfs/${file.cid}`, {
    headers: { 'X-Ipfs-Provider': SPEC.hint },
    responseType: 'binary',
    timeout: '60s'
  })
  const ok = res.status === 200 && res.body !== null &&
    crypto.sha256(res.body, 'hex') === file.sha256
  if (!ok) failedFiles.add(1)
}

export function handleSummary (data) {
  const d = data.metrics.http_req_duration.values
  const out = {
    files: SPEC.files.length,
    failed: data.metrics.failed_files ? data.metrics.failed_files.values.count : 0,
    ms: data.state.testRunDurationMs,
    p50_ms: d.med,
    p99_ms: d['p(99)'] !== undefined ? d['p(99)'] : d['p(95)']
  }
  return { [__ENV.OUT]: JSON.stringify(out) }
}

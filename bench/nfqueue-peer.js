#!/usr/bin/env node
'use strict';
// Peer baseline for the benchmark: the npm `nfqueue` binding doing the same
// job as bench/nfq_loop.c (NF_REPEAT with mark 0x1 on every packet).
// Usage: node bench/nfqueue-peer.js [queue-num]
// NFQUEUE_MODULE points at a copy of the package when it is not installed here.

const nfq = require(process.env.NFQUEUE_MODULE || 'nfqueue');

const queueNum = Number(process.argv[2] || 0);
const MARK_MASK = 0x1;
let verdicted = 0;

// The binding's API has no mask-aware mark, so apply the mask the way nfips does.
nfq.createQueueHandler(queueNum, 65535, (p) => {
  const mark = (((p.info.nfmark >>> 0) & ~MARK_MASK) | (1 & MARK_MASK)) >>> 0;
  p.setVerdict(nfq.NF_REPEAT, mark);
  verdicted++;
});
process.stderr.write(`nfqueue-peer: ready queue=${queueNum}\n`);

function stop() {
  process.stdout.write(`${JSON.stringify({ verdicted })}\n`, () => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

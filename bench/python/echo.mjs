#!/usr/bin/env node
// The floor of a 1 KB hit through `taskvault serve --stdio` (bench/python/bench.py): a Node
// process that reads frames with the service's own reader and answers each with a 1 KB hit
// reply, doing nothing else. What a hit costs beyond this is TaskVault's own work.
import { readFrames } from '../../dist/serve/frames.js';
import { frameWriter } from '../../dist/serve/service.js';

const send = frameWriter(process.stdout);
const value = Buffer.alloc(1024, 7);
for await (const frame of readFrames(process.stdin)) {
  const id = frame.header.id;
  if (frame.header.op === 'hello') send({ id, ok: true });
  else send({ id, ok: true, hit: true, key: 'f'.repeat(64), size: value.length, encoding: 'raw' }, value);
}

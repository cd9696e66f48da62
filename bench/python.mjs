#!/usr/bin/env node
// `node bench/python.mjs`: the Python SDK against diskcache and joblib (bench/python/bench.py),
// with Debian's python3, where those two are installed (.ci/install-system-packages).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const python =
  process.env.TASKVAULT_PYTHON || (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const script = fileURLToPath(new URL('./python/bench.py', import.meta.url));
const r = spawnSync(python, [script], { stdio: 'inherit' });
process.exitCode = r.status ?? 1;

#!/usr/bin/env node
// The least any wrapper that runs a command with execa costs: start Node, load execa (its part,
// dist/vendor/execa.cjs, as the SDK does), run argv with stdout/stderr piped and teed, pass the
// exit code on.
// The bench times it beside a TaskVault miss and the bare command, so that the miss overhead can
// be split into what Node and execa take and what TaskVault adds.
import { createRequire } from 'node:module';

const { execa } = createRequire(import.meta.url)('../dist/vendor/execa.cjs');
const [file, ...args] = process.argv.slice(2);
const child = execa(file, args, {
  stdin: 'inherit',
  stdout: 'pipe',
  stderr: 'pipe',
  buffer: false,
  reject: false,
});
child.stdout.on('data', (c) => process.stdout.write(c));
child.stderr.on('data', (c) => process.stderr.write(c));
process.exitCode = (await child).exitCode ?? 1;

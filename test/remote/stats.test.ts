/** `taskvault stats` tells hits from the team cache apart from local ones, against a real nginx. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli } from '../support/helpers.js';
import { project, runGen } from '../support/remote-project.js';
import { nginxFor } from '../support/servers.js';

const test = suite('remote stats: remote hits counted apart');
const ng = nginxFor(test);

test('a remote hit shows in stats (table and --json) next to the local hits', async () => {
  const env = { TASKVAULT_REMOTE_URL: `${ng().url}/stats` };
  const a = project();
  const b = project();
  assert.is((await runGen(a, env)).code, 0);
  const remote = await runGen(b, env);
  assert.match(remote.err, /hit \(remote\)/);
  const local = await runGen(b, env);
  assert.match(local.err, /taskvault: hit [0-9a-f]+ gen/);

  const json = await runCli(['stats', '--json'], { cwd: b });
  const s = JSON.parse(json.out) as { hits: number; remoteHits: number; misses: number };
  assert.equal(
    { hits: s.hits, remoteHits: s.remoteHits, misses: s.misses },
    { hits: 2, remoteHits: 1, misses: 0 },
  );
  const table = await runCli(['stats'], { cwd: b });
  assert.match(table.out, /\nHits +2 \(1 from the remote\)\n/);
  const onlyLocal = await runCli(['stats'], { cwd: a });
  assert.match(onlyLocal.out, /\nHits +0\n/);
});

test.run();

/**
 * Azure Blob beyond the conformance suite: where credentials come from (connection strings as
 * Azure's tools write them, AZURE_STORAGE_KEY, SAS tokens), SAS auth against Azurite end to end,
 * a missing container said plainly, and the turbo/nx settings of the remote block.
 */
import { createHmac } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { findAzureAccess, parseConnectionString } from '../../src/remote/azure-auth.js';
import { resolveRemote } from '../../src/remote/settings.js';
import { runCli } from '../support/helpers.js';
import { project, runGen, timesRan, warnings } from '../support/remote-project.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, type Azurite, startAzurite } from '../support/team-servers.js';

const test = suite('remote: Azure Blob and the remote block');
let az: Azurite;
test.before(async () => {
  az = await startAzurite();
  await az.createContainer('sas-cache');
});
test.after(async () => {
  await az?.stop();
});

test('credentials: a connection string, the development shortcut, a key, a SAS token, none', () => {
  const cs = parseConnectionString(
    'AccountName=acct;AccountKey=a2V5PT0=;EndpointSuffix=core.chinacloudapi.cn',
  );
  assert.equal(cs, { accountname: 'acct', accountkey: 'a2V5PT0=', endpointsuffix: 'core.chinacloudapi.cn' });
  const fromCs = findAzureAccess('acct', undefined, {
    AZURE_STORAGE_CONNECTION_STRING:
      'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5PT0=;EndpointSuffix=core.chinacloudapi.cn',
  });
  assert.ok(fromCs.ok && fromCs.value.endpoint === 'https://acct.blob.core.chinacloudapi.cn');
  assert.ok(fromCs.ok && fromCs.value.auth.kind === 'sharedKey');
  const dev = findAzureAccess(AZURITE_ACCOUNT, undefined, {
    AZURE_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true',
  });
  assert.ok(dev.ok && dev.value.endpoint === `http://127.0.0.1:10000/${AZURITE_ACCOUNT}`);
  const other = findAzureAccess('mine', undefined, {
    AZURE_STORAGE_CONNECTION_STRING: 'AccountName=theirs;AccountKey=eA==',
  });
  assert.ok(!other.ok && /for account theirs, the remote url names mine/.test(other.message));
  const sas = findAzureAccess('acct', undefined, { AZURE_STORAGE_SAS_TOKEN: '?sv=2021-08-06&sig=abc' });
  assert.ok(sas.ok && sas.value.auth.kind === 'sas' && sas.value.auth.token === 'sv=2021-08-06&sig=abc');
  assert.ok(sas.ok && sas.value.endpoint === 'https://acct.blob.core.windows.net');
  const none = findAzureAccess('acct', undefined, {});
  assert.ok(
    !none.ok &&
      /AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN/.test(none.message),
  );
});

/** An account SAS for blobs, read/write/create, signed as Azure documents it (version 2021-08-06). */
function accountSas(): string {
  const p = {
    sv: '2021-08-06',
    ss: 'b',
    srt: 'co',
    sp: 'rwc',
    st: new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    se: new Date(Date.now() + 3600_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    spr: 'https,http',
  };
  const toSign = [AZURITE_ACCOUNT, p.sp, p.ss, p.srt, p.st, p.se, '', p.spr, p.sv, '', ''].join('\n');
  const sig = createHmac('sha256', Buffer.from(AZURITE_KEY, 'base64')).update(toSign).digest('base64');
  return new URLSearchParams({ ...p, sig }).toString();
}

test('SAS auth: machine A fills the container, machine B gets a remote hit; the token never shows', async () => {
  const config = { remote: { url: `azure://${AZURITE_ACCOUNT}/sas-cache/team`, endpoint: az.endpoint } };
  const env = { AZURE_STORAGE_SAS_TOKEN: accountSas() };
  const a = project(config);
  const first = await runGen(a, env, ['--stdin=ignore']);
  assert.is(first.code, 0, first.err);
  assert.equal(warnings(first), []);
  const b = project(config);
  const second = await runGen(b, env, ['--stdin=ignore']);
  assert.match(second.err, /hit \(remote\)/, second.err);
  assert.is(timesRan(b), 0);

  // A SAS token that does not verify: refused, one warning, no signature in it.
  const forged = `${accountSas().replace(/sig=[^&]+/, 'sig=Zm9yZ2Vk')}`;
  const c = project(config);
  const r = await runGen(c, { AZURE_STORAGE_SAS_TOKEN: forged }, ['--stdin=ignore']);
  assert.is(r.code, 0);
  assert.is(timesRan(c), 1);
  assert.is(warnings(r).length, 1, r.err);
  assert.match(warnings(r)[0]!, /HTTP 403/);
  assert.not.match(r.err, /Zm9yZ2Vk|sig=/);
});

test('a container that does not exist: one warning naming ContainerNotFound, the command runs', async () => {
  const dir = project({
    remote: { url: `azure://${AZURITE_ACCOUNT}/no-such-container`, endpoint: az.endpoint },
  });
  const r = await runGen(dir, { AZURE_STORAGE_CONNECTION_STRING: az.connectionString }, ['--stdin=ignore']);
  assert.is(r.code, 0);
  assert.is(timesRan(dir), 1);
  assert.is(warnings(r).length, 1, r.err);
  assert.match(warnings(r)[0]!, /ContainerNotFound/);
});

test('the remote block: protocol and team from config, TASKVAULT_REMOTE_TEAM on top; bad values are one line', async () => {
  assert.equal(
    resolveRemote(
      { url: 'https://t.example', protocol: 'turbo', team: 'cfg' },
      { TASKVAULT_REMOTE_TEAM: 'env' },
    ),
    {
      url: 'https://t.example',
      protocol: 'turbo',
      team: 'env',
      readOnly: false,
      timeoutMs: 5000,
    },
  );
  const bad = await runCli(['run', 'gen'], {
    cwd: project({ remote: { url: 'https://x', protocol: 'gopher' } }),
  });
  assert.is(bad.code, 78);
  assert.match(bad.err, /remote\.protocol/);
  assert.not.match(bad.err, /\n\s+at /);
});

test.run();

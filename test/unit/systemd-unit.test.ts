// `make install` into a staging directory, as a packager would run it, and
// the systemd unit it installs: hardening, and `systemd-analyze verify`.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it, TestContext } from 'node:test';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { has } from '../helpers/env';

const run = promisify(execFile);
const dest = mkdtempSync(path.join(tmpdir(), 'nfips-install-'));
const lib = path.join(dest, 'usr/local/lib/nfips');
const unitFile = path.join(dest, 'etc/systemd/system/nfips.service');

describe('make install and the systemd unit', () => {
  before(async () => {
    await run('make', ['-s', 'install', `DESTDIR=${dest}`, 'PREFIX=/usr/local'], { cwd: PACKAGE_ROOT, timeout: 180_000, maxBuffer: 16 << 20 });
  });
  after(() => rmSync(dest, { recursive: true, force: true }));

  it('installs a runnable tree, the command, the unit and the operator files', async () => {
    assert.equal(readlinkSync(path.join(dest, 'usr/local/bin/nfips')), '/usr/local/lib/nfips/bin/nfips');
    assert.ok(lstatSync(path.join(lib, 'build/Release/nfips_nfq.node')).isFile());
    assert.ok(existsSync(path.join(lib, 'models/default.json')));
    assert.ok(!existsSync(path.join(lib, 'dist/test')), 'no tests in the installed tree');
    assert.ok(!existsSync(path.join(lib, 'node_modules/typescript')), 'no dev dependencies');
    const r = await run(process.execPath, [path.join(lib, 'bin/nfips'), 'rules', 'check', path.join(dest, 'etc/nfips/rules.json')]);
    assert.match(r.stdout, /OK/);
    assert.match(readFileSync(path.join(dest, 'etc/default/nfips'), 'utf8'), /^NFIPS_ARGS=/m);
    assert.match(readFileSync(path.join(dest, 'etc/logrotate.d/nfips'), 'utf8'), /kill .*-s USR1 nfips\.service/);
  });

  it('keeps the operator\'s rules and defaults on a second install', async () => {
    writeFileSync(path.join(dest, 'etc/nfips/rules.json'), '{"default":"drop","rules":[]}');
    await run('make', ['-s', 'install', `DESTDIR=${dest}`, 'PREFIX=/usr/local'], { cwd: PACKAGE_ROOT, timeout: 180_000, maxBuffer: 16 << 20 });
    assert.equal(readFileSync(path.join(dest, 'etc/nfips/rules.json'), 'utf8'), '{"default":"drop","rules":[]}');
  });

  it('the unit validates rules first, restarts on failure and is bounded to CAP_NET_ADMIN and CAP_NET_RAW', () => {
    const u = readFileSync(unitFile, 'utf8');
    const val = (key: string) => u.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
    assert.deepEqual(val('ExecStartPre'), ['/usr/local/lib/nfips/bin/nfips rules check /etc/nfips/rules.json']);
    assert.match(val('ExecStart')[0], /^\/usr\/local\/lib\/nfips\/bin\/nfips run --rules \/etc\/nfips\/rules\.json /);
    assert.deepEqual(val('Restart'), ['on-failure']);
    assert.deepEqual(val('CapabilityBoundingSet')[0].split(' ').sort(), ['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    assert.deepEqual(val('NoNewPrivileges'), ['yes']);
    assert.deepEqual(val('ProtectSystem'), ['strict']);
    assert.deepEqual(val('PrivateTmp'), ['yes']);
    assert.deepEqual(val('ProtectHome'), ['yes']);
    assert.ok(val('ReadWritePaths')[0].split(' ').includes('/var/log/nfips'));
    assert.ok(val('ReadWritePaths')[0].split(' ').includes('/var/lib/nfips'));
    assert.ok(!u.includes('@PREFIX@'));
  });

  it('systemd-analyze verify accepts the unit', async (t: TestContext) => {
    if (!has('systemd-analyze')) {
      t.skip('systemd-analyze is not installed');
      return;
    }
    // The installed paths exist only under DESTDIR: verify a copy pointing there.
    const copy = path.join(dest, 'nfips.service');
    writeFileSync(copy, readFileSync(unitFile, 'utf8').replaceAll('/usr/local/lib/nfips', lib));
    const r = await run('systemd-analyze', ['verify', copy]).catch((e: { code: number; stderr: string }) => e);
    assert.equal('code' in r ? r.code : 0, 0, `systemd-analyze verify failed: ${'stderr' in r ? r.stderr : ''}`);
    assert.equal(r.stderr.trim(), '', 'no warnings (an unknown key is only a warning)');
  });
});

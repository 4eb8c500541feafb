// `make install` into a staging directory, as a packager would run it, and
// the systemd unit it installs: hardening, and `systemd-analyze verify`.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { requireTools } from '../helpers/env';
import { readConfigFile } from '../../src/app/config-file';
import { resolveRunOptions } from '../../src/app/run-options';

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
    // The config file the unit runs with is valid and says what the unit used to pass as flags.
    const o = resolveRunOptions(readConfigFile(path.join(dest, 'etc/nfips/nfips.yaml')).flags);
    assert.equal(o.rules, '/etc/nfips/rules.json');
    assert.equal(o.logFile, '/var/log/nfips/nfips.json');
    assert.equal(o.controlSocket, '/run/nfips/nfips.sock');
    assert.equal(o.stateDir, '/var/lib/nfips');
    assert.match(readFileSync(path.join(dest, 'etc/logrotate.d/nfips'), 'utf8'), /su nfips nfips[^]*systemctl kill --kill-whom=main -s USR1 nfips\.service/);
  });

  it('keeps the operator\'s rules and defaults on a second install', async () => {
    writeFileSync(path.join(dest, 'etc/nfips/rules.json'), '{"default":"drop","rules":[]}');
    writeFileSync(path.join(dest, 'etc/nfips/nfips.yaml'), 'mode: detect\n');
    await run('make', ['-s', 'install', `DESTDIR=${dest}`, 'PREFIX=/usr/local'], { cwd: PACKAGE_ROOT, timeout: 180_000, maxBuffer: 16 << 20 });
    assert.equal(readFileSync(path.join(dest, 'etc/nfips/rules.json'), 'utf8'), '{"default":"drop","rules":[]}');
    assert.equal(readFileSync(path.join(dest, 'etc/nfips/nfips.yaml'), 'utf8'), 'mode: detect\n');
  });

  it('the unit validates rules first, restarts on failure, runs as the nfips user with only CAP_NET_ADMIN and CAP_NET_RAW', () => {
    const u = readFileSync(unitFile, 'utf8');
    const val = (key: string) => u.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
    assert.deepEqual(val('ExecStartPre'), ['/usr/local/lib/nfips/bin/nfips rules check --config /etc/nfips/nfips.yaml']);
    assert.deepEqual(val('ExecStart'), ['/usr/local/lib/nfips/bin/nfips run --config /etc/nfips/nfips.yaml $NFIPS_ARGS']);
    assert.deepEqual(val('Restart'), ['on-failure']);
    assert.deepEqual(val('User'), ['nfips']);
    assert.deepEqual(val('Group'), ['nfips']);
    assert.deepEqual(val('CapabilityBoundingSet')[0].split(' ').sort(), ['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    assert.deepEqual(val('AmbientCapabilities')[0].split(' ').sort(), ['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    for (const key of ['NoNewPrivileges', 'PrivateTmp', 'PrivateDevices', 'ProtectHome', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectControlGroups']) {
      assert.deepEqual(val(key), ['yes'], key);
    }
    assert.deepEqual(val('ProtectSystem'), ['strict']);
    // Nothing else writable: not /run as a whole.
    assert.deepEqual(val('ReadWritePaths')[0].split(' ').sort(), ['-/run/xtables.lock', '/run/nfips', '/var/lib/nfips', '/var/log/nfips']);
    assert.deepEqual(val('LogsDirectoryMode'), ['0750']);
    assert.deepEqual(val('RuntimeDirectoryMode'), ['0700']);
    assert.ok(!u.includes('@PREFIX@'));
  });

  it('installs the nfips user for systemd-sysusers and the iptables lock for it in tmpfiles.d', async () => {
    const sysusers = readFileSync(path.join(dest, 'usr/local/lib/sysusers.d/nfips.conf'), 'utf8');
    assert.match(sysusers, /^u nfips - "nfips inline IPS" \/var\/lib\/nfips \/usr\/sbin\/nologin$/m);
    assert.match(readFileSync(path.join(dest, 'usr/local/lib/tmpfiles.d/nfips.conf'), 'utf8'), /^z \/run\/xtables\.lock 0640 root nfips -$/m);
    requireTools('systemd-sysusers');
    // Applied to an empty root, the entry creates a system user and group named nfips.
    const root = mkdtempSync(path.join(tmpdir(), 'wt11b-sysusers-'));
    mkdirSync(path.join(root, 'etc'));
    try {
      await run('systemd-sysusers', [`--root=${root}`, path.join(dest, 'usr/local/lib/sysusers.d/nfips.conf')]);
      const passwd = readFileSync(path.join(root, 'etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith('nfips:'));
      assert.ok(passwd, 'nfips user created');
      const [, , uid, gid, , home, shell] = passwd.split(':');
      assert.ok(Number(uid) > 0 && Number(uid) < 1000, `a system uid (${uid})`);
      assert.equal(uid, gid);
      assert.deepEqual([home, shell], ['/var/lib/nfips', '/usr/sbin/nologin']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('systemd-analyze verify accepts the unit', async () => {
    requireTools('systemd-analyze');
    // The installed paths exist only under DESTDIR: verify a copy pointing there.
    const copy = path.join(dest, 'nfips.service');
    writeFileSync(copy, readFileSync(unitFile, 'utf8').replaceAll('/usr/local/lib/nfips', lib));
    const r = await run('systemd-analyze', ['verify', copy]).catch((e: { code: number; stderr: string }) => e);
    assert.equal('code' in r ? r.code : 0, 0, `systemd-analyze verify failed: ${'stderr' in r ? r.stderr : ''}`);
    assert.equal(r.stderr.trim(), '', 'no warnings (an unknown key is only a warning)');
  });
});

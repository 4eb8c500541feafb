// The instance lock: held for the process's life, freed by the kernel when
// the holder dies, and naming the holder's pid to the one refused.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { acquireInstanceLock, chainLockHolder, InstanceLockedError } from '../../src/app/instance-lock';
import { PACKAGE_ROOT } from '../../src/config/paths';

const MODULE = path.join(PACKAGE_ROOT, 'dist', 'src', 'app', 'instance-lock.js');

// Chain names unique to this process: the abstract socket is per network namespace.
const C1 = `T${process.pid}a`;
const C2 = `T${process.pid}b`;

describe('instance lock', () => {
  it('refuses a second holder of the state dir or the chain, naming the first pid, and frees on release', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-lock-'));
    for (const d of ['a', 'b']) mkdirSync(path.join(dir, d));
    try {
      const a = await acquireInstanceLock({ stateDir: path.join(dir, 'a'), chain: C1 });
      // Same chain, own state dir.
      await assert.rejects(acquireInstanceLock({ stateDir: path.join(dir, 'b'), chain: C1 }), (e: unknown) =>
        e instanceof InstanceLockedError && e.pid === process.pid && new RegExp(`chain ${C1}`).test(e.message));
      // Same state dir, other chain.
      await assert.rejects(acquireInstanceLock({ stateDir: path.join(dir, 'a'), chain: C2 }), (e: unknown) =>
        e instanceof InstanceLockedError && e.pid === process.pid && /--state-dir/.test(e.message));
      assert.equal((await chainLockHolder(C1))?.pid, process.pid);
      // The refused attempts left nothing held: b's state lock and the other chain are free.
      const b = await acquireInstanceLock({ stateDir: path.join(dir, 'b'), chain: C2 });
      b.release();
      a.release();
      assert.equal(await chainLockHolder(C1), null);
      (await acquireInstanceLock({ stateDir: path.join(dir, 'a'), chain: C1 })).release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is freed by the kernel when the holder is killed', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-lock-'));
    try {
      const t = { stateDir: dir, chain: C1 };
      const child = spawn(process.execPath, ['-e', `require(${JSON.stringify(MODULE)}).acquireInstanceLock(${JSON.stringify(t)}).then(() => console.log('held')); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
      await once(child.stdout, 'data');
      await assert.rejects(acquireInstanceLock(t), (e: unknown) => e instanceof InstanceLockedError && e.pid === child.pid);
      child.kill('SIGKILL');
      await once(child, 'exit');
      (await acquireInstanceLock(t)).release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the chain lock is the network namespace\'s: no file under /run to delete or move', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-lock-'));
    for (const d of ['a', 'b']) mkdirSync(path.join(dir, d));
    try {
      const a = await acquireInstanceLock({ stateDir: path.join(dir, 'a'), chain: C1 });
      // Another network namespace has its own chains, so its own lock.
      const other = spawnSync('unshare', ['--net', '--', process.execPath, '-e', `require(${JSON.stringify(MODULE)}).acquireInstanceLock(${JSON.stringify({ stateDir: path.join(dir, 'b'), chain: C1 })}).then((l) => { console.log('held'); l.release(); }, (e) => { console.log(e.message); process.exit(1); })`], { encoding: 'utf8', timeout: 30_000 });
      if (other.error) throw new Error(`unshare (util-linux) is needed: ${other.error.message}`);
      assert.equal(other.stdout.trim(), 'held', other.stderr);
      a.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a symbolic link in the lock file\'s place', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-lock-'));
    try {
      writeFileSync(path.join(dir, 'elsewhere'), '');
      symlinkSync(path.join(dir, 'elsewhere'), path.join(dir, 'nfips.lock'));
      await assert.rejects(acquireInstanceLock({ stateDir: dir, chain: C1 }), /nfips\.lock: it is a symbolic link/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

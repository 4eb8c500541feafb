// Without CAP_NET_ADMIN, `nfips run` says which privilege is missing before
// anything else (it used to say "invalid --state-dir ... EACCES"), and with
// it an EPERM on binding a queue means the queue is taken.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { explainBindError, missingPrivilege } from '../../src/app/privileges';
import { PACKAGE_ROOT } from '../../src/config/paths';
import { requireTools } from '../helpers/env';

const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');
const ROOT_STATUS = 'Name:\tnode\nCapEff:\t000001ffffffffff\n';
const NONE_STATUS = 'Name:\tnode\nCapEff:\t0000000000000000\n';
// CAP_NET_ADMIN (12) only.
const NET_ADMIN_STATUS = 'Name:\tnode\nCapEff:\t0000000000001000\n';

describe('privileges', () => {
  it('names CAP_NET_ADMIN when it is missing', () => {
    assert.equal(missingPrivilege(ROOT_STATUS), null);
    assert.equal(missingPrivilege(NET_ADMIN_STATUS), null);
    assert.match(missingPrivilege(NONE_STATUS) ?? '', /^nfips run needs CAP_NET_ADMIN .*run it as root/);
  });

  it('an EPERM on binding is "in use" only when the capability is there', () => {
    const kernel = 'NFQUEUE 3: kernel refused queue config: Operation not permitted';
    assert.match(explainBindError(kernel, NET_ADMIN_STATUS), /^queue 3 is in use by another program \(another nfips, suricata, \.\.\.\)/);
    assert.equal(explainBindError(kernel, NONE_STATUS), kernel);
    assert.equal(explainBindError('NFQUEUE 3: socket: Too many open files', NET_ADMIN_STATUS), 'NFQUEUE 3: socket: Too many open files');
  });

  it('nfips run as an unprivileged user: exit 1 naming CAP_NET_ADMIN, not the state directory', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nfips-priv-'));
    try {
      // As root, drop to a uid with no capabilities; otherwise this user already has none.
      const asUser = process.getuid?.() === 0 ? (requireTools('setpriv'), ['setpriv', '--reuid', '61012', '--regid', '61012', '--clear-groups', '--inh-caps', '-all', '--bounding-set', '-all', '--']) : [];
      // In a throwaway network namespace, should the refusal ever regress.
      const isolate = process.getuid?.() === 0 ? ['unshare', '--net', '--'] : [];
      const [cmd, ...args] = [...isolate, ...asUser, process.execPath, NFIPS, 'run', '--state-dir', path.join(dir, 'state'), '--control-socket', ''];
      const r = spawnSync(cmd as string, args, { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /^nfips: nfips run needs CAP_NET_ADMIN/);
      assert.doesNotMatch(r.stderr, /state-dir|EACCES/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

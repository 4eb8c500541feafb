// Where nfips is installed: every compiled file lives at dist/<dir>/<dir>/x.js.
import path from 'node:path';

export const PACKAGE_ROOT = path.resolve(__dirname, '../../..');

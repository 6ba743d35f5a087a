// The web UI's files, as `npm run build` left them in dist/web/. Read once at start (a few hundred KiB),
// served from memory: hashed assets cached for a year, index.html never cached (so a new build is seen at
// once), every page under a strict Content-Security-Policy that allows only this origin's own scripts.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
};

/** No inline script or style attribute runs; WebSockets only to this origin; no framing (clickjacking). */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  // xterm.js writes <style> elements for its theme and cell sizes at run time: inline styles must be
  // allowed for the terminal to render (as Teleport's CSP does). Scripts stay strictly 'self'.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // Invite links carry a secret in the path: no page sends its address to anyone.
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'strict-transport-security': 'max-age=31536000',
};

export interface StaticFile {
  body: Buffer;
  headers: Record<string, string>;
}

/** Where the build is: next to the sources (tsx) or next to the bundled CLI (dist/ward/). */
export function findWebRoot(from = import.meta.dirname): string | undefined {
  for (const dir of [resolve(from, '../../dist/web'), resolve(from, '../web')]) {
    if (existsSync(join(dir, 'index.html'))) return dir;
  }
  return undefined;
}

export class WebAssets {
  private readonly files = new Map<string, StaticFile>();

  constructor(root: string | undefined) {
    if (!root) return;
    const walk = (dir: string, prefix: string) => {
      for (const name of readdirSync(dir)) {
        const full = join(dir, name);
        if (statSync(full).isDirectory()) walk(full, `${prefix}${name}/`);
        else this.add(`${prefix}${name}`, readFileSync(full));
      }
    };
    walk(root, '/web/');
  }

  private add(path: string, body: Buffer): void {
    const hashed = path.startsWith('/web/assets/');
    this.files.set(path, {
      body,
      headers: {
        'content-type': TYPES[extname(path)] ?? 'application/octet-stream',
        'cache-control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
        ...SECURITY_HEADERS,
      },
    });
  }

  get built(): boolean {
    return this.files.has('/web/index.html');
  }

  /** The file for a path: an asset, or index.html for the app's own routes (/web/servers, /web/invite/…). */
  lookup(path: string): StaticFile | undefined {
    const file = this.files.get(path);
    if (file) return file;
    if (path.startsWith('/web/assets/')) return undefined; // a missing asset is a 404, not the app
    if (path === '/web' || path.startsWith('/web/')) return this.files.get('/web/index.html');
    return undefined;
  }
}

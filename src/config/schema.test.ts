import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from './schema.ts';

const dir = mkdtempSync(join(tmpdir(), 'ward-config-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function load(yaml: string) {
  const path = join(dir, 'ward.yaml');
  writeFileSync(path, yaml);
  return loadConfig(path);
}

describe('proxy_service.tunnel_streams_per_user', () => {
  it("defaults to 256 with or without a proxy_service section, and takes a value up to a tunnel's 4,096", () => {
    assert.equal(loadConfig().proxy_service.tunnel_streams_per_user, 256);
    assert.equal(load('proxy_service: {enabled: true}\n').proxy_service.tunnel_streams_per_user, 256);
    assert.equal(load('proxy_service: {tunnel_streams_per_user: 4096}\n').proxy_service.tunnel_streams_per_user, 4096);
  });
  it('refuses 0, a fraction and more than a tunnel carries, naming the key', () => {
    for (const bad of ['0', '2.5', '4097']) {
      assert.throws(() => load(`proxy_service: {tunnel_streams_per_user: ${bad}}\n`), {
        code: 'ERR_BAD_PARAMETER',
        message: /proxy_service\.tunnel_streams_per_user/,
      });
    }
  });
});

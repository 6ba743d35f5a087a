import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allLabels, filterServers, parseLabelFilter, type ServerRow } from './filter.ts';

const rows: ServerRow[] = [
  { id: 'b-1', hostname: 'db1', addr: '10.0.0.2:3022', labels: { env: 'prod', team: 'db' } },
  { id: 'a-1', hostname: 'web1', addr: '10.0.0.1:3022', labels: { env: 'prod' } },
  { id: 'c-1', hostname: 'lab', addr: 'tunnel', labels: { env: 'lab' } },
];

describe('web servers page: search and label filters', () => {
  it('searches names, ids, addresses and labels, every word', () => {
    assert.deepEqual(
      filterServers(rows, 'WEB', []).map((r) => r.hostname),
      ['web1'],
    );
    assert.deepEqual(
      filterServers(rows, 'team=db', []).map((r) => r.hostname),
      ['db1'],
    );
    assert.deepEqual(
      filterServers(rows, 'prod 10.0.0.1', []).map((r) => r.hostname),
      ['web1'],
    );
    assert.deepEqual(
      filterServers(rows, '', []).map((r) => r.hostname),
      ['db1', 'lab', 'web1'],
      'sorted by name',
    );
  });

  it('keeps servers that carry every label filter', () => {
    assert.deepEqual(
      filterServers(rows, '', ['env=prod']).map((r) => r.hostname),
      ['db1', 'web1'],
    );
    assert.deepEqual(
      filterServers(rows, '', ['env=prod', 'team=db']).map((r) => r.hostname),
      ['db1'],
    );
    assert.deepEqual(filterServers(rows, '', ['env=nowhere']), []);
  });

  it('lists each label once and parses a filter', () => {
    assert.deepEqual(allLabels(rows), ['env=lab', 'env=prod', 'team=db']);
    assert.deepEqual(parseLabelFilter('a=b=c'), ['a', 'b=c']);
    assert.equal(parseLabelFilter('=x'), undefined);
  });
});

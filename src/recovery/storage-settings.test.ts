import { describe, expect, it } from 'vitest';

import { parseConfig } from '../config/index.js';
import { storageSettingsFrom } from './storage-settings.js';

describe('storageSettingsFrom', () => {
  it('maps the s3 block, part size and Object Lock', () => {
    const { config } = parseConfig(
      `repository:
  url: s3://bucket/prefix
  password: x
  concurrency: 16
  s3: { endpoint: "http://127.0.0.1:9000", accessKeyId: a, secretAccessKey: b, forcePathStyle: true, partSizeMiB: 16,
        objectLock: { mode: COMPLIANCE, retain: 30d } }
`,
      '/tmp/lifeboat.yaml',
      {},
    );
    expect(storageSettingsFrom(config.repository)).toEqual({
      settings: {
        url: 's3://bucket/prefix',
        concurrency: 16,
        s3: {
          endpoint: 'http://127.0.0.1:9000',
          region: 'us-east-1',
          accessKeyId: 'a',
          secretAccessKey: 'b',
          forcePathStyle: true,
          partSize: 16 * 1024 * 1024,
          objectLockMode: 'COMPLIANCE',
          createWithObjectLock: true,
        },
      },
      objectLockRetainMs: 30 * 86_400_000,
    });
  });

  it('passes a local path through', () => {
    const { config } = parseConfig('repository: { url: ./repo, password: x }\n', '/tmp/lifeboat.yaml', {});
    expect(storageSettingsFrom(config.repository)).toEqual({ settings: { url: './repo' } });
  });
});

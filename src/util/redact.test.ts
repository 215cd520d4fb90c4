import { describe, expect, it } from 'vitest';

import { redactCommandLine } from './redact.js';

describe('redactCommandLine', () => {
  it.each([
    ['LIFEBOAT_PASSWORD=hunter2 lifeboat wal-push %p', 'LIFEBOAT_PASSWORD=*** lifeboat wal-push %p'],
    ["AWS_SECRET_ACCESS_KEY='a b' lifeboat wal-push %p", 'AWS_SECRET_ACCESS_KEY=*** lifeboat wal-push %p'],
    [
      'pgbackrest --repo1-cipher-pass=xyz archive-push %p',
      'pgbackrest --repo1-cipher-pass=*** archive-push %p',
    ],
    ['tool --token abc123 %p', 'tool --token *** %p'],
    [
      'curl -T %p https://user:s3cret@example.invalid/wal/%f',
      'curl -T %p https://user:***@example.invalid/wal/%f',
    ],
    [
      'LIFEBOAT_KEY=lbk1-' + 'A'.repeat(43) + ' lifeboat wal-push %p',
      'LIFEBOAT_KEY=*** lifeboat wal-push %p',
    ],
  ])('%s', (command, expected) => {
    expect(redactCommandLine(command)).toBe(expected);
  });

  it('leaves commands without secrets as they are', () => {
    for (const command of [
      '/usr/local/bin/lifeboat --config /etc/lifeboat.yaml wal-push --source main %p',
      'test ! -f /archive/%f && cp %p /archive/%f',
    ])
      expect(redactCommandLine(command)).toBe(command);
  });
});

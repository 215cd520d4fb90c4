// `lifeboat key list|add|remove|rotate`: the repository's key files (passwords, age recipients).
import { appendFile, chmod, readFile, writeFile } from 'node:fs/promises';

import type { Command } from 'commander';

import { LifeboatError } from '../../errors.js';
import type { CommandRunner } from '../command.js';

async function newPassword(file: string | undefined, env: NodeJS.ProcessEnv): Promise<string> {
  const password =
    file !== undefined ? (await readFile(file, 'utf8')).replace(/\r?\n+$/, '') : env.LIFEBOAT_NEW_PASSWORD;
  if (!password)
    throw new LifeboatError(
      'LB_USAGE',
      'give the new password with --new-password-file FILE or $LIFEBOAT_NEW_PASSWORD',
    );
  return password;
}

export function registerKeyCommands(program: Command, run: CommandRunner): void {
  const key = program.command('key').description('manage the repository keys (passwords or age recipients)');

  key
    .command('list')
    .description('list key files')
    .action(
      run(async (context) => {
        const { listKeys } = await import('../../repository/index.js');
        await context.withRepository(async (repository) => {
          const keys = await listKeys(repository);
          context.output.result(keys, () =>
            keys
              .map(
                (entry) =>
                  `${entry.current ? '*' : ' '} ${entry.id.slice(0, 8)}  ${(entry.kdf === 'hkdf-sha256' ? 'generated' : entry.kind).padEnd(10)}  ${entry.created}  ${entry.username}@${entry.hostname}${entry.recipients ? `  ${entry.recipients.join(', ')}` : ''}`,
              )
              .join('\n'),
          );
        });
      }),
    );

  key
    .command('generate')
    .description(
      'print a new generated key: a random password that opens the repository without scrypt (for hosts that run wal-push)',
    )
    .option('--output <file>', 'write it to this new file (mode 0600) instead of standard output')
    .action(
      run(async (context, options) => {
        const { output } = options as { output?: string };
        const { generateRepositoryKey } = await import('../../repository/keys.js');
        const key = generateRepositoryKey();
        if (output === undefined) {
          context.output.secretResult({ key }, key);
          return;
        }
        await writeFile(output, `${key}\n`, { mode: 0o600, flag: 'wx' }).catch((error: unknown) => {
          throw new LifeboatError('LB_USAGE', `cannot write a new key file ${output}: ${String(error)}`, {
            cause: error,
          });
        });
        context.output.result({ file: output }, `new key written to ${output} (mode 0600)`);
      }),
    );

  key
    .command('add')
    .description('add a password or a generated key (password mode)')
    .option('--new-password-file <file>', 'file holding the new password (else $LIFEBOAT_NEW_PASSWORD)')
    .action(
      run(async (context, options) => {
        const password = await newPassword(
          (options as { newPasswordFile?: string }).newPasswordFile,
          context.env,
        );
        const { addPassword } = await import('../../repository/index.js');
        await context.withRepository(async (repository) => {
          const id = await addPassword(repository, password);
          context.output.result({ id }, `added key ${id.slice(0, 8)}`);
        });
      }),
    );

  key
    .command('remove')
    .description('remove a key file (never the one in use, nor the last one)')
    .argument('<id>', 'key id or unique prefix')
    .action(
      run(async (context, id) => {
        const { removeKey } = await import('../../repository/index.js');
        await context.withRepository(async (repository) => {
          await removeKey(repository, id as string);
          context.output.result({ removed: id }, `removed key ${id as string}`);
        });
      }),
    );

  key
    .command('rotate')
    .description('new key for new data; old data stays readable (see docs/repository-format.md)')
    .option(
      '--identity-output <file>',
      'public-key mode: append the new age identity to this file (mode 0600)',
    )
    .action(
      run(async (context, options) => {
        const { identityOutput } = options as { identityOutput?: string };
        const { rotateKeys } = await import('../../repository/index.js');
        const loaded = await context.config();
        await context.withRepository(async (repository) => {
          if (repository.keyRing.mode === 'public-key' && identityOutput === undefined) {
            throw new LifeboatError(
              'LB_USAGE',
              'in public-key mode, key rotate needs --identity-output FILE for the new identity',
            );
          }
          const result = await rotateKeys(repository, {
            ...(loaded.config.repository.password ? { password: loaded.config.repository.password } : {}),
            // Written (and its mode set) before the repository takes the new recipient.
            keepIdentity: async (identity) => {
              await appendFile(
                identityOutput!,
                `# lifeboat identity created ${new Date().toISOString()}\n${identity}\n`,
                { mode: 0o600 },
              );
              await chmod(identityOutput!, 0o600);
            },
          });
          const { identity: _secret, ...shown } = result;
          context.output.result(shown, () =>
            result.recipient
              ? `new recipient ${result.recipient}\nidentity appended to ${identityOutput}: keep the old identities there so old backups stay readable,\nthen set repository.recipients to the new recipient on every host`
              : `rotated: new key ${result.keyId.slice(0, 8)}; removed ${result.removed.length} old key file(s)${result.removed.length > 1 ? ' (add other passwords again with key add)' : ''}`,
          );
        });
      }),
    );
}

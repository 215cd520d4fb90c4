// Secrets recognisable by their form, for code below the config layer (engines quote server settings
// and commands). src/config/redact.ts builds on these with the secrets a config names.

export const REDACTED = '***';

/** scheme://user:PASSWORD@ — group 1 is everything before the password, group 2 the password. */
export const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)([^@/?#\s]+)@/gi;

/**
 * A generated repository key (lifeboat key generate), wherever it appears, whatever touches it (a path,
 * a URL parameter): it is a secret by its form, and redacting a little too much costs nothing.
 */
export const GENERATED_KEY = /lbk1-[A-Za-z0-9_-]{43}/g;

/** Replaces the password of a URL with "***"; other text is returned unchanged. */
export function redactUrl(text: string): string {
  return text.replace(URL_PASSWORD, `$1${REDACTED}@`);
}

/**
 * A shell command (a server's archive_command) with its secrets removed: URL passwords, generated keys,
 * and the values of environment assignments and options whose names say secret (PASSWORD, PASS, SECRET,
 * TOKEN, KEY), as in `LIFEBOAT_PASSWORD=… lifeboat wal-push %p` or `--password=…`.
 */
export function redactCommandLine(text: string): string {
  return redactUrl(text)
    .replace(GENERATED_KEY, `lbk1-${REDACTED}`)
    .replace(
      /(\b[A-Za-z_-]*(?:PASSWORD|SECRET|TOKEN|KEY|PASS)[A-Za-z_-]*[=\s]+)(?:'[^']*'|"[^"]*"|[^\s;&|]+)/gi,
      `$1${REDACTED}`,
    );
}

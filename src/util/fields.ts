// Reusable zod field types for configuration schemas (the root config and each engine's source block).
//
// Values may come from ${VAR} interpolation, which always yields strings, so numeric and boolean fields
// accept their string forms ("5432", "true") too.
import { z } from 'zod';

import { parseDuration } from './duration.js';

/** A URL whose scheme is one of `schemes`; the message names what was expected. */
export function urlWith(schemes: readonly string[], label = `${schemes[0]}://`): z.ZodString {
  return z.string().refine(
    (value) => {
      try {
        return schemes.includes(new URL(value).protocol.replace(/:$/, ''));
      } catch {
        return false;
      }
    },
    { message: `expected a ${label} URL` },
  );
}

/** An integer within [min, max], also accepted as a decimal string. */
export function integer(min = 0, max = Number.MAX_SAFE_INTEGER) {
  return z.preprocess(
    (value) => (typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value),
    z.number().int().min(min).max(max),
  );
}

/** A boolean, also accepted as "true"/"false"/"yes"/"no"/"1"/"0". */
export function flag() {
  return z.preprocess((value) => {
    if (typeof value !== 'string') return value;
    const text = value.trim().toLowerCase();
    if (['true', 'yes', '1', 'on'].includes(text)) return true;
    if (['false', 'no', '0', 'off'].includes(text)) return false;
    return value;
  }, z.boolean());
}

/** A duration string ("90s", "1h30m", "7d"); parsed to milliseconds by consumers via parseDuration. */
export function duration() {
  return z.string().refine((value) => parseDuration(value) !== undefined, {
    message: 'expected a duration such as 90s, 20m, 1h, 7d',
  });
}

/** A non-empty string. */
export function text() {
  return z.string().min(1, { message: 'must not be empty' });
}

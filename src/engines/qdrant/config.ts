// Configuration of a Qdrant source (engine: qdrant) and of a drill target for one.
import { z } from 'zod';

import { text, urlWith } from '../../util/fields.js';

const connection = {
  /** REST endpoint, e.g. http://127.0.0.1:6333. */
  url: urlWith(['http', 'https'], 'http:// or https://'),
  /** API key (or apiKeyFile). */
  apiKey: text().optional(),
  /** Collections to back up (default: all). */
  collections: z.array(text()).min(1).optional(),
};

export const qdrantSourceSchema = z.object({ engine: z.literal('qdrant'), ...connection }).strict();
export const qdrantTargetSchema = z.object(connection).strict();

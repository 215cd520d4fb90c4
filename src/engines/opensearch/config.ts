// Configuration of an OpenSearch source (engine: opensearch) and of a drill target for one.
import { z } from 'zod';

import { flag, text, urlWith } from '../../util/fields.js';

const connection = {
  /** REST endpoint, e.g. https://127.0.0.1:9200. */
  url: urlWith(['http', 'https'], 'http:// or https://'),
  username: text().optional(),
  password: text().optional(),
  /** Index patterns to back up (default: all but system indices). */
  indices: z.array(text()).min(1).optional(),
  insecureSkipVerify: flag().optional(),
};

export const opensearchSourceSchema = z.object({ engine: z.literal('opensearch'), ...connection }).strict();
export const opensearchTargetSchema = z.object(connection).strict();

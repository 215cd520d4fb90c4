// Configuration of a Neo4j source (engine: neo4j) and of a drill target for one.
import { z } from 'zod';

import { text, urlWith } from '../../util/fields.js';

const connection = {
  /** Bolt URL: bolt://, bolt+s://, neo4j://, neo4j+s://. */
  url: urlWith(['bolt', 'bolt+s', 'bolt+ssc', 'neo4j', 'neo4j+s', 'neo4j+ssc'], 'bolt:// or neo4j://'),
  username: text().optional(),
  password: text().optional(),
  /** Databases to back up (default: every online database but system). */
  databases: z.array(text()).min(1).optional(),
  /** NEO4J_HOME of the server, where neo4j-admin lives (dump and load run there). */
  home: text().optional(),
};

export const neo4jSourceSchema = z.object({ engine: z.literal('neo4j'), ...connection }).strict();
export const neo4jTargetSchema = z.object(connection).strict();

// Configuration of a files source (engine: files): paths with include/exclude globs, and of a drill
// target for one (a directory to restore into).
import { z } from 'zod';

import { flag, text } from '../../util/fields.js';

export const filesSourceSchema = z
  .object({
    engine: z.literal('files'),
    /** Files and directories to back up. */
    paths: z.array(text()).min(1, { message: 'list at least one path' }),
    /** Globs a file must match to be included (default: everything). */
    include: z.array(text()).optional(),
    /** Globs that exclude files and directories. */
    exclude: z.array(text()).optional(),
    /** Stay on the filesystem of each path (do not cross mount points). */
    oneFileSystem: flag().optional(),
  })
  .strict();

export const filesTargetSchema = z.object({ directory: text() }).strict();

export type FilesSource = z.infer<typeof filesSourceSchema>;
export type FilesTarget = z.infer<typeof filesTargetSchema>;

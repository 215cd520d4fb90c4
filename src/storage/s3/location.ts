// How an S3 repository location is shown to people (kept apart from the SDK-using backend so that the
// lazy loader can name the location without importing the SDK).

/** "s3://bucket/prefix (endpoint)", never with credentials. */
export function s3Location(options: { bucket: string; prefix: string; endpoint?: string }): string {
  return `s3://${options.bucket}/${options.prefix}${options.endpoint ? ` (${withoutUserinfo(options.endpoint)})` : ''}`;
}

/** An endpoint URL without any user:password@ part, for messages. */
function withoutUserinfo(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    url.username = '';
    url.password = '';
    return url.toString().replace(/\/$/, '');
  } catch {
    return '(invalid endpoint)';
  }
}

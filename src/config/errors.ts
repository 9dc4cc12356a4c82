/**
 * A configuration or usage mistake a person must fix. The CLI prints the message as
 * one line and exits with code 2, so the message names the setting and the fix.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

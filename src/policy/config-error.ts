/** A policy configuration document that does not parse or does not validate. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

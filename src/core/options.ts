import { SessionError } from './errors.js';

/**
 * Throws for an options argument that is not an object or that has a name the receiver does not know, so a
 * typo such as `samesite` fails at start-up instead of being silently ignored.
 */
export function checkOptionNames(where: string, options: unknown, known: readonly string[]): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new SessionError('ERR_SESSION_INVALID_OPTION', `${where}: options must be an object.`);
  }
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue;
    const near = known.find((candidate) => candidate.toLowerCase() === name.toLowerCase());
    const hint = near === undefined ? ` Known options: ${known.join(', ')}.` : ` Did you mean "${near}"?`;
    throw new SessionError('ERR_SESSION_INVALID_OPTION', `${where}: unknown option "${name}".${hint}`);
  }
}

/** The error for an option whose value is wrong; names the option and what it takes, never a secret. */
export function invalidOption(where: string, name: string, expected: string): SessionError {
  return new SessionError('ERR_SESSION_INVALID_OPTION', `${where}: option "${name}" must be ${expected}.`);
}

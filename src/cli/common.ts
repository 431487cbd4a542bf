// What the commands share: the error a user can fix, and how key ids are written.

/** A failure the user can fix: printed without a stack, with its exit code. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export const hex = (id: number) => `0x${id.toString(16).padStart(8, '0')}`;

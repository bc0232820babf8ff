// The MLS layer's one error type (proto/PROTOCOL.md §10.1). Like ProtocolError (v1):
// `code` is stable and machine-readable, `message` is one sentence for logs. ts-mls's own
// errors are wrapped (as `cause`) so callers never depend on the library's error classes.
import type { CredentialChecker } from "./credential.js";

export type MlsErrorCode =
  | "malformed"          // bytes that do not decode as the MLS object expected, or are too large
  | "bad-argument"       // a caller passed something of the wrong type or size
  | "bad-credential"     // a credential that does not parse, or whose identity signature fails
  | "untrusted-identity" // a credential that verifies but names an identity key the caller refused
  | "wrong-group"        // a message for another group than the one it was given to
  | "wrong-epoch"        // a handshake message for an epoch other than the current one
  | "epoch-expired"      // an application message for an epoch whose keys were deleted
  | "not-for-me"         // a Welcome that holds no secrets for any of my KeyPackages
  | "not-a-member"       // I was removed (or left): the group can no longer be used
  | "refused-change"     // a commit or proposal the caller's policy refused
  | "bad-key-package"    // a KeyPackage of the wrong suite, expired, or whose credential fails
  | "decrypt-failed"     // a message that does not open (keys deleted, forged, or not mine)
  | "no-pending-commit"  // confirm/discard without a pending commit
  | "pending-commit"     // a second commit while one waits for the relay's answer
  | "bad-state"          // a serialised state that does not restore
  | "bad-group-context"  // a GroupInfo or Welcome whose GroupContext extensions are not what its kind of conversation carries (a room's creator missing, malformed or contradicted)
  | "context-changed";   // a commit that changes the GroupContext extensions (a room's creator is fixed at creation)

export class MlsProtocolError extends Error {
  readonly code: MlsErrorCode;
  /**
   * For a commit refused after it was processed (authenticated: its signature and, framed
   * privately, its AEAD checked): its committer's username. Undefined for anything refused before
   * that (a relay's forgery, a malformed message), whose sender nobody vouches for.
   */
  readonly committer: string | undefined;
  constructor(code: MlsErrorCode, message: string, options?: { cause?: unknown; committer?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "MlsProtocolError";
    this.code = code;
    this.committer = options?.committer;
  }
}

export function isMlsProtocolError(e: unknown, code?: MlsErrorCode): e is MlsProtocolError {
  return e instanceof MlsProtocolError && (code === undefined || e.code === code);
}

/**
 * Runs a ts-mls call and turns its failures into MlsProtocolError: a credential refusal keeps
 * its own reason (from the CredentialChecker), anything else gets `code` and `what`.
 */
export async function wrap<T>(checker: CredentialChecker, code: MlsErrorCode, what: string, f: () => Promise<T>): Promise<T> {
  checker.takeRefusal();
  try {
    return await f();
  } catch (e) {
    if (e instanceof MlsProtocolError) throw e;
    const refusal = checker.takeRefusal();
    if (refusal !== undefined) throw new MlsProtocolError(refusal.code, refusal.message, { cause: e });
    throw new MlsProtocolError(code, `${what}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}

// The relay's walk of a client's MLS structure before ts-mls decodes it (PROTOCOL.md §8.2 "What
// the relay decodes", §13.3): the walk itself and its bounds are the protocol layer's
// (src/protocol/mls/shape.ts, shared with the client, which walks what a relay hands it); here
// they take this relay's max_group_devices, and the walk's MlsProtocolError becomes a
// BAD_MLS_MESSAGE refusal with the walk's sentence ("the GroupInfo has more than 32 extensions in
// the GroupInfo; this relay takes at most 32 (PROTOCOL.md §8.2)").
import type { MLSMessage } from "ts-mls";
import { decodeMls } from "../protocol/mls/client.js";
import { mlsShapeBounds, walkMlsShape, type MlsShapeBounds } from "../protocol/mls/shape.js";
import type { RelayLimits } from "./limits.js";
import { mls } from "./mls-checks.js";

export type { MlsShapeBounds };

/** The bounds of a relay with these limits (src/protocol/mls/shape.ts). */
export function shapeBoundsFor(limits: Pick<RelayLimits, "maxGroupDevices">): MlsShapeBounds {
  return mlsShapeBounds(limits.maxGroupDevices);
}

/**
 * Walks the MLSMessage in `bytes` (named `what` in a refusal) and refuses, with BAD_MLS_MESSAGE,
 * a list longer than `bounds` allow or bytes the walk cannot follow; what it lets through is
 * for decodeMls to judge. Cost: at most one step per length header up to the bounds.
 */
export function checkMlsShape(bytes: Uint8Array, what: string, bounds: MlsShapeBounds): void {
  mls(() => walkMlsShape(bytes, what, bounds, "relay"));
}

/**
 * A client's MLSMessage decoded by the relay: the shape walk first (bounded, above), then
 * ts-mls's strict decode (decodeMls: size cap, no trailing bytes, MLS 1.0), whose error is a
 * BAD_MLS_MESSAGE refusal with its sentence. Every MLS structure the relay decodes from a client
 * (PublishGroupInfo, RecreateRoom, SendCommit's commit, GroupInfo and Welcome, PublishKeyPackages,
 * SendMls's general path) comes through here.
 */
export function decodeClientMls(bytes: Uint8Array, what: string, bounds: MlsShapeBounds): MLSMessage {
  checkMlsShape(bytes, what, bounds);
  return mls(() => decodeMls(bytes, what));
}

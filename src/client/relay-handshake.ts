// The handshake of one connection attempt (PROTOCOL.md §9): the channel to one address (TLS,
// its pinned certificate), then hello, challenge, proof bound to the TLS certificate, and
// welcome, and what a failed attempt means (a changed certificate, something that is not a
// relay, a refusal). The run loop around it, its backoff and the status it reports stay in
// relay-connection.ts.
import type { SessionResponse, Welcome } from "../gen/securechat/v1/chat.js";
import { NONCE_BYTES, RELAY_ID_BYTES } from "../protocol/keys.js";
import { helloDeviceSpki, proveSession, type LocalIdentity } from "./local-identity.js";
import { describeNotARelay, describeNotARelayByProbe } from "./not-a-relay.js";
import { classifyHandshakeError, FatalSessionError } from "./session-end.js";
import { NotTlsError, prepareChannel, RelayCertificateRefused, type PreparedChannel, type RelayTransport } from "./relay-transport.js";
import { grpcStatus, isServiceError, type SessionStream } from "./transport.js";

export const CLIENT_VERSION = "secure-chat/0.1.0";
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** The channel to `server`; a refusal that retrying cannot fix is a FatalSessionError. */
export async function openRelayChannel(transport: RelayTransport, server: string, siblings: readonly string[]): Promise<PreparedChannel> {
  try {
    return await prepareChannel(transport, server, siblings);
  } catch (e) {
    // A changed certificate is refused for good (the sentence says how to accept it).
    if (e instanceof RelayCertificateRefused) throw new FatalSessionError(e.end);
    // The TLS first contact met something: name it when it is not a relay, and stop retrying.
    if (e instanceof NotTlsError) {
      throw new FatalSessionError((await describeNotARelayByProbe(server)) ?? { kind: "not-tls", address: e.address });
    }
    throw e;
  }
}

/** Hello, challenge, proof: the relay's Welcome, or an error (handshakeFailure says what it means). */
export async function authenticate(
  stream: SessionStream,
  frames: AsyncIterator<SessionResponse>,
  id: LocalIdentity,
  protocolVersion: 1 | 2,
  channel: PreparedChannel,
): Promise<Welcome> {
  await stream.send({
    frame: {
      $case: "hello",
      value: { username: id.username, sigSpki: id.user.sigSpki, encSpki: id.user.encSpki, encKeySig: id.user.encKeySig, clientVersion: CLIENT_VERSION, protocolVersion, deviceSpki: helloDeviceSpki(id) },
    },
  });
  const challenge = await nextFrame(frames);
  if (challenge?.$case !== "challenge") throw new Error("the relay did not send a challenge");
  const { relayId, nonce } = challenge.value;
  if (relayId.length !== RELAY_ID_BYTES || nonce.length !== NONCE_BYTES) throw new Error("the relay sent a malformed challenge");
  // The proof binds the certificate this connection presented (§8): a man in the middle
  // with another certificate cannot pass it on to the relay.
  const binding = channel.binding();
  if (binding === undefined) throw new Error("the TLS connection to the relay presented no certificate");
  await stream.send({ frame: { $case: "proof", value: { signature: proveSession(id, relayId, nonce, binding) } } });
  const welcome = await nextFrame(frames);
  if (welcome?.$case !== "welcome") throw new Error("the relay did not welcome the session");
  return welcome.value;
}

/** What an error before the session was authenticated means: the error to throw to the run loop. */
export async function handshakeFailure(e: unknown, channel: PreparedChannel, server: string, me: string): Promise<Error> {
  // A pinned relay that now shows another certificate fails here (TLS): say so, for good.
  if (isServiceError(e) && e.code === grpcStatus.UNAVAILABLE) {
    const refusal = await channel.refusal();
    if (refusal !== undefined) return new FatalSessionError(refusal);
  }
  // Something else on the port (an HTTP or SSH server, an echo): say so, and stop retrying.
  const foreign = await describeNotARelay(e, server);
  if (foreign !== undefined) return new FatalSessionError(foreign);
  return classifyHandshakeError(e, me);
}

async function nextFrame(frames: AsyncIterator<SessionResponse>): Promise<SessionResponse["frame"]> {
  const r = await frames.next();
  if (r.done) throw new Error("the relay ended the session during the handshake");
  return r.value.frame;
}

// How the client reaches the relay (PROTOCOL.md §9): TLS pinned on first use by default, TLS
// checked against a CA (--ca, or the system's CAs with --tls), or plaintext only when the user
// asked for it. Each connection attempt gets its own credentials, which record the certificate
// the relay presented so the proof of possession can bind it.
import { checkServerIdentity as defaultCheckServerIdentity, connect as tlsConnect, createSecureContext, type PeerCertificate } from "node:tls";
import { isIP } from "node:net";
import { credentials as grpcCredentials, type ChannelCredentials } from "@grpc/grpc-js";
import { PLAINTEXT_CHANNEL_BINDING, tlsChannelBinding } from "../protocol/keys.js";
import { certificateFingerprint, certificatePem } from "../protocol/x509.js";
import { describeSessionEnd, type SessionEnd } from "./errors.js";
import type { KnownRelays, RelayPin } from "./known-relays.js";

export type RelayTransport =
  /** Default: TLS, the relay's certificate pinned per address on first use (known_relays). */
  | { readonly kind: "pinned"; readonly pins: KnownRelays; readonly acceptSha256?: string }
  /** TLS checked against these CA certificates (PEM), or the system's CAs when absent. */
  | { readonly kind: "ca"; readonly ca?: Buffer }
  /** No TLS (both sides said --insecure-plaintext). */
  | { readonly kind: "plaintext" };

/** A refusal that retrying cannot fix (the certificate changed): the session stops for `end`. */
export class RelayCertificateRefused extends Error {
  constructor(readonly end: Extract<SessionEnd, { kind: "certificate-changed" | "certificate-not-accepted" }>) {
    super(describeSessionEnd(end));
  }
}
/** The server answered the TLS first contact with something that is not TLS. */
export class NotTlsError extends Error {
  constructor(readonly address: string) {
    super(describeSessionEnd({ kind: "not-tls", address }));
  }
}

/** Everything one connection attempt needs. */
export interface PreparedChannel {
  readonly credentials: ChannelCredentials;
  readonly options: Readonly<Record<string, string | number>>;
  /** The channel binding of this connection, known once TLS is up (or at once in plaintext). */
  binding(): Buffer | undefined;
  /**
   * After the connection failed before the handshake: the refusal of a changed certificate
   * (as data), when that is why (a pinned relay now showing another one), else undefined.
   */
  refusal(): Promise<SessionEnd | undefined>;
}

const NO_REFUSAL = (): Promise<undefined> => Promise.resolve(undefined);

/** The name sent as SNI when the address is an IP literal (SNI may not carry an IP, RFC 6066 §3). */
const SNI_FOR_IP = "secure-chat-relay";
const PROBE_TIMEOUT_MS = 10_000;
const UNREACHABLE = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EADDRNOTAVAIL"]);

export function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(address.slice(i + 1)) };
}

/**
 * Connects with TLS, accepting any certificate, only to learn which one the relay presents
 * (the first contact of trust on first use, and the check of a pin before each connection).
 */
export function presentedCertificate(address: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<Buffer> {
  const { host, port } = splitAddress(address);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host, port, rejectUnauthorized: false, ALPNProtocols: ["h2"], servername: isIP(host) === 0 ? host : SNI_FOR_IP,
    });
    const timer = setTimeout(() => finish(new Error(`no TLS answer from ${address} within ${timeoutMs / 1000} s`)), timeoutMs);
    const finish = (e: Error | undefined, cert?: Buffer): void => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on("error", () => {});
      socket.destroy();
      if (e !== undefined) reject(e);
      else resolve(cert!);
    };
    socket.once("secureConnect", () => {
      const raw = socket.getPeerCertificate(true).raw;
      if (raw === undefined || raw.length === 0) finish(new Error(`the relay at ${address} presented no certificate`));
      else finish(undefined, Buffer.from(raw));
    });
    socket.once("error", (e: NodeJS.ErrnoException) => {
      // A plaintext relay answers a ClientHello with bytes that are not TLS.
      // Something else (HTTP/1, SSH, an echo) fails the TLS handshake the same way.
      if ((e.code ?? "").startsWith("ERR_SSL_") || /wrong version number|packet length too long|unexpected message|record layer/i.test(e.message)) {
        finish(new NotTlsError(address));
      } else if (UNREACHABLE.has(e.code ?? "")) {
        finish(new Error("relay unreachable")); // as a failed gRPC connection says it
      } else finish(e);
    });
  });
}

/** What is said when a pinned relay presents another certificate. */
function certificateChanged(address: string, pin: RelayPin, presentedSha256: string): SessionEnd & { kind: "certificate-changed" } {
  return { kind: "certificate-changed", address, presentedSha256, pinnedSha256: pin.sha256, pinnedAtMs: pin.pinnedAtMs };
}

/** True for 64 hex digits (a SHA-256 as chat-relay fingerprint prints it; colons allowed). */
export function normalizeSha256(s: string): string | undefined {
  const hex = s.replace(/:/g, "").toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}

/**
 * Prepares one connection attempt. In pinned mode it first learns the certificate the relay
 * presents: pins it on first contact (or when it equals --accept-relay-cert), refuses a change.
 * `siblings`: the other addresses of the same server list; a first contact that presents the
 * certificate already pinned for one of them is that service's relay, pinned without a new first
 * use (cluster-design.md §3).
 */
export async function prepareChannel(transport: RelayTransport, address: string, siblings: readonly string[] = []): Promise<PreparedChannel> {
  if (transport.kind === "plaintext") {
    return { credentials: grpcCredentials.createInsecure(), options: {}, binding: () => PLAINTEXT_CHANNEL_BINDING, refusal: NO_REFUSAL };
  }
  let seen: Buffer | undefined;
  const binding = (): Buffer | undefined => (seen === undefined ? undefined : tlsChannelBinding(seen));

  if (transport.kind === "ca") {
    const checkServerIdentity = (host: string, cert: PeerCertificate): Error | undefined => {
      const err = defaultCheckServerIdentity(host, cert);
      if (err === undefined) seen = Buffer.from(cert.raw);
      return err;
    };
    return { credentials: grpcCredentials.createSsl(transport.ca ?? null, null, null, { checkServerIdentity }), options: {}, binding, refusal: NO_REFUSAL };
  }

  let pin = transport.pins.get(address);
  // Already pinned (the usual reconnect): connect straight on the pin; only when that fails is
  // the relay asked which certificate it shows (refusal() below).
  if (pin === undefined || (transport.acceptSha256 !== undefined && pin.sha256 !== transport.acceptSha256)) {
    pin = await pinFirstOrAccepted(transport, address, pin, siblings);
  }
  return pinnedChannel(address, pin);
}

/** First contact (trust on first use), or the user accepting a new certificate by its SHA-256. */
async function pinFirstOrAccepted(
  transport: Extract<RelayTransport, { kind: "pinned" }>, address: string, old: RelayPin | undefined, siblings: readonly string[],
): Promise<RelayPin> {
  const presented = await presentedCertificate(address);
  const presentedSha256 = certificateFingerprint(presented);
  let pin = old;
  if (pin === undefined && siblings.some((s) => transport.pins.get(s)?.sha256 === presentedSha256)) {
    // Never for a changed pin (old !== undefined): a sibling's certificate re-pins nothing.
    pin = await transport.pins.pin(address, presented);
  } else if (transport.acceptSha256 !== undefined && presentedSha256 === transport.acceptSha256 && pin?.sha256 !== presentedSha256) {
    pin = await transport.pins.pin(address, presented);
  } else if (pin === undefined) {
    if (transport.acceptSha256 !== undefined) {
      throw new RelayCertificateRefused({ kind: "certificate-not-accepted", address, presentedSha256, acceptedSha256: transport.acceptSha256 });
    }
    pin = await transport.pins.pin(address, presented); // trust on first use
  } else if (pin.sha256 !== presentedSha256) {
    throw new RelayCertificateRefused(certificateChanged(address, pin, presentedSha256));
  }
  return pin;
}

function pinnedChannel(address: string, pinned: RelayPin): PreparedChannel {
  let seen: Buffer | undefined;
  const binding = (): Buffer | undefined => (seen === undefined ? undefined : tlsChannelBinding(seen));
  const refusal = async (): Promise<SessionEnd | undefined> => {
    let presentedSha256: string;
    try {
      presentedSha256 = certificateFingerprint(await presentedCertificate(address));
    } catch {
      return undefined; // unreachable, or not TLS: the connection error says enough
    }
    return presentedSha256 === pinned.sha256 ? undefined : certificateChanged(address, pinned, presentedSha256);
  };
  // Checked again on the connection itself: the probe's answer proves nothing about this one.
  // The pinned certificate is the only trust anchor, accepted as one even when it is not
  // self-signed (a CA-issued leaf: allowPartialTrustChain); then the leaf must be exactly it.
  const checkServerIdentity = (_host: string, cert: PeerCertificate): Error | undefined => {
    const raw = Buffer.from(cert.raw);
    if (certificateFingerprint(raw) !== pinned.sha256) return new Error(`the relay at ${address} presented a certificate other than the pinned one`);
    seen = raw;
    return undefined;
  };
  const { host } = splitAddress(address);
  return {
    credentials: grpcCredentials.createFromSecureContext(
      createSecureContext({ ca: certificatePem(pinned.certificate), allowPartialTrustChain: true }), { checkServerIdentity },
    ),
    // The pin, not the name, identifies the relay; an IP literal cannot be sent as SNI.
    options: isIP(host) === 0 ? {} : { "grpc.ssl_target_name_override": SNI_FOR_IP },
    binding,
    refusal,
  };
}

// ChatService's Session method with raw bytes both ways, the one definition the raw clients and
// servers of the tests and benchmarks share: RawSession (raw-session.ts), the hostile relay, the
// man in the middle, and the benchmarks' ceiling forwarder (scripts/bench/_relay-host.ts). Each
// side encodes and decodes frames itself, so it can write bytes no honest encoder would and
// read what it was sent as it came. (The relay has its own, private, in src/server/relay.ts.)
import type { ServiceDefinition } from "@grpc/grpc-js";
import { ChatServiceService } from "../../src/gen/securechat/v1/chat.js";

/** The bytes as a Buffer, without a copy (a Buffer as it is; a Uint8Array viewed in place). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The Session method's path: /securechat.v1.ChatService/Session. */
export const SESSION_PATH = ChatServiceService.session.path;

export const RAW_SESSION_SERVICE = {
  session: {
    path: SESSION_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: asBuffer,
    requestDeserialize: (b: Buffer): Buffer => b,
    responseSerialize: asBuffer,
    responseDeserialize: (b: Buffer): Buffer => b,
  },
} satisfies ServiceDefinition;

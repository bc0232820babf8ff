// Devices with the real content layer (src/client/mls/content.ts) and the kept history, over
// the multi-device test world of test/helpers/mls-devices.ts (fake-ds per device, whose devices
// carry the content double): for the tests of my own messages from my other devices, read
// markers, and the hostile cases around them (PROTOCOL.md §4.5, §11, §11.3).
import { join } from "node:path";
import { AtRestCipher } from "../../src/client/at-rest.js";
import { MessageHistory } from "../../src/client/history.js";
import { contentLayerOver } from "../../src/client/mls/content.js";
import { ClientStateStore } from "../../src/client/state-store.js";
import type { ChatMessage, SessionEvent } from "../../src/client/types.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { nullLogger } from "../../src/protocol/log.js";
import type { TestContent } from "./mls-content-double.js";
import type { Device, DeviceWorld } from "./mls-devices.js";
import { waitUntil as waitFor } from "./wait.js";

/** MLS work is CPU-heavy on a shared machine: conditions get a long deadline. */
export const waitUntil = <T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 90_000): Promise<T> => waitFor(fn, what, ms);

export type RealDevice = Device & { readonly state: ClientStateStore; readonly history: MessageHistory };

/** A device of `w` with the real content layer over its own state db, and its history hearing every event (as chat-client wires it). */
export async function realDevice(w: DeviceWorld, root: string, name: string, deviceName: string, states: ClientStateStore[]): Promise<RealDevice> {
  const d = await w.device(name, deviceName);
  const state = ClientStateStore.open(join(root, `${name}-${d.entry.deviceId}_state.db`));
  states.push(state);
  const history = new MessageHistory(state, new AtRestCipher({ username: name, sigPrivate: d.key } as unknown as PrivateIdentity), nullLogger);
  const events = d.events;
  events.push = (...es: SessionEvent[]): number => {
    for (const e of es) history.onEvent(e);
    return Array.prototype.push.apply(events, es);
  };
  d.engine = w.engine({ ...d, content: contentLayerOver(state, name) as unknown as TestContent });
  return Object.assign(d, { state, history });
}

export const messagesIn = (d: Device, conv: string): ChatMessage[] => d.events.flatMap((e) => (e.type === "message" && e.message.conversationId === conv ? [e.message] : []));
export const refusalsOf = (d: Device): number => d.events.filter((e) => e.type === "refused").length;
export const readsOf = (d: Device): Extract<SessionEvent, { type: "read" }>[] => d.events.flatMap((e) => (e.type === "read" ? [e] : []));

/** Sends and waits until the relay accepted it. */
export async function sendAccepted(d: Device, conv: string, text: string): Promise<string> {
  const r = d.engine.send(conv, text);
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  await waitUntil(() => d.events.some((e) => e.type === "message-state" && e.id === r.value.id && e.state === "accepted"), `${d.entry.name}'s "${text}" accepted`);
  return r.value.id;
}

// alice's devices as real ChatClients against a real relay (PROTOCOL.md §4.5, §4.6): her primary
// (the key file's identity) and linked devices made as linking leaves them (a device key, an MLS
// client vouched for by alice's identity key). Each gets its own home under `dir`; every client
// started is pushed to `clients` for the caller to close. The caller publishes the device list
// naming a linked device (its `entry`) before starting it.
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { linkedIdentity } from "../../src/client/local-identity.js";
import { MlsKeyStore } from "../../src/client/mls-store.js";
import { newDeviceId } from "../../src/protocol/devices.js";
import type { PrivateIdentity } from "../../src/protocol/keys.js";
import { generateMlsSignatureKey, makeCredential, mlsClientFromCredential } from "../../src/protocol/mls/index.js";
import { TestClient } from "./client-harness.js";
import type { TestRelay } from "./relay-harness.js";

export interface DeviceWorld {
  readonly relay: TestRelay;
  readonly dir: string;
  readonly alice: PrivateIdentity;
  readonly clients: TestClient[];
}

/** alice's primary ("laptop"), started. */
export async function startPrimary(w: DeviceWorld): Promise<TestClient> {
  const home = join(w.dir, "laptop");
  mkdirSync(home, { recursive: true });
  const store = MlsKeyStore.open(join(home, "alice_mls.db"), { username: "alice", sigPrivate: w.alice.sigPrivate });
  const c = await TestClient.start(w.alice, 0, { server: w.relay.address, dir: home, statePath: join(home, "alice_state.db"), v2: { store } });
  w.clients.push(c);
  return c;
}

/** A linked device of alice named `name`, as linking leaves it (PROTOCOL.md §4.6 step 3); `start` runs it. */
export async function linkedDevice(w: DeviceWorld, name: string) {
  const home = join(w.dir, name);
  mkdirSync(home, { recursive: true });
  const deviceKey = generateKeyPairSync("ed25519").privateKey;
  const sig = await generateMlsSignatureKey();
  const { credential } = makeCredential("alice", w.alice.sigPrivate, sig.publicKey);
  const storePath = join(home, "alice_mls.db");
  const store = MlsKeyStore.open(storePath, { username: "alice", sigPrivate: deviceKey }, { linkedTo: w.alice.sigSpki });
  store.putClient(mlsClientFromCredential("alice", credential, sig.publicKey, sig.privateKey));
  store.close();
  const local = linkedIdentity({
    record: { username: "alice", deviceId: newDeviceId(), name, identitySpki: w.alice.sigSpki, encSpki: w.alice.encSpki, encKeySig: w.alice.encKeySig, linkedAtMs: Date.now() },
    deviceKey,
  });
  const entry = { deviceId: local.deviceId, name, authSpki: local.deviceSpki, mlsSignatureKey: Buffer.from(sig.publicKey), addedAtMs: Date.now(), primary: false };
  const start = async (o: { begin?: boolean } = {}): Promise<TestClient> => {
    const store2 = MlsKeyStore.open(storePath, { username: "alice", sigPrivate: deviceKey }, { linkedTo: w.alice.sigSpki });
    const opts = { server: w.relay.address, dir: home, statePath: join(home, "alice_state.db"), identity: local, v2: { store: store2 } };
    const c = o.begin === true ? await TestClient.begin(w.alice, 0, opts) : await TestClient.start(w.alice, 0, opts);
    w.clients.push(c);
    return c;
  };
  return { local, entry, start };
}

// The relay's KeyPackage directory (PROTOCOL.md §8.2; RFC 9420 §10): PublishKeyPackages, the cheap
// checks (sizes, kept ones, the per-device cap) before any decode or verification, then each new
// KeyPackage checked (MLS, suite, lifetime, last_resort marker, owner, and with a device list the
// device's own MLS key) before any is stored; and ClaimKeyPackages, its names checked before any
// lookup, one per device of each user named, each one-time KeyPackage handed out once.
// Part of the MLS Delivery Service (mls-ds.ts), which hands these requests here.
import { ErrorCode, type ClaimKeyPackages, type PublishKeyPackages } from "../gen/securechat/v1/chat.js";
import { MAX_DEVICES } from "../protocol/devices.js";
import { checkUsername } from "../protocol/names.js";
import { checkKeyPackage, decodeKeyPackage, isLastResort } from "../protocol/mls/client.js";
import { checkStillBound } from "./devices.js";
import type { DirectoryUser } from "./directory.js";
import { Refusal } from "./errors.js";
import type { ResponseFrame } from "./frames.js";
import { bad, mls, sha256 } from "./mls-checks.js";
import type { MlsDsDeps } from "./mls-ds.js";
import { checkMlsShape, shapeBoundsFor } from "./mls-shape.js";
import type { StoredKeyPackageInput } from "./store/mls-types.js";

/** Largest KeyPackage accepted (an X-Wing KeyPackage of ours is about 1.6 KiB). */
export const MAX_KEY_PACKAGE_BYTES = 8 * 1024;
/** One-time KeyPackages one user may keep on the relay (the client uploads 20, tops up under 5). */
export const MAX_ONE_TIME_KEY_PACKAGES = 100;
/** Users named in one ClaimKeyPackages. */
export const MAX_CLAIM_USERS = 100;

// The refusals of the counts over these bounds, worded once: the frame scan (frame-scan.ts)
// refuses the same counts before the decode, as the checks below do after it.
export const tooManyOneTime = (n: number): Refusal =>
  new Refusal(ErrorCode.ERROR_CODE_MLS_LIMIT, `at most ${MAX_ONE_TIME_KEY_PACKAGES} one-time KeyPackages per request, not ${n}`);
export const tooManyClaimUsers = (n: number): Refusal =>
  new Refusal(ErrorCode.ERROR_CODE_MLS_LIMIT, `one claim may name at most ${MAX_CLAIM_USERS} users, not ${n}`);
export const tooManyClaimDevices = (): Refusal => new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, `ClaimKeyPackages names more than ${MAX_DEVICES} devices`);

/**
 * PublishKeyPackages (PROTOCOL.md §8.2, §13.2). The cheap checks come first, for every KeyPackage:
 * counts, sizes, which ones this device keeps already (the same bytes, by SHA-256: kept once, not
 * checked again), and the per-device cap counting only the new ones; only then is each new
 * KeyPackage decoded and its credential verified (size, MLS, suite, lifetime, marker, owner),
 * all before any is stored. A publish over the cap costs the relay no decode and no verification.
 */
export function publishKeyPackages(d: MlsDsDeps, user: DirectoryUser, req: PublishKeyPackages): ResponseFrame {
  const me = user.record.username;
  // §8.2: the name may have been released (or bound to another key) since this session's handshake.
  checkStillBound(d.store, user);
  if (req.oneTime.length === 0 && req.lastResort.length === 0) throw new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, "PublishKeyPackages carries no KeyPackage");
  if (req.oneTime.length > MAX_ONE_TIME_KEY_PACKAGES) throw tooManyOneTime(req.oneTime.length);
  const whatOf = (lastResort: boolean, i: number): string => lastResort ? "the last-resort KeyPackage" : `one-time KeyPackage #${i + 1}`;
  const sizeOk = (bytes: Uint8Array, lastResort: boolean, i: number): void => {
    if (bytes.length > MAX_KEY_PACKAGE_BYTES) throw new Refusal(ErrorCode.ERROR_CODE_FRAME_TOO_LARGE, `${whatOf(lastResort, i)} has ${bytes.length} bytes; the most is ${MAX_KEY_PACKAGE_BYTES}`);
  };
  req.oneTime.forEach((b, i) => sizeOk(b, false, i));
  if (req.lastResort.length > 0) sizeOk(req.lastResort, true, 0);
  const nowMs = d.clock();
  const address = d.address;
  const hasList = d.devices.version(me) > 0;
  const device = hasList ? d.devices.deviceAt(address) : undefined;
  if (hasList && device === undefined) throw new Refusal(ErrorCode.ERROR_CODE_DEVICE_UNKNOWN, "this device is not in your device list any more");
  const mlsStore = d.store.mls;
  // The one-time KeyPackages not kept for this device yet (a resend of kept ones, its answer
  // lost, is kept once and not checked again: they were checked when stored, for this device).
  const kept = req.oneTime.length === 0 ? new Set<string>() : new Set(mlsStore.keyPackagesOfAddress(address).map((kp) => sha256(kp.keyPackage).toString("hex")));
  const fresh: Array<{ readonly bytes: Uint8Array; readonly i: number }> = [];
  for (const [i, bytes] of req.oneTime.entries()) {
    const ref = sha256(bytes).toString("hex");
    if (kept.has(ref)) continue;
    kept.add(ref); // the same bytes twice in one request count once
    fresh.push({ bytes, i });
  }
  // The cap is per device (queue address): each device keeps its own KeyPackages.
  const before = mlsStore.keyPackageCounts(address);
  if (before.oneTime + fresh.length > MAX_ONE_TIME_KEY_PACKAGES) {
    throw new Refusal(ErrorCode.ERROR_CODE_MLS_LIMIT,
      `${hasList ? "this device keeps" : "you keep"} ${before.oneTime} one-time KeyPackages here; ${fresh.length} more would pass the limit of ${MAX_ONE_TIME_KEY_PACKAGES}`);
  }
  const shape = shapeBoundsFor(d.limits);
  const check = (bytes: Uint8Array, lastResort: boolean, i: number): StoredKeyPackageInput => {
    const what = whatOf(lastResort, i);
    // §8.2: its lists (capabilities, extensions) walked and bounded before ts-mls builds them (mls-shape.ts).
    checkMlsShape(bytes, what, shape);
    const kp = mls(() => decodeKeyPackage(bytes));
    const id = mls(() => checkKeyPackage(kp, undefined, Math.floor(nowMs / 1000)));
    // PROTOCOL.md §8.2: a session publishes its own user's KeyPackages only.
    if (id.username !== me || !id.identitySpki.equals(user.record.sigSpki)) {
      throw new Refusal(ErrorCode.ERROR_CODE_FORGED_SENDER, `${what} is ${id.username === me ? "signed for another identity key than yours" : `for '${id.username}'`}; you may publish only your own`);
    }
    // §4.5: with a device list, a device publishes KeyPackages for its own MLS key only.
    if (device !== undefined && !Buffer.from(kp.leafNode.signaturePublicKey).equals(device.mlsSignatureKey)) {
      throw bad(`${what} is signed with another MLS key than this device's (${device.name}) in your device list; a device publishes only its own KeyPackages`);
    }
    if (isLastResort(kp) !== lastResort) throw bad(`${what} ${lastResort ? "lacks" : "carries"} the last_resort marker`);
    const lt = kp.leafNode.leafNodeSource === "key_package" ? kp.leafNode.lifetime : undefined;
    return { ref: sha256(bytes), keyPackage: Buffer.from(bytes), notAfterMs: Number(lt!.notAfter) * 1000 };
  };
  const oneTime = fresh.map((f) => check(f.bytes, false, f.i));
  const lastResort = req.lastResort.length > 0 ? check(req.lastResort, true, 0) : undefined;
  const after = mlsStore.publishKeyPackages(me, oneTime, lastResort, address);
  d.logger.info("mls.key_packages.published", { user: me, device: d.devices.deviceIdOf(d.address), oneTime: oneTime.length, lastResort: lastResort !== undefined, left: after.oneTime });
  return { $case: "keyPackageStatus", value: { requestId: req.requestId, oneTimeLeft: after.oneTime, lastResortPresent: after.lastResort } };
}

/** ClaimKeyPackages: one KeyPackage per user named, each one-time one handed out once. */
export function claimKeyPackages(d: MlsDsDeps, user: DirectoryUser, req: ClaimKeyPackages): ResponseFrame {
  // PROTOCOL.md §8.2: the count, then every name against the username rules (§4.1), before any
  // lookup: a name that cannot be bound is refused, never looked up or remembered.
  if (req.usernames.length === 0) throw new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, "ClaimKeyPackages names no user");
  if (req.usernames.length > MAX_CLAIM_USERS) throw tooManyClaimUsers(req.usernames.length);
  for (const [i, name] of req.usernames.entries()) {
    const c = checkUsername(name);
    if (!c.ok) throw new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, `ClaimKeyPackages name #${i + 1} is not a valid username: ${c.reason}`);
  }
  const names = [...new Set(req.usernames)];
  const me = user.record.username;
  // My own user: only with a device list, for my OTHER devices (adding them to my groups, §4.5).
  if (names.includes(me) && d.devices.version(me) === 0) throw new Refusal(ErrorCode.ERROR_CODE_BAD_FRAME, "you cannot claim your own KeyPackage");
  if (req.deviceIds.length > MAX_DEVICES) throw tooManyClaimDevices();
  const onlyDevices = req.deviceIds.length === 0 ? undefined : new Set(req.deviceIds);
  // The users not in memory are read together (one store call); a name nobody owns has no
  // device, so nothing is claimed for it: it is missing.
  d.devices.prefetch(names);
  // One per device in the user's list (one-time first, else its last-resort one); a user
  // without a list has one device at the bare username, as before devices.
  const wanted = names.map((username) => ({
    username,
    addresses: d.devices.addresses(username).filter((a) => a !== d.address && (onlyDevices === undefined || onlyDevices.has(d.devices.deviceIdOf(a)))),
  }));
  // Every device's claim in one store call (one statement on PostgreSQL), each one-time one handed out once.
  const claimed = d.store.mls.claimKeyPackages(wanted.flatMap((w) => w.addresses));
  const entries = [];
  const missing = [];
  for (const { username, addresses } of wanted) {
    let found = 0;
    for (const address of addresses) {
      const kp = claimed.get(address);
      if (kp === undefined) continue;
      found++;
      entries.push({ username, keyPackage: kp.keyPackage, lastResort: kp.lastResort, deviceId: d.devices.deviceIdOf(address) });
    }
    if (found === 0) missing.push(username);
  }
  d.logger.info("mls.key_packages.claimed", { user: user.record.username, asked: names.length, lastResort: entries.filter((e) => e.lastResort).length, missing: missing.length });
  return { $case: "keyPackageList", value: { requestId: req.requestId, entries, missing } };
}

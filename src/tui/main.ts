#!/usr/bin/env -S node --max-semi-space-size=16
// The chat-tui bin. --max-semi-space-size=16 keeps V8's young generation small: after a burst of
// 100,000 messages it otherwise grows to 128 MB and stays there (peak RSS 322 MB -> 232 MB in
// npm run bench; the flag cannot be set from inside the process).
//
// Order matters here: React must see NODE_ENV=production before anything imports it, and the
// compile cache must be on before the bulk of the code (Ink, React, grpc-js, ours) is loaded.
import "./production-mode.js";
import { enableCompileCache } from "node:module";

enableCompileCache();
await import("./cli.js");

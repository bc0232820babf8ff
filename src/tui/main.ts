#!/usr/bin/env -S MALLOC_ARENA_MAX=1 node --max-semi-space-size=16
// The chat-tui bin. --max-semi-space-size=16 keeps V8's young generation small: after a burst of
// 100,000 messages it otherwise grows to 128 MB and stays there (peak RSS 322 MB -> 232 MB in
// npm run bench; the flag cannot be set from inside the process).
// MALLOC_ARENA_MAX=1: glibc gives every thread that allocates (V8's compiler and GC workers,
// libuv's pool doing crypto and file work) its own malloc arena and rarely returns what is freed
// in them; with one arena an idle client holds ~7 MB less (npm run bench, idle RSS). The UI's
// allocations happen on the main thread, so the shared arena costs it nothing measurable. Other
// C libraries ignore it.
//
// Order matters here: React must see NODE_ENV=production before anything imports it, and the
// compile cache must be on before the bulk of the code (Ink, React, grpc-js, ours) is loaded.
import "./production-mode.js";
import { enableCompileCache } from "node:module";

enableCompileCache();
await import("./cli.js");

// React (under Ink) chooses its development or production build when it is first imported, by
// NODE_ENV. The development build checks and records far more on every render: several times
// slower per keystroke and much bigger in memory with a long history. A user running chat-tui
// has not set NODE_ENV, so default it to production. This module must be evaluated before
// anything imports ink or react: run-tui.tsx imports it first (and so should the bin).
// An explicit NODE_ENV (tests set "test") is left alone; an empty one counts as unset.
if (!process.env["NODE_ENV"]) process.env["NODE_ENV"] = "production";

export {};

// The floor under the chat UI's idle memory: a hello-world Ink 8 app (two lines of text on the
// alternate screen, fake 120x35 TTY streams), run with the bin's node flags and environment,
// collected once as the UI does when idle. Whatever chat-tui holds beyond this figure is its own.
// Prints one JSON object: {rssMb}.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { FakeStdin } from "../../test/tui/helpers/terminal.js";
import { BenchStdout } from "./_tui-terminal.js";

process.env.NODE_ENV = "production";
const { render, Text, Box } = await import("ink");
const { createElement } = await import("react");

const instance = render(createElement(Box, { flexDirection: "column" }, createElement(Text, null, "hello"), createElement(Text, null, "world")), {
  stdout: new BenchStdout(120, 35).stream,
  stdin: new FakeStdin().stream,
  stderr: new BenchStdout(120, 35).stream,
  interactive: true,
  alternateScreen: true,
  patchConsole: false,
});
await new Promise((resolve) => setTimeout(resolve, 1_000));
setFlagsFromString("--expose-gc");
(runInNewContext("gc") as (options: object) => void)({ type: "major", execution: "sync", flavor: "last-resort" });
await new Promise((resolve) => setTimeout(resolve, 1_000));
const rssMb = process.memoryUsage.rss() / 2 ** 20;
instance.unmount();
process.stdout.write(`${JSON.stringify({ rssMb })}\n`);
process.exit(0);

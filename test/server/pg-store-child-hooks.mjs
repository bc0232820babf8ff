// Lets a plain `node` child load the project's TypeScript sources (test/server/pg-store-child.ts):
// their imports name the compiled `.js` files; this resolves them to the `.ts` sources when no
// `.js` file is there. Used with --experimental-transform-types (SyncPg has parameter properties).
import { registerHooks } from "node:module";

registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (e) {
      if (specifier.startsWith(".") && specifier.endsWith(".js")) return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
      throw e;
    }
  },
});
